"""Prometheus metrics (SPEC §15), correct across several server processes.

With `PROMETHEUS_MULTIPROC_DIR` set (scripts/run.sh and scripts/serve-web.sh set it, and
wipe it when the server starts) prometheus_client keeps every value in a small mmapped file
per process in that directory, and `/metrics` adds them up: a counter never goes back when
the request lands on another worker, and a dead worker's counts stay counted. The
in-flight gauge is `livesum`: only live processes count, so a worker that died mid-call
does not leave its calls "in flight" for ever (`reap_dead_processes`, at each scrape).
Without the variable (tests, `manage.py runserver`) the values live in this process.

Tenant labels only with `METRICS_TENANT_LABELS` (every tenant multiplies the series).
"""

import os
import re
from pathlib import Path

from django.conf import settings
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Any process with the variable writes its values there (a manage.py command too):
    # the directory must exist before the first metric below is made.
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

# Our own registry: the metrics of SPEC §15 only, not the client's process/GC collectors
# (which in multiprocess mode would describe only the worker that answered the scrape).
REGISTRY = CollectorRegistry(auto_describe=True)

TENANT_LABELS = bool(getattr(settings, "METRICS_TENANT_LABELS", False))
_tenant = ("tenant",) if TENANT_LABELS else ()

REQUESTS = Counter(
    "switchyard_llm_requests",
    "LLM calls finished, by outcome (`success` or the normalised error type).",
    ("provider", "model", "endpoint", "outcome", *_tenant),
    registry=REGISTRY,
)
TOKENS = Counter(
    "switchyard_llm_tokens",
    "Tokens the providers reported: input, output, cache_read, cache_write, reasoning.",
    ("provider", "model", "type", *_tenant),
    registry=REGISTRY,
)
COST = Counter(
    "switchyard_llm_cost_usd",
    "Cost in US dollars of the calls whose price is known.",
    ("provider", "model", *_tenant),
    registry=REGISTRY,
)
DURATION = Histogram(
    "switchyard_llm_request_duration_seconds",
    "Duration of an LLM call, retries included (a stream: until it ended).",
    ("provider", "endpoint"),
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, float("inf")),
    registry=REGISTRY,
)
OVERHEAD = Histogram(
    "switchyard_gateway_overhead_seconds",
    "Time a /v1 request spent in Switchyard itself, the provider's time excluded.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, float("inf")),
    registry=REGISTRY,
)
INFLIGHT = Gauge(
    "switchyard_llm_inflight_requests",
    "LLM calls in progress (streams until they end).",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)

# TokenUsage attribute of each `type` label value.
TOKEN_TYPES = (
    ("input", "prompt_tokens"),
    ("output", "completion_tokens"),
    ("cache_read", "cached_prompt_tokens"),
    ("cache_write", "cache_write_tokens"),
    ("reasoning", "reasoning_tokens"),
)


# A caller names the model of its request: a tenant sending random names must not grow the
# series without bound. The first MAX_MODEL_LABELS names each process sees are labels; later
# new ones count as "other".
MAX_MODEL_LABELS = int(getattr(settings, "METRICS_MAX_MODELS", 200))
_models_seen: set[str] = set()


def model_label(model: str | None) -> str:
    model = (model or "")[:200]
    if model in _models_seen:
        return model
    if len(_models_seen) >= MAX_MODEL_LABELS:
        return "other"
    _models_seen.add(model)
    return model


def record(*, tenant_id, provider, model, endpoint, outcome, usage, cost, seconds) -> None:
    """Count one finished call."""
    provider = provider or "none"
    model = model_label(model)
    tenant = (tenant_id,) if TENANT_LABELS else ()
    REQUESTS.labels(provider, model, endpoint, outcome, *tenant).inc()
    DURATION.labels(provider, endpoint).observe(seconds)
    if usage is not None:
        for kind, attribute in TOKEN_TYPES:
            count = getattr(usage, attribute, 0) or 0
            # input and output always (so the series exist); the rest when reported.
            if count or kind in ("input", "output"):
                TOKENS.labels(provider, model, kind, *tenant).inc(count)
    if cost is not None:
        COST.labels(provider, model, *tenant).inc(float(cost))


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


_LIVE_FILE = re.compile(r"^gauge_(?:live\w*)_(\d+)\.db$")


def reap_dead_processes(path: str) -> list[int]:
    """`mark_process_dead` for every process whose live-gauge file outlived it.

    granian has no hook for a worker's death (it respawns it itself), so the scrape does
    the bookkeeping: a file named after a pid that no longer exists is a dead worker's.
    """
    from prometheus_client import multiprocess

    dead = []
    for entry in Path(path).iterdir():
        match = _LIVE_FILE.match(entry.name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and not _alive(pid):
            multiprocess.mark_process_dead(pid, path)
            dead.append(pid)
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def exposition() -> bytes:
    """The text format of every metric, summed over all processes when there are several."""
    path = multiprocess_dir()
    if path is None:
        return generate_latest(REGISTRY)
    from prometheus_client import multiprocess

    reap_dead_processes(path)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    return generate_latest(registry)
