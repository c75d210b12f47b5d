#!/usr/bin/env bash
# One sweep job: METHOD BACKBONE SEED SOURCE(S) TARGETS (comma-separated), over RATES.
# Idempotent: finished stages are skipped and an interrupted pretraining resumes; a lock per
# job keeps two sweeps from running the same job at once. Settings: see scripts/sweep.sh.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "${WORKDIR:-$REPO}"      # artifacts (saved/, embed/, results/) go under WORKDIR
method=$1 backbone=$2 seed=$3 source=$4 targets=$5
RATES=${RATES:-0.1}
PRETRAIN_CFG=${PRETRAIN_CFG:-$REPO/config/sweep/pretrain.json}
RECON_CFG=${RECON_CFG:-$REPO/config/sweep/pretrain_recon.json}
CLF_CFG=${CLF_CFG:-$REPO/config/sweep/classifier.json}
AUG=${AUG:-channel_aug}
DATA_DIR=${DATA_DIR:-dataset}
RESULTS=${RESULTS:-results/runs}
PRECISION=${PRECISION:-fp32}
PY=${PYTHON:-python}

mv_var="MV_${backbone}"; mv=${!mv_var:-v1}   # model version (-mv) per backbone, e.g. MV_mamba=cpu
tag=$backbone; [ "$mv" = v1 ] || tag="${backbone}-${mv}"
run="${method}_${tag}_${source//,/+}_s${seed}"
case $method in
  crosshar|recon_only) sup=(); kind=classifier; prefix="" ;;
  scratch) sup=(--supervised --head transformer); kind=supervised-transformer; prefix="${kind}_" ;;
  supervised) sup=(--supervised --head linear); kind=supervised-linear; prefix="${kind}_" ;;
  *) echo "unknown method $method (expected crosshar, recon_only, scratch, supervised)" >&2; exit 2 ;;
esac
done_all=1
for rate in $RATES; do for t in ${targets//,/ }; do
  [ -e "$RESULTS/${prefix}${run}_lr${rate}_to_${t}.json" ] || done_all=0
done; done
if [ $done_all = 1 ]; then echo "skip $run: all results exist" >&2; exit 0; fi

mkdir -p saved
exec 9>"saved/.lock_${run}"
if ! flock -n 9; then echo "skip $run: another sweep is running it" >&2; exit 0; fi

common=(-d "$source" --backbone "$backbone" -mv "$mv" --seed "$seed" --data-dir "$DATA_DIR" -s "$run" --precision "$PRECISION")
if [ ${#sup[@]} = 0 ]; then
  cfg=$PRETRAIN_CFG; [ "$method" = recon_only ] && cfg=$RECON_CFG
  $PY "$REPO/pretrain.py" "${common[@]}" -t "$cfg" -am "$AUG"
  [ -e "embed/${run}__${source//,/+}_20_120_4c.npz" ] || $PY "$REPO/embedding.py" "${common[@]}" -t "$cfg"
fi
for rate in $RATES; do
  [ -e "saved/${kind}_${run}_lr${rate}/model.pt" ] || \
    $PY "$REPO/classifier.py" "${common[@]}" "${sup[@]}" -t "$CLF_CFG" -lr "$rate"
  for t in ${targets//,/ }; do
    [ -e "$RESULTS/${prefix}${run}_lr${rate}_to_${t}.json" ] || \
      $PY "$REPO/cross_dataset_test.py" "${common[@]}" "${sup[@]}" -t "$CLF_CFG" -lr "$rate" -td "$t" \
        --method "$method" --results-dir "$RESULTS"
  done
done
