"""Collect sweep results into a table and a heatmap.

    python scripts/aggregate.py [--runs results/runs] [--out results]
Writes OUT/summary.csv (one row per run), OUT/summary.md (mean +- std over seeds per method,
backbone and pair, and the average over pairs) and OUT/heatmap.png (source x target accuracy).
"""
import csv
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.cli import Parser, run  # noqa: E402
from common.errors import UserError  # noqa: E402
from common.io import atomic_write, read_json  # noqa: E402
from training.metrics import percent_mean_sd  # noqa: E402

FIELDS = ["method", "backbone", "source", "target", "seed", "label_rate", "accuracy", "macro_f1",
          "majority_rate", "source_test_accuracy", "wall_seconds", "file"]


def read_runs(runs_dir):
    rows = []
    for path in sorted(Path(runs_dir).glob("*.json")):
        r = read_json(path, "result file", "a result JSON of cross_dataset_test.py")
        m, src = r["target_metrics"], r.get("source_test_metrics") or {}
        mv = r.get("model_version", "v1")
        backbone = r["backbone"] if mv == "v1" else f"{r['backbone']} -mv {mv}"
        rows.append({"method": r["method"], "backbone": backbone, "source": r["source"].replace(",", "+"),
                     "target": r["target"], "seed": r["seed"], "label_rate": r["label_rate"],
                     "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "majority_rate": m["majority_rate"],
                     "source_test_accuracy": src.get("accuracy", float("nan")),
                     "wall_seconds": r.get("wall_seconds", float("nan")), "file": path.name})
    return rows


def table(rows):
    """Markdown: one line per (label rate, method, backbone), one column per pair + average."""
    pairs = sorted({(r["source"], r["target"]) for r in rows}, key=lambda p: ("+" in p[0], p))
    groups = defaultdict(list)
    for r in rows:
        groups[(r["label_rate"], r["method"], r["backbone"], r["source"], r["target"])].append(r)
    keys = sorted({(r["label_rate"], r["method"], r["backbone"]) for r in rows})
    head = ["label rate", "method", "backbone"] + [f"{s} -> {t}" for s, t in pairs] + ["mean over pairs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for metric in ("accuracy", "macro_f1"):
        lines.append(f"| **{metric}** |" + " |" * (len(head) - 1))
        for rate, method, backbone in keys:
            cells, means = [], []
            for s, t in pairs:
                runs = groups.get((rate, method, backbone, s, t), [])
                if not runs:
                    cells.append("-")
                    continue
                values = [r[metric] for r in runs]
                means.append(statistics.mean(values))
                cells.append(f"{percent_mean_sd(values)} (n={len(runs)})")
            avg = f"{100 * sum(means) / len(means):.1f}" if means else "-"
            lines.append(f"| {rate:g} | {method} | {backbone} | " + " | ".join(cells) + f" | {avg} |")
    maj = defaultdict(list)
    for r in rows:
        maj[r["target"]].append(r["majority_rate"])
    lines.append("")
    lines.append("Majority-class rate of each target (the accuracy of always guessing its largest class): "
                 + ", ".join(f"{t} {100 * v[0]:.1f}" for t, v in sorted(maj.items())) + ".")
    return "\n".join(lines) + "\n"


def heatmap(rows, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    combos = sorted({(r["method"], r["backbone"]) for r in rows})
    sources = sorted({r["source"] for r in rows}, key=lambda s: ("+" in s, s))
    targets = sorted({r["target"] for r in rows})
    fig, axes = plt.subplots(1, len(combos), figsize=(3.2 * len(combos) + 1, 0.55 * len(sources) + 2.2),
                             squeeze=False)
    for ax, (method, backbone) in zip(axes[0], combos):
        grid = np.full((len(sources), len(targets)), np.nan)
        for i, s in enumerate(sources):
            for j, t in enumerate(targets):
                acc = [r["accuracy"] for r in rows if (r["method"], r["backbone"], r["source"], r["target"]) ==
                       (method, backbone, s, t)]
                if acc:
                    grid[i, j] = 100 * sum(acc) / len(acc)
        ax.imshow(grid, cmap="viridis", vmin=0, vmax=100)
        for i in range(len(sources)):
            for j in range(len(targets)):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=8,
                            color="white" if grid[i, j] < 60 else "black")
        ax.set_xticks(range(len(targets)), targets, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(sources)), sources, fontsize=8)
        ax.set_title(f"{method} / {backbone}", fontsize=9)
        ax.set_xlabel("target", fontsize=8)
    axes[0][0].set_ylabel("source", fontsize=8)
    fig.suptitle("cross-dataset accuracy (%), mean over seeds", fontsize=10)
    fig.tight_layout()
    atomic_write(out, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def main():
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default="results/runs")
    p.add_argument("--out", default="results")
    args = p.parse_args()
    rows = read_runs(args.runs)
    if not rows:
        raise UserError(f"no result files in {args.runs}")
    out = Path(args.out)

    def write_csv(f):
        import io
        text = io.StringIO()
        w = csv.DictWriter(text, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
        f.write(text.getvalue().encode())
    atomic_write(out / "summary.csv", write_csv)
    md = table(rows)
    atomic_write(out / "summary.md", lambda f: f.write(md.encode()))
    heatmap(rows, out / "heatmap.png")
    print(md)
    print(f"wrote {out / 'summary.csv'}, {out / 'summary.md'}, {out / 'heatmap.png'} from {len(rows)} runs")


if __name__ == "__main__":
    run(main)
