"""The argument checks of LLMService's calls: programming errors raise ValueError."""

import json
from collections.abc import Mapping, Sequence

from ..models import Endpoint
from .options import CallOptions

# Checked on every call: Django's `Endpoint.values` builds a new list at each access.
ENDPOINTS = frozenset(Endpoint.values)
MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def check_prompt(prompt, system) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt must be a non-empty string.")
    if system is not None and not isinstance(system, str):
        raise ValueError("system must be a string.")


def check_max_tokens(max_tokens, *, required: bool) -> None:
    if max_tokens is None and not required:
        return
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0:
        raise ValueError("max_tokens must be a positive integer.")


def check_common(model, temperature, endpoint, metadata) -> None:
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise ValueError("model must be a non-empty string when given.")
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise ValueError("temperature must be a number.")
        if not 0 <= temperature <= 2:
            raise ValueError("temperature must be between 0 and 2.")
    if endpoint not in ENDPOINTS:
        raise ValueError(f"Unknown endpoint {endpoint!r}; expected one of {Endpoint.values}.")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise ValueError("metadata must be a dict.")
        try:
            json.dumps(metadata)
        except (TypeError, ValueError):
            raise ValueError("metadata must be JSON-serialisable.") from None


def check_messages(messages) -> None:
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence) or not messages:
        raise ValueError("messages must be a non-empty list of {role, content} objects.")
    for message in messages:
        if not isinstance(message, Mapping) or message.get("role") not in MESSAGE_ROLES:
            raise ValueError("Each message needs a role: system, user, assistant or tool.")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise ValueError("A message's content must be a string or a list of parts.")


def check_options(options) -> None:
    if options is not None and not isinstance(options, CallOptions):
        raise ValueError("options must be a CallOptions.")
