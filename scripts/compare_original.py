"""Run the published CrossHAR code and this toolkit side by side on the same prepared windows.

    python scripts/compare_original.py ORIGINAL_DIR [--pairs uci:usc_had,dsads usc_had:uci]
        [--seeds 1 2 3] [--pretrain-epochs 20] [--cl-epochs 10] [--classifier-epochs 100]
        [--label-rate 0.1] [--work DIR] [--ours-args "..."] [--only original|ours]

ORIGINAL_DIR is a clone of github.com/kingdomrush2/CrossHAR (tested at 77b63d3). Nothing of it
is copied into this project: this script makes four small edits in that clone so it runs on a
CPU with today's numpy, and nothing else:
  * models.py PositionalEncoding.forward: the table follows the input's device (was `.cuda()`);
  * config.py ClassifierModelConfig: `seq_len: int = 0` restored (classifier.py reads it);
  * augmentations.py permutation(): permute segment indices, not a ragged list of arrays
    (numpy >= 1.24 refuses the latter; the same draw otherwise);
  * nothing in the training code; the schedule goes into per-run config files.
Each (source, seed) runs in its own folder under --work, with the original's code linked in,
its configs written there (seed, epochs) and our prepared `*_20_120_4c.npy` linked in as its
`dataset/<name>/data_20_120.npy` (its argument parser knows only hhar/motion/uci/shoaib, so
other datasets go in under one of those names; the mapping is printed). Ours runs the four
stage scripts with the same windows, seed and schedule. Both write per-run JSON under --work;
the table (mean ± sd over seeds of target accuracy, macro-F1 and source test accuracy) goes
to --work/table.md and is printed. Reruns skip finished runs.
"""
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from common.cli import Parser, run  # noqa: E402
from common.io import atomic_write, save_json  # noqa: E402
from training.metrics import percent_mean_sd  # noqa: E402
ORIGINAL_NAMES = ("uci", "hhar", "motion", "shoaib")     # the original's -d/-td choices
CODE = ("pretrain.py", "embedding.py", "classifier.py", "cross_dataset_test.py", "train.py",
        "finetune_train.py", "models.py", "Contrastive.py", "loss.py", "utils.py", "augmentations.py",
        "config.py")

PATCHES = [  # (file, old, new): each must apply exactly once, or already be applied
    ("models.py", "x = x + self.pos_enc[:, :x.size(1)].cuda()",
     "x = x + self.pos_enc[:, :x.size(1)].to(x.device)"),
    ("config.py", "    dim_feedforward: int = 2048\n    @classmethod",
     "    dim_feedforward: int = 2048\n    seq_len: int = 0\n    @classmethod"),
    ("augmentations.py", "warp = np.concatenate(np.random.permutation(splits)).ravel()",
     "warp = np.concatenate([splits[j] for j in np.random.permutation(len(splits))]).ravel()"),
]


def fail(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def patch_original(orig):
    for name, old, new in PATCHES:
        path = orig / name
        if not path.is_file():
            fail(f"{path} not found: is {orig} a clone of kingdomrush2/CrossHAR?")
        text = path.read_text()
        if new in text:
            continue
        if text.count(old) != 1:
            fail(f"{path}: expected the line {old.splitlines()[0]!r} once; this script knows commit 77b63d3")
        # temp then rename: two harness runs started together must not read a half-written file
        atomic_write(path, lambda f, text=text.replace(old, new): f.write(text.encode()))


def run_logged(cmd, cwd, log, env=None):
    """Run cmd, appending its output to log; return the output (a failure ends the script)."""
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(map(str, cmd))}\n")
        f.flush()
        proc = subprocess.run(list(map(str, cmd)), cwd=cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        f.write(proc.stdout)
    if proc.returncode:
        fail(f"{' '.join(map(str, cmd[:3]))} ... exited {proc.returncode}; see {log}")
    return proc.stdout


def parse_acc_f1(text):
    """The original prints 'acc:0.6433,precision:...,f1_macor:0.4680,...' once per test."""
    m = re.findall(r"acc:([\d.]+),precision:[\d.]+,recall:[\d.]+,f1_macor:([\d.]+)", text)
    if not m:
        fail("no 'acc:...,f1_macor:...' line in the original's output")
    return float(m[-1][0]), float(m[-1][1])


def original_run(orig, work, data_dir, source, targets, seed, a, python):
    """One (source, seed) of the original: pretrain, embed, classify, test every target."""
    out = work / f"original_{source}_s{seed}.json"
    if out.exists():
        return json.loads(out.read_text())
    names = [source] + [t for t in targets if t != source]
    if len(names) > len(ORIGINAL_NAMES):
        fail("the original accepts 4 dataset names: at most 3 targets per source")
    free = iter([n for n in ORIGINAL_NAMES if n not in names])
    alias = {n: n if n in ORIGINAL_NAMES else next(free) for n in names}   # ours -> a name it accepts
    run = work / f"original_{source}_s{seed}"
    (run / "config").mkdir(parents=True, exist_ok=True)
    for f in CODE:
        link = run / f
        if not link.exists():
            link.symlink_to((orig / f).resolve())
    for f in ("pretrain_model.json", "classifier.json", "mask.json"):
        (run / "config" / f).write_text((orig / "config" / f).read_text())
    base = json.loads((orig / "config" / "pretrain.json").read_text())
    (run / "config" / "pretrain.json").write_text(json.dumps(
        {**base, "seed": seed, "n_epochs": a.pretrain_epochs, "n_epochs_cl": a.cl_epochs}))
    base = json.loads((orig / "config" / "train.json").read_text())
    (run / "config" / "train.json").write_text(json.dumps({**base, "seed": seed, "n_epochs": a.classifier_epochs}))
    ours_cfg = json.loads((data_dir / "data_config.json").read_text())
    cfg = {}
    keys = ("sr", "seq_len", "dimension", "activity_label_index", "activity_label_size",
            "activity_label", "user_label_index", "user_label_size", "size")
    for name in names:
        d = run / "dataset" / alias[name]
        d.mkdir(parents=True, exist_ok=True)
        for kind in ("data", "label"):
            link = d / f"{kind}_20_120.npy"
            if not link.exists():
                link.symlink_to((data_dir / name / f"{kind}_20_120_4c.npy").resolve())
        cfg[f"{alias[name]}_20_120"] = {k: ours_cfg[f"{name}_20_120_4c"][k] for k in keys
                                        if k in ours_cfg[f"{name}_20_120_4c"]}
    (run / "dataset" / "data_config.json").write_text(json.dumps(cfg, indent=1))
    for d in ("embed", "saved"):
        (run / d).mkdir(exist_ok=True)
    log = run / "log.txt"
    print(f"original {source} seed {seed} in {run} (datasets as {alias})", flush=True)
    t0 = time.time()
    src = ["-d", alias[source], "-am", a.augmentation]
    run_logged([python, "pretrain.py", *src], run, log)
    run_logged([python, "embedding.py", *src], run, log)
    text = run_logged([python, "classifier.py", *src, "-lr", a.label_rate], run, log)
    source_acc, source_f1 = parse_acc_f1(text)
    result = {"code": "original", "source": source, "seed": seed, "source_test_accuracy": source_acc,
              "source_test_macro_f1": source_f1, "targets": {}}
    for t in targets:
        text = run_logged([python, "cross_dataset_test.py", *src, "-td", alias[t], "-lr", a.label_rate], run, log)
        acc, f1 = parse_acc_f1(text)
        result["targets"][t] = {"accuracy": acc, "macro_f1": f1}
    result["wall_seconds"] = round(time.time() - t0, 1)
    save_json(result, out)
    return result


def ours_run(work, data_dir, source, targets, seed, a, python):
    """One (source, seed) of this toolkit with the same schedule, through the four scripts."""
    out = work / f"ours{a.tag}_{source}_s{seed}.json"
    if out.exists():
        return json.loads(out.read_text())
    run = work / f"ours{a.tag}_{source}_s{seed}"
    run.mkdir(parents=True, exist_ok=True)
    pre = {**json.loads((REPO / "config" / "pretrain.json").read_text()),
           "seed": seed, "n_epochs": a.pretrain_epochs, "n_epochs_cl": a.cl_epochs, **a.pretrain_set}
    clf = {**json.loads((REPO / "config" / "classifier_train.json").read_text()),
           "seed": seed, "n_epochs": a.classifier_epochs, **a.classifier_set}
    (run / "pretrain.json").write_text(json.dumps(pre))
    (run / "classifier.json").write_text(json.dumps(clf))
    names = ["-d", source, "-s", "cmp"]          # what names the artifacts (training/paths.py)
    common = [*names, "--data-dir", str(data_dir)]
    extra = stage_flags(a.ours_args.split())
    log = run / "log.txt"
    print(f"ours{a.tag} {source} seed {seed} in {run}", flush=True)
    t0 = time.time()
    if a.encoder_from is None:
        run_logged([python, REPO / "pretrain.py", *common, *extra["pretrain"], "-t", "pretrain.json",
                    "-am", a.augmentation], run, log)
        run_logged([python, REPO / "embedding.py", *common, *extra["embedding"]], run, log)
    else:   # a classifier-side variant: another variant's encoder and embeddings, copied
        other = work / f"ours{'-' + a.encoder_from if a.encoder_from else ''}_{source}_s{seed}"
        for d in ("saved", "embed"):
            if not (other / d).is_dir():
                fail(f"--encoder-from {a.encoder_from!r}: {other} has no finished pretraining run")
            shutil.copytree(other / d, run / d, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("classifier*", "supervised*", "last.pt", ".*lock"))
    run_logged([python, REPO / "classifier.py", *common, *extra["classifier"], "-t", "classifier.json",
                "-lr", a.label_rate, "-am", a.augmentation], run, log)
    clf = run / ask_path(run, "classifier", *names, "-lr", a.label_rate)
    src = json.loads((clf.parent / "source_test.json").read_text())["test"]
    result = {"code": "ours" + a.tag, "source": source, "seed": seed, "args": a.ours_args,
              "source_test_accuracy": src["accuracy"], "source_test_macro_f1": src["macro_f1"], "targets": {}}
    for t in targets:
        args = ["-td", t, "-lr", a.label_rate, "--results-dir", "results"]
        run_logged([python, REPO / "cross_dataset_test.py", *common, *extra["cross_dataset_test"], *args], run, log)
        m = json.loads((run / ask_path(run, "result", *names, *args)).read_text())["target_metrics"]
        result["targets"][t] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
    result["wall_seconds"] = round(time.time() - t0, 1)
    save_json(result, out)
    return result


def stage_flags(argv):
    """--ours-args split by stage: each stage gets the flags its parser takes (they refuse others)."""
    import importlib

    from training.cli import flags_for
    # the classifier here trains on embeddings: its encoder flags (--supervised only) stay out
    skip = {"classifier": ("--norm", "--scan")}
    return {stage: flags_for(importlib.import_module(stage).parser(), argv, skip.get(stage, ()))
            for stage in ("pretrain", "embedding", "classifier", "cross_dataset_test")}


def ask_path(cwd, stage, *args):
    """A stage's artifact path from the library (training/paths.py), relative to cwd."""
    out = subprocess.run([sys.executable, "-m", "training.paths", stage, *map(str, args)], cwd=cwd,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    if out.returncode:
        fail(out.stderr.strip())
    return out.stdout.strip()


def table(results, pairs):
    rows = ["| source -> target | code | n | target accuracy (%) | target macro-F1 (%) | source test accuracy (%) |",
            "|---|---|---|---|---|---|"]
    codes = sorted({r["code"] for r in results}, key=lambda c: (c != "original", c))
    for source, targets in pairs:
        for t in targets:
            for code in codes:
                rs = [r for r in results if r["code"] == code and r["source"] == source and t in r["targets"]]
                if rs:
                    rows.append(f"| {source} -> {t} | {code} | {len(rs)} | "
                                f"{percent_mean_sd([r['targets'][t]['accuracy'] for r in rs])} | "
                                f"{percent_mean_sd([r['targets'][t]['macro_f1'] for r in rs])} | "
                                f"{source_test(rs)} |")
    return "\n".join(rows) + "\n\n" + differences(results, pairs, codes)


def source_test(rs):
    """Over the runs that recorded it (a run kept from a log may not have)."""
    v = [r["source_test_accuracy"] for r in rs if r.get("source_test_accuracy") is not None]
    return f"{percent_mean_sd(v)}{f' (n={len(v)})' if len(v) < len(rs) else ''}" if v else "-"


def differences(results, pairs, codes):
    """Each of our codes minus the original, difference of means ± its standard error. Unpaired:
    the two codes draw different splits from the same seed."""
    rows = ["| source -> target | code - original | n | target accuracy (points) | target macro-F1 (points) |",
            "|---|---|---|---|---|"]
    for source, targets in pairs:
        for t in targets:
            def values(code):
                rs = [r["targets"][t] for r in results if r["code"] == code and r["source"] == source
                      and t in r["targets"]]
                return {key: [100 * m[key] for m in rs] for key in ("accuracy", "macro_f1")}, len(rs)
            (base, n_base) = values("original")
            for code in (c for c in codes if c != "original"):
                ours, n = values(code)
                if min(n, n_base) < 2:
                    continue
                cells = [f"{statistics.mean(ours[k]) - statistics.mean(base[k]):+.1f} ± "
                         f"{(statistics.variance(ours[k]) / n + statistics.variance(base[k]) / n_base) ** 0.5:.1f}"
                         for k in ("accuracy", "macro_f1")]
                rows.append(f"| {source} -> {t} | {code} | {n} vs {n_base} | {cells[0]} | {cells[1]} |")
    return "\n".join(rows) + "\n" if len(rows) > 2 else ""


def main():
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("original", type=Path, help="a clone of kingdomrush2/CrossHAR")
    p.add_argument("--pairs", nargs="+", default=["uci:usc_had,dsads", "usc_had:uci"],
                   help="SOURCE:TARGET[,TARGET...]")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--pretrain-epochs", type=int, default=20)
    p.add_argument("--cl-epochs", type=int, default=10)
    p.add_argument("--classifier-epochs", type=int, default=100)
    p.add_argument("--label-rate", default="0.1")
    p.add_argument("--augmentation", default="channel_aug")
    p.add_argument("--data-dir", type=Path, default=REPO / "dataset", help="our prepared datasets")
    p.add_argument("--work", type=Path, default=REPO / "results" / "compare_original")
    p.add_argument("--ours-args", default="", help="extra flags for our stages (each gets those it takes)")
    p.add_argument("--pretrain-set", nargs="*", default=[], metavar="KEY=JSON",
                   help="override keys of our pretraining config, e.g. views='\"once\"'")
    p.add_argument("--classifier-set", nargs="*", default=[], metavar="KEY=JSON",
                   help="override keys of our classifier training config, e.g. expand_labelled=true")
    p.add_argument("--encoder-from", default=None, metavar="TAG",
                   help="reuse the pretrained encoder of our variant TAG ('' = the plain run): only the "
                        "classifier and the tests run")
    p.add_argument("--tag", default="", help="suffix naming a variant of ours (e.g. an ablation)")
    p.add_argument("--only", choices=("original", "ours"), default=None)
    p.add_argument("--original-python", default=sys.executable,
                   help="python with the original's requirements (torchinfo, einops, transforms3d, pandas)")
    a = p.parse_args()
    a.tag = f"-{a.tag}" if a.tag else ""
    for name in ("pretrain_set", "classifier_set"):
        try:
            setattr(a, name, {k: json.loads(v) for k, _, v in (item.partition("=") for item in getattr(a, name))})
        except ValueError as e:
            fail(f"--{name.replace('_', '-')}: expected KEY=JSON ({e})")
    pairs = []
    for item in a.pairs:
        source, _, targets = item.partition(":")
        if not targets:
            fail(f"--pairs {item!r}: expected SOURCE:TARGET[,TARGET...]")
        pairs.append((source, targets.split(",")))
    for source, targets in pairs:
        for name in [source, *targets]:
            if not (a.data_dir / name / "data_20_120_4c.npy").is_file():
                fail(f"{a.data_dir / name}/data_20_120_4c.npy not found: python -m dataset.prepare {name} --raw PATH")
    a.work.mkdir(parents=True, exist_ok=True)
    results = []
    if a.only != "ours":
        orig = a.original.resolve()
        patch_original(orig)
    for seed in a.seeds:
        for source, targets in pairs:
            if a.only != "ours":
                results.append(original_run(orig, a.work, a.data_dir.resolve(), source, targets, seed, a,
                                            a.original_python))
            if a.only != "original":
                results.append(ours_run(a.work, a.data_dir.resolve(), source, targets, seed, a, sys.executable))
    every = [json.loads(f.read_text()) for f in sorted(a.work.glob("*_s*.json"))]
    text = table(every, pairs)
    (a.work / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    run(main)
