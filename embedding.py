"""Stage 2a: per-time-step representations (N x T x H) of a dataset from a pretrained encoder.

    python embedding.py -d uci [-f saved/pretrain_<run>/best.pt] [--backbone limu|mamba]
Writes embed/<encoder run>__<dataset>_<version>.npz (features, activity labels, class names).
"""
import json
from pathlib import Path

from config import PretrainConfig, load
from dataset.load import load_windows
from training.checkpoint import load_checkpoint, save_npz
from training.cli import build_parser, embed_path, pretrain_dir, run
from training.finetune import build_encoder, check_compatible, embed, normalized_windows
from training.loop import resolve_device, resolve_precision


def encoder_file(args):
    """-f accepts best.pt or its run folder; default: this backbone's run on -d."""
    if args.model_file:
        path = Path(args.model_file)
        return path / "best.pt" if path.is_dir() else path
    seed = args.seed if args.seed is not None else load(PretrainConfig, args.train_cfg).seed
    return pretrain_dir(args, seed) / "best.pt"


def main():
    args = build_parser("embedding", __doc__.splitlines()[0]).parse_args()
    device = resolve_device(args.gpu)
    precision = resolve_precision(args.precision, device)
    path = encoder_file(args)
    ckpt = load_checkpoint(path, "encoder", None if args.model_file else args.backbone, map_location=device)
    windows = load_windows(args.dataset, args.dataset_version, args.data_dir)
    check_compatible(windows, ckpt["model_args"], f"encoder {path}")
    feats = embed(build_encoder(ckpt, device), normalized_windows(windows, device, ckpt["model_args"]),
                  device, precision)
    out = embed_path(path.parent.name.removeprefix("pretrain_"), args.dataset, args.dataset_version)
    meta = {"encoder": str(path), "encoder_epoch": ckpt["epoch"], "dataset": args.dataset,
            "version": args.dataset_version, "class_names": windows.class_names}
    save_npz(out, features=feats.cpu().numpy(), activity=windows.activity, meta=json.dumps(meta))
    print(f"wrote {out}: features {tuple(feats.shape)}, {len(windows.class_names)} classes")


if __name__ == "__main__":
    run(main)
