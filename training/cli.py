"""The command line the four stage scripts share: CrossHAR's original flags (-mv -d -td -dv
-g -f -t -a -l -s -lr -am) plus --backbone, --seed and --precision; artifact names; and the
wrapper that turns a UserError into one line on stderr and exit code 2."""
import argparse
import sys
from pathlib import Path

from config import CONFIG_DIR
from dataset.load import DATASETS, DEFAULT_VERSION

from .augment import AUGMENTATIONS, NORMS
from .errors import UserError
from .loop import PRECISIONS

BACKBONES = ("limu", "mamba")

_DEFAULT_TRAIN_CFG = {"pretrain": "pretrain.json", "embedding": "pretrain.json",
                      "classifier": "classifier_train.json", "cross_dataset_test": "classifier_train.json"}


def dataset_names(text):
    """One dataset name, or several joined by commas (multi-source)."""
    names = text.split(",")
    unknown = [n for n in names if n not in DATASETS]
    if unknown or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(DATASETS)}; "
                                         f"several distinct ones joined by commas for multi-source)")
    return text


def label_rate(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"label rate must be a number in (0, 1], got {text!r}")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"label rate must be in (0, 1], got {value}")
    return value


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the full usage is one --help away)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(stage, description):
    p = Parser(prog=f"{stage}.py", description=description)
    p.add_argument("-mv", "--model_version", default="v1",
                   help="model config version: entry BACKBONE_VERSION of config/pretrain_model.json")
    p.add_argument("-d", "--dataset", default="uci", type=dataset_names,
                   help=f"source dataset ({', '.join(DATASETS)}); several joined by commas: multi-source")
    p.add_argument("-td", "--target_dataset", default="usc_had", choices=DATASETS,
                   help="target dataset (cross_dataset_test.py)")
    p.add_argument("-dv", "--dataset_version", default=DEFAULT_VERSION,
                   help="prepared version: 20_120_4c (CrossHAR's 4 classes) or 20_120 (all activities)")
    p.add_argument("-g", "--gpu", default=None, help="CUDA device index; CPU when CUDA is absent")
    p.add_argument("-f", "--model_file", default=None,
                   help="embedding.py: encoder checkpoint (best.pt) or pretraining run folder; "
                        "cross_dataset_test.py: classifier checkpoint")
    p.add_argument("-t", "--train_cfg", default=str(CONFIG_DIR / _DEFAULT_TRAIN_CFG[stage]),
                   help="training config (JSON or YAML); config/*_small.json for CPU runs")
    p.add_argument("-a", "--mask_cfg", default=str(CONFIG_DIR / "mask.json"), help="masking config")
    p.add_argument("-l", "--label_index", type=int, default=None,
                   help="label column to classify (default: the dataset's activity column)")
    p.add_argument("-s", "--save_model", default=None,
                   help="run name (default BACKBONE_DATASET_VERSION_MV_sSEED)")
    p.add_argument("-lr", "--label_rate", type=label_rate, default=0.1,
                   help="labelled share of the source training windows, in (0, 1]")
    p.add_argument("-am", "--augument_method", default="channel_aug", choices=AUGMENTATIONS,
                   help="pretraining data expansion (the original's spelling of the flag)")
    p.add_argument("--backbone", default="limu", choices=BACKBONES)
    p.add_argument("--seed", type=int, default=None, help="overrides the training config's seed")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="fp32, bf16 autocast, or auto (bf16 where the hardware has it)")
    p.add_argument("--data-dir", default="dataset", help="where prepared datasets live")
    p.add_argument("--norm", default="instance", choices=NORMS,
                   help="encoder input normalisation (pretrain.py, classifier.py --supervised): instance "
                        "(CrossHAR; drops device orientation) or limu (acc / 9.8; keeps it)")
    p.add_argument("--scan", default=None, choices=("auto", "ref", "torch", "kernel", "cuda"),
                   help="mamba backbone: selective-scan implementation (default: config's)")
    if stage in ("classifier", "cross_dataset_test"):
        p.add_argument("--supervised", action="store_true",
                       help="no pretraining: the --backbone encoder trained from scratch with a head on raw windows")
        p.add_argument("--head", default="linear", choices=("linear", "transformer"),
                       help="--supervised head: linear on the pooled vector (HARMamba's setting) or "
                            "CrossHAR's transformer classifier on the per-step features")
    return p


def model_config(args):
    """The --backbone's entry of config/pretrain_model.json (-mv), with --scan applied."""
    from config import load_model_config
    cfg = load_model_config(CONFIG_DIR / "pretrain_model.json", f"{args.backbone}_{args.model_version}")
    if args.scan:
        cfg["scan"] = args.scan
    return cfg


def run_name(args, seed):
    source = args.dataset.replace(",", "+")
    return args.save_model or f"{args.backbone}_{source}_{args.dataset_version}_{args.model_version}_s{seed}"


def pretrain_dir(args, seed):
    return Path("saved") / f"pretrain_{run_name(args, seed)}"


def embed_path(encoder_run, data, version):
    return Path("embed") / f"{encoder_run}__{data.replace(',', '+')}_{version}.npz"


def model_kind(args):
    return f"supervised-{args.head}" if args.supervised else "classifier"


def classifier_dir(args, seed):
    return Path("saved") / f"{model_kind(args)}_{run_name(args, seed)}_lr{args.label_rate:g}"


def result_paths(args, seed):
    """(json, png) paths of one cross-dataset result."""
    kind = f"{model_kind(args)}_" if args.supervised else ""
    stem = Path(args.results_dir) / f"{kind}{run_name(args, seed)}_lr{args.label_rate:g}_to_{args.target_dataset}"
    return stem.parent / f"{stem.name}.json", stem.parent / f"{stem.name}.png"


def run(main):
    """Run a stage's main(); user errors become one line and exit code 2."""
    try:
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; completed epochs are saved and a rerun resumes", file=sys.stderr)
        sys.exit(130)
