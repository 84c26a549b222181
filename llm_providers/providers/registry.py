"""provider string → adapter. Adding a provider: one module and one entry here."""

from .anthropic import AnthropicAdapter
from .base import ProviderAdapter
from .groq import GroqAdapter
from .local import LocalAdapter
from .openai import OpenAIAdapter

ADAPTERS: dict[str, ProviderAdapter] = {
    adapter.name: adapter
    for adapter in (OpenAIAdapter(), AnthropicAdapter(), GroqAdapter(), LocalAdapter())
}


class UnknownProvider(ValueError):
    pass


def get_adapter(provider: str) -> ProviderAdapter:
    """The (stateless, shared) adapter for `provider`; UnknownProvider when there is none."""
    try:
        return ADAPTERS[provider]
    except KeyError:
        raise UnknownProvider(f"Unknown provider {provider!r}.") from None
