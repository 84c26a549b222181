"""Settings for benchmark runs: the real settings, plus the floor views' URLs."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.gateway.floor"
