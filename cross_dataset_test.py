"""Stage 4: evaluate a source-trained encoder + classifier on an unseen target dataset.

    python cross_dataset_test.py -d uci -td usc_had -lr 0.1 [--backbone limu|mamba] [--supervised]
Embeds the whole target with the source encoder, classifies it with the source classifier, and
writes results/<run>_lr<rate>_to_<target>.json (accuracy, macro precision/recall/F1, micro-F1,
confusion matrix) and a confusion-matrix .png beside it.
"""
import json
import time
from pathlib import Path

from config import ClassifierTrainConfig, load
from dataset.load import load_windows
from training.checkpoint import atomic_write, load_checkpoint, save_json
from training.cli import build_parser, classifier_dir, result_paths, run
from training.finetune import build_classifier, evaluate, make_label_tensor, model_inputs
from training.loop import resolve_device, resolve_precision
from training.metrics import save_confusion_png


def main():
    p = build_parser("cross_dataset_test", __doc__.splitlines()[0])
    p.add_argument("--method", default=None,
                   help="label recorded in the result (default: crosshar, or supervised)")
    p.add_argument("--results-dir", default="results", help="where the result .json and .png go")
    args = p.parse_args()
    t0 = time.perf_counter()
    seed = args.seed if args.seed is not None else load(ClassifierTrainConfig, args.train_cfg).seed
    device = resolve_device(args.gpu)
    precision = resolve_precision(args.precision, device)
    path = Path(args.model_file) if args.model_file else classifier_dir(args, seed) / "model.pt"
    ckpt = load_checkpoint(path, "classifier", map_location=device)
    target = load_windows(args.target_dataset, args.dataset_version, args.data_dir, args.label_index)
    y = make_label_tensor(target, ckpt["class_names"], device)
    x = model_inputs(ckpt, target, device, precision)
    model = build_classifier(ckpt["model_args"], device)
    model.load_state_dict(ckpt["state"])
    metrics = evaluate(model, x, y.cpu().numpy(), len(ckpt["class_names"]), device, precision)
    source_test = json.loads((path.parent / "source_test.json").read_text()) if (path.parent / "source_test.json").exists() else None
    json_path, png_path = result_paths(args, seed)
    result = {"source": args.dataset, "target": args.target_dataset, "dataset_version": args.dataset_version,
              "backbone": args.backbone, "model_version": args.model_version,
              "method": args.method or (f"supervised-{args.head}" if args.supervised else "crosshar"), "seed": seed,
              "label_rate": args.label_rate, "classifier": str(path), "encoder": ckpt.get("encoder_path"),
              "class_names": ckpt["class_names"], "target_metrics": metrics,
              "source_test_metrics": source_test["test"] if source_test else None,
              "config": ckpt["config"], "wall_seconds": round(time.perf_counter() - t0, 3)}
    save_json(result, json_path)
    title = f"{args.dataset} -> {args.target_dataset} ({result['method']}, {result['backbone']}): acc {metrics['accuracy']:.3f}"
    atomic_write(png_path,
                 lambda f: save_confusion_png(metrics["confusion_matrix"], ckpt["class_names"], title, f))
    print(f"{args.dataset} -> {args.target_dataset} ({metrics['n']} windows): accuracy {metrics['accuracy']:.4f}, "
          f"macro-P {metrics['macro_precision']:.4f}, macro-R {metrics['macro_recall']:.4f}, "
          f"macro-F1 {metrics['macro_f1']:.4f}, micro-F1 {metrics['micro_f1']:.4f} "
          f"(majority rate {metrics['majority_rate']:.4f})")
    print("confusion matrix (rows true, columns predicted):", json.dumps(metrics["confusion_matrix"]))
    print(f"wrote {json_path} and {png_path}")


if __name__ == "__main__":
    run(main)
