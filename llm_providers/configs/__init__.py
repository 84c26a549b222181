"""Provider configs: their operations, rules, encryption, URL safety and the connection test."""
