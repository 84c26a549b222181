"""The engine: where a call goes, its arguments, its bookkeeping, and the LLMService facade."""
