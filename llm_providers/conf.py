"""Defaults of the llm_providers settings inside a host project (see tenants/conf.py).

The reference deployment (config/settings.py) reads each of them from the environment
with these same defaults.
"""

DEFAULTS = {
    "LLM_REQUEST_TIMEOUT": 60.0,
    # Overall deadline per call, retries included (None: twice LLM_REQUEST_TIMEOUT).
    "LLM_REQUEST_DEADLINE": None,
    "LLM_MAX_RETRIES": 2,
    "LLM_VALIDATE_ON_STARTUP": True,
    "LLM_VALIDATION_MODE": "models",
    # Seconds each config's validation may take (its deadline; one attempt).
    "LLM_VALIDATION_TIMEOUT": 10.0,
    # No private address until the operator names one (the reference quick start's .env
    # allows loopback for local model servers); link-local and metadata addresses are never
    # allowed whatever this says.
    "LLM_BASE_URL_ALLOWLIST": [],
    "LLM_DEFAULT_PROVIDER": "",
    "LLM_DEFAULT_MODEL": "",
    "LLM_DEFAULT_BASE_URL": "",
    "OPENAI_API_KEY": "",
    "ANTHROPIC_API_KEY": "",
    "GROQ_API_KEY": "",
    "OPENAI_BASE_URL": "",
    "ANTHROPIC_BASE_URL": "",
    "GROQ_BASE_URL": "",
    "LLM_LOG_PROMPTS": False,
    "LLM_GATEWAY_CACHE_SECONDS": 5.0,
    "LLM_USAGE_ASYNC_COMMIT": False,
    # Days of raw usage rows kept (rolled-up days only); None: kept for ever.
    "LLM_USAGE_RETENTION_DAYS": None,
    # POST /api/llm/test spends real tokens: at most this many per tenant (DRF rate syntax).
    "LLM_TEST_THROTTLE_RATE": "10/min",
    # Limits, fallbacks, circuit breakers (SPEC §14; README "Limits, fallbacks and breakers").
    "LLM_LIMITS_BACKEND": "auto",
    "LLM_LIMITS_CACHE_SECONDS": 5.0,
    "LLM_LIMITS_HOLD_SECONDS": 600.0,
    "LLM_LIMITS_DEFAULT_MAX_TOKENS": 4096,
    "LLM_LIMITS_RECONCILE_SECONDS": 300.0,
    "LLM_DEFAULT_MAX_CONCURRENT": 8,
    "LLM_BREAKER_FAILURES": 5,
    "LLM_BREAKER_WINDOW": 60.0,
    "LLM_BREAKER_COOLDOWN": 30.0,
    # A usage row the database would not take is kept here until it does (usage/spool.py).
    "LLM_USAGE_SPOOL_DIR": "var/usage-spool",
    # Longest a stream may run from its first byte; 0: the call's deadline.
    "LLM_STREAM_MAX_SECONDS": 0,
    # Under ASGI, how often /healthz's checks are re-run while probes come, and the
    # longest a check may run before probes answer 503 `fail`.
    "LLM_HEALTHZ_INTERVAL_SECONDS": 1.0,
    "LLM_HEALTHZ_TIMEOUT_SECONDS": 2.0,
}
