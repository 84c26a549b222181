"""Every prompt the build loop sends, in one place.

Each prompt asks for one JSON object; the answers are parsed leniently (see parsing.py)
because small local models do not always follow the format.
"""

SYSTEM = (
    "You are a senior software architect. You answer with exactly one JSON object and "
    "nothing else: no prose before or after it, no code fences."
)

BLUEPRINT_SCHEMA = """{
  "title": "short name of the system",
  "summary": "two or three sentences",
  "components": [{"name": "...", "responsibility": "...", "interfaces": ["..."]}],
  "data_model": [{"entity": "...", "fields": ["..."]}],
  "apis": [{"method": "...", "path": "...", "purpose": "..."}],
  "risks": ["..."]
}"""

REVIEW_SCHEMA = """{
  "passed": true or false,
  "issues": ["each concrete problem that must be fixed"],
  "suggestions": ["optional improvements"]
}"""


def blueprint_prompt(description: str) -> str:
    return (
        "Design a system blueprint for the following description.\n\n"
        f"Description:\n{description}\n\n"
        f"Answer with one JSON object shaped like this:\n{BLUEPRINT_SCHEMA}"
    )


def review_prompt(description: str, blueprint: str) -> str:
    return (
        'Review the blueprint below against the description. Set "passed" to true only '
        "when the blueprint covers the description completely and has no serious problems.\n\n"
        f"Description:\n{description}\n\n"
        f"Blueprint:\n{blueprint}\n\n"
        f"Answer with one JSON object shaped like this:\n{REVIEW_SCHEMA}"
    )


def refine_prompt(description: str, blueprint: str, feedback: str) -> str:
    return (
        "Improve the blueprint below so that it fixes every issue raised in the review.\n\n"
        f"Description:\n{description}\n\n"
        f"Current blueprint:\n{blueprint}\n\n"
        f"Review:\n{feedback}\n\n"
        f"Answer with the complete improved blueprint as one JSON object shaped like this:\n"
        f"{BLUEPRINT_SCHEMA}"
    )
