"""Lenient parsing of the model's answers: the loop must end cleanly whatever comes back."""

import json
import re
from dataclasses import dataclass, field

from . import prompts

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)
_TRUE_WORDS = {"true", "yes", "pass", "passed", "ok", "approved"}


def _template(schema: str):
    try:
        return json.loads(schema)
    except ValueError:  # e.g. "passed": true or false
        return None


# The answer shapes our prompts show. A model that echoes its prompt back gives these
# (or their placeholder parts) as "its" JSON: never an answer.
_TEMPLATES = tuple(
    t for t in (_template(prompts.BLUEPRINT_SCHEMA), _template(prompts.REVIEW_SCHEMA)) if t
)
_PLACEHOLDERS = frozenset({"...", "…", ""})


def _is_template(value: dict) -> bool:
    if value in _TEMPLATES:
        return True
    leaves = list(_string_leaves(value))
    return bool(leaves) and all(leaf.strip() in _PLACEHOLDERS for leaf in leaves)


def _string_leaves(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _string_leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _string_leaves(item)


def extract_json_object(text: str | None) -> dict | None:
    """The first JSON object in `text` (inside code fences or surrounded by prose), or None.

    Our prompts' own answer templates (a model echoing its prompt) are skipped whole, so
    neither they nor an object nested in them is taken for the answer.
    """
    if not text:
        return None
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        start = candidate.find("{")
        while start != -1:
            try:
                value, end = decoder.raw_decode(candidate, start)
            except ValueError:
                start = candidate.find("{", start + 1)
                continue
            if isinstance(value, dict):
                if not _is_template(value):
                    return value
                start = candidate.find("{", end)  # past the whole template
                continue
            start = candidate.find("{", start + 1)
    return None


@dataclass(frozen=True)
class Review:
    passed: bool
    issues: list[str] = field(default_factory=list)
    feedback: str = ""


def _as_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in _TRUE_WORDS
    return False


def parse_review(text: str | None) -> tuple[Review, dict | None]:
    """The review in `text`; anything unparseable counts as not passed (never as a pass)."""
    data = extract_json_object(text)
    if data is None:
        return Review(passed=False, feedback=(text or "").strip()), None
    passed = _as_bool(data.get("passed", data.get("pass", data.get("approved", False))))
    raw_issues = data.get("issues") or []
    if isinstance(raw_issues, str):
        raw_issues = [raw_issues]
    issues = [str(i) for i in raw_issues] if isinstance(raw_issues, list) else [str(raw_issues)]
    return Review(passed=passed, issues=issues, feedback=json.dumps(data, indent=2)), data


def blueprint_as_text(parsed: dict | None, raw: str) -> str:
    """What the next prompt shows as the blueprint: tidy JSON when we have it, else the raw text."""
    if parsed is not None:
        return json.dumps(parsed, indent=2, ensure_ascii=False)
    return raw
