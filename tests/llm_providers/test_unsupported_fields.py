"""Never dropped silently (SPEC §13): every OpenAI chat field reaches Anthropic translated,
is neutral at the value given, or is refused with an error naming it.

The field list is the official SDK's own request type, so a field OpenAI adds shows up
here as a failure until it is translated or refused.
"""

import json

import pytest
import responses
from openai.types.chat import completion_create_params

from llm_providers.gateway.wire import OWN_FIELDS
from llm_providers.providers.anthropic_translate import HANDLED, convert_extra
from llm_providers.providers.base import UnsupportedFeature
from llm_providers.services import LLMService

from .wire_samples import QUESTION, anthropic_reply

SDK_FIELDS = sorted(completion_create_params.CompletionCreateParamsBase.__annotations__)
REFUSED = [f for f in SDK_FIELDS if f not in OWN_FIELDS and f not in HANDLED]


def test_the_audit_covers_the_fields_clients_send():
    assert {"tools", "tool_choice", "response_format", "stop", "top_p", "user"} <= set(HANDLED)
    assert {"seed", "logit_bias", "audio", "reasoning_effort", "functions"} <= set(REFUSED)


@pytest.mark.parametrize("name", REFUSED)
def test_every_field_without_an_anthropic_equivalent_is_refused_by_name(name):
    with pytest.raises(UnsupportedFeature) as caught:
        convert_extra({name: "some-value"})
    assert caught.value.param == name
    assert f"`{name}`" in caught.value.message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("frequency_penalty", 0),
        ("presence_penalty", 0.0),
        ("logprobs", False),
        ("logit_bias", {}),
        ("store", False),
        ("modalities", ["text"]),
        ("service_tier", "auto"),
        ("parallel_tool_calls", True),
        ("seed", None),
    ],
)
@responses.activate
def test_neutral_values_are_accepted_and_not_sent(anthropic_config, name, value):
    responses.post(
        "https://api.anthropic.com/v1/messages",
        json=anthropic_reply([{"type": "text", "text": "Hi"}]),
    )

    result = LLMService("tenant_123").chat(QUESTION, extra={name: value})

    assert result.success
    assert name not in json.loads(responses.calls[0].request.body)


@responses.activate
def test_safety_identifier_and_user_become_metadata_user_id(anthropic_config):
    responses.post(
        "https://api.anthropic.com/v1/messages",
        json=anthropic_reply([{"type": "text", "text": "Hi"}]),
    )

    LLMService("tenant_123").chat(QUESTION, extra={"safety_identifier": "u-1"})

    assert json.loads(responses.calls[0].request.body)["metadata"] == {"user_id": "u-1"}
