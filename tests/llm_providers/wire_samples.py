"""Providers' wire formats for tool calls and structured output, as the stand-ins send them.

Built with json.dumps from the shapes in each provider's API reference, so the events are
exactly what a client of the real API would read.
"""

import json

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
QUESTION = [{"role": "user", "content": "Weather in Paris and Lyon?"}]


def sse(events, *, named=False) -> str:
    out = []
    for event in events:
        if event == "[DONE]":
            out.append("data: [DONE]\n\n")
        elif named:
            out.append(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n")
        else:
            out.append(f"data: {json.dumps(event)}\n\n")
    return "".join(out)


# -- OpenAI-shaped ------------------------------------------------------------------------
def openai_tool_reply(calls=(("call_1", "Paris"), ("call_2", "Lyon")), model="gpt-4o-mini"):
    return {
        "id": "chatcmpl-tools",
        "object": "chat.completion",
        "created": 1764300000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {
                                "name": "get_weather",
                                "arguments": json.dumps({"city": city}),
                            },
                        }
                        for call_id, city in calls
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
    }


def openai_tool_stream() -> str:
    """Two parallel calls, their arguments in pieces, as OpenAI streams them."""

    def chunk(delta, finish=None, usage=None):
        return {
            "id": "chatcmpl-s",
            "object": "chat.completion.chunk",
            "created": 1764300000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
            if delta is not None
            else [],
            "usage": usage,
        }

    def call(index, call_id=None, name=None, arguments=""):
        out = {"index": index, "function": {"arguments": arguments}}
        if call_id:
            out.update(id=call_id, type="function")
            out["function"]["name"] = name
        return out

    return sse(
        [
            chunk({"role": "assistant", "content": None}),
            chunk({"tool_calls": [call(0, "call_1", "get_weather")]}),
            chunk({"tool_calls": [call(0, arguments='{"city": ')]}),
            chunk({"tool_calls": [call(0, arguments='"Paris"}')]}),
            chunk({"tool_calls": [call(1, "call_2", "get_weather")]}),
            chunk({"tool_calls": [call(1, arguments='{"city": "Lyon"}')]}),
            chunk({}, "tool_calls"),
            chunk(None, usage={"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70}),
            "[DONE]",
        ]
    )


# -- Anthropic ----------------------------------------------------------------------------
ANTHROPIC_MODEL = "claude-sonnet-4-5-20250929"


def anthropic_reply(content, stop_reason="end_turn", usage=None, model=ANTHROPIC_MODEL):
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 50, "output_tokens": 20},
    }


def anthropic_tool_reply():
    return anthropic_reply(
        [
            {"type": "text", "text": "Checking."},
            {
                "type": "tool_use",
                "id": "toolu_01",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
            {
                "type": "tool_use",
                "id": "toolu_02",
                "name": "get_weather",
                "input": {"city": "Lyon"},
            },
        ],
        "tool_use",
    )


def anthropic_stream(blocks, stop_reason, usage_in=None, model=ANTHROPIC_MODEL) -> str:
    """A message stream: `blocks` are ("text", [pieces]) or ("tool", id, name, [pieces])."""
    events = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_s",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": usage_in or {"input_tokens": 50, "output_tokens": 1},
            },
        }
    ]
    for index, block in enumerate(blocks):
        if block[0] == "text":
            events.append(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                }
            )
            events += [
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": piece},
                }
                for piece in block[1]
            ]
        else:
            _, block_id, name, pieces = block
            events.append(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {
                        "type": "tool_use",
                        "id": block_id,
                        "name": name,
                        "input": {},
                    },
                }
            )
            events += [
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": piece},
                }
                for piece in pieces
            ]
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": 20},
        }
    )
    events.append({"type": "message_stop"})
    return sse(events, named=True)


def anthropic_tool_stream() -> str:
    return anthropic_stream(
        [
            ("text", ["Check", "ing."]),
            ("tool", "toolu_01", "get_weather", ['{"city": ', '"Paris"}']),
            ("tool", "toolu_02", "get_weather", ['{"ci', 'ty": "Lyon"}']),
        ],
        "tool_use",
    )
