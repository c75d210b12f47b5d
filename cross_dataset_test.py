"""Stage 4: evaluate a source-trained encoder + classifier on an unseen target dataset.

    python cross_dataset_test.py -d uci -td usc_had -lr 0.1 [--backbone limu|mamba] [--supervised]
Embeds the whole target with the encoder the classifier records (verified), classifies it,
and writes results/<classifier run>_to_<target>.json (accuracy, macro precision/recall/F1,
micro-F1, confusion matrix; source, backbone, model version and seed as the checkpoints
record them) and a confusion-matrix .png beside it. An earlier result of another classifier
is never replaced without --fresh.
"""
from common.cli import run


def parser():
    from training import cli
    p = cli.stage_parser("cross_dataset_test", __doc__.splitlines()[0])
    cli.add_classifier(p, "evaluate the --supervised model of the run (its --head)")
    cli.add_target(p)
    cli.add_labels(p)
    p.add_argument("-f", "--model_file", default=None, help="classifier checkpoint (default: the run's model.pt)")
    p.add_argument("--method", default=None, help="label recorded in the result (default: crosshar, or the supervised kind)")
    p.add_argument("--fresh", action="store_true", help="replace an earlier result of another classifier")
    return p


def main():
    # imported here, not at the top: loading torch takes seconds, and a ^C meanwhile is one line too
    import json
    import time
    from pathlib import Path

    import torch

    from common.io import atomic_write_many, json_bytes
    from common.lock import hold
    from dataset.load import load_windows
    from models import spec as model_spec
    from training import artifacts, cli, paths
    from training.classifier import evaluate, make_label_tensor
    from training.loop import embed, resolve_device, resolve_precision
    from training.metrics import save_confusion_png

    t0 = time.perf_counter()
    args = cli.parse(parser())
    device = resolve_device(args.gpu)
    precision = resolve_precision(args.precision, device)
    kind = paths.classifier_kind(args.supervised, args.head)
    path = (Path(args.model_file) if args.model_file else
            paths.classifier_dir(kind, paths.run_name(args), args.label_rate) / "model.pt")
    ckpt = artifacts.load_checkpoint(path, "classifier", map_location=device)
    made = ckpt["run"]
    cli.check_run(args, made, path)
    version = made["dataset_version"]
    rerun = (f"python embedding.py and classifier.py for {path.parent} "
             f"(-d {made['dataset']} -dv {version} -lr {made['label_rate']:g})")
    enc_path, enc = artifacts.classifier_encoder(path, ckpt, device, rerun)
    json_path, png_path = paths.result_files(path.parent, args.target_dataset, args.results_dir)
    lineage = {"classifier": artifacts.ref(path, ckpt["id"], json_path.parent),
               "encoder": artifacts.ref(enc_path, enc["id"], json_path.parent) if enc else None}
    with hold(json_path):
        artifacts.check_result_slot(json_path, lineage, args.fresh)
        target = load_windows(args.target_dataset, version, args.data_dir, args.label_index)
        y = make_label_tensor(target, ckpt["class_names"], device)
        x = torch.as_tensor(target.data, device=device)       # raw: the encoder normalises its input
        model_spec.check_input(enc["model_args"] if enc else ckpt["model_args"], x.shape[1], x.shape[2],
                               f"{target.name}_{target.version}")
        if enc:
            x = embed(artifacts.build_model(enc, enc_path, device), x, device, precision)
        model = artifacts.build_model(ckpt, path, device)
        metrics = evaluate(model, x, y.cpu().numpy(), len(ckpt["class_names"]), device, precision)
        enc_cfg = enc["config"] if enc else None
        result = {"source": made["dataset"], "target": args.target_dataset, "dataset_version": version,
                  "backbone": made["backbone"], "model_version": made["model_version"],
                  "method": args.method or ("crosshar" if enc else made["kind"]), "seed": made["seed"],
                  "pretrain_seed": enc_cfg["train"]["seed"] if enc else None, "label_rate": made["label_rate"],
                  "lineage": lineage, "class_names": ckpt["class_names"], "target_metrics": metrics,
                  "source_test_metrics": ckpt["source_test"]["test"], "config": ckpt["config"],
                  "encoder_config": enc_cfg, "wall_seconds": round(time.perf_counter() - t0, 3)}
        title = (f"{result['source']} -> {args.target_dataset} ({result['method']}, {result['backbone']}): "
                 f"acc {metrics['accuracy']:.3f}")
        atomic_write_many({json_path: lambda f: f.write(json_bytes(result)),
                           png_path: lambda f: save_confusion_png(metrics["confusion_matrix"],
                                                                  ckpt["class_names"], title, f)})
    print(f"{result['source']} -> {args.target_dataset} ({metrics['n']} windows): accuracy {metrics['accuracy']:.4f}, "
          f"macro-P {metrics['macro_precision']:.4f}, macro-R {metrics['macro_recall']:.4f}, "
          f"macro-F1 {metrics['macro_f1']:.4f}, micro-F1 {metrics['micro_f1']:.4f} "
          f"(majority rate {metrics['majority_rate']:.4f})")
    print("confusion matrix (rows true, columns predicted):", json.dumps(metrics["confusion_matrix"]))
    print(f"wrote {json_path} and {png_path}")


if __name__ == "__main__":
    run(main, interrupted="interrupted; no result was written")
