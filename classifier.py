"""Stage 3: train the activity classifier on a few labelled source windows.

    python classifier.py -d uci -lr 0.1 [--backbone limu|mamba] [-t config/classifier_train_small.json]
    python classifier.py -d uci -lr 0.1 --supervised      # encoder + linear head end to end on raw windows
The model is chosen on validation loss; the source test split is scored once, at the end.
Runs unchanged under torchrun (DDP; batch_size stays global). Writes, all at the end,
saved/{classifier|supervised-<head>}_<run>_lr<rate>/{model.pt, config.json, source_test.json,
history.csv, curve.png}; model.pt records the encoder and embedding it was trained on.
"""
from common.cli import run


def parser():
    from training import cli
    p = cli.stage_parser("classifier", __doc__.splitlines()[0])
    cli.add_training(p, "classifier_train.json")
    cli.add_classifier(p, "no pretraining: the --backbone encoder trained from scratch with a head on raw windows")
    cli.add_model(p)
    cli.add_labels(p)
    cli.add_augmentation(p, "expansion of the labelled windows, where the training config asks for "
                            "one (label_pool expanded, expand_labelled)")
    return p


def inputs(args, windows, run_name, out, device):
    """(x, model spec, encoder spec, split, lineage, encode): what the classifier trains on, and
    how more raw windows become such inputs. On embeddings: the run's embedding file, verified to
    come from the run's encoder as it is now; --supervised: the raw windows (the encoder
    normalises them), an encoder spec from the flags."""
    import torch

    from models import spec as model_spec
    from training import artifacts, cli, paths

    n_classes = len(windows.class_names)
    if args.supervised:
        spec = model_spec.supervised_spec(cli.encoder_spec(args, windows), n_classes, args.head, cli.classifier_cfg())
        return (torch.as_tensor(windows.data, device=device), spec, spec["encoder"], None,
                {"encoder": None, "embedding": None}, lambda raw, precision: raw)
    rerun = f"python embedding.py -d {args.dataset} -dv {args.dataset_version} -s {run_name}"
    enc_path = paths.pretrain_dir(run_name) / "best.pt"
    enc = artifacts.load_checkpoint(enc_path, "encoder")
    npz = paths.embedding_file(run_name, args.dataset, args.dataset_version)
    features, meta = artifacts.load_embedding(npz, windows, rerun)
    artifacts.verify(meta["encoder"], enc, npz, enc_path, rerun)
    enc_spec = enc["model_args"]
    cli.check_run(args, {"backbone": enc_spec.get("backbone"), "model_version": enc_spec.get("version")},
                  enc_path, keys=("backbone", "model_version"))
    t = enc["config"]["train"]
    x = torch.as_tensor(features, device=device)
    spec = model_spec.transformer_spec(x.shape[2], x.shape[1], n_classes, cli.classifier_cfg())
    lineage = {"encoder": artifacts.ref(enc_path, enc["id"], out), "embedding": artifacts.ref(npz, meta["id"], out)}

    def encode(raw, precision):
        from training.loop import embed
        return embed(artifacts.build_model(enc, enc_path, device), raw, device, precision)

    return x, spec, enc_spec, (t["seed"], t["train_rate"], t["val_rate"]), lineage, encode   # the encoder's split


def main():
    # imported here, not at the top: loading torch takes seconds, and a ^C meanwhile is one line too
    import contextlib
    from dataclasses import asdict

    import torch

    from common.errors import UserError
    from common.io import atomic_write_many, ensure_dir, json_bytes, torch_bytes
    from common.lock import hold
    from config import ClassifierTrainConfig, check, load
    from dataset.load import load_windows
    import numpy as np

    from models import spec as model_spec
    from training import artifacts, cli, paths
    from training.classifier import classifier_splits, evaluate, labelled_windows, train_classifier
    from training.distributed import setup, teardown
    from training.history import History, summary_writer
    from training.loop import resolve_device, resolve_precision

    args = cli.parse(parser())
    if not args.supervised and (args.norm or args.scan):
        raise UserError("--norm and --scan build an encoder: they go with --supervised (on embeddings, "
                        "the encoder is the pretrained one)")
    cfg = load(ClassifierTrainConfig, args.train_cfg)
    if args.seed is not None:
        cfg.seed = args.seed
        check(cfg, args.train_cfg)
    if args.tensorboard:
        summary_writer()                      # missing: one line now, not after training
    run_name = paths.run_name(args)
    kind = paths.classifier_kind(args.supervised, args.head)
    out = paths.classifier_dir(kind, run_name, args.label_rate)
    world, device = setup(resolve_device(args.gpu))     # torchrun: one process per device
    precision = resolve_precision(args.precision, device)
    say = print if world.main else (lambda *a, **k: None)
    with hold(out) if world.main else contextlib.nullcontext():
        if world.main:
            ensure_dir(out)               # an unwritable place fails now, not after training
        windows = load_windows(args.dataset, args.dataset_version, args.data_dir, args.label_index)
        x, spec, enc_spec, split, lineage, encode = inputs(args, windows, run_name, out, device)
        split = split or (cfg.seed, cfg.train_rate, cfg.val_rate)
        torch.manual_seed(cfg.seed)
        model = model_spec.build(spec, "classifier model_args").to(device)
        y = torch.as_tensor(windows.activity, device=device)
        pool_idx, train_idx, val_idx, test_idx = classifier_splits(len(y), split, args.label_rate, cfg.seed,
                                                                   windows.name)
        extra = labelled_windows(torch.as_tensor(windows.data, device=device), y, pool_idx, args.label_rate, cfg,
                                 args.augmentation, device)
        if extra is not None:     # the expanded labelled set, appended as rows of x that only training sees
            inputs_extra, labels = encode(extra[0], precision), extra[1]
            train_idx = np.arange(len(y), len(y) + len(labels))
            x, y = torch.cat([x, inputs_extra]), torch.cat([y, labels])
        pool = cfg.label_pool + (f", each with its {args.augmentation} copies" if cfg.expand_labelled else "")
        say(f"{windows.name}: {len(train_idx)} labelled training windows (rate {args.label_rate:g}, pool {pool}), "
            f"{len(val_idx)} validation, {len(test_idx)} test; {len(windows.class_names)} classes")
        history = History(out, tensorboard=args.tensorboard and world.main, live=False)
        state = train_classifier(model=model, x=x, y=y, train_idx=train_idx, val_idx=val_idx, cfg=cfg,
                                 device=device, precision=precision, world=world, history=history)
        history.close()
        test = evaluate(model, x[torch.as_tensor(test_idx, device=device)], windows.activity[test_idx],
                        len(windows.class_names), device, precision)
        if world.main:
            identity = {"dataset": args.dataset, "dataset_version": args.dataset_version, "kind": kind,
                        "backbone": enc_spec["backbone"], "model_version": enc_spec["version"],
                        "seed": cfg.seed, "label_rate": args.label_rate}
            resolved = {"stage": "classifier", "run": identity, "split": list(split), "train": asdict(cfg),
                        "labelled_expansion": args.augmentation if extra is not None else None,
                        "model_args": spec, **lineage}
            source_test = {"source": args.dataset, "best_epoch": state.best_epoch + 1, "test": test}
            ckpt = {"kind": "classifier", "id": artifacts.new_id(), "model_args": spec, "state": model.state_dict(),
                    "class_names": windows.class_names, "run": identity, **lineage,
                    "source_test": source_test, "config": resolved}
            atomic_write_many({out / "model.pt": lambda f: f.write(torch_bytes(ckpt)),
                               out / "config.json": lambda f: f.write(json_bytes(resolved)),
                               out / "source_test.json": lambda f: f.write(json_bytes(source_test)),
                               **history.files()})
    say(f"source test ({args.dataset}, {test['n']} windows): accuracy {test['accuracy']:.4f}, "
        f"macro-F1 {test['macro_f1']:.4f} (majority rate {test['majority_rate']:.4f}); model at {out}")
    teardown(world)


if __name__ == "__main__":
    run(main, interrupted="interrupted; nothing was saved (the classifier is written only when its "
                          "training ends): rerun to train it")
