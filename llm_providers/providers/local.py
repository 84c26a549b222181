"""Local OpenAI-compatible servers: llama.cpp's llama-server, Ollama (/v1), vLLM.

The base URL is the config's (it includes `/v1`); the key is optional and sent as a
Bearer token only when there is one.
"""

from .openai import OpenAICompatibleAdapter


class LocalAdapter(OpenAICompatibleAdapter):
    name = "local"
    label = "Local server"
    default_base_url = ""
    base_url_setting = None
    key_setting = None
    requires_api_key = False
    # llama-server answers to any model name, whatever its list says.
    lists_every_model = False
