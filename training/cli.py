"""The stage command lines, built from shared argument groups: each stage takes the flags it
uses and refuses any other in one line. CrossHAR's flags keep their names (-mv -d -td -dv -g
-f -t -a -l -s -lr -am, the last with the original's spelling --augument_method).

The run flags (-d -dv -mv --backbone --seed -s) name a run (see training/paths.py). Later
stages find what they load by that name and then check the artifact: a run flag given
explicitly must agree with what the artifact records, or the stage refuses."""
from common.cli import Parser
from common.errors import UserError
from config import CONFIG_DIR, load_model_config
from models import list_backbones
from models import spec as model_spec
from models.ops.selective_scan import SCAN_IMPLS

from . import paths
from .loop import PRECISIONS

MODEL_CONFIG = CONFIG_DIR / "pretrain_model.json"
CLASSIFIER_CONFIG = CONFIG_DIR / "classifier.json"
FLAG = {"dataset": "-d", "dataset_version": "-dv", "model_version": "-mv", "backbone": "--backbone",
        "seed": "--seed"}
parse = paths.parse
add_target = paths.add_target


def stage_parser(stage, description):
    """The parser of a stage with what every stage takes: the run, the data, the device."""
    p = Parser(prog=f"{stage}.py", description=description)
    paths.add_run(p, backbones=list_backbones())
    g = p.add_argument_group("data and device")
    g.add_argument("--data-dir", default="dataset", help="where prepared datasets live")
    g.add_argument("-g", "--gpu", default=None, help="CUDA device index; CPU when CUDA is absent")
    g.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto (default: bf16 autocast on CUDA and on CPUs with native bf16, else "
                        "fp32; equal to fp32 within seed noise, docs/results.md), fp32, or bf16")
    return p


def add_training(p, default_cfg):
    """-t and the history options of a stage that trains."""
    g = p.add_argument_group("training")
    g.add_argument("-t", "--train_cfg", default=str(CONFIG_DIR / default_cfg),
                   help="training config (JSON or YAML); config/*_small.json for CPU runs")
    g.add_argument("--tensorboard", action="store_true",
                   help="also log the per-epoch history to TensorBoard (RUN_DIR/tensorboard; needs the tensorboard package)")
    return g


def add_model(p):
    """The encoder choices of a stage that builds one (stored in its model spec)."""
    g = p.add_argument_group("encoder")
    g.add_argument("--norm", default=None, choices=model_spec.NORMS,
                   help="input normalisation: instance (CrossHAR, default; drops device orientation) "
                        "or limu (acc / 9.8; keeps it)")
    g.add_argument("--scan", default=None, choices=SCAN_IMPLS,
                   help="mamba backbone: selective-scan implementation (default: the config's)")
    return g


def add_classifier(p, supervised_help):
    return paths.add_classifier(p, model_spec.HEADS, supervised_help)


def add_augmentation(p, help):
    """-am: CrossHAR's training-set expansion (the flag keeps the original's spelling)."""
    from .augment import AUGMENTATIONS
    p.add_argument("-am", "--augument_method", dest="augmentation", default="channel_aug",
                   choices=AUGMENTATIONS, help=help)


def add_labels(p):
    p.add_argument("-l", "--label_index", type=int, default=None,
                   help="label column to classify (default: the dataset's activity column)")


def check_run(args, recorded, path, keys=("dataset", "dataset_version", "model_version", "backbone", "seed")):
    """Refuse an artifact whose recorded run disagrees with a run flag given explicitly."""
    for key in sorted(set(keys) & args.explicit):
        if key in recorded and recorded[key] != getattr(args, key):
            raise UserError(f"{path} was made with {FLAG[key]} {recorded[key]}, not {getattr(args, key)}; "
                            f"drop {FLAG[key]} or name the run you mean with -s")


def encoder_spec(args, windows):
    """The encoder's model spec from -mv, --backbone, --scan and --norm and the data's shape."""
    cfg = load_model_config(MODEL_CONFIG, f"{args.backbone}_{args.model_version}")
    if args.scan:
        cfg["scan"] = args.scan
    spec = model_spec.encoder_spec(args.backbone, args.model_version, cfg, windows.data.shape[2],
                                   windows.data.shape[1], args.norm or "instance")
    model_spec.build(spec, f"{MODEL_CONFIG} {args.backbone}_{args.model_version}")   # fail before any work
    return spec


def classifier_cfg():
    return load_model_config(CLASSIFIER_CONFIG, "transformer_v1")


def flags_for(parser, argv, skip=()):
    """The part of argv (options and their values) that `parser` knows, less `skip`: how one set
    of extra flags can go to several stages that take different ones (scripts/compare_original.py)."""
    known = {s: a for a in parser._actions for s in a.option_strings if s not in skip}
    out, take = [], 0
    for token in argv:
        if take:
            out.append(token)
            take -= 1
        elif token.split("=", 1)[0] in known:
            out.append(token)
            nargs = known[token.split("=", 1)[0]].nargs      # None: one value; 0: a switch
            take = 0 if "=" in token else nargs if isinstance(nargs, int) else 1
    return out
