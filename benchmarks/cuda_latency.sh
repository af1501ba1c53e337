#!/usr/bin/env bash
# The CUDA path of the planner, measured in one short call on a machine with a GPU (the issue's goal: one fit +
# propose at 10,000 results under 5 s there). It checks what the machine has first and says plainly what is
# missing, then times fit + propose at 1,000, 5,000 and 10,000 Hartmann-6 results (batch 4) on the GPU, and at
# 1,000 on the CPU of the same machine for the ratio. Results: $OUT (or ./out) /cuda_latency*.json and a log.
#
#   bash benchmarks/cuda_latency.sh            # PYTHON=... to choose the interpreter (default: .venv, else python3)
#   SIZES="1000 5000" bash benchmarks/cuda_latency.sh
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${OUT:-$root/out}"
mkdir -p "$out"
log="$out/cuda_latency.log"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x "$root/.venv/bin/python" ]; then python="$root/.venv/bin/python"; else python="python3"; fi
fi
sizes="${SIZES:-1000 5000 10000}"
{
  echo "# cuda_latency $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  # What the interpreter can do: torch and its CUDA, and whether peirce's planner imports.
  if ! "$python" - <<'PY'
import sys
try:
    import torch
except ImportError:
    sys.exit("no torch for this interpreter: install peirce's environment (scripts/bootstrap) first")
print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}",
      f"({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "")
try:
    import planners.bo.planner  # noqa: F401
except ImportError as exc:
    sys.exit(f"peirce's planner does not import: {exc}")
if not torch.cuda.is_available():
    sys.exit("torch sees no CUDA device: a CPU build of torch, or no driver")
PY
  then
    echo "cuda_latency: nothing measured (see the line above)"
    exit 2
  fi
  cd "$root" || exit 2
  # shellcheck disable=SC2086
  PEIRCE_DEVICE=cuda timeout 420 "$python" benchmarks/planner_latency.py --n-obs $sizes --batch 4 --repeats 1 \
    --threads 4 --out "$out/cuda_latency.json"
  echo "cuda exit $?"
  PEIRCE_DEVICE=cpu timeout 120 "$python" benchmarks/planner_latency.py --n-obs 1000 --batch 4 --repeats 1 \
    --threads 4 --out "$out/cuda_latency_cpu.json"
  echo "cpu exit $?"
} 2>&1 | tee "$log"
