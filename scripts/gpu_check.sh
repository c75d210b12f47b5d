#!/usr/bin/env bash
# One prepared check on a single-GPU machine without network (written for an H200, torch with
# CUDA and nvcc installed), about 12 minutes; each part has its own time limit and a failing or
# skipped part does not stop the others. Output: the console and $OUT/gpu_check.log.
#
#   bash scripts/gpu_check.sh
#
# 1. environment (GPU, driver, torch, nvcc);
# 2. mamba-ssm and causal-conv1d built for sm_90, only from source packages that travel with the
#    repo (MAMBA_SDISTS, default .whl/: mamba_ssm-*.tar.gz, causal_conv1d-*.tar.gz) and only
#    within BUILD_LIMIT_S; without them the CUDA-kernel comparison is skipped, saying so;
# 3. scripts/gpu_scan_check.py: our scan and the CUDA kernel against the float64 reference,
#    and their forward+backward times;
# 4. scripts/bench.py on the GPU: both backbones, fp32 and bf16;
# 5. uci pretraining per backbone (prepared dataset/uci, or UCI_RAW=the HAPT zip): a 2- and a
#    6-epoch run, whose difference gives the time per epoch, extrapolated to the reference 1,600.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${OUT:-gpu_check_out}
SDISTS=${MAMBA_SDISTS:-.whl}
BUILD_LIMIT_S=${BUILD_LIMIT_S:-240}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1

part() { echo; echo "=== $1 ($(date +%T))"; }
limited() { local s=$1; shift; timeout "$s" "$@"; local rc=$?; [ $rc -eq 124 ] && echo "(stopped after ${s} s)"; return $rc; }

part "1. environment"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi failed"
nvcc --version | tail -n 2 || echo "no nvcc"
$PY -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'device', torch.cuda.get_device_name(0))"

part "2. mamba-ssm + causal-conv1d for sm_90 (limit ${BUILD_LIMIT_S} s)"
if $PY -c "import selective_scan_cuda, causal_conv1d_cuda" 2>/dev/null; then
    echo "already installed"
elif ls "$SDISTS"/mamba_ssm-*.tar.gz "$SDISTS"/causal_conv1d-*.tar.gz >/dev/null 2>&1; then
    start=$(date +%s)
    TORCH_CUDA_ARCH_LIST=9.0 MAMBA_FORCE_BUILD=TRUE CAUSAL_CONV1D_FORCE_BUILD=TRUE MAX_JOBS=$(nproc) \
        limited "$BUILD_LIMIT_S" $PY -m pip install --no-build-isolation --no-index --no-deps \
        "$SDISTS"/causal_conv1d-*.tar.gz "$SDISTS"/mamba_ssm-*.tar.gz \
        && echo "built in $(( $(date +%s) - start )) s" || echo "build failed or did not fit; continuing without it"
else
    echo "skipped: no mamba_ssm-*.tar.gz / causal_conv1d-*.tar.gz in $SDISTS (this machine has no network;"
    echo "put both source packages there, e.g. with 'pip download --no-deps --no-binary :all:', to build them)"
fi

part "3. CUDA scan against ours"
limited 120 $PY scripts/gpu_scan_check.py --repeats 10 || echo "scan check failed"
limited 120 $PY -m pytest -q tests/test_selective_scan.py -k "kernel or cuda" || echo "kernel tests failed"

part "4. both backbones (scripts/bench.py)"
limited 240 $PY scripts/bench.py --backbones limu mamba --precisions fp32 bf16 --repeats 5 \
    --classifier-epochs 2 --json "$OUT/bench.json" || echo "bench failed"

part "5. uci pretraining per backbone, timed and extrapolated to 1,600 epochs"
DATA=dataset
if [ ! -f "$DATA/uci/data_20_120_4c.npy" ] && [ -n "${UCI_RAW:-}" ]; then
    DATA="$OUT/data"
    limited 120 $PY -m dataset.prepare uci --raw "$UCI_RAW" --out "$DATA" || echo "preparing uci failed"
fi
now() { $PY -c "import time; print(time.time())"; }
# seconds of one pretraining run of $2 epochs (half contrastive) of backbone $1, or nothing
pretrain_s() {
    printf '{"seed": 1, "batch_size": 512, "lr": 0.001, "n_epochs": %d, "n_epochs_cl": %d, "lambda_recon": 6.0,
  "lambda_cl": 1.0, "train_rate": 0.8, "val_rate": 0.1}\n' "$2" $(( $2 / 2 )) > "$OUT/pretrain_$2.json"
    local start; start=$(now)
    limited 150 $PY pretrain.py -d uci --backbone "$1" --precision auto -g 0 -t "$OUT/pretrain_$2.json" \
        --data-dir "$DATA" -s "gpu_check_$1_$2" --fresh > "$OUT/pretrain_$1_$2.log" 2>&1 \
        && $PY -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$start" "$(now)"
}
if [ -f "$DATA/uci/data_20_120_4c.npy" ]; then
    for backbone in limu mamba; do      # the difference of a 2- and a 6-epoch run: start-up cancels
        short=$(pretrain_s "$backbone" 2); long=$(pretrain_s "$backbone" 6)
        if [ -n "$short" ] && [ -n "$long" ]; then
            $PY -c "import sys; s, l = map(float, sys.argv[1:3]); e = (l - s) / 4
print(f'$backbone (precision auto): {e:.2f} s per epoch (2 epochs {s:.1f} s, 6 epochs {l:.1f} s with start-up)'
      f' -> 1,600 epochs ~ {e * 1600 / 3600:.2f} h')" "$short" "$long"
        else
            echo "$backbone: pretraining failed; see $OUT/pretrain_${backbone}_*.log"
        fi
    done
else
    echo "skipped: no prepared dataset/uci (carry dataset/uci and dataset/data_config.json, or set UCI_RAW)"
fi
part "done"
