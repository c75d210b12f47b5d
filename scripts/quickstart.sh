#!/usr/bin/env bash
# One command on a fresh machine: install (CPU torch), prepare uci and usc_had from the
# official zips, and run the four stages uci -> usc_had with the small CPU schedule.
#   [UCI_RAW=zip-or-dir] [USC_RAW=zip-or-dir] bash scripts/quickstart.sh [--backbone mamba] [--seed N] ...
# Extra flags go to every stage: the run flags (--backbone, -mv, --seed, -s) and -g, --precision.
set -euo pipefail
. "$(dirname "$0")/setup_env.sh"
UCI_RAW="${UCI_RAW:-../shared/data/uci_hapt/HAPT_RawData.zip}"
USC_RAW="${USC_RAW:-../shared/data/usc_had/USC-HAD.zip}"
[ -e dataset/uci/data_20_120_4c.npy ] || python -m dataset.prepare uci --raw "$UCI_RAW"
[ -e dataset/usc_had/data_20_120_4c.npy ] || python -m dataset.prepare usc_had --raw "$USC_RAW"
python pretrain.py -d uci -t config/pretrain_small.json "$@"
python embedding.py -d uci "$@"
python classifier.py -d uci -lr 0.1 -t config/classifier_train_small.json "$@"
python cross_dataset_test.py -d uci -td usc_had -lr 0.1 "$@"
