"""OpenAI-compatible providers as presets of the OpenAI adapter: a base URL, an auth
header, what the provider offers, and its parameter quirks — no copied code.

Sources: each provider's OpenAI-compatibility documentation (see the README's provider
table). A key is always sent in a header, never in a URL (Gemini's own API takes `?key=`;
its OpenAI-compatible endpoint is used with `x-goog-api-key` instead).
"""

from .openai import OpenAICompatibleAdapter


class GeminiAdapter(OpenAICompatibleAdapter):
    name = "gemini"
    label = "Google Gemini"
    default_base_url = "https://generativelanguage.googleapis.com/v1beta/openai"
    key_setting = "GEMINI_API_KEY"
    auth_header = "x-goog-api-key"
    auth_prefix = ""


class MistralAdapter(OpenAICompatibleAdapter):
    name = "mistral"
    label = "Mistral"
    default_base_url = "https://api.mistral.ai/v1"
    key_setting = "MISTRAL_API_KEY"
    # Mistral refuses unknown body fields (422) and sends usage in its last chunk anyway.
    send_stream_options = False
    renamed_fields = {"seed": "random_seed", "max_completion_tokens": "max_tokens"}
    embedding_dimensions_field = "output_dimension"


class AzureOpenAIAdapter(OpenAICompatibleAdapter):
    """Azure OpenAI's v1 API: base `https://<resource>.openai.azure.com/openai/v1`, the
    deployment name as the model, the key in `api-key`."""

    name = "azure"
    label = "Azure OpenAI"
    default_base_url = ""  # the resource's own URL: required
    key_setting = "AZURE_OPENAI_API_KEY"
    auth_header = "api-key"
    auth_prefix = ""
    max_tokens_field = "max_completion_tokens"


class OpenRouterAdapter(OpenAICompatibleAdapter):
    name = "openrouter"
    label = "OpenRouter"
    default_base_url = "https://openrouter.ai/api/v1"
    key_setting = "OPENROUTER_API_KEY"
    supports_embeddings = False


class DeepSeekAdapter(OpenAICompatibleAdapter):
    name = "deepseek"
    label = "DeepSeek"
    default_base_url = "https://api.deepseek.com/v1"
    key_setting = "DEEPSEEK_API_KEY"
    supports_embeddings = False
    supports_images = False  # its chat models take text only
    renamed_fields = {"max_completion_tokens": "max_tokens"}


class TogetherAdapter(OpenAICompatibleAdapter):
    name = "together"
    label = "Together AI"
    default_base_url = "https://api.together.xyz/v1"
    key_setting = "TOGETHER_API_KEY"


class FireworksAdapter(OpenAICompatibleAdapter):
    name = "fireworks"
    label = "Fireworks AI"
    default_base_url = "https://api.fireworks.ai/inference/v1"
    key_setting = "FIREWORKS_API_KEY"


class XAIAdapter(OpenAICompatibleAdapter):
    name = "xai"
    label = "xAI"
    default_base_url = "https://api.x.ai/v1"
    key_setting = "XAI_API_KEY"
    supports_embeddings = False


class OllamaAdapter(OpenAICompatibleAdapter):
    name = "ollama"
    label = "Ollama"
    default_base_url = "http://127.0.0.1:11434/v1"
    requires_api_key = False


class VLLMAdapter(OpenAICompatibleAdapter):
    name = "vllm"
    label = "vLLM"
    default_base_url = ""  # wherever it runs: required
    requires_api_key = False


PRESETS = (
    GeminiAdapter,
    MistralAdapter,
    AzureOpenAIAdapter,
    OpenRouterAdapter,
    DeepSeekAdapter,
    TogetherAdapter,
    FireworksAdapter,
    XAIAdapter,
    OllamaAdapter,
    VLLMAdapter,
)
