"""Stage 2: per-time-step representations (N x T x H) of a dataset from a pretrained encoder.

    python embedding.py -d uci [-s RUN | -f saved/pretrain_<run>/best.pt] [--backbone limu|mamba]
Writes embed/<encoder run>__<dataset>_<version>.npz: the features and a record of the
encoder they came from (its path and id), which the classifier verifies.
"""
from common.cli import run


def parser():
    from training import cli
    p = cli.stage_parser("embedding", __doc__.splitlines()[0])
    p.add_argument("-f", "--model_file", default=None,
                   help="encoder checkpoint (best.pt) or its run folder (default: the run's best.pt)")
    return p


def main():
    # imported here, not at the top: loading torch takes seconds, and a ^C meanwhile is one line too
    from pathlib import Path

    import torch

    from common.lock import hold
    from dataset.load import load_windows
    from models import spec as model_spec
    from training import artifacts, cli, paths
    from training.loop import embed, resolve_device, resolve_precision

    args = cli.parse(parser())
    device = resolve_device(args.gpu)
    precision = resolve_precision(args.precision, device)
    if args.model_file:
        path = Path(args.model_file)
        path = path / "best.pt" if path.is_dir() else path
    else:
        path = paths.pretrain_dir(paths.run_name(args)) / "best.pt"
    ckpt = artifacts.load_checkpoint(path, "encoder", map_location=device)
    spec = ckpt["model_args"]
    cli.check_run(args, {"backbone": spec.get("backbone"), "model_version": spec.get("version"),
                         "seed": ckpt["config"].get("train", {}).get("seed")}, path,
                  keys=("backbone", "model_version", "seed"))
    windows = load_windows(args.dataset, args.dataset_version, args.data_dir)
    model_spec.check_input(spec, windows.data.shape[1], windows.data.shape[2], f"{windows.name}_{windows.version}")
    out = paths.embedding_file(paths.encoder_run(path), args.dataset, args.dataset_version)
    with hold(out):
        encoder = artifacts.build_model(ckpt, path, device)
        feats = embed(encoder, torch.as_tensor(windows.data, device=device), device, precision)
        artifacts.save_embedding(out, feats.cpu().numpy(), path, ckpt, windows)
    print(f"wrote {out}: features {tuple(feats.shape)} from {path} (epoch {ckpt['epoch']})")


if __name__ == "__main__":
    run(main, interrupted="interrupted; no embedding file was written")
