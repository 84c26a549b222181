"""Switchyard settings, read from the environment (and a `.env` file when present)."""

import hashlib
from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env.str("SECRET_KEY")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

DJANGO_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
]
THIRD_PARTY_APPS = [
    "rest_framework",
    "rest_framework_api_key",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Before django_tasks_db: its `db_worker` command replaces the library's (worker/).
    "worker",
    "django_tasks_db",
    "axes",
]
LOCAL_APPS = [
    "tenants",
    "llm_providers",
    "build_loop",
]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

MIDDLEWARE = [
    # First: every record of the request (logs, audit) carries its id (X-Request-ID).
    "tenants.api.middleware.RequestIdMiddleware",
    # Outermost but one, so it sees every final response: under ASGI, sync streaming responses
    # (SSE from /v1, static files) go out chunk by chunk instead of being buffered whole.
    "config.serving.streaming.SyncStreamingRelayMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.serving.static.AsyncCapableWhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Before CommonMiddleware: the REST API's body-size limit (413) applies before the
    # body is read.
    "tenants.api.middleware.ApiBodyLimitMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into its 429 page.
    "axes.middleware.AxesMiddleware",
]

# --- Admin login brute-force protection (django-axes) ----------------------------------
# After AXES_FAILURE_LIMIT wrong passwords for one user name from one address, that pair
# is locked out for AXES_COOLOFF_MINUTES (a 429; even the right password is refused).
# Locking the pair, not the user name alone, so that an attacker cannot lock the operator
# out from everywhere. Behind a proxy every client has the proxy's address: the lockout
# is then per user name. Unlock early: `manage.py axes_reset` or the admin's Access
# attempts page.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login outright
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
# SQLite is the embedded default; PostgreSQL through DATABASE_URL for production.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # WAL lets readers proceed while one writer writes; IMMEDIATE transactions plus
            # a busy timeout make concurrent writers queue instead of failing with
            # "database is locked".
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": env.int("SQLITE_BUSY_TIMEOUT", default=20),
        }
    )
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Persistent connections, SQLite too: opening one per request (with its PRAGMAs) cost more
# CPU than the whole /v1 call otherwise does (bench/README.md).
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


# --- Cache (rate limits, shared validation state) -------------------------------------
# The embedded default is a file cache so that every server process and the task worker on
# one machine share throttles and the latest validation; Redis (CACHE_URL=redis://...)
# when there are several machines. Its directory belongs to the deployment's database:
# two deployments run from one checkout (two DATABASE_URLs) never share throttles or
# validation state, while every process of one deployment does.
def deployment_cache_dir(database: dict) -> Path:
    """var/cache/<a hash of the database's identity: the SQLite file, or engine and server>."""
    if database["ENGINE"] == "django.db.backends.sqlite3":
        identity = str(Path(database["NAME"]).resolve())
    else:
        parts = (database["ENGINE"], database.get("HOST"), database.get("PORT"), database["NAME"])
        identity = "|".join(str(part or "") for part in parts)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return BASE_DIR / "var" / "cache" / digest


CACHES = {
    "default": env.cache(
        "CACHE_URL", default=f"filecache://{deployment_cache_dir(DATABASES['default'])}"
    )
}

# --- Background tasks -----------------------------------------------------------------
TASKS = {
    "default": {
        "BACKEND": env.str("TASKS_BACKEND", default="django_tasks_db.DatabaseBackend"),
    }
}

# --- Auth, i18n, static ---------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Security (production defaults; each can be relaxed by environment) ---------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# /healthz is probed over plain HTTP by load balancers.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]  # and /metrics by scrapers (guarded)

# Field encryption: comma-separated Fernet keys, newest first (rotation: prepend a new key,
# then run `manage.py rotate_field_encryption`).
FIELD_ENCRYPTION_KEY = env.list("FIELD_ENCRYPTION_KEY")

# --- REST framework and the API schema -------------------------------------------------
# Largest request body the REST API accepts (413 above it).
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=1024 * 1024)
# Page size of paginated lists (clients may ask for up to API_MAX_PAGE_SIZE with page_size).
API_PAGE_SIZE = env.int("API_PAGE_SIZE", default=50)
API_MAX_PAGE_SIZE = env.int("API_MAX_PAGE_SIZE", default=500)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenants.authentication.TenantAPIKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["tenants.permissions.IsTenantAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["tenants.api.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "tenants.api.pagination.PageNumberPagination",
    "PAGE_SIZE": API_PAGE_SIZE,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "tenants.api.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Switchyard API",
    "DESCRIPTION": "Multi-tenant LLM provider backend.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its page are public: no authentication is even attempted there.
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Builds and build steps both have a `status` with different choices: name the enums.
    "ENUM_NAME_OVERRIDES": {
        "BuildStatusEnum": "build_loop.models.BuildStatus",
        "BuildStepStatusEnum": "build_loop.models.StepStatus",
        "BuildStepNameEnum": "build_loop.models.StepName",
    },
    # The /v1 gateway's plain Django views, described by hand.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "llm_providers.gateway.openapi.add_gateway_paths",
    ],
}

# --- LLM providers (defaults as in llm_providers/conf.py, the package's own) ------------
LLM_REQUEST_TIMEOUT = env.float("LLM_REQUEST_TIMEOUT", default=60.0)
# Overall deadline per LLM call, retries included (unset or 0: twice LLM_REQUEST_TIMEOUT).
LLM_REQUEST_DEADLINE = env.float("LLM_REQUEST_DEADLINE", default=0) or None
LLM_MAX_RETRIES = env.int("LLM_MAX_RETRIES", default=2)
LLM_VALIDATE_ON_STARTUP = env.bool("LLM_VALIDATE_ON_STARTUP", default=True)
LLM_VALIDATION_MODE = env.str("LLM_VALIDATION_MODE", default="models")
# Seconds each config's validation may take (one attempt).
LLM_VALIDATION_TIMEOUT = env.float("LLM_VALIDATION_TIMEOUT", default=10.0)
# Networks (CIDR, no host names) a tenant's base_url may point at besides public
# addresses. None by default (unlike the package's default, loopback): loopback would let
# every tenant reach every local port (the app itself, PostgreSQL, Redis). The quick
# start's .env (scripts/write_env.py) allows loopback for local model servers.
# Link-local/metadata addresses are never allowed.
LLM_BASE_URL_ALLOWLIST = env.list("LLM_BASE_URL_ALLOWLIST", default=[])
LLM_DEFAULT_PROVIDER = env.str("LLM_DEFAULT_PROVIDER", default="")
LLM_DEFAULT_MODEL = env.str("LLM_DEFAULT_MODEL", default="")
LLM_DEFAULT_BASE_URL = env.str("LLM_DEFAULT_BASE_URL", default="")
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
ANTHROPIC_API_KEY = env.str("ANTHROPIC_API_KEY", default="")
GROQ_API_KEY = env.str("GROQ_API_KEY", default="")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="")
ANTHROPIC_BASE_URL = env.str("ANTHROPIC_BASE_URL", default="")
GROQ_BASE_URL = env.str("GROQ_BASE_URL", default="")
# The environment fallback's keys for the OpenAI-compatible presets (issue 10).
GEMINI_API_KEY = env.str("GEMINI_API_KEY", default="")
MISTRAL_API_KEY = env.str("MISTRAL_API_KEY", default="")
AZURE_OPENAI_API_KEY = env.str("AZURE_OPENAI_API_KEY", default="")
OPENROUTER_API_KEY = env.str("OPENROUTER_API_KEY", default="")
DEEPSEEK_API_KEY = env.str("DEEPSEEK_API_KEY", default="")
TOGETHER_API_KEY = env.str("TOGETHER_API_KEY", default="")
FIREWORKS_API_KEY = env.str("FIREWORKS_API_KEY", default="")
XAI_API_KEY = env.str("XAI_API_KEY", default="")
# Prompts and answers are not stored on usage rows unless the operator turns this on.
LLM_LOG_PROMPTS = env.bool("LLM_LOG_PROMPTS", default=False)
# /v1 keeps API-key lookups and active configs in-process this long (0 turns it off).
LLM_GATEWAY_CACHE_SECONDS = env.float("LLM_GATEWAY_CACHE_SECONDS", default=5.0)
# POST /api/llm/test spends real tokens: at most this many per tenant (DRF rate syntax).
LLM_TEST_THROTTLE_RATE = env.str("LLM_TEST_THROTTLE_RATE", default="10/min")
# Usage rows: optional asynchronous commit on PostgreSQL (opt-in; bench/README.md). When
# true, each usage-row INSERT (its own transaction) commits without waiting for the WAL
# flush (`synchronous_commit = off` for that transaction only). Trade-off: a crash of the
# *database server* can lose the last ~0.6 s of usage rows (never corrupts them). Ignored
# on SQLite and inside a caller's transaction.
LLM_USAGE_ASYNC_COMMIT = env.bool("LLM_USAGE_ASYNC_COMMIT", default=False)
# Usage retention: when set, the task worker deletes raw usage rows older than this many
# days whose days are rolled up (after the daily rollup task; `manage.py prune_usage` by
# hand or cron). Off by default: usage rows are kept for ever.
LLM_USAGE_RETENTION_DAYS = env.int("LLM_USAGE_RETENTION_DAYS", default=0) or None

# --- Logging: one filter redacts provider keys from every record (SPEC §10); every record
# gets the current request's id ("-" outside a request); LOG_FORMAT=json: one JSON object
# per line (config.logformat).
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise environ.ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact_secrets": {"()": "llm_providers.redaction.SecretRedactionFilter"},
        "request_id": {"()": "tenants.context.RequestIdLogFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "config.logformat.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["redact_secrets", "request_id"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
    },
}

# --- Metrics and tracing (SPEC §15; llm_providers/observability/) ----------------------
# /metrics: with a token, `Authorization: Bearer <token>` is required; without, loopback
# clients only. Tenant labels multiply the series by the tenants: off unless asked for.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_TENANT_LABELS = env.bool("METRICS_TENANT_LABELS", default=False)
METRICS_MAX_MODELS = env.int("METRICS_MAX_MODELS", default=200)
# OpenTelemetry traces go out over OTLP/HTTP once an endpoint is configured (the exporter
# reads every OTEL_EXPORTER_OTLP_* variable itself); off otherwise, at no cost.
TRACING_ENABLED = (
    bool(
        env.str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", default="")
        or env.str("OTEL_EXPORTER_OTLP_ENDPOINT", default="")
    )
    and not env.bool("OTEL_SDK_DISABLED", default=False)
    and env.str("OTEL_TRACES_EXPORTER", default="otlp").lower() != "none"
)
# Just inside the request id, so the span knows the id and sees every answer. With
# tracing off it removes itself when the handler is built (MiddlewareNotUsed).
MIDDLEWARE.insert(1, "llm_providers.observability.middleware.TracingMiddleware")

# --- Build loop -----------------------------------------------------------------------
# A running build whose worker has not touched its heartbeat for this long is failed (by
# the worker before each build and by `manage.py fail_stale_builds`). Keep it well above
# the longest single LLM call (LLM_REQUEST_DEADLINE, by default twice LLM_REQUEST_TIMEOUT).
BUILD_STALE_AFTER_SECONDS = env.int("BUILD_STALE_AFTER_SECONDS", default=900)
BUILD_MAX_TOKENS = env.int("BUILD_MAX_TOKENS", default=2000)
# --- Usage rows the database would not take (issue 15.5; llm_providers/usage/spool.py) ---
# A usage INSERT that fails (locked, unreachable) is retried briefly, then the row is kept
# here (one fsync'ed JSON line) and written back once the database takes writes again.
# Scoped to the deployment's database like the cache: a spool is replayed into the
# database its rows belong to, never into another deployment's.
LLM_USAGE_SPOOL_DIR = env.str(
    "LLM_USAGE_SPOOL_DIR",
    default=str(BASE_DIR / "var" / "usage-spool" / deployment_cache_dir(DATABASES["default"]).name),
)

# --- Streams (issue 15.8) -----------------------------------------------------------------
# Longest a stream may run, from its first byte; 0: the call's deadline (LLM_REQUEST_DEADLINE).
LLM_STREAM_MAX_SECONDS = env.float("LLM_STREAM_MAX_SECONDS", default=0)
# --- /healthz (llm_providers/health.py) ------------------------------------------------------
# Under ASGI the checks (database, cache, spool) run on a thread of their own every
# LLM_HEALTHZ_INTERVAL_SECONDS while probes come, and a probe answers with the latest result
# (never older than the interval plus a check's own time). A check that runs longer than
# LLM_HEALTHZ_TIMEOUT_SECONDS makes probes answer 503 `fail` until it ends: a stuck
# database fails the probe fast instead of hanging it.
LLM_HEALTHZ_INTERVAL_SECONDS = env.float("LLM_HEALTHZ_INTERVAL_SECONDS", default=1.0)
LLM_HEALTHZ_TIMEOUT_SECONDS = env.float("LLM_HEALTHZ_TIMEOUT_SECONDS", default=2.0)

# --- Serving (ASGI; scripts/run.sh and config/asgi.py; README "Scaling and deployment") ---
# Threads per web process that run the sync views (each request leases one for its whole
# length; async views need none). Each holds its own database connection.
WEB_THREADS = env.int("WEB_THREADS", default=32)
# Largest request body any path accepts, and the time the whole body may take to arrive
# (checked before Django reads it; the REST API has its own, smaller API_MAX_BODY_BYTES).
SERVER_MAX_BODY_BYTES = env.int("SERVER_MAX_BODY_BYTES", default=16 * 1024 * 1024)
SERVER_BODY_TIMEOUT_SECONDS = env.float("SERVER_BODY_TIMEOUT_SECONDS", default=30.0)
# The probe port (config/serving/probe.py): 0 (off), or a port each web process also
# listens on, answering GET /healthz from a thread of its own instead of the serving event
# loop, plus how late that loop is; a loop stalled longer than SERVER_HEALTH_STALL_SECONDS
# is a 503. For orchestrators' liveness and readiness probes (README "Scaling and deployment").
SERVER_HEALTH_PORT = env.int("SERVER_HEALTH_PORT", default=0)
SERVER_HEALTH_ADDRESS = env.str("SERVER_HEALTH_ADDRESS", default="127.0.0.1")
SERVER_HEALTH_STALL_SECONDS = env.float("SERVER_HEALTH_STALL_SECONDS", default=10.0)
# The garbage collector's first threshold in each web process (config/serving/gc.py):
# raised from Python's 2,000 so that many open requests are not walked again and again;
# 0 leaves Python's own.
SERVER_GC_THRESHOLD = env.int("SERVER_GC_THRESHOLD", default=50_000)
# Tasks (builds) one `manage.py db_worker` process runs at once, each in its own thread and
# with its own database connection (they wait on providers nearly all the time).
TASK_THREADS = env.int("TASK_THREADS", default=8)

# --- Limits, fallbacks, circuit breakers (SPEC §14, llm_providers/limits) -------------
# Where admission counters live: "database" (the default database, atomic UPDATEs),
# "redis" (the cache's Redis, Lua scripts), or "auto": redis when CACHE_URL is redis://.
LLM_LIMITS_BACKEND = env.str("LLM_LIMITS_BACKEND", default="auto")
# Each process keeps a tenant's limits row this long (0: read it on every call).
LLM_LIMITS_CACHE_SECONDS = env.float("LLM_LIMITS_CACHE_SECONDS", default=5.0)
# A reservation not settled within this many seconds (its process died) is released.
LLM_LIMITS_HOLD_SECONDS = env.float("LLM_LIMITS_HOLD_SECONDS", default=600.0)
# Worst-case answer length reserved for a call that sets no max_tokens.
LLM_LIMITS_DEFAULT_MAX_TOKENS = env.int("LLM_LIMITS_DEFAULT_MAX_TOKENS", default=4096)
# Counters are rebuilt from the usage rows at most this often (0: only by the command).
LLM_LIMITS_RECONCILE_SECONDS = env.float("LLM_LIMITS_RECONCILE_SECONDS", default=300.0)
# Concurrent calls per tenant *per process* for tenants without their own max_concurrent
# (in memory, no query; 0 turns it off).
LLM_DEFAULT_MAX_CONCURRENT = env.int("LLM_DEFAULT_MAX_CONCURRENT", default=8)
# Circuit breaker per provider config: open after this many transient failures within
# the window (seconds), skip the config for the cooldown (seconds), then one probe.
LLM_BREAKER_FAILURES = env.int("LLM_BREAKER_FAILURES", default=5)
LLM_BREAKER_WINDOW = env.float("LLM_BREAKER_WINDOW", default=60.0)
LLM_BREAKER_COOLDOWN = env.float("LLM_BREAKER_COOLDOWN", default=30.0)
