"""Settings for the test suite: the real settings with throwaway secrets."""

import os

from cryptography.fernet import Fernet

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")
os.environ.setdefault("FIELD_ENCRYPTION_KEY", Fernet.generate_key().decode())
os.environ.setdefault("LLM_VALIDATE_ON_STARTUP", "false")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
# The tests' fake providers listen on loopback (as the quick start's local models do).
os.environ.setdefault("LLM_BASE_URL_ALLOWLIST", "127.0.0.0/8,::1/128")

from .settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {  # noqa: F405
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
}

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not SQLite's shared-cache memory database: with a file, concurrent writers in
    # tests wait on the busy timeout exactly as in production instead of failing with
    # "database table is locked", and subprocesses (gunicorn, db_worker) can open it.
    import tempfile

    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.gettempdir(), f"switchyard-test-{os.getpid()}.sqlite3")
    }

# Serve static files from the apps directly; tests never run collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# Each test run gets its own in-memory cache (throttles, validation state).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Rows the test database refused go to a throwaway spool, never the checkout's var/.
import tempfile as _tempfile  # noqa: E402

LLM_USAGE_SPOOL_DIR = _tempfile.mkdtemp(prefix="switchyard-test-spool-")
