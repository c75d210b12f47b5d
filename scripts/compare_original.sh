#!/usr/bin/env bash
# The published CrossHAR beside this toolkit on the same prepared windows, seeds and schedule:
#   bash scripts/compare_original.sh ORIGINAL_DIR [options of scripts/compare_original.py]
# ORIGINAL_DIR: a clone of github.com/kingdomrush2/CrossHAR. Its Python packages go into
# ORIGINAL_DIR/.venv (CPU torch pinned); ours into this repository's .venv. Datasets: prepared
# uci, usc_had, dsads under dataset/ (README, Data). The table lands in results/compare_original/.
set -euo pipefail
ORIG="${1:?usage: bash scripts/compare_original.sh ORIGINAL_DIR [options]}"; shift
[ -f "$ORIG/pretrain.py" ] && [ -f "$ORIG/Contrastive.py" ] || { echo "error: $ORIG is not a CrossHAR clone" >&2; exit 2; }
ORIG="$(cd "$ORIG" && pwd)"
. "$(dirname "$0")/setup_env.sh"
OVENV="${ORIGINAL_VENV:-$ORIG/.venv}"
if ! "$OVENV/bin/python" -c "import torch, torchinfo, einops, transforms3d, pandas, sklearn" 2>/dev/null; then
  python3 -m venv "$OVENV"
  "$OVENV/bin/python" -m pip install -q torch==2.13.0 numpy scipy scikit-learn pandas matplotlib einops torchinfo transforms3d
fi
python scripts/compare_original.py "$ORIG" --original-python "$OVENV/bin/python" "$@"
