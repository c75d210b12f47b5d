#!/usr/bin/env bash
# Sweep every source -> target pair x backbone x seed x label rate x method, plus
# leave-one-dataset-out multi-source runs. One job = one (method, backbone, seed, source):
# it pretrains that source once and evaluates every target and label rate with it, so jobs
# never write the same file and can run in parallel (xargs -P, GNU parallel, Slurm arrays).
#
#   bash scripts/sweep.sh            # run every job in turn (finished runs are skipped)
#   bash scripts/sweep.sh --list     # print one job command per line, e.g. | xargs -d '\n' -P 2 -I{} sh -c {}
#   python scripts/aggregate.py      # then: the table (results/summary.md) and heatmap
#
# Settings (environment variables; defaults in brackets):
#   DATASETS  [uci usc_had dsads]          BACKBONES [limu mamba]      SEEDS [1 2 3]
#   RATES     [0.1]                        LOO [1]: also each leave-one-out union -> held-out target
#   METHODS   [crosshar recon_only scratch supervised]
#             crosshar: full pretraining; recon_only: masked reconstruction only (LIMU-BERT);
#             scratch: same encoder + classifier trained on the labelled windows only;
#             supervised: encoder + linear head end to end (with mamba: supervised HARMamba)
#   PRETRAIN_CFG [config/sweep/pretrain.json]  RECON_CFG [config/sweep/pretrain_recon.json]
#   CLF_CFG   [config/sweep/classifier.json]   AUG [channel_aug]    DATA_DIR [dataset]
#   RESULTS   [results/runs]                   PRECISION [fp32]     PYTHON [python]
#   MV_limu, MV_mamba [v1]: model version (-mv) of each backbone in config/pretrain_model.json
#   WORKDIR   [the repository]: where saved/, embed/ and RESULTS are written
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
DATASETS=${DATASETS:-"uci usc_had dsads"}
BACKBONES=${BACKBONES:-"limu mamba"}
SEEDS=${SEEDS:-"1 2 3"}
METHODS=${METHODS:-"crosshar recon_only scratch supervised"}
LOO=${LOO:-1}

jobs() {
  local sources=() d t
  for d in $DATASETS; do
    targets=""
    for t in $DATASETS; do [ "$t" = "$d" ] || targets="$targets${targets:+,}$t"; done
    sources+=("$d:$targets")
  done
  if [ "$LOO" = 1 ] && [ "$(wc -w <<<"$DATASETS")" -gt 2 ]; then
    for t in $DATASETS; do
      union=""
      for d in $DATASETS; do [ "$d" = "$t" ] || union="$union${union:+,}$d"; done
      sources+=("$union:$t")
    done
  fi
  for method in $METHODS; do for backbone in $BACKBONES; do for seed in $SEEDS; do
    for st in "${sources[@]}"; do
      # quoted (printf %q): the listed commands are eval'd here and run by sh -c / xargs, and the
      # repository path may hold spaces
      printf 'bash %q %q %q %q %q %q\n' "$REPO/scripts/sweep_job.sh" "$method" "$backbone" "$seed" \
        "${st%%:*}" "${st#*:}"
    done
  done; done; done
}

if [ "${1:-}" = "--list" ]; then
  jobs
  exit 0
fi
jobs | while read -r cmd; do
  echo ">> $cmd" >&2
  eval "$cmd" </dev/null
done
