"""Settings for benchmark runs: the real settings, plus the floor views' URLs."""

import os

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.gateway.floor"

if os.environ.get("BENCH_CONN_MAX_AGE"):
    DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ["BENCH_CONN_MAX_AGE"])  # noqa: F405
