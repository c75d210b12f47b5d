"""Embedding map: two or more prepared datasets in an encoder's space, and how separable they are.

    python scripts/embedding_map.py -d uci usc_had -s RUN [-o map.png]       # RUN: saved/pretrain_RUN
    python scripts/embedding_map.py -d uci usc_had -f saved/pretrain_<run> --random-init   # before
    python scripts/embedding_map.py -d uci usc_had --random-init [--backbone mamba -mv v1 --norm limu]
Writes a PNG (t-SNE or UMAP, by dataset and by class) and a JSON beside it (the domain
classifier's cross-validated accuracy and chance, class accuracy, probe transfer, the encoder's
record); prints them. Default: results/maps/<encoder run>[_init]__<datasets>_<version>.png.
The logic lives in training/embedding_map.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.cli import Parser, run  # noqa: E402

# the architecture flags: only for --random-init without -f / -s
ARCHITECTURE = {"backbone": "--backbone", "model_version": "-mv", "norm": "--norm", "scan": "--scan"}


def parser():
    from models import list_backbones
    from training import cli, paths
    from training.embedding_map import METHODS
    from training.loop import PRECISIONS
    p = Parser(prog="scripts/embedding_map.py", description=__doc__.splitlines()[0])
    g = p.add_argument_group("datasets")
    g.add_argument("-d", "--datasets", nargs="+", required=True, metavar="NAME", type=paths.dataset_name,
                   help="two or more datasets: published, or prepared in --data-dir (your own)")
    g.add_argument("-dv", "--dataset_version", default=paths.DEFAULT_VERSION,
                   type=paths.name_type("dataset version (-dv)"), help="prepared version (default 20_120_4c)")
    g.add_argument("--data-dir", default="dataset", help="where prepared datasets live")
    g = p.add_argument_group("encoder")
    g.add_argument("-f", "--model_file", help="encoder checkpoint (best.pt) or its run folder")
    g.add_argument("-s", "--save_model", type=paths.name_type("run name (-s)"),
                   help="the encoder's run name: saved/pretrain_RUN/best.pt")
    g.add_argument("--random-init", action="store_true",
                   help="the encoder untrained: -f / -s's architecture under its pretraining seed (the "
                        "weights pretraining started from), or --backbone / -mv / --norm / --scan without them")
    g.add_argument("--init-seed", type=paths.seed, help="--random-init weights (default: the run's pretraining seed, else 0)")
    g.add_argument("--backbone", choices=list_backbones(), help="--random-init without -f / -s (default limu)")
    g.add_argument("-mv", "--model_version", type=paths.name_type("model version (-mv)"),
                   help="--random-init without -f / -s: entry BACKBONE_VERSION of config/pretrain_model.json (default v1)")
    cli.add_model(p)
    g = p.add_argument_group("map")
    g.add_argument("--per-dataset", type=int, default=1500,
                   help="windows drawn from each dataset (fewer if one has fewer; equal for all)")
    g.add_argument("--method", default="tsne", choices=METHODS, help="tsne (default) or umap")
    g.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    g.add_argument("--seed", type=paths.seed, default=0, help="sampling, map and folds")
    g.add_argument("-o", "--out", help="PNG path (the JSON goes beside it)")
    g = p.add_argument_group("device")
    g.add_argument("-g", "--gpu", default=None, help="CUDA device index; CPU when CUDA is absent")
    g.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="fp32, bf16 autocast, or auto (bf16 where the hardware has it)")
    return p


def main(argv=None):
    # imported here, not at the top: loading torch takes seconds, and a ^C meanwhile is one line too
    from training import cli, paths
    from training.embedding_map import embedding_map, encoder_path
    from training.loop import resolve_device, resolve_precision

    p = parser()
    args = p.parse_args(argv)
    paths.check_datasets(p, args.data_dir, {"-d/--datasets": args.datasets})
    if args.model_file and args.save_model:
        p.error("-f and -s both name the encoder; give one")
    encoder = args.model_file or (paths.pretrain_dir(args.save_model) if args.save_model else None)
    given = [k for k in ARCHITECTURE if getattr(args, k) is not None]
    if given and (encoder or not args.random_init):
        p.error(f"{ARCHITECTURE[given[0]]}: only for --random-init without -f / -s (a checkpoint's "
                "architecture is its own)")
    if args.init_seed is not None and not args.random_init:
        p.error("--init-seed: only with --random-init")
    if encoder is None and not args.random_init:
        p.error("no encoder: -f ENCODER (best.pt or its run folder), -s RUN, or --random-init")
    args.backbone, args.model_version = args.backbone or "limu", args.model_version or "v1"
    out = args.out
    if out is None:
        run_ = (paths.encoder_run(encoder_path(encoder)) if encoder else f"{args.backbone}_{args.model_version}")
        out = paths.map_file(run_ + ("_init" if args.random_init else ""), args.datasets, args.dataset_version)
    device = resolve_device(args.gpu)
    embedding_map(args.datasets, out, encoder=encoder, random_init=args.random_init,
                  spec_for=lambda windows: cli.encoder_spec(args, windows), version=args.dataset_version,
                  data_dir=args.data_dir, per_dataset=args.per_dataset, method=args.method, folds=args.folds,
                  seed=args.seed, init_seed=args.init_seed, device=device,
                  precision=resolve_precision(args.precision, device))


if __name__ == "__main__":
    run(main, interrupted="interrupted; no map was written")
