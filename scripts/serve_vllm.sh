#!/usr/bin/env bash
# Serve Qwen3-VL with vLLM's OpenAI-compatible server, with tool calling and JSON-schema-guided
# decoding on, for AnomalyGraph's agents (ANOMALYGRAPH_LLM_PROVIDER=vllm). See docs/llm.md.
#
# Usage: scripts/serve_vllm.sh [serve|print|wait|check|bench]
#   serve  run vLLM in the foreground (default)
#   print  print the exact vllm command, one argument per line, and exit
#   wait   poll until the server is up and serves AG_SERVED_NAME (exit 1 on timeout)
#   check  one health check: up, loading, down, or serving another model (exit 0 only when up)
#   bench  measure tokens/s and the structured-output round trip against the running server
#
# Settings (environment; defaults in brackets):
#   AG_MODEL                 model path or Hugging Face id already in the local cache [Qwen/Qwen3-VL-8B-Instruct]
#   AG_SERVED_NAME           name clients ask for (ANOMALYGRAPH_LLM_MODEL) [qwen3-vl]
#   AG_HOST / AG_PORT        listen address [0.0.0.0] / [8000]
#   AG_TP                    tensor-parallel size (GPUs per replica) [number of visible GPUs]
#   AG_MAX_MODEL_LEN         context length in tokens [32768]
#   AG_GPU_MEMORY            fraction of each GPU's memory vLLM may take [0.90]
#   AG_TOOL_PARSER           tool-call parser; Qwen2.5/Qwen3(-VL) emit Hermes-style calls [hermes]
#   AG_STRUCTURED_BACKEND    guided-decoding backend for response_format json_schema [xgrammar]
#   AG_MAX_IMAGES            images accepted per request (videos are off) [4]
#   AG_API_KEY               require this bearer token (clients: ANOMALYGRAPH_LLM_API_KEY) [none]
#   AG_ALLOW_DOWNLOAD=1      let vLLM download weights (default: offline, HF_HUB_OFFLINE=1)
#   AG_EXTRA_ARGS            more vllm flags, appended as is
#   AG_WAIT_TIMEOUT          seconds `wait` waits [1800]
#   PYTHON                   interpreter with anomalygraph installed, for wait/check/bench [python]
# Needs vLLM >= 0.11 (first release with Qwen3-VL; --structured-outputs-config replaced
# --guided-decoding-backend there).
set -euo pipefail

MODE="${1:-serve}"
MODEL="${AG_MODEL:-Qwen/Qwen3-VL-8B-Instruct}"
NAME="${AG_SERVED_NAME:-qwen3-vl}"
HOST="${AG_HOST:-0.0.0.0}"
PORT="${AG_PORT:-8000}"
if [[ -n "${AG_TP:-}" ]]; then
  TP="$AG_TP"
elif command -v nvidia-smi >/dev/null 2>&1; then
  TP="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)"
  [[ "$TP" -ge 1 ]] || TP=1
else
  TP=1
fi
MAX_LEN="${AG_MAX_MODEL_LEN:-32768}"
GPU_MEM="${AG_GPU_MEMORY:-0.90}"
PARSER="${AG_TOOL_PARSER:-hermes}"
BACKEND="${AG_STRUCTURED_BACKEND:-xgrammar}"
MAX_IMAGES="${AG_MAX_IMAGES:-4}"
PY="${PYTHON:-python}"
CHECK_URL="http://127.0.0.1:${PORT}/v1"

cmd=(
  vllm serve "$MODEL"
  --served-model-name "$NAME"
  --host "$HOST"
  --port "$PORT"
  --tensor-parallel-size "$TP"
  --max-model-len "$MAX_LEN"
  --gpu-memory-utilization "$GPU_MEM"
  --enable-auto-tool-choice
  --tool-call-parser "$PARSER"
  --structured-outputs-config "{\"backend\": \"$BACKEND\"}"
  --limit-mm-per-prompt "{\"image\": $MAX_IMAGES, \"video\": 0}"
)
if [[ "$TP" -gt 1 ]]; then
  # The vision encoder is small: replicate it on every GPU instead of sharding it.
  cmd+=(--mm-encoder-tp-mode data)
fi
if [[ -n "${AG_API_KEY:-}" ]]; then
  cmd+=(--api-key "$AG_API_KEY")
fi
if [[ -n "${AG_EXTRA_ARGS:-}" ]]; then
  # shellcheck disable=SC2206  # word splitting is the point
  cmd+=(${AG_EXTRA_ARGS})
fi

status() {
  "$PY" -m anomalygraph.cli llm status --url "$CHECK_URL" --model "$NAME" "$@"
}

case "$MODE" in
  print)
    printf '%s\n' "${cmd[@]}"
    ;;
  serve)
    command -v vllm >/dev/null 2>&1 || { echo "error: vllm is not installed (pip install 'vllm>=0.11')" >&2; exit 2; }
    if [[ "${AG_ALLOW_DOWNLOAD:-0}" != 1 ]]; then
      export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
    fi
    echo "serving $MODEL as '$NAME' on $HOST:$PORT (tensor parallel $TP); clients:" >&2
    echo "  ANOMALYGRAPH_LLM_PROVIDER=vllm ANOMALYGRAPH_LLM_BASE_URL=http://<this-host>:$PORT/v1 ANOMALYGRAPH_LLM_MODEL=$NAME" >&2
    exec "${cmd[@]}"
    ;;
  check)
    status
    ;;
  wait)
    deadline=$(( $(date +%s) + ${AG_WAIT_TIMEOUT:-1800} ))
    until status >/dev/null 2>&1; do
      if [[ $(date +%s) -ge $deadline ]]; then
        status || true
        echo "error: $CHECK_URL did not come up within ${AG_WAIT_TIMEOUT:-1800} s" >&2
        exit 1
      fi
      sleep 5
    done
    status
    ;;
  bench)
    ANOMALYGRAPH_LLM_PROVIDER=vllm ANOMALYGRAPH_LLM_BASE_URL="$CHECK_URL" ANOMALYGRAPH_LLM_MODEL="$NAME" \
      ANOMALYGRAPH_LLM_API_KEY="${AG_API_KEY:-not-needed}" "$PY" -m anomalygraph.cli llm bench
    ;;
  *)
    echo "usage: $0 [serve|print|wait|check|bench]" >&2
    exit 2
    ;;
esac
