#!/usr/bin/env bash
# Run the full peer benchmark suite one job after another (never concurrently:
# timings are only comparable on an otherwise idle machine).
#   bash benchmarks/peers/run_all.sh            # everything
#   bash benchmarks/peers/run_all.sh JOB...     # a subset, by job name below
# Outputs: benchmarks/out/peers/<peer>_<job>.json (+ .log); an existing complete
# JSON is kept (delete it to re-run that job).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OUT="${PEERS_OUT:-benchmarks/out/peers}"
mkdir -p "$OUT"

ALL_JOBS=(baybe_latency ax_latency baybe_hartmann6 baybe_direct_arylation ax_hartmann6 baybe_aryl_amination)
JOBS=("$@")
[ ${#JOBS[@]} -eq 0 ] && JOBS=("${ALL_JOBS[@]}")

args_for() {
  case "$1" in
    *_latency) echo "latency --n-obs 100 300 1000 --batch 4 16 --repeats 2 --seed 0 --threads 2" ;;
    *_hartmann6) echo "hartmann6 --seeds 0-9 --batches 30 --batch-size 5 --threads 1" ;;
    *_direct_arylation) echo "direct_arylation --seeds 0-19 --batch-size 5 --experiments 50 --threads 1" ;;
    *_aryl_amination) echo "aryl_amination --seeds 0-9 --batch-size 5 --experiments 100 --threads 1" ;;
    *) echo "unknown job $1" >&2; return 1 ;;
  esac
}

for job in "${JOBS[@]}"; do
  peer="${job%%_*}"
  json="$OUT/$job.json"
  if [ -f "$json" ] && grep -q '"complete": true' "$json"; then
    echo "[run_all] $job: complete JSON exists, skipping" >&2
    continue
  fi
  a="$(args_for "$job")" || continue
  echo "[run_all] $(date +%T) start $job: $a" >&2
  # shellcheck disable=SC2086
  bash benchmarks/peers/run_peer.sh "$peer" $a --out "$json" >"$OUT/$job.log" 2>&1
  echo "[run_all] $(date +%T) end $job rc=$?" >&2
done
