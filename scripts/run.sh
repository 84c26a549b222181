#!/usr/bin/env bash
# Serve Switchyard: gunicorn (gthread) and the django-tasks-db worker side by side.
# Ctrl-C (or SIGTERM/SIGHUP) stops both; if either dies, the other is stopped too.
#
# Settings (environment):
#   BIND_ADDRESS     127.0.0.1   address gunicorn listens on
#   PORT             8000        port gunicorn listens on
#   WEB_CONCURRENCY  2           gunicorn worker processes
#   WEB_THREADS      4           threads per gunicorn worker
#   TASK_WORKERS     1           `manage.py db_worker` processes
# Further gunicorn options: GUNICORN_CMD_ARGS (gunicorn reads it itself).
set -uo pipefail
cd "$(dirname "$0")/.."

BIND_ADDRESS=${BIND_ADDRESS:-127.0.0.1}
PORT=${PORT:-8000}
WEB_CONCURRENCY=${WEB_CONCURRENCY:-2}
WEB_THREADS=${WEB_THREADS:-4}
TASK_WORKERS=${TASK_WORKERS:-1}
VENV=.venv

for var in PORT WEB_CONCURRENCY WEB_THREADS TASK_WORKERS; do
  if ! [[ ${!var} =~ ^[1-9][0-9]*$ ]]; then
    echo "run: $var must be a positive integer (got '${!var}')." >&2
    exit 2
  fi
done

if (exec 3<>"/dev/tcp/$BIND_ADDRESS/$PORT") 2>/dev/null; then
  echo "run: $BIND_ADDRESS:$PORT is already in use. Stop what is listening there, or pick" >&2
  echo "     another port:  PORT=8001 make run" >&2
  exit 1
fi

# Job control puts each child in its own process group, so the terminal's Ctrl-C reaches
# only this script, which then stops each child exactly once (a second signal would make
# db_worker abandon the task it is running instead of finishing it).
set -m

pids=()
"$VENV/bin/gunicorn" config.wsgi:application \
  --bind "$BIND_ADDRESS:$PORT" \
  --worker-class gthread --workers "$WEB_CONCURRENCY" --threads "$WEB_THREADS" \
  --graceful-timeout 10 --access-logfile - \
  --no-control-socket </dev/null &
web=$!
pids+=("$web")
for _ in $(seq "$TASK_WORKERS"); do
  "$VENV/bin/python" manage.py db_worker </dev/null &
  pids+=("$!")
done

stopping=0
stop() {
  stopping=$((stopping + 1))
  if [ "$stopping" -eq 1 ]; then
    echo "Stopping Switchyard (the task worker finishes its current task; Ctrl-C again to abort it)..."
    kill -TERM "${pids[@]}" 2>/dev/null
  elif [ "$stopping" -eq 2 ]; then
    kill -TERM "${pids[@]}" 2>/dev/null
  else
    kill -KILL "${pids[@]}" 2>/dev/null
  fi
}
trap stop INT TERM HUP

alive() { kill -0 "$1" 2>/dev/null; }

# Announce once gunicorn accepts connections (or give up quietly if it died).
for _ in $(seq 150); do
  [ "$stopping" -eq 0 ] && alive "$web" || break
  if (exec 3<>"/dev/tcp/$BIND_ADDRESS/$PORT") 2>/dev/null; then
    echo "Switchyard is running: http://$BIND_ADDRESS:$PORT/admin/  (Ctrl-C stops the server and the worker)"
    break
  fi
  sleep 0.2
done

# Poll rather than `wait -n` (bash >= 4.3 only): stop when a signal came or a child died.
# The short `sleep & wait` keeps the trap responsive.
any_dead() { for pid in "${pids[@]}"; do alive "$pid" || return 0; done; return 1; }
while [ "$stopping" -eq 0 ] && ! any_dead; do
  sleep 0.5 &
  wait $! 2>/dev/null
done

status=0
if [ "$stopping" -eq 0 ]; then
  echo "run: a process exited unexpectedly; stopping the others." >&2
  status=1
  stopping=1
  kill -TERM "${pids[@]}" 2>/dev/null
fi
for pid in "${pids[@]}"; do
  while alive "$pid"; do
    sleep 0.2 &
    wait $! 2>/dev/null
  done
done
exit "$status"
