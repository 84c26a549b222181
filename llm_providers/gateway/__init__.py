"""The OpenAI-compatible /v1 gateway (SPEC §7): plain Django views over LLMService."""
