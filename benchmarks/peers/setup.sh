#!/usr/bin/env bash
# Create the peer-optimiser virtual environments under .peers/ (git-ignored).
#   bash benchmarks/peers/setup.sh            # both peers
#   bash benchmarks/peers/setup.sh baybe      # one peer (baybe | ax)
# Idempotent: a peer is skipped when .peers/PEER exists and its stamp file matches
# the sha256 of requirements-PEER.txt (+ python version). Set PEERS_FORCE=1 to rebuild.
# torch==2.13.0 is installed FIRST and alone (the CPU wheel); the pinned requirements
# are then installed with a constraint that keeps torch at 2.13.0, so pip never pulls
# the multi-GB CUDA build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/benchmarks/peers"
PEERS_DIR="${PEERS_DIR:-$ROOT/.peers}"
PY="${PEERS_PYTHON:-python3.11}"
TORCH_PIN="torch==2.13.0"

peers=("$@")
[ ${#peers[@]} -eq 0 ] && peers=(baybe ax)

for peer in "${peers[@]}"; do
  req="$HERE/requirements-$peer.txt"
  [ -f "$req" ] || { echo "setup.sh: no $req" >&2; exit 2; }
  venv="$PEERS_DIR/$peer"
  stamp_file="$venv/.peirce-peer-stamp"
  stamp="$(cat "$req" | sha256sum | cut -d' ' -f1) $("$PY" -c 'import sys; print(sys.version.split()[0])')"
  if [ -z "${PEERS_FORCE:-}" ] && [ -x "$venv/bin/python" ] && [ -f "$stamp_file" ] \
     && [ "$(cat "$stamp_file")" = "$stamp" ]; then
    echo "setup.sh: $peer up to date ($venv)"
    continue
  fi
  echo "setup.sh: building $peer venv in $venv"
  rm -rf "$venv"
  mkdir -p "$PEERS_DIR"
  "$PY" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install "$TORCH_PIN"
  cons="$(mktemp)"
  echo "$TORCH_PIN" >"$cons"
  "$venv/bin/python" -m pip install -c "$cons" -r "$req"
  rm -f "$cons"
  "$venv/bin/python" - <<EOF
import torch
assert torch.__version__.startswith("2.13.0"), torch.__version__
import importlib
importlib.import_module({"baybe": "baybe", "ax": "ax"}["$peer"])
print("setup.sh: $peer ok, torch", torch.__version__)
EOF
  echo "$stamp" >"$stamp_file"
done
