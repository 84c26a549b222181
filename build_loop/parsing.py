"""Lenient parsing of the model's answers: the loop must end cleanly whatever comes back."""

import json
import re
from dataclasses import dataclass, field

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)
_TRUE_WORDS = {"true", "yes", "pass", "passed", "ok", "approved"}


def extract_json_object(text: str | None) -> dict | None:
    """The first JSON object in `text` (inside code fences or surrounded by prose), or None."""
    if not text:
        return None
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        start = candidate.find("{")
        while start != -1:
            try:
                value, _ = decoder.raw_decode(candidate, start)
            except ValueError:
                start = candidate.find("{", start + 1)
                continue
            if isinstance(value, dict):
                return value
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
