#!/usr/bin/env bash
# Concurrency benchmark (issue 9): 64 / 256 / 1,024 open requests, plain and streamed,
# against a provider stand-in with a model's timing — reached directly, through LiteLLM's
# proxy, and through Switchyard as `make serve` serves it — in one run, one table.
#
#   bench/concurrency/run.sh                                   # everything (~12 min)
#   SWITCHYARD_DIR=/work/wt/other bench/concurrency/run.sh     # another checkout's code
#   TARGETS=direct,switchyard CONCURRENCY=256 MODES=stream DURATION=10 bench/concurrency/run.sh
#   bench/concurrency/run.sh --keep                            # keep logs and the SQLite db
#
# Knobs (environment; the same as bench.py run's options):
#   TARGETS          direct,litellm,switchyard
#   CONCURRENCY      64,256,1024          open requests (client connections)
#   MODES            plain,stream
#   DURATION         20                   seconds per cell;  WARMUP 2 (8 connections, each target)
#   TIMEOUT          10                   client timeout per request (then a new connection)
#   DRAIN_MAX        20                   after a cell, wait this long for the target to go idle
#                                         at the stand-in, else restart it (shown as "restarted")
#   SWITCHYARD_DIR   this checkout        the Switchyard checkout to serve (needs its .venv)
#   SWITCHYARD_CMD   scripts/run.sh       run in SWITCHYARD_DIR; must listen on $BIND_ADDRESS:$PORT
#   WEB_CONCURRENCY, WEB_THREADS, TASK_WORKERS, GUNICORN_CMD_ARGS, ...: passed through to it
#   LITELLM_VENV     /tmp/switchyard-bench-litellm-venv (created when missing)
#   LITELLM_WORKERS  2
#   STANDIN_DELAY 1.0, STANDIN_CHUNKS 20, STANDIN_INTERVAL 0.05, PORT_BASE 19080,
#   PROBE_INTERVAL 0.1, PROBE_TIMEOUT 10
#
# Stdlib python3 for the harness; everything on 127.0.0.1; every loop bounded. Whatever it
# started is stopped on exit, Ctrl-C or SIGTERM (the trap below, and bench.py's own).
set -euo pipefail
cd "$(dirname "$0")/../.."

# 1,024 client sockets + as many server-side ones + the gateway's upstream sockets.
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then hard=65536; fi
ulimit -n "$hard"
if [ "$hard" -lt 8192 ]; then
  echo "run.sh: the open-file limit is $hard (hard); 1,024 open requests need more." >&2
fi

TARGETS=${TARGETS:-direct,litellm,switchyard}
export TARGETS
export LITELLM_VENV=${LITELLM_VENV:-/tmp/switchyard-bench-litellm-venv}
if [[ ",$TARGETS," == *",litellm,"* ]] && [ ! -x "$LITELLM_VENV/bin/litellm" ]; then
  echo "run.sh: installing LiteLLM's proxy into $LITELLM_VENV (a few minutes, once)" >&2
  python3 -m venv "$LITELLM_VENV"
  "$LITELLM_VENV/bin/pip" install -q -r bench/gateway/litellm-requirements.txt
fi
SWITCHYARD_DIR=${SWITCHYARD_DIR:-$PWD}
export SWITCHYARD_DIR
if [[ ",$TARGETS," == *",switchyard,"* ]] && [ ! -x "$SWITCHYARD_DIR/.venv/bin/python" ]; then
  make -C "$SWITCHYARD_DIR" venv
fi

pidfile=$(mktemp /tmp/switchyard-concurrency-pids.XXXXXX)
export BENCH_PIDFILE=$pidfile
bench=""
cleanup() {
  trap - EXIT INT TERM HUP
  if [ -n "$bench" ] && kill -0 "$bench" 2>/dev/null; then
    kill -TERM "$bench" 2>/dev/null || true   # bench.py stops its servers itself
    for _ in $(seq 100); do kill -0 "$bench" 2>/dev/null || break; sleep 0.5; done
  fi
  # Whatever is still alive from its list (it died too hard to clean up): each was started
  # as the leader of its own session, so its group goes with it.
  while read -r pid; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      sleep 2
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
  done <"$pidfile"
  rm -f "$pidfile"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM HUP

python3 bench/concurrency/bench.py run "$@" &
bench=$!
wait "$bench"
