"""Stage 3: train the activity classifier on a few labelled source windows.

    python classifier.py -d uci -lr 0.1 [--backbone limu|mamba] [-t config/classifier_train_small.json]
    python classifier.py -d uci -lr 0.1 --supervised      # encoder + linear head end to end on raw windows
The model is chosen on validation loss; the source test split is scored once, at the end.
Runs unchanged under torchrun (DDP; batch_size stays global).
Writes saved/{classifier|supervised-<head>}_<run>_lr<rate>/{model.pt, config.json, source_test.json}.
"""
import json
from dataclasses import asdict

import torch

from config import CONFIG_DIR, ClassifierTrainConfig, load, load_model_config
from dataset.load import load_windows
from training.checkpoint import load_checkpoint, load_npz, save_checkpoint, save_json
from training.cli import build_parser, classifier_dir, embed_path, model_config, pretrain_dir, run
from training.finetune import build_classifier, classifier_splits, evaluate, normalized_windows, train_classifier
from training.distributed import setup, teardown
from training.errors import UserError
from training.loop import resolve_device, resolve_precision


def main():
    args = build_parser("classifier", __doc__.splitlines()[0]).parse_args()
    cfg = load(ClassifierTrainConfig, args.train_cfg)
    if args.seed is not None:
        cfg.seed = args.seed
    world, device = setup(resolve_device(args.gpu))     # torchrun: one process per device
    precision = resolve_precision(args.precision, device)
    windows = load_windows(args.dataset, args.dataset_version, args.data_dir, args.label_index)
    n_classes = len(windows.class_names)
    torch.manual_seed(cfg.seed)
    if args.supervised:
        model_args = {"type": "supervised", "backbone": args.backbone, "cfg": model_config(args),
                      "feature_num": windows.data.shape[2], "seq_len": windows.data.shape[1],
                      "n_classes": n_classes, "head": args.head, "norm": args.norm,
                      "classifier_cfg": load_model_config(CONFIG_DIR / "classifier.json", "transformer_v1")}
        x = normalized_windows(windows, device, model_args)
        split, encoder_path = (cfg.seed, cfg.train_rate, cfg.val_rate), None
    else:
        encoder_path = pretrain_dir(args, cfg.seed) / "best.pt"
        enc = load_checkpoint(encoder_path, "encoder", args.backbone)
        emb_file = embed_path(encoder_path.parent.name.removeprefix("pretrain_"), args.dataset, args.dataset_version)
        emb = load_npz(emb_file, ["features", "activity", "meta"])
        meta = json.loads(str(emb["meta"]))
        if meta.get("encoder_epoch") != enc["epoch"]:
            raise UserError(f"{emb_file} was made from the encoder of epoch {meta.get('encoder_epoch')}, "
                            f"but {encoder_path} now holds epoch {enc['epoch']}: re-run embedding.py")
        x = torch.as_tensor(emb["features"], device=device)
        clf_cfg = load_model_config(CONFIG_DIR / "classifier.json", "transformer_v1")
        model_args = {"type": "transformer", "in_features": x.shape[2], "n_classes": n_classes,
                      "seq_len": x.shape[1], "cfg": clf_cfg}
        t = enc["config"]["train"]
        split = (t["seed"], t["train_rate"], t["val_rate"])
    model = build_classifier(model_args, device)
    y = torch.as_tensor(windows.activity, device=device)
    train_idx, val_idx, test_idx = classifier_splits(len(y), split, args.label_rate, cfg.seed, windows.name)
    say = print if world.main else (lambda *a, **k: None)
    say(f"{windows.name}: {len(train_idx)} labelled training windows (rate {args.label_rate:g}), "
          f"{len(val_idx)} validation, {len(test_idx)} test; {n_classes} classes")
    state = train_classifier(model=model, x=x, y=y, train_idx=train_idx, val_idx=val_idx, cfg=cfg,
                             device=device, precision=precision, world=world)
    test = evaluate(model, x[torch.as_tensor(test_idx, device=device)], windows.activity[test_idx],
                    n_classes, device, precision)
    if not world.main:
        return teardown(world)
    out = classifier_dir(args, cfg.seed)
    resolved = {"stage": "classifier", "dataset": args.dataset, "dataset_version": args.dataset_version,
                "label_rate": args.label_rate, "split": list(split), "train": asdict(cfg),
                "model_args": model_args, "encoder_path": str(encoder_path) if encoder_path else None}
    save_checkpoint({"kind": "classifier", "model_args": model_args, "state": model.state_dict(),
                     "encoder_path": resolved["encoder_path"], "class_names": windows.class_names,
                     "best_epoch": state.best_epoch + 1, "config": resolved}, out / "model.pt")
    save_json(resolved, out / "config.json")
    save_json({"source": args.dataset, "best_epoch": state.best_epoch + 1, "test": test}, out / "source_test.json")
    print(f"source test ({args.dataset}, {test['n']} windows): accuracy {test['accuracy']:.4f}, "
          f"macro-F1 {test['macro_f1']:.4f} (majority rate {test['majority_rate']:.4f}); model at {out}")
    teardown(world)


if __name__ == "__main__":
    run(main)
