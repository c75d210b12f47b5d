"""Target accuracy and macro-F1 against the number of pretraining epochs: a table and a plot.

    python scripts/plot_schedule.py --runs results/schedule --out results/schedule
Reads RUNS/e<EPOCHS>/*.json (one cross-dataset result per file, as scripts/schedule.sh writes
them) and writes OUT/schedule.md (mean ± sd over seeds per method, pair and epoch count) and
OUT/schedule.png (one panel per pair and metric, one line per method, bars = sd).
"""
import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

METRICS = (("accuracy", "target accuracy"), ("macro_f1", "target macro-F1"))


def collect(runs):
    """{(method, pair): {epochs: {metric: [values over seeds]}}} from RUNS/e<N>/*.json."""
    cells = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for sub in sorted(runs.glob("e*")):
        m = re.fullmatch(r"e(\d+)", sub.name)
        if not m:
            continue
        for f in sorted(sub.glob("*.json")):
            r = json.loads(f.read_text())
            if "target_metrics" not in r:
                continue
            pair = f"{r['source'].replace(',', '+')} -> {r['target']}"
            for key, _ in METRICS:
                cells[(r["method"], pair)][int(m.group(1))][key].append(r["target_metrics"][key])
    return cells


def fmt(values):
    v = [100 * x for x in values]
    return f"{v[0]:.1f}" if len(v) == 1 else f"{statistics.mean(v):.1f} ± {statistics.stdev(v):.1f}"


def table(cells):
    epochs = sorted({e for per in cells.values() for e in per})
    lines = []
    for key, title in METRICS:
        lines += [f"**{title} (%)**, mean ± sd over seeds (n)", "",
                  "| method | pair | " + " | ".join(f"{e} epochs" for e in epochs) + " |",
                  "|---|---|" + "---|" * len(epochs)]
        for (method, pair), per in sorted(cells.items()):
            row = [f"{fmt(per[e][key])} (n={len(per[e][key])})" if e in per else "-" for e in epochs]
            lines.append(f"| {method} | {pair} | " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(cells, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pairs = sorted({pair for _, pair in cells})
    fig, axes = plt.subplots(len(METRICS), len(pairs), figsize=(4.2 * len(pairs), 6.4), squeeze=False)
    for (method, pair), per in sorted(cells.items()):
        epochs = sorted(per)
        for row, (key, title) in enumerate(METRICS):
            ax = axes[row][pairs.index(pair)]
            means = [100 * statistics.mean(per[e][key]) for e in epochs]
            sds = [100 * statistics.stdev(per[e][key]) if len(per[e][key]) > 1 else 0.0 for e in epochs]
            ax.errorbar(epochs, means, yerr=sds, marker="o", capsize=3, label=method)
            ax.set_xscale("log")
            ax.set_xticks(epochs)
            ax.set_xticklabels([str(e) for e in epochs])
            ax.minorticks_off()
            ax.set_title(pair, fontsize=10)
            ax.set_ylabel(f"{title} (%)")
            ax.set_xlabel("pretraining epochs")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=110, format="png")
    tmp.replace(path)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=Path("results/schedule"))
    p.add_argument("--out", type=Path, default=None, help="default: --runs")
    a = p.parse_args()
    out = a.out or a.runs
    cells = collect(a.runs)
    if not cells:
        raise SystemExit(f"error: no results under {a.runs}/e<EPOCHS>/")
    out.mkdir(parents=True, exist_ok=True)
    text = table(cells)
    (out / "schedule.md").write_text(text)
    plot(cells, out / "schedule.png")
    print(text)
    print(f"wrote {out / 'schedule.md'} and {out / 'schedule.png'}")


if __name__ == "__main__":
    main()
