"""provider string → adapter. Adding a provider: one module (or a preset in presets.py)
and one entry here, plus its Provider choice in models.py."""

from .anthropic import AnthropicAdapter
from .base import ProviderAdapter
from .groq import GroqAdapter
from .local import LocalAdapter
from .openai import OpenAIAdapter
from .presets import PRESETS

ADAPTERS: dict[str, ProviderAdapter] = {
    adapter.name: adapter
    for adapter in (
        OpenAIAdapter(),
        AnthropicAdapter(),
        GroqAdapter(),
        LocalAdapter(),
        *(preset() for preset in PRESETS),
    )
}


class UnknownProvider(ValueError):
    pass


def get_adapter(provider: str) -> ProviderAdapter:
    """The (stateless, shared) adapter for `provider`; UnknownProvider when there is none."""
    try:
        return ADAPTERS[provider]
    except KeyError:
        raise UnknownProvider(f"Unknown provider {provider!r}.") from None
