"""Groq: OpenAI-shaped, at api.groq.com/openai/v1."""

from .openai import OpenAICompatibleAdapter


class GroqAdapter(OpenAICompatibleAdapter):
    name = "groq"
    label = "Groq"
    default_base_url = "https://api.groq.com/openai/v1"
    base_url_setting = "GROQ_BASE_URL"
    key_setting = "GROQ_API_KEY"
    supports_embeddings = False  # Groq has no embeddings API
