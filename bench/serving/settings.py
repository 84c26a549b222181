"""Settings for the serving comparison: the real settings plus a hello-world async view."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.serving.urls"
