#!/usr/bin/env bash
# The web server alone: granian serving config.asgi (ASGI) with Switchyard's connection
# limits. scripts/run.sh starts it beside the task worker; the tests start it directly.
# `--check` validates the settings and exits.
#
# Settings (environment; README "Scaling and deployment"):
#   BIND_ADDRESS                  127.0.0.1  address to listen on
#   PORT                          8000       port to listen on
#   WEB_CONCURRENCY               (cores)    worker processes (dead ones are respawned)
#   SERVER_HEADER_TIMEOUT_SECONDS 10         a request's headers must arrive within this
#   SERVER_MAX_HEADER_BYTES       65536      read buffer: request line + headers must fit
#   SERVER_MAX_CONCURRENCY        1024       requests in progress per process (backpressure)
#   SERVER_BACKLOG                2048       connections waiting to be accepted
#   SHUTDOWN_GRACE_SECONDS        30         open requests/streams get this long at shutdown
#   SERVER_HEALTH_PORT            0          the probe port (0: none): GET /healthz beside each
#                                            process's event loop (config/serving/probe.py)
#   SERVER_ACCESS_LOG             true       granian's access log, a line per request (false:
#                                            none; the reverse proxy keeps one)
#   PROMETHEUS_MULTIPROC_DIR      var/prometheus  the processes' metric files (emptied
#                                            here only when this script picked it)
# WEB_THREADS, SERVER_MAX_BODY_BYTES and SERVER_BODY_TIMEOUT_SECONDS are Django settings
# (config/serving/). Further granian options: its GRANIAN_* environment variables.
set -uo pipefail
cd "$(dirname "$0")/.."

cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
BIND_ADDRESS=${BIND_ADDRESS:-127.0.0.1}
PORT=${PORT:-8000}
WEB_CONCURRENCY=${WEB_CONCURRENCY:-$cores}
SERVER_HEADER_TIMEOUT_SECONDS=${SERVER_HEADER_TIMEOUT_SECONDS:-10}
SERVER_MAX_HEADER_BYTES=${SERVER_MAX_HEADER_BYTES:-65536}
SERVER_MAX_CONCURRENCY=${SERVER_MAX_CONCURRENCY:-1024}
SERVER_BACKLOG=${SERVER_BACKLOG:-2048}
SHUTDOWN_GRACE_SECONDS=${SHUTDOWN_GRACE_SECONDS:-30}
SERVER_ACCESS_LOG=${SERVER_ACCESS_LOG:-true}

fail() { echo "serve: $*" >&2; exit 2; }
for var in PORT WEB_CONCURRENCY SERVER_HEADER_TIMEOUT_SECONDS SERVER_MAX_HEADER_BYTES \
  SERVER_MAX_CONCURRENCY SERVER_BACKLOG SHUTDOWN_GRACE_SECONDS; do
  [[ ${!var} =~ ^[1-9][0-9]*$ ]] || fail "$var must be a positive integer (got '${!var}')."
done
# granian's own bounds for these options.
[ "$SERVER_HEADER_TIMEOUT_SECONDS" -le 60 ] ||
  fail "SERVER_HEADER_TIMEOUT_SECONDS must be at most 60 (got $SERVER_HEADER_TIMEOUT_SECONDS)."
[ "$SERVER_MAX_HEADER_BYTES" -ge 8192 ] ||
  fail "SERVER_MAX_HEADER_BYTES must be at least 8192 (got $SERVER_MAX_HEADER_BYTES)."
[ "$SERVER_BACKLOG" -ge 128 ] || fail "SERVER_BACKLOG must be at least 128 (got $SERVER_BACKLOG)."
SERVER_HEALTH_PORT=${SERVER_HEALTH_PORT:-0}
[[ $SERVER_HEALTH_PORT =~ ^[0-9]{1,5}$ ]] && [ "$SERVER_HEALTH_PORT" -le 65535 ] ||
  fail "SERVER_HEALTH_PORT must be 0 (no probe port) or a port from 1 to 65535 (got '$SERVER_HEALTH_PORT')."
[ "$SERVER_HEALTH_PORT" != "$PORT" ] ||
  fail "SERVER_HEALTH_PORT must differ from PORT (both are $PORT)."
case $(printf '%s' "$SERVER_ACCESS_LOG" | tr '[:upper:]' '[:lower:]') in
  true | 1 | yes | on) access_log=--access-log ;;
  false | 0 | no | off) access_log=--no-access-log ;;
  *) fail "SERVER_ACCESS_LOG must be true or false (got '$SERVER_ACCESS_LOG')." ;;
esac
[ "${1:-}" = "--check" ] && exit 0

# The metrics directory the worker processes share (scripts/run.sh sets and empties it;
# started alone, this script picks and empties its own).
if [ -z "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
  export PROMETHEUS_MULTIPROC_DIR=var/prometheus
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR" && find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -name '*.db' -delete
fi
mkdir -p "$PROMETHEUS_MULTIPROC_DIR" || fail "cannot create PROMETHEUS_MULTIPROC_DIR ($PROMETHEUS_MULTIPROC_DIR)."

# HTTP/1.1 only (a reverse proxy speaks HTTP/2 to clients); no WebSockets; `asginl`: ASGI
# without the lifespan protocol, which Django does not implement.
exec "${VENV:-.venv}/bin/granian" config.asgi:application \
  --interface asginl --http 1 --no-ws --loop uvloop \
  --host "$BIND_ADDRESS" --port "$PORT" --workers "$WEB_CONCURRENCY" \
  --http1-header-read-timeout "$((SERVER_HEADER_TIMEOUT_SECONDS * 1000))" \
  --http1-buffer-size "$SERVER_MAX_HEADER_BYTES" \
  --backpressure "$SERVER_MAX_CONCURRENCY" --backlog "$SERVER_BACKLOG" \
  --workers-kill-timeout "$SHUTDOWN_GRACE_SECONDS" \
  --respawn-failed-workers "$access_log"
