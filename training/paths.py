"""Where every artifact lives: built here and nowhere else, from validated names.

    saved/pretrain_<run>/            best.pt, last.pt, config.json, history.csv, curve.png
    embed/<encoder run>__<data>_<version>.npz
    saved/<kind>_<run>_lr<rate>/     model.pt, config.json, source_test.json, history.csv, curve.png
    results/<classifier folder, without 'classifier_'>_to_<target>.json and .png
<run> is -s, or BACKBONE_SOURCE_VERSION_MV (plus _sSEED when --seed is given); <kind> is
classifier, supervised-linear or supervised-transformer. A name is letters, digits and
`_ . + = -`, with no path separator and no `..`, and every path must resolve inside its root
(saved/, embed/, results/ under the working directory): a name can never reach elsewhere.

    python -m training.paths pretrain|embedding|classifier|result [the stage's run flags]
prints the file that marks that stage as done (scripts/sweep_job.sh asks instead of
rebuilding names). The flags that name a run are defined here too, so that this entry needs
neither torch nor the models (it only builds names) and the stages parse them the same way.
"""
import argparse
import re
import shutil
import sys
from pathlib import Path

from common.cli import Parser, run
from common.errors import UserError
from dataset.load import DATASETS, DEFAULT_VERSION

SAVED, EMBED, RESULTS = Path("saved"), Path("embed"), Path("results")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+=-]{0,199}")


def check_name(name, what):
    if not _NAME.fullmatch(name) or ".." in name:
        raise UserError(f"{what} {name!r}: expected a plain name (letters, digits, _ . + = -; "
                        f"no path separator, no '..', at most 200 characters)")
    return name


def _name_type(what):
    def parse(text):
        try:
            return check_name(text, what)
        except UserError as e:
            raise argparse.ArgumentTypeError(str(e))
    return parse


def dataset_names(text):
    """One dataset name, or several joined by commas (multi-source)."""
    names = text.split(",")
    if any(n not in DATASETS for n in names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(DATASETS)}; "
                                         f"several distinct ones joined by commas for multi-source)")
    return text


def _number(kind, low, high, what):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not low(value) or not high(value):
            raise argparse.ArgumentTypeError(f"{what}, got {text!r}")
        return value
    return parse


label_rate = _number(float, lambda v: v > 0, lambda v: v <= 1, "label rate must be a number in (0, 1]")
seed = _number(int, lambda v: v >= 0, lambda v: True, "seed must be an integer >= 0")

RUN_DEFAULTS = {"dataset": "uci", "dataset_version": DEFAULT_VERSION, "model_version": "v1",
                "backbone": "limu", "seed": None, "save_model": None}


def add_run(p, backbones=None):
    """The flags that name a run; defaults are filled in by parse(). `backbones`: the registry's
    names (the stages); None accepts any plain name (this module's entry builds names only)."""
    g = p.add_argument_group("run (names it; see training/paths.py)")
    g.add_argument("-d", "--dataset", type=dataset_names,
                   help=f"source dataset ({', '.join(DATASETS)}; default uci); several joined by commas: multi-source")
    g.add_argument("-dv", "--dataset_version", type=_name_type("dataset version (-dv)"),
                   help=f"prepared version: {DEFAULT_VERSION} (CrossHAR's 4 classes, default) or 20_120 (all activities)")
    g.add_argument("-mv", "--model_version", type=_name_type("model version (-mv)"),
                   help="model version: entry BACKBONE_VERSION of config/pretrain_model.json (default v1)")
    g.add_argument("--backbone", choices=backbones, type=None if backbones else _name_type("backbone"),
                   help="encoder (default limu)")
    g.add_argument("--seed", type=seed, help="overrides the training config's seed; part of the default run name")
    g.add_argument("-s", "--save_model", type=_name_type("run name (-s)"),
                   help="run name (default BACKBONE_SOURCE_VERSION_MV, plus _sSEED with --seed)")
    return g


def add_classifier(p, heads=None, supervised_help="a supervised model (no pretraining)"):
    """The flags that tell which classifier: label rate, and supervised or on embeddings."""
    g = p.add_argument_group("classifier")
    g.add_argument("-lr", "--label_rate", type=label_rate, default=0.1,
                   help="labelled share of the source training windows, in (0, 1]")
    g.add_argument("--supervised", action="store_true", help=supervised_help)
    g.add_argument("--head", default="linear", choices=heads, type=None if heads else _name_type("head"),
                   help="--supervised head: linear on the pooled vector (HARMamba's setting) or "
                        "CrossHAR's transformer classifier on the per-step features")
    return g


def add_target(p):
    p.add_argument("-td", "--target_dataset", default="usc_had", choices=DATASETS, help="target dataset")
    p.add_argument("--results-dir", default="results", help="where the result .json and .png go")


def parse(p, argv=None):
    """Parse; run flags not given get their defaults, and args.explicit names those given."""
    args = p.parse_args(argv)
    args.explicit = {k for k in RUN_DEFAULTS if getattr(args, k, None) is not None}
    for k, v in RUN_DEFAULTS.items():
        if getattr(args, k, None) is None and hasattr(args, k):
            setattr(args, k, v)
    return args


def inside(path, root):
    """`path`, checked to resolve inside `root` (a symlinked run folder cannot lead out)."""
    real, top = Path(path).resolve(), Path(root).resolve()
    if real != top and top not in real.parents:
        raise UserError(f"{path} resolves to {real}, outside {root}/; expected a path inside it")
    return Path(path)


def run_name(args):
    """-s, or the default name of the run the flags describe."""
    if args.save_model:
        return check_name(args.save_model, "run name (-s)")
    name = "_".join([args.backbone, args.dataset.replace(",", "+"), args.dataset_version, args.model_version])
    return check_name(name + (f"_s{args.seed}" if args.seed is not None else ""), "run name")


def pretrain_dir(run):
    return inside(SAVED / f"pretrain_{check_name(run, 'run name')}", SAVED)


def encoder_run(encoder_path):
    """The run an encoder checkpoint belongs to: its folder's name without 'pretrain_'."""
    folder = Path(encoder_path).resolve().parent.name
    return check_name(folder.removeprefix("pretrain_"), f"encoder folder of {encoder_path}")


def embedding_file(run, dataset, version):
    name = f"{check_name(run, 'run name')}__{dataset.replace(',', '+')}_{check_name(version, 'dataset version')}"
    return inside(EMBED / f"{name}.npz", EMBED)


def classifier_kind(supervised, head):
    return f"supervised-{head}" if supervised else "classifier"


def classifier_dir(kind, run, rate):
    return inside(SAVED / f"{kind}_{check_name(run, 'run name')}_lr{rate:g}", SAVED)


def result_files(classifier_folder, target, results_dir=RESULTS):
    """(json, png) of a classifier's result on `target`, named after the classifier's folder."""
    stem = check_name(Path(classifier_folder).resolve().name.removeprefix("classifier_"),
                      f"classifier folder of {classifier_folder}") + f"_to_{target}"
    root = Path(results_dir)
    return inside(root / f"{stem}.json", root), inside(root / f"{stem}.png", root)


def remove_run(folder, root, marker):
    """--fresh: delete one run folder of a stage, only if it is a real folder inside `root` that
    holds the stage's `marker` file (or nothing at all)."""
    folder = inside(folder, root)
    if not folder.exists():
        return
    if folder.is_symlink() or not folder.is_dir() or (any(folder.iterdir()) and not (folder / marker).exists()):
        raise UserError(f"--fresh: {folder} is not a run folder of this stage (no {marker}); "
                        f"remove it yourself if you mean it")
    shutil.rmtree(folder)


def stage_path(stage, args):
    """The file that marks `stage` as done for the run the flags name."""
    run = run_name(args)
    if stage == "pretrain":
        return pretrain_dir(run) / "best.pt"
    if stage == "embedding":
        return embedding_file(run, args.dataset, args.dataset_version)
    folder = classifier_dir(classifier_kind(args.supervised, args.head), run, args.label_rate)
    if stage == "classifier":
        return folder / "model.pt"
    return result_files(folder, args.target_dataset, args.results_dir)[0]


def main(argv=None):
    p = Parser(prog="python -m training.paths", description=__doc__.splitlines()[0])
    p.add_argument("stage", choices=("pretrain", "embedding", "classifier", "result"))
    add_run(p)
    add_classifier(p)
    add_target(p)
    args = parse(p, argv)
    print(stage_path(args.stage, args))


if __name__ == "__main__":
    run(lambda: main(sys.argv[1:]))
