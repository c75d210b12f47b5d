"""Stage 1: self-supervised pretraining of an encoder on the source dataset.

    python pretrain.py -d uci [--backbone limu|mamba] [-t config/pretrain_small.json] [-am channel_aug] [--compile]
Writes saved/pretrain_<run>/{best.pt, last.pt, config.json, history.csv, curve.png}; rerunning
the same command resumes. Runs unchanged under `torchrun --nproc_per_node N pretrain.py ...`
(DDP; -t's batch_size stays global).
"""
import contextlib

from common.cli import run


def parser():
    from training import cli
    p = cli.stage_parser("pretrain", __doc__.splitlines()[0])
    cli.add_training(p, "pretrain.json")
    cli.add_model(p)
    g = p.add_argument_group("pretraining")
    g.add_argument("-a", "--mask_cfg", default=str(cli.CONFIG_DIR / "mask.json"), help="masking config")
    cli.add_augmentation(g, "training-set expansion (CrossHAR's flag, spelling included)")
    g.add_argument("--fresh", action="store_true", help="discard an existing run of this name first")
    g.add_argument("--compile", action="store_true",
                   help="run the training step under torch.compile (pays off on long runs; see docs/performance.md)")
    return p


def main():
    # imported here, not at the top: loading torch takes seconds, and a ^C meanwhile is one line too
    from dataclasses import asdict

    from common.lock import hold
    from config import CONFIG_DIR, MaskConfig, PretrainConfig, check, load, load_model_config
    from dataset.load import load_windows
    from training import cli, paths
    from training.distributed import setup, teardown
    from training.history import summary_writer
    from training.loop import resolve_device, resolve_precision
    from training.pretrain import run_pretraining

    args = cli.parse(parser())
    train_cfg, mask_cfg = load(PretrainConfig, args.train_cfg), load(MaskConfig, args.mask_cfg)
    if args.seed is not None:
        train_cfg.seed = args.seed
        check(train_cfg, args.train_cfg)
    if args.tensorboard:
        summary_writer()                      # missing: one line now, not after the data is loaded
    head_cfg = load_model_config(CONFIG_DIR / "pretrain_model.json", "contrastive_head")
    run_dir = paths.pretrain_dir(paths.run_name(args))
    windows = load_windows(args.dataset, args.dataset_version, args.data_dir)
    spec = cli.encoder_spec(args, windows)
    world, device = setup(resolve_device(args.gpu))     # torchrun: one process per device
    precision = resolve_precision(args.precision, device)
    with hold(run_dir) if world.main else contextlib.nullcontext():
        if args.fresh and world.main:
            paths.remove_run(run_dir, paths.SAVED, "config.json")
        if world.distributed:
            import torch.distributed as dist
            dist.barrier()          # no rank may look for last.pt before --fresh removed it
        resolved = {"stage": "pretrain", "dataset": args.dataset, "dataset_version": args.dataset_version,
                    "augmentation": args.augmentation, "model_args": spec, "contrastive_head": head_cfg,
                    "train": asdict(train_cfg), "mask": asdict(mask_cfg)}
        run_pretraining(windows=windows, spec=spec, head_cfg=head_cfg, train_cfg=train_cfg,
                        mask_cfg=mask_cfg, augmentation=args.augmentation, device=device,
                        precision=precision, run_dir=run_dir, resolved_config=resolved, world=world,
                        compile=args.compile, tensorboard=args.tensorboard)
    teardown(world)


if __name__ == "__main__":
    run(main, interrupted="interrupted; the epochs completed so far are saved (last.pt), and rerunning "
                          "the same command resumes after the last one")
