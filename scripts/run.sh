#!/usr/bin/env bash
# Serve Switchyard: granian (ASGI, a process per core) and the django-tasks-db worker side by
# side. Ctrl-C (or SIGTERM/SIGHUP) stops both gracefully: the server stops accepting and lets
# open requests and streams finish (SHUTDOWN_GRACE_SECONDS), the worker finishes its builds.
# A child that dies on its own is restarted after a back-off (1 s, doubling up to 30 s; reset
# once it has run for a minute); the others keep serving meanwhile.
#
# Settings (environment; README "Scaling and deployment"):
#   BIND_ADDRESS, PORT, WEB_CONCURRENCY (default: the cores), SERVER_*, SHUTDOWN_GRACE_SECONDS:
#                   the web server's, see scripts/serve-web.sh
#   TASK_WORKERS    1   `manage.py db_worker` processes
#   TASK_THREADS    8   tasks (builds) each worker process runs at once (a Django setting)
set -uo pipefail
cd "$(dirname "$0")/.."

BIND_ADDRESS=${BIND_ADDRESS:-127.0.0.1}
PORT=${PORT:-8000}
SHUTDOWN_GRACE_SECONDS=${SHUTDOWN_GRACE_SECONDS:-30}
TASK_WORKERS=${TASK_WORKERS:-1}
VENV=.venv
export BIND_ADDRESS PORT SHUTDOWN_GRACE_SECONDS

if ! [[ $TASK_WORKERS =~ ^[1-9][0-9]*$ ]]; then
  echo "run: TASK_WORKERS must be a positive integer (got '$TASK_WORKERS')." >&2
  exit 2
fi
scripts/serve-web.sh --check || exit 2

# Metrics (llm_providers/observability/metrics.py): every web and worker process writes its
# counters into this directory and /metrics adds them up. Emptied here, at start, so a new
# run does not add the last one's counts; kept across a child's restart, so a crashed
# process's counts stay counted.
export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-var/prometheus}
mkdir -p "$PROMETHEUS_MULTIPROC_DIR" && find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -name '*.db' -delete || {
  echo "run: cannot create PROMETHEUS_MULTIPROC_DIR ($PROMETHEUS_MULTIPROC_DIR)." >&2
  exit 2
}

if (exec 3<>"/dev/tcp/$BIND_ADDRESS/$PORT") 2>/dev/null; then
  echo "run: $BIND_ADDRESS:$PORT is already in use. Stop what is listening there, or pick" >&2
  echo "     another port:  PORT=8001 make run" >&2
  exit 1
fi

# A shell cannot trap a signal that was ignored when it started (a background job, nohup):
# then Ctrl-C would do nothing here, so say so (SIGTERM still stops everything).
sigint_ignored() {
  local mask
  mask=$(awk '/^SigIgn:/ {print $2}' "/proc/$$/status" 2>/dev/null) || return 1
  [ -n "$mask" ] && (((16#$mask >> 1) & 1))
}
if sigint_ignored; then
  echo "run: warning: SIGINT is ignored in this shell (started in the background or with nohup?)," >&2
  echo "     so Ctrl-C will not stop Switchyard; stop it with: kill -TERM $$" >&2
fi

# Job control puts each child in its own process group, so the terminal's Ctrl-C reaches
# only this script, which then stops each child exactly once (a second signal would make
# db_worker abandon the task it is running instead of finishing it).
set -m

start_child() { # slot: 0 is the web server, 1.. the task workers
  if [ "$1" -eq 0 ]; then
    scripts/serve-web.sh </dev/null &
  else
    "$VENV/bin/python" manage.py db_worker </dev/null &
  fi
  pids[$1]=$!
  started_at[$1]=$SECONDS
}

slots=$((TASK_WORKERS + 1))
pids=()
started_at=()
backoff=()
restart_at=()
for ((slot = 0; slot < slots; slot++)); do
  start_child "$slot"
  backoff[slot]=1
  restart_at[slot]=0
done
web_name() { [ "$1" -eq 0 ] && echo "the web server" || echo "task worker $1"; }

# The children that are running (a slot waiting to be restarted holds 0: never `kill 0`).
running_pids() { for pid in "${pids[@]}"; do [ "$pid" -gt 0 ] && echo "$pid"; done; }

stopping=0
stop() {
  stopping=$((stopping + 1))
  if [ "$stopping" -eq 1 ]; then
    echo "Stopping Switchyard (open requests get ${SHUTDOWN_GRACE_SECONDS} s; the task worker finishes its current tasks; Ctrl-C again to abort them)..."
  fi
  if [ "$stopping" -le 2 ]; then
    kill -TERM $(running_pids) 2>/dev/null
  else
    kill -KILL $(running_pids) 2>/dev/null
  fi
}
trap stop INT TERM HUP

alive() { kill -0 "$1" 2>/dev/null; }

# Announce once the server accepts connections (or give up quietly if it died).
for _ in $(seq 150); do
  [ "$stopping" -eq 0 ] && alive "${pids[0]}" || break
  if (exec 3<>"/dev/tcp/$BIND_ADDRESS/$PORT") 2>/dev/null; then
    echo "Switchyard is running: http://$BIND_ADDRESS:$PORT/admin/  (Ctrl-C stops the server and the worker)"
    break
  fi
  sleep 0.2
done

# Poll rather than `wait -n` (bash >= 4.3 only); the short `sleep & wait` keeps the trap
# responsive. A dead child is restarted after its back-off unless we are stopping.
while [ "$stopping" -eq 0 ]; do
  for ((slot = 0; slot < slots; slot++)); do
    [ "$stopping" -eq 0 ] || break
    pid=${pids[slot]}
    if [ "$pid" -gt 0 ] && ! alive "$pid"; then
      wait "$pid" 2>/dev/null
      code=$?
      # What it leaves behind goes too: granian's worker processes outlive a killed
      # parent and would go on serving (the old code, on the same port) beside the
      # restarted server. Each child leads its own process group (`set -m` above).
      kill -KILL -- -"$pid" 2>/dev/null
      ran=$((SECONDS - started_at[slot]))
      if [ "$ran" -ge 60 ]; then backoff[slot]=1; fi
      echo "run: $(web_name "$slot") exited unexpectedly (status $code); restarting it in ${backoff[slot]} s." >&2
      restart_at[slot]=$((SECONDS + backoff[slot]))
      backoff[slot]=$((backoff[slot] * 2 > 30 ? 30 : backoff[slot] * 2))
      pids[slot]=0
    fi
    if [ "${pids[slot]}" -eq 0 ] && [ "$SECONDS" -ge "${restart_at[slot]}" ]; then
      start_child "$slot"
      echo "run: restarted $(web_name "$slot") (pid ${pids[slot]})." >&2
    fi
  done
  sleep 0.5 &
  wait $! 2>/dev/null
done

for pid in "${pids[@]}"; do
  [ "$pid" -gt 0 ] || continue
  while alive "$pid"; do
    sleep 0.2 &
    wait $! 2>/dev/null
  done
done
exit 0
