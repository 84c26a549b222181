#!/usr/bin/env bash
# Compare ASGI servers for Switchyard on this machine: a hello-world async Django view and
# /healthz (a sync view with one SELECT 1) under wrk. Run by hand, never by the suite:
#   bench/serving/compare.sh            # every candidate, 2 processes, 64 connections, 10 s
#   CANDIDATES="granian uvicorn" CONNECTIONS=256 DURATION=20 bench/serving/compare.sh
# Needs wrk (apt-get install -y wrk) and the candidates: granian is in requirements.txt,
# the others in bench/serving/requirements.txt (pip install -r it into .venv).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.venv
WORKERS=${WORKERS:-2}
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10}
PORT=${PORT:-8765}
CANDIDATES=${CANDIDATES:-"gunicorn-gthread gunicorn-asgi gunicorn-uvicorn uvicorn granian"}
WORK=$(mktemp -d)
echo "logs: $WORK" >&2

export DJANGO_SETTINGS_MODULE=bench.serving.settings
export SECRET_KEY=bench-only FIELD_ENCRYPTION_KEY=${FIELD_ENCRYPTION_KEY:-$($VENV/bin/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')}
export DATABASE_URL=${DATABASE_URL:-sqlite:///$WORK/db.sqlite3} CACHE_URL=locmemcache://
export DEBUG=false SECURE_SSL_REDIRECT=false LLM_VALIDATE_ON_STARTUP=false ALLOWED_HOSTS=127.0.0.1
$VENV/bin/python manage.py migrate -v0

start() {
  case $1 in
    gunicorn-gthread) exec $VENV/bin/gunicorn config.wsgi:application -b 127.0.0.1:$PORT -w $WORKERS \
        -k gthread --threads 4 --no-control-socket ;;
    gunicorn-asgi) exec $VENV/bin/gunicorn config.asgi:application -b 127.0.0.1:$PORT -w $WORKERS \
        -k asgi --no-control-socket ;;
    gunicorn-uvicorn) exec $VENV/bin/gunicorn config.asgi:application -b 127.0.0.1:$PORT -w $WORKERS \
        -k uvicorn_worker.UvicornWorker --no-control-socket ;;
    uvicorn) exec $VENV/bin/uvicorn config.asgi:application --host 127.0.0.1 --port $PORT \
        --workers $WORKERS --loop uvloop --http httptools --no-access-log ;;
    granian) exec $VENV/bin/granian config.asgi:application --interface asginl --host 127.0.0.1 \
        --port $PORT --workers $WORKERS --loop uvloop --no-ws ;;
  esac
}

printf '| server | path | req/s | p50 | p99 |\n|---|---|---|---|---|\n'
for candidate in $CANDIDATES; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then echo "port $PORT is busy" >&2; exit 1; fi
  start "$candidate" >"$WORK/$candidate.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$PORT/bench/hello" >/dev/null 2>&1 && break
    sleep 0.2
  done
  for path in /bench/hello /healthz; do
    wrk -t2 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$PORT$path" >/dev/null  # warm-up
    out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$PORT$path")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr '\n' ' ' || true)
    printf '| %s | %s | %s | %s | %s | %s\n' "$candidate" "$path" "$rps" "$p50" "$p99" "$errors"
  done
  kill -TERM "$pid" 2>/dev/null || echo "($candidate had exited by itself: see its log)"
  wait "$pid" 2>/dev/null || true
done
