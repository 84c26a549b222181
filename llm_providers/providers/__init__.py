"""Provider adapters: one module per provider behind `base.ProviderAdapter`."""

from .registry import get_adapter

__all__ = ["get_adapter"]
