#!/usr/bin/env bash
# Usage: benchmarks/peers/run_peer.sh PEER SUBCOMMAND ARGS...
#   PEER: baybe | ax. Creates the peer venv via setup.sh if needed, then runs
#   .peers/PEER/bin/python benchmarks/peers/PEER_runner.py SUBCOMMAND ARGS... from the repo root.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 {baybe|ax} SUBCOMMAND [ARGS...]" >&2
  exit 2
fi
PEER="$1"; shift
case "$PEER" in baybe|ax) ;; *) echo "unknown peer: $PEER" >&2; exit 2 ;; esac
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
bash benchmarks/peers/setup.sh "$PEER" >&2
exec ".peers/$PEER/bin/python" "benchmarks/peers/${PEER}_runner.py" "$@"
