"""The lenient parser never takes its own prompt's template for an answer (issue 13)."""

from build_loop import prompts
from build_loop.parsing import extract_json_object, parse_review


def test_an_echoed_blueprint_prompt_yields_no_blueprint():
    echo = prompts.blueprint_prompt("A bicycle shop.")

    assert extract_json_object(echo) is None


def test_an_echoed_refine_prompt_does_not_yield_the_template():
    echo = prompts.refine_prompt("A shop.", "not json yet", "Add payments.")

    assert extract_json_object(echo) is None


def test_a_template_with_placeholders_only_is_not_an_answer():
    assert extract_json_object('{"title": "...", "components": [{"name": "..."}]}') is None


def test_the_real_answer_after_an_echoed_template_is_found():
    echo = prompts.blueprint_prompt("A shop.")
    answer = '{"title": "Shop", "summary": "Sells bikes.", "components": []}'

    assert extract_json_object(f"{echo}\n\n{answer}") == {
        "title": "Shop",
        "summary": "Sells bikes.",
        "components": [],
    }


def test_an_echoed_review_prompt_never_passes():
    blueprint = '{"title": "Shop", "summary": "Sells bikes."}'
    review, data = parse_review(prompts.review_prompt("A shop.", blueprint))

    assert review.passed is False
    assert data is None or "passed" not in data
