"""Write a local `.env` with fresh secrets; refuse to touch one that exists.

Standard library only, so it runs before (or without) the virtual environment.
Usage: python scripts/write_env.py [PATH]   (default: .env beside manage.py)
"""

import base64
import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

TEMPLATE = """\
# Switchyard local settings, written by `make run` on {date}.
# Keep this file private. It is never overwritten: edit it, or delete it to start over
# (a new FIELD_ENCRYPTION_KEY makes provider keys stored under the old one undecryptable;
# rotate instead, see the README). Variables set in the environment take precedence.

SECRET_KEY={secret_key}
# Fernet keys, comma-separated, newest first.
FIELD_ENCRYPTION_KEY={field_key}

# --- Local-only relaxations -----------------------------------------------------------
# `make run` serves plain HTTP on 127.0.0.1, so the HTTPS protections that are on by
# default would lock you out of the admin (redirect to https://, cookies sent over HTTPS
# only, HSTS pinned in the browser). Remove these lines in production, where TLS is
# served (or terminated at a proxy in front, then also set USE_X_FORWARDED_PROTO=true).
DEBUG=false
SECURE_SSL_REDIRECT=false
SESSION_COOKIE_SECURE=false
CSRF_COOKIE_SECURE=false
SECURE_HSTS_SECONDS=0
# Tenants' base URLs may point at this machine, for local model servers (llama.cpp,
# Ollama…). Outside the quick start the default allows no private address: this also
# lets every tenant reach every local port (this app, PostgreSQL, Redis).
LLM_BASE_URL_ALLOWLIST=127.0.0.0/8,::1/128
"""


def fernet_key() -> str:
    # The format Fernet.generate_key() produces: 32 random bytes, URL-safe base64.
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def render() -> str:
    return TEMPLATE.format(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        # URL-safe characters only: no '$' (django-environ expands it) and no quotes.
        secret_key=secrets.token_urlsafe(50),
        field_key=fernet_key(),
    )


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent / ".env"
    try:
        # O_EXCL: never overwrite, even if another run created the file a moment ago.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(f"{path} exists; leaving it as it is.")
        return 0
    with os.fdopen(fd, "w") as fh:
        fh.write(render())
    print(f"Wrote {path} with a fresh SECRET_KEY and FIELD_ENCRYPTION_KEY (keep it private).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
