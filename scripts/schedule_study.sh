#!/usr/bin/env bash
# Target accuracy and macro-F1 against the number of pretraining epochs, in one command:
#   bash scripts/schedule_study.sh         # then OUT/schedule.md and OUT/schedule.png
#   bash scripts/schedule_study.sh --list  # write the configs, print one job per line (to queue
#                                          # with other jobs), then plot_schedule.py --runs OUT
# For each length in EPOCHS, crosshar pretrains E epochs of which the last E/2 add the
# contrastive loss (CrossHAR's split), recon_only E epochs of masked reconstruction only; the
# classifier and the tests are the same for every length. Each length has its own work folder
# OUT/e<E>/ (config/, saved/, embed/ and the result JSONs that scripts/plot_schedule.py reads), because a
# run's name does not carry its schedule. Jobs run JOBS at a time, one thread each; rerunning
# skips finished jobs (scripts/sweep_job.sh).
# Settings (environment variables; defaults in brackets):
#   EPOCHS [4 20 60 200]   SEEDS [1 2]   METHODS [crosshar recon_only]   BACKBONE [limu]
#   SOURCE [uci]   TARGETS [usc_had,dsads]   RATES [0.1]   AUG [channel_aug]
#   PRETRAIN_CFG [config/sweep/pretrain.json: its n_epochs and n_epochs_cl are replaced]
#   CLF_CFG [config/sweep/classifier.json: 100 epochs]   PRECISION [auto]   DATA_DIR [dataset]
#   OUT [results/schedule]   JOBS [2]   PYTHON [python]
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
EPOCHS=${EPOCHS:-"4 20 60 200"}
SEEDS=${SEEDS:-"1 2"}
METHODS=${METHODS:-"crosshar recon_only"}
BACKBONE=${BACKBONE:-limu}
SOURCE=${SOURCE:-uci}
TARGETS=${TARGETS:-usc_had,dsads}
PY=${PYTHON:-python}
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
OUT=$(absolute "${OUT:-results/schedule}")
export DATA_DIR; DATA_DIR=$(absolute "${DATA_DIR:-dataset}")
export CLF_CFG; CLF_CFG=$(absolute "${CLF_CFG:-$REPO/config/sweep/classifier.json}")
export PRECISION=${PRECISION:-auto} PYTHON=$PY RATES=${RATES:-0.1} AUG=${AUG:-channel_aug}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # JOBS one-thread jobs (see scripts/sweep_cpu.sh)
# the results table's configs are the base, so the study's length that the table uses is the table's run
base=$(absolute "${PRETRAIN_CFG:-$REPO/config/sweep/pretrain.json}")

for e in $EPOCHS; do
  case $e in ''|*[!0-9]*|0) echo "error: EPOCHS: '$e' is not a positive whole number" >&2; exit 2 ;; esac
  # the two configs of this length, from the base (checked and written by the library)
  PYTHONPATH="$REPO" "$PY" - "$base" "$OUT/e$e/config" "$e" <<'EOF'
import sys
from pathlib import Path
from common.cli import run
from common.io import read_json, save_json

def main():
    base = read_json(Path(sys.argv[1]), "pretraining config", "a config like config/pretrain.json")
    out, e = Path(sys.argv[2]), int(sys.argv[3])
    save_json({**base, "n_epochs": e, "n_epochs_cl": e // 2}, out / "pretrain.json")     # crosshar
    save_json({**base, "n_epochs": e, "n_epochs_cl": 0}, out / "pretrain_recon.json")   # recon_only

run(main)
EOF
done

jobs() {   # each line carries every setting its job reads, so the list runs anywhere
for seed in $SEEDS; do for e in $EPOCHS; do for method in $METHODS; do
  printf 'env DATA_DIR=%q CLF_CFG=%q PRECISION=%q PYTHON=%q RATES=%q AUG=%q OMP_NUM_THREADS=%q ' \
    "$DATA_DIR" "$CLF_CFG" "$PRECISION" "$PY" "$RATES" "$AUG" "$OMP_NUM_THREADS"
  printf 'WORKDIR=%q RESULTS=%q PRETRAIN_CFG=%q RECON_CFG=%q bash %q %q %q %q %q %q\n' \
    "$OUT/e$e" "$OUT/e$e" "$OUT/e$e/config/pretrain.json" "$OUT/e$e/config/pretrain_recon.json" \
    "$REPO/scripts/sweep_job.sh" "$method" "$BACKBONE" "$seed" "$SOURCE" "$TARGETS"
done; done; done
}
if [ "${1:-}" = "--list" ]; then jobs; exit 0; fi
jobs | xargs -d '\n' -P "${JOBS:-2}" -I{} sh -c '{} </dev/null || echo "FAILED: {}" >&2'
"$PY" "$REPO/scripts/plot_schedule.py" --runs "$OUT" --out "$OUT"
