"""The REST API of SPEC §7 for provider configs, tests and usage (views, serializers, filters)."""
