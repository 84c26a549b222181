from build_loop.parsing import extract_json_object, parse_review


def test_extracts_a_bare_json_object():
    assert extract_json_object('{"a": 1}') == {"a": 1}


def test_extracts_json_from_a_code_fence_surrounded_by_prose():
    text = 'Sure! Here it is:\n```json\n{"title": "Shop", "n": [1, 2]}\n```\nHope it helps.'
    assert extract_json_object(text) == {"title": "Shop", "n": [1, 2]}


def test_extracts_the_first_object_from_prose_without_fences():
    text = 'The blueprint is {"title": "A"} and then {"title": "B"}.'
    assert extract_json_object(text) == {"title": "A"}


def test_skips_braces_that_do_not_start_valid_json():
    text = 'Use {curly} braces like {"ok": true}'
    assert extract_json_object(text) == {"ok": True}


def test_returns_none_for_text_without_a_json_object():
    assert extract_json_object("No JSON here, just words.") is None
    assert extract_json_object('["a list", "is not an object"]') is None
    assert extract_json_object("") is None
    assert extract_json_object(None) is None


def test_returns_none_for_truncated_json():
    assert extract_json_object('{"title": "Shop", "components": [') is None


def test_review_passes_only_when_it_says_so():
    assert parse_review('{"passed": true, "issues": []}')[0].passed is True
    assert parse_review('{"passed": "yes"}')[0].passed is True
    assert parse_review('{"passed": false, "issues": ["x"]}')[0].passed is False
    assert parse_review('{"issues": ["x"]}')[0].passed is False


def test_unparseable_review_counts_as_not_passed_and_keeps_the_text_as_feedback():
    review, data = parse_review("Looks great to me!")
    assert review.passed is False
    assert review.feedback == "Looks great to me!"
    assert data is None


def test_review_issues_are_strings_even_when_the_model_gives_one_string():
    review, _ = parse_review('{"passed": false, "issues": "Missing auth."}')
    assert review.issues == ["Missing auth."]
