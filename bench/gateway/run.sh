#!/usr/bin/env bash
# Side-by-side throughput of /v1/chat/completions: upstream alone, LiteLLM's proxy,
# Switchyard, under one load generator (wrk), in one run. Loopback only, bounded durations.
#
#   bash bench/gateway/run.sh                 # full run, writes bench/README.md's section
#   DURATION=5 ROUNDS=1 bash bench/gateway/run.sh --no-readme
#   bash bench/gateway/run.sh --targets switchyard --server gthread:2x4 --path /floor/auth-insert
#
# Needs: Debian's nginx and wrk (installed when missing), the project venv (.venv), and a
# separate venv for LiteLLM (created at $LITELLM_VENV when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq nginx wrk >/dev/null
fi

PY=${PYTHON:-.venv/bin/python}
if [ ! -x "$PY" ]; then
  make venv  # the project's own venv, as the quick start makes it
fi

export LITELLM_VENV=${LITELLM_VENV:-/tmp/switchyard-bench-litellm-venv}
if [[ " $* " != *" --targets "* || " $* " == *"litellm"* ]]; then
  if [ ! -x "$LITELLM_VENV/bin/litellm" ]; then
    python3 -m venv "$LITELLM_VENV"
    "$LITELLM_VENV/bin/pip" install -q -r bench/gateway/litellm-requirements.txt
  fi
fi

exec "$PY" bench/gateway/bench.py "$@"
