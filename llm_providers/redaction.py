"""One logging filter that keeps provider keys out of every log record (SPEC §10).

It redacts well-known key shapes (OpenAI/Anthropic `sk-…`, Groq `gsk_…`), bearer tokens,
`x-api-key`/`authorization` values, `key=`-style query parameters and every decrypted key
registered with `register_secret()` (LLMService registers each key it uses), from the
message, its arguments, the exception text and the stack text.
This module imports nothing from Django so that LOGGING can load it early.
"""

import logging
import re
import threading
from collections import OrderedDict

REDACTED = "[REDACTED]"

_PATTERNS = [
    # Provider key shapes; the prefix is kept so a reader knows what kind of key it was.
    (re.compile(r"\b(sk-ant-)[A-Za-z0-9_\-]{8,}"), r"\1" + REDACTED),
    (re.compile(r"\b(sk-)[A-Za-z0-9_\-]{12,}"), r"\1" + REDACTED),
    (re.compile(r"\b(gsk_)[A-Za-z0-9_\-]{12,}"), r"\1" + REDACTED),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=\-]{4,}"), r"\1" + REDACTED),
    # Header-like pairs, also inside a dict's repr: 'x-api-key': 'value', api-key=value.
    (
        re.compile(
            r"""(?i)\b((?:x-api-key|api[-_]?key|authorization|x-goog-api-key)['"]?\s*[:=]\s*['"]?)"""
            r"""(?!\[REDACTED\])(?:bearer\s+)?[^\s'",;}&]+"""
        ),
        r"\1" + REDACTED,
    ),
    # Credentials in a URL's user-info part: https://user:pass@host/ (an operator-set
    # base URL in a retry log line, a proxy URL…).
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/?#@'\"]+@"), r"\1" + REDACTED + "@"),
    # Query parameters that carry credentials.
    (
        re.compile(r"(?i)([?&](?:key|api_key|api-key|apikey|access_token|token)=)[^&\s#'\"]+"),
        r"\1" + REDACTED,
    ),
]

MAX_REGISTERED_SECRETS = 2048

_secrets: OrderedDict[str, None] = OrderedDict()
_secrets_lock = threading.Lock()
_secrets_pattern: re.Pattern | None = None


def register_secret(secret: str | None) -> None:
    """Redact this exact value from now on (a decrypted key in use), whatever its length:
    a short key is still a key (an upstream echoing it would otherwise spread it)."""
    global _secrets_pattern
    if not secret:
        return
    if secret in _secrets:  # the common case: no lock, no rebuild
        return
    with _secrets_lock:
        _secrets[secret] = None
        while len(_secrets) > MAX_REGISTERED_SECRETS:
            _secrets.popitem(last=False)
        # Longest first, so a key that contains another is redacted whole.
        alternatives = sorted(_secrets, key=len, reverse=True)
        _secrets_pattern = re.compile("|".join(re.escape(s) for s in alternatives))


def forget_secrets() -> None:
    """Drop every registered secret (tests)."""
    global _secrets_pattern
    with _secrets_lock:
        _secrets.clear()
        _secrets_pattern = None


def redact(text: str) -> str:
    """`text` with every known secret and key shape replaced by [REDACTED]."""
    if not text:
        return text
    pattern = _secrets_pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for regex, replacement in _PATTERNS:
        text = regex.sub(replacement, text)
    return text


class SecretRedactionFilter(logging.Filter):
    """Redacts secrets from a record's message, args, exception and stack text.

    The message is formatted once here and the args dropped, so that no handler or
    formatter after this one can re-insert an argument that held a key.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            if not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(record.exc_text)
            # Handlers that format exc_info themselves would bypass exc_text.
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
