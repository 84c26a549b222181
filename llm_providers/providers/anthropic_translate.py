"""OpenAI's chat body → Anthropic's messages body, field by field (tools, structured output).

Every OpenAI field either has a translation here, is neutral at the value given (a
`frequency_penalty` of 0), or is refused with `UnsupportedFeature` naming it: nothing a
client sends is dropped without an error.

Structured output (`response_format` json_object / json_schema) goes through a forced
tool, `RESPONSE_TOOL`: its input schema is the requested schema (any object for
json_object) and `tool_choice` forces it, so every Anthropic model and API version
supports it (Anthropic's own structured outputs need a beta header and recent models).
Its input comes back as the message's text content, `finish_reason: "stop"`. `strict`
is accepted: the schema is sent, but Anthropic does not enforce it token by token the
way OpenAI's strict mode does (the SDKs' `parse()` still validates it on the client).
"""

import json
from typing import Any

from .base import Message, UnsupportedFeature

RESPONSE_TOOL = "switchyard_structured_output"

# Fields whose value makes no difference at these values (what clients send by default).
NEUTRAL_VALUES: dict[str, tuple] = {
    "frequency_penalty": (0, 0.0),
    "presence_penalty": (0, 0.0),
    "logprobs": (False,),
    "logit_bias": ({},),
    "store": (False,),
    "modalities": (["text"],),
    "service_tier": ("auto", "default"),
    "metadata": ({},),
    "parallel_tool_calls": (True,),
}
# Anthropic's own fields a client may send through an OpenAI SDK's `extra_body`.
ANTHROPIC_NATIVE = ("top_k", "thinking")
HANDLED = frozenset(
    {
        "stop",
        "top_p",
        "user",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "max_completion_tokens",  # Anthropic's max_tokens when max_tokens is not given
        "safety_identifier",  # OpenAI's successor of `user`
    }
)


def convert_extra(extra: dict) -> dict:
    """The body fields beyond model/messages/max_tokens/temperature, for Anthropic."""
    body: dict[str, Any] = {}
    for name, value in extra.items():
        if value is None or name in HANDLED or name in ANTHROPIC_NATIVE:
            continue
        if name in NEUTRAL_VALUES and value in NEUTRAL_VALUES[name]:
            continue
        raise UnsupportedFeature(name, f"Anthropic cannot honour `{name}`; remove it.")
    stop = extra.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    for name in ("top_p", *ANTHROPIC_NATIVE):
        if extra.get(name) is not None:
            body[name] = extra[name]
    user = extra.get("safety_identifier") or extra.get("user")
    if user:
        body["metadata"] = {"user_id": str(user)}
    tools = extra.get("tools")
    if tools:
        body["tools"] = [convert_tool(t) for t in _list(tools, "tools")]
    choice = convert_tool_choice(extra.get("tool_choice"), bool(tools))
    if extra.get("parallel_tool_calls") is False and tools:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if choice is not None:
        body["tool_choice"] = choice
    response_format = extra.get("response_format")
    if response_format is not None:
        forced = response_tool(response_format)
        if forced is not None:
            if tools:
                raise UnsupportedFeature(
                    "response_format",
                    "Anthropic: `response_format` cannot be combined with `tools` "
                    "(it is implemented as a forced tool).",
                )
            body["tools"] = [forced]
            body["tool_choice"] = {"type": "tool", "name": RESPONSE_TOOL}
    return body


def _list(value, param: str) -> list:
    if not isinstance(value, list):
        raise UnsupportedFeature(param, f"`{param}` must be an array.")
    return value


def convert_tool(tool: Any) -> dict:
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else type(tool).__name__
        raise UnsupportedFeature("tools", f"Anthropic accepts function tools only, not {kind!r}.")
    function = tool.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise UnsupportedFeature("tools", "Each tool needs `function.name`.")
    if function["name"] == RESPONSE_TOOL:
        raise UnsupportedFeature("tools", f"The tool name {RESPONSE_TOOL!r} is reserved.")
    out: dict[str, Any] = {
        "name": function["name"],
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = str(function["description"])
    return out


def convert_tool_choice(choice: Any, has_tools: bool) -> dict | None:
    if choice is None:
        return None
    if choice in ("auto", "none", "required") and not has_tools:
        if choice == "required":
            raise UnsupportedFeature("tool_choice", "`tool_choice: required` needs `tools`.")
        return None
    if choice == "auto":
        return {"type": "auto"}
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if isinstance(name, str) and name and has_tools:
            return {"type": "tool", "name": name}
    raise UnsupportedFeature(
        "tool_choice",
        "`tool_choice` must be auto, none, required or {type: function, function: {name}} "
        "naming one of `tools`.",
    )


def response_tool(response_format: Any) -> dict | None:
    """The forced tool for a response_format; None for plain text."""
    if not isinstance(response_format, dict):
        raise UnsupportedFeature("response_format", "`response_format` must be an object.")
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {
            "name": RESPONSE_TOOL,
            "description": "Answer with a JSON object.",
            "input_schema": {"type": "object"},
        }
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise UnsupportedFeature("response_format", "`json_schema.schema` must be an object.")
        schema = spec.get("schema") or {"type": "object"}
        if schema.get("type") != "object":
            raise UnsupportedFeature(
                "response_format", "Anthropic: the JSON schema's top level must be an object."
            )
        description = spec.get("description") or f"Answer with JSON: {spec.get('name', 'result')}."
        return {"name": RESPONSE_TOOL, "description": str(description), "input_schema": schema}
    raise UnsupportedFeature("response_format", f"Unknown response_format type {kind!r}.")


# -- messages ---------------------------------------------------------------------------
def convert_messages(messages: list[Message]) -> tuple[str, list[dict]]:
    """OpenAI messages → (Anthropic top-level system text, Anthropic messages).

    Assistant `tool_calls` become `tool_use` blocks and `role: tool` results
    `tool_result` blocks (ids kept); consecutive tool results share one user turn, as
    Anthropic expects the results of parallel calls.
    """
    system_parts: list[str] = []
    converted: list[dict] = []
    for message in messages:
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system_parts.append(text_of(content))
        elif role == "user":
            converted.append({"role": "user", "content": blocks_of(content)})
        elif role == "assistant":
            converted.append({"role": "assistant", "content": assistant_content(message)})
        elif role == "tool":
            result = tool_result(message)
            last = converted[-1] if converted else None
            if (
                last is not None
                and last["role"] == "user"
                and isinstance(last["content"], list)
                and last["content"]
                and all(b.get("type") == "tool_result" for b in last["content"])
            ):
                last["content"].append(result)
            else:
                converted.append({"role": "user", "content": [result]})
        else:
            raise UnsupportedFeature(
                "messages", f"Unsupported message role for Anthropic: {role!r}"
            )
    return "\n\n".join(p for p in system_parts if p), converted


def assistant_content(message: Message) -> str | list[dict]:
    content = message.get("content")
    calls = message.get("tool_calls") or []
    if message.get("function_call"):
        raise UnsupportedFeature("messages", "Use `tool_calls`, not the legacy `function_call`.")
    if not calls:
        return blocks_of(content if content is not None else "")
    blocks: list[dict] = []
    if content:
        text = blocks_of(content)
        blocks.extend([{"type": "text", "text": text}] if isinstance(text, str) else text)
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not call.get("id"):
            raise UnsupportedFeature("messages", "Each tool call needs `id` and `function`.")
        arguments = function.get("arguments") or "{}"
        try:
            parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
        except ValueError:
            raise UnsupportedFeature(
                "messages", f"Tool call {call['id']}: `arguments` is not JSON."
            ) from None
        if not isinstance(parsed, dict):
            raise UnsupportedFeature(
                "messages", f"Tool call {call['id']}: arguments not an object."
            )
        blocks.append(
            {
                "type": "tool_use",
                "id": str(call["id"]),
                "name": str(function.get("name")),
                "input": parsed,
            }
        )
    return blocks


def tool_result(message: Message) -> dict:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise UnsupportedFeature("messages", "A `tool` message needs `tool_call_id`.")
    content = message.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    if isinstance(content, list):
        block["content"] = blocks_of(content)
    else:
        block["content"] = "" if content is None else str(content)
    return block


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return "" if content is None else str(content)


def blocks_of(content: Any) -> str | list[dict]:
    """OpenAI content (a string or parts) → Anthropic content (a string or blocks)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise UnsupportedFeature("messages", "A message's content must be a string or parts.")
    blocks: list[dict] = []
    for part in content:
        if not isinstance(part, dict):
            raise UnsupportedFeature("messages", "A content part must be an object.")
        if part.get("type") == "text":
            blocks.append({"type": "text", "text": str(part.get("text", ""))})
        elif part.get("type") == "image_url":
            blocks.append(image_block(part))
        else:
            raise UnsupportedFeature(
                "messages", f"Unsupported content part for Anthropic: {part.get('type')!r}"
            )
    return blocks


def image_block(part: dict) -> dict:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise UnsupportedFeature("messages", "An image part needs `image_url.url`.")
    if isinstance(image, dict) and image.get("detail") not in (None, "auto"):
        raise UnsupportedFeature(
            "messages", "Anthropic has no image `detail` setting; send `auto` or none."
        )
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not media_type.startswith("image/"):
            raise UnsupportedFeature(
                "messages", "An image data URL must be `data:image/<type>;base64,<data>`."
            )
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if url.startswith("https://") or url.startswith("http://"):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise UnsupportedFeature("messages", "An image URL must be https:// or a data: URL.")
