"""Stage 1: self-supervised pretraining of an encoder on the source dataset.

    python pretrain.py -d uci [--backbone limu|mamba] [-t config/pretrain_small.json] [-am channel_aug] [--compile]
Writes saved/pretrain_<run>/{best.pt, last.pt, config.json}; rerunning the same command resumes.
Runs unchanged under `torchrun --nproc_per_node N pretrain.py ...` (DDP; -t's batch_size stays global).
"""
import shutil
from dataclasses import asdict

from config import CONFIG_DIR, MaskConfig, PretrainConfig, load, load_model_config
from dataset.load import load_windows
from training.cli import build_parser, model_config, pretrain_dir, run
from training.distributed import setup, teardown
from training.loop import resolve_device, resolve_precision
from training.pretrain import run_pretraining


def main():
    p = build_parser("pretrain", __doc__.splitlines()[0])
    p.add_argument("--fresh", action="store_true", help="discard an existing run of this name")
    p.add_argument("--compile", action="store_true",
                   help="run the training step under torch.compile (pays off on long runs; see README, Performance)")
    args = p.parse_args()
    train_cfg, mask_cfg = load(PretrainConfig, args.train_cfg), load(MaskConfig, args.mask_cfg)
    if args.seed is not None:
        train_cfg.seed = args.seed
    model_cfg = model_config(args)
    head_cfg = load_model_config(CONFIG_DIR / "pretrain_model.json", "contrastive_head")
    windows = load_windows(args.dataset, args.dataset_version, args.data_dir)
    world, device = setup(resolve_device(args.gpu))     # torchrun: one process per device
    precision = resolve_precision(args.precision, device)
    run_dir = pretrain_dir(args, train_cfg.seed)
    if args.fresh and run_dir.exists() and world.main:
        shutil.rmtree(run_dir)
    if world.distributed:
        import torch.distributed as dist
        dist.barrier()          # no rank may look for last.pt before --fresh removed it
    model_args = {"backbone": args.backbone, "cfg": model_cfg, "feature_num": windows.data.shape[2],
                  "seq_len": windows.data.shape[1], "norm": args.norm}
    resolved = {"stage": "pretrain", "dataset": args.dataset, "dataset_version": args.dataset_version,
                "augmentation": args.augument_method, "model_args": model_args, "contrastive_head": head_cfg,
                "train": asdict(train_cfg), "mask": asdict(mask_cfg)}
    run_pretraining(windows=windows, backbone=args.backbone, model_cfg=model_cfg, head_cfg=head_cfg,
                    train_cfg=train_cfg, mask_cfg=mask_cfg, augmentation=args.augument_method,
                    device=device, precision=precision, run_dir=run_dir, model_args=model_args,
                    resolved_config=resolved, world=world, compile=args.compile)
    teardown(world)


if __name__ == "__main__":
    run(main)
