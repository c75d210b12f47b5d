"""Collect sweep results into a table and a heatmap.

    python scripts/aggregate.py [--runs results/runs] [--out results] [--keep results/summary.csv]
Writes OUT/summary.csv (one row per run), OUT/summary.md (mean +- std over seeds per method,
backbone and pair, the average over the ordered pairs and, apart, over the leave-one-out unions,
and paired differences with their standard errors, pairs and unions apart) and OUT/heatmap.png
(source x target accuracy). --keep adds the rows of an earlier summary.csv
that no result file in --runs replaces, so a table can grow by new rows (say, a new backbone)
without re-running the old ones.
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
from training.metrics import percent_mean_sd, percent_mean_se  # noqa: E402

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


KEY = ("method", "backbone", "source", "target", "seed", "label_rate")


def read_summary_csv(path):
    """The rows of an earlier summary.csv, typed as read_runs types them."""
    import io
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise UserError(f"cannot read {path} ({e.strerror}); expected a summary.csv written by aggregate.py")
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames != FIELDS:
        raise UserError(f"{path} has columns {reader.fieldnames}; expected a summary.csv written by aggregate.py "
                        f"({', '.join(FIELDS)})")
    rows = []
    for line, r in enumerate(reader, 2):
        try:
            r["seed"] = int(r["seed"])
            for k in ("label_rate", "accuracy", "macro_f1", "majority_rate", "source_test_accuracy", "wall_seconds"):
                r[k] = float(r[k])
        except ValueError as e:
            raise UserError(f"{path}, line {line}: {e}; expected numbers in the seed, rate and metric columns")
        rows.append(r)
    return rows


def merge(kept, new):
    """kept rows, less those a new row replaces (same method, backbone, pair, seed, rate), then new."""
    replaced = {tuple(r[k] for k in KEY) for r in new}
    return [r for r in kept if tuple(r[k] for k in KEY) not in replaced] + new


def is_union(source):
    """A leave-one-out union (sources joined by '+'), as opposed to a single-source pair."""
    return "+" in source


# The two kinds of run, summarised apart: a union pretrains on about twice a pair's windows.
KINDS = (("pairs", "ordered (pair, seed) runs", False), ("unions", "leave-one-out (union, seed) runs", True))


def split_by_kind(rows):
    """[(name, what its runs are called, its rows)] for each kind present, pairs first."""
    split = [(name, runs, [r for r in rows if is_union(r["source"]) == union]) for name, runs, union in KINDS]
    return [kind for kind in split if kind[2]]


def paired_differences(rows, metric="accuracy", runs="(pair, seed) runs"):
    """Markdown: crosshar minus each other method (same backbone), and mamba minus limu (same
    method), matched by (label rate, pair, seed). The standard error treats the matches as
    independent; the two targets of one source share a pretraining, so it is a lower bound."""
    by_key = {}
    for r in rows:
        by_key[(r["method"], r["backbone"], r["label_rate"], r["source"], r["target"], r["seed"])] = r[metric]
    methods = sorted({r["method"] for r in rows})
    backbones = sorted({r["backbone"] for r in rows})
    comparisons = [((m_a, b), (m_b, b)) for b in backbones for m_a in ("crosshar",) for m_b in methods
                   if m_b != m_a]
    comparisons += [((m, b_a), (m, b_b)) for m in methods for b_a in backbones for b_b in backbones
                    if b_a.startswith("mamba") and b_b == "limu"]
    lines = []
    for (m_a, b_a), (m_b, b_b) in comparisons:
        diffs = [v - by_key[(m_b, b_b) + k[2:]] for k, v in by_key.items()
                 if k[:2] == (m_a, b_a) and (m_b, b_b) + k[2:] in by_key]
        if len(diffs) < 2:
            continue
        text, wins = percent_mean_se(diffs)
        lines.append(f"| {m_a} / {b_a} | {m_b} / {b_b} | {text} | {wins} of {len(diffs)} |")
    if not lines:
        return ""
    return ("\n".join([f"Paired differences in target {metric.replace('_', '-')} (percentage points, A minus B, "
                       f"mean ± standard error over the {runs} both have):", "",
                       "| A | B | A - B | A better in |", "|---|---|---|---|"] + lines) + "\n")


def table(rows):
    """Markdown: one line per (label rate, method, backbone); one column per ordered pair and
    their average, then one per leave-one-out union and theirs (KINDS)."""
    kinds = split_by_kind(rows)
    scopes = [(name, sorted({(r["source"], r["target"]) for r in kind_rows})) for name, _, kind_rows in kinds]
    groups = defaultdict(list)
    for r in rows:
        groups[(r["label_rate"], r["method"], r["backbone"], r["source"], r["target"])].append(r)
    keys = sorted({(r["label_rate"], r["method"], r["backbone"]) for r in rows})
    head = ["label rate", "method", "backbone"]
    for name, pairs in scopes:
        head += [f"{s} -> {t}" for s, t in pairs] + [f"mean over {name}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for metric in ("accuracy", "macro_f1"):
        lines.append(f"| **{metric}** |" + " |" * (len(head) - 1))
        for rate, method, backbone in keys:
            cells = []
            for _, pairs in scopes:
                means = []
                for s, t in pairs:
                    runs = groups.get((rate, method, backbone, s, t), [])
                    if not runs:
                        cells.append("-")
                        continue
                    values = [r[metric] for r in runs]
                    means.append(statistics.mean(values))
                    cells.append(f"{percent_mean_sd(values)} (n={len(runs)})")
                cells.append(f"{100 * sum(means) / len(means):.1f}" if means else "-")
            lines.append(f"| {rate:g} | {method} | {backbone} | " + " | ".join(cells) + " |")
    maj = defaultdict(list)
    for r in rows:
        maj[r["target"]].append(r["majority_rate"])
    lines.append("")
    lines.append("Majority-class rate of each target (the accuracy of always guessing its largest class): "
                 + ", ".join(f"{t} {100 * v[0]:.1f}" for t, v in sorted(maj.items())) + ".")
    text = "\n".join(lines) + "\n"
    for metric in ("accuracy", "macro_f1"):
        for _, runs, kind_rows in kinds:
            paired = paired_differences(kind_rows, metric, runs)
            if paired:
                text += "\n" + paired
    return text


def heatmap(rows, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    combos = sorted({(r["method"], r["backbone"]) for r in rows})
    sources = sorted({r["source"] for r in rows}, key=lambda s: (is_union(s), s))
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
    p.add_argument("--keep", help="an earlier summary.csv whose rows stay unless --runs replaces them")
    args = p.parse_args()
    rows = read_runs(args.runs)
    if args.keep:
        rows = merge(read_summary_csv(args.keep), rows)
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
