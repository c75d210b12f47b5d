#!/usr/bin/env bash
# One sweep job: METHOD BACKBONE SEED SOURCE(S) TARGETS (comma-separated), over RATES.
# Idempotent: finished stages are skipped and an interrupted pretraining resumes; a lock per
# job keeps two sweeps from running the same job at once. Settings: see scripts/sweep.sh.
# Artifact paths come from the library (python -m training.paths), never rebuilt here.
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
run="${method}_${tag}_${source//,/+}_s${seed}"          # the job's run name (-s)
case $method in
  crosshar|recon_only) sup=() ;;
  scratch) sup=(--supervised --head transformer) ;;
  supervised) sup=(--supervised --head linear) ;;
  *) echo "unknown method $method (expected crosshar, recon_only, scratch, supervised)" >&2; exit 2 ;;
esac
name=(-d "$source" --backbone "$backbone" -mv "$mv" --seed "$seed" -s "$run")   # names the run
opts=(--data-dir "$DATA_DIR" --precision "$PRECISION")
path_of() { PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m training.paths "$@" "${name[@]}"; }
result_of() { path_of result "${sup[@]}" -lr "$1" -td "$2" --results-dir "$RESULTS"; }

done_all=1
for rate in $RATES; do for t in ${targets//,/ }; do
  [ -e "$(result_of "$rate" "$t")" ] || done_all=0
done; done
if [ $done_all = 1 ]; then echo "skip $run: all results exist" >&2; exit 0; fi

mkdir -p .sweep
exec 9>".sweep/$run.lock"
if ! flock -n 9; then echo "skip $run: another sweep is running it" >&2; exit 0; fi

if [ ${#sup[@]} = 0 ]; then
  cfg=$PRETRAIN_CFG; [ "$method" = recon_only ] && cfg=$RECON_CFG
  "$PY" "$REPO/pretrain.py" "${name[@]}" "${opts[@]}" -t "$cfg" -am "$AUG"
  [ -e "$(path_of embedding)" ] || "$PY" "$REPO/embedding.py" "${name[@]}" "${opts[@]}"
fi
for rate in $RATES; do
  [ -e "$(path_of classifier "${sup[@]}" -lr "$rate")" ] || \
    "$PY" "$REPO/classifier.py" "${name[@]}" "${opts[@]}" "${sup[@]}" -t "$CLF_CFG" -lr "$rate"
  for t in ${targets//,/ }; do
    [ -e "$(result_of "$rate" "$t")" ] || \
      "$PY" "$REPO/cross_dataset_test.py" "${name[@]}" "${opts[@]}" "${sup[@]}" -lr "$rate" -td "$t" \
        --method "$method" --results-dir "$RESULTS"
  done
done
