#!/usr/bin/env bash
# GPU benchmark figures, for a machine with an NVIDIA GPU: convspec on tfjs's GPU backends (tensorflow through
# @tensorflow/tfjs-node-gpu, webgpu through the `webgpu` package) next to PyTorch on CUDA. Prints one JSON
# object on stdout (progress on stderr); BENCHMARKS.md covers the CPU.
#
#   bench/gpu.sh [--quick] [--backends tensorflow,webgpu]
#   bench/gpu.sh > bench/gpu-results.json   # shown in BENCHMARKS.md's GPU section by the next `npm run bench`
#   PYTHON=/path/to/python bench/gpu.sh     # a Python whose torch has CUDA (Debian's python3-torch has none)
#
# Needs: node ≥ 20 with `npm ci` done (the optional GPU packages install only where their downloads work),
# nvidia-smi for the GPU's name. Whatever is missing is reported in the JSON as unavailable, with the reason.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

PYTHON="${PYTHON:-python3}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

gpu=""
if command -v nvidia-smi >/dev/null 2>&1; then
  gpu="$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n 1)"
else
  echo "[gpu] nvidia-smi not found: is there an NVIDIA GPU and driver?" >&2
fi

if ! command -v node >/dev/null 2>&1; then
  echo "[gpu] node not found: only the PyTorch figures" >&2
  pytorch="$("$PYTHON" bench/peers/gpu_torch.py "$@" 2>/dev/null | tail -n 1)"
  [ -n "$pytorch" ] || pytorch='{"available": false, "reason": "'"$PYTHON"' bench/peers/gpu_torch.py failed"}'
  printf '{"date": "%s", "gpu": "%s", "convspec": {"available": false, "reason": "node not found"}, "pytorch": %s}\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$gpu" "$pytorch"
  exit 0
fi

if [ ! -f dist/runtime/tfjs/backend.js ] && [ -d node_modules/typescript ]; then
  echo "[gpu] building dist/" >&2
  npm run build >&2 || echo "[gpu] build failed" >&2
fi

exec node bench/gpu-bench.js --gpu "$gpu" --python "$PYTHON" "$@"
