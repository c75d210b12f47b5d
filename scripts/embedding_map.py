"""Embedding map: two or more prepared datasets in an encoder's space, and how separable they are.

    python scripts/embedding_map.py -d uci usc_had -f saved/pretrain_<run> [-o map.png]
    python scripts/embedding_map.py -d uci usc_had -f saved/pretrain_<run> --random-init   # before
    python scripts/embedding_map.py -d uci usc_had --random-init [--backbone mamba -mv v1]
Writes a PNG (t-SNE or UMAP, by dataset and by class) and a JSON beside it (the domain
classifier's cross-validated accuracy and chance, class accuracy, probe transfer); prints them.
The logic lives in training/embedding_map.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.augment import NORMS  # noqa: E402
from training.cli import BACKBONES, Parser, run  # noqa: E402
from training.embedding_map import METHODS, embedding_map  # noqa: E402
from training.loop import resolve_device  # noqa: E402


def main():
    p = Parser(prog="scripts/embedding_map.py", description=__doc__.splitlines()[0])
    p.add_argument("-d", "--datasets", nargs="+", required=True, metavar="NAME",
                   help="two or more prepared datasets (published or your own)")
    p.add_argument("-f", "--encoder", help="encoder checkpoint (best.pt) or pretraining run folder")
    p.add_argument("--random-init", action="store_true",
                   help="an untrained encoder: -f's architecture and pretraining seed (before "
                        "pretraining), or --backbone / -mv / --norm without -f")
    p.add_argument("--backbone", default="limu", choices=BACKBONES, help="--random-init without -f")
    p.add_argument("-mv", "--model_version", default="v1", help="--random-init without -f")
    p.add_argument("--norm", default="instance", choices=NORMS, help="--random-init without -f")
    p.add_argument("-dv", "--dataset_version", default="20_120_4c")
    p.add_argument("--data-dir", default="dataset")
    p.add_argument("--per-dataset", type=int, default=1500,
                   help="windows drawn from each dataset (fewer if one has fewer; equal for all)")
    p.add_argument("--method", default="tsne", choices=METHODS, help="tsne (default) or umap")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    p.add_argument("--seed", type=int, default=0, help="sampling, map and folds")
    p.add_argument("--init-seed", type=int, default=None,
                   help="--random-init weights (default: -f's pretraining seed, else 0)")
    p.add_argument("-o", "--out", default=None,
                   help="PNG path (default results/maps/<encoder>__<datasets>.png)")
    p.add_argument("-g", "--gpu", default=None, help="CUDA device index; CPU when CUDA is absent")
    args = p.parse_args()
    backbone_args = None
    if args.encoder is None:
        from training.cli import model_config
        args.scan = None
        backbone_args = {"backbone": args.backbone, "cfg": model_config(args), "norm": args.norm}
    out = args.out
    if out is None:
        encoder = Path(args.encoder or ".")
        encoder = encoder.parent if encoder.suffix == ".pt" else encoder     # best.pt: its run
        stem = encoder.name.removeprefix("pretrain_") if args.encoder else \
            f"{args.backbone}_{args.model_version}"
        stem += "_init" if args.random_init else ""
        out = Path("results") / "maps" / f"{stem}__{'+'.join(args.datasets)}.png"
    embedding_map(args.datasets, out, encoder=args.encoder, random_init=args.random_init,
                  backbone_args=backbone_args, version=args.dataset_version, data_dir=args.data_dir,
                  per_dataset=args.per_dataset, method=args.method, folds=args.folds, seed=args.seed,
                  init_seed=args.init_seed, device=resolve_device(args.gpu))


if __name__ == "__main__":
    run(main)
