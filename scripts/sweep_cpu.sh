#!/usr/bin/env bash
# The CPU-scale sweep behind the README's "Results on real data" table, in one command:
#   bash scripts/sweep_cpu.sh          # JOBS [2] parallel single-threaded jobs, then the table
# uci, usc_had, dsads (prepared under DATA_DIR), 6 ordered pairs and the 3 leave-one-out unions
# for SEEDS [1 2 3] (LOO_SEEDS [= SEEDS] limits the unions, two thirds of the pretraining time),
# label rate 0.1, config/sweep/*.json (20 pretraining epochs of which 10 contrastive, the
# schedule study's pick; classifier 100 epochs), PRECISION [auto: bf16 on CPUs with native bf16].
# LIMU: crosshar, recon_only, scratch, supervised. MAMBA=1 adds the Mamba rows: crosshar,
# recon_only, scratch with the 6-block `mamba_v1` (HARMamba's 12 Mamba layers) on the 6 pairs
# (MAMBA_LOO_SEEDS [none] adds unions: each is twice a pair's pretraining), and supervised
# HARMamba with the 2-block `mamba_cpu` on every pair and union.
# Jobs are listed seed by seed, so an interrupted run leaves whole seeds; rerunning resumes.
# KEEP=results/summary.csv builds the table from that file's rows plus the new runs.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # 2 one-thread jobs beat 1 two-thread job here
export PRECISION=${PRECISION:-auto}
MAMBA=${MAMBA:-0}
LOO_SEEDS=${LOO_SEEDS:-${SEEDS:-1 2 3}}
MAMBA_LOO_SEEDS=${MAMBA_LOO_SEEDS:-}
for seed in ${SEEDS:-1 2 3}; do
  loo=0; [[ " $LOO_SEEDS " == *" $seed "* ]] && loo=1
  mloo=0; [[ " $MAMBA_LOO_SEEDS " == *" $seed "* ]] && mloo=1
  LOO=$loo SEEDS=$seed BACKBONES=limu METHODS="crosshar recon_only scratch supervised" bash "$REPO/scripts/sweep.sh" --list
  [ "$MAMBA" = 1 ] || continue
  LOO=$mloo SEEDS=$seed BACKBONES=mamba METHODS="crosshar recon_only scratch" bash "$REPO/scripts/sweep.sh" --list |
    sed 's/^/env MV_mamba=v1 /'
  LOO=$loo SEEDS=$seed BACKBONES=mamba METHODS=supervised bash "$REPO/scripts/sweep.sh" --list |
    sed 's/^/env MV_mamba=cpu /'
done | xargs -d '\n' -P "${JOBS:-2}" -I{} sh -c '{} </dev/null || echo "FAILED: {}" >&2'
${PYTHON:-python} "$REPO/scripts/aggregate.py" --runs "${RESULTS:-results/runs}" --out "$(dirname "${RESULTS:-results/runs}")" \
  ${KEEP:+--keep "$KEEP"}
