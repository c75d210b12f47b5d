"""Target accuracy and macro-F1 against the number of pretraining epochs: a table and a plot.

    python scripts/plot_schedule.py --runs results/schedule --out results/schedule
Reads RUNS/e<EPOCHS>/*.json, the result files of cross_dataset_test.py for one pretraining
length each (e.g. a sweep per schedule with RESULTS=results/schedule/e<EPOCHS>), and writes
OUT/schedule.md (mean ± sd over seeds per method, pair and epoch count; then crosshar minus
recon_only paired by seed, which shares the split) and OUT/schedule.png (one panel per pair and
metric, one line per method, bars = sd).
"""
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.cli import Parser, run  # noqa: E402
from common.errors import UserError  # noqa: E402
from common.io import atomic_write_many, read_json  # noqa: E402
from training.metrics import percent_mean_sd, percent_mean_se  # noqa: E402

METRICS = (("accuracy", "target accuracy"), ("macro_f1", "target macro-F1"))


def collect(runs):
    """{(method, pair): {epochs: {metric: {seed: value}}}} from RUNS/e<N>/*.json."""
    cells = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    for sub in sorted(runs.glob("e*")):
        m = re.fullmatch(r"e(\d+)", sub.name)
        if not m:
            continue
        for f in sorted(sub.glob("*.json")):
            r = read_json(f, "result file", "a result JSON of cross_dataset_test.py")
            if not {"method", "source", "target", "seed", "target_metrics"} <= r.keys():
                raise UserError(f"result file {f} lacks method, source, target, seed or target_metrics; "
                                "expected a result JSON of cross_dataset_test.py")
            pair = f"{r['source'].replace(',', '+')} -> {r['target']}"
            for key, _ in METRICS:
                cells[(r["method"], pair)][int(m.group(1))][key][r["seed"]] = r["target_metrics"][key]
    return cells


def table(cells):
    epochs = sorted({e for per in cells.values() for e in per})
    lines = []
    for key, title in METRICS:
        lines += [f"**{title} (%)**, mean ± sd over seeds (n)", "",
                  "| method | pair | " + " | ".join(f"{e} epochs" for e in epochs) + " |",
                  "|---|---|" + "---|" * len(epochs)]
        for (method, pair), per in sorted(cells.items()):
            row = [f"{percent_mean_sd(per[e][key].values())} (n={len(per[e][key])})" if e in per else "-"
                   for e in epochs]
            lines.append(f"| {method} | {pair} | " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines + contrastive_gain(cells, epochs))


def contrastive_gain(cells, epochs):
    """crosshar minus recon_only per length, paired by (pair, seed): what the contrastive half
    buys at each length, per pair and over all pairs."""
    pairs = sorted({pair for method, pair in cells if method == "crosshar" and ("recon_only", pair) in cells})
    if not pairs:
        return []
    lines = ["**crosshar minus recon_only** (percentage points, paired by seed: mean ± standard error, "
             "crosshar higher in k of n)", "",
             "| metric | pair | " + " | ".join(f"{e} epochs" for e in epochs) + " |", "|---|---|" + "---|" * len(epochs)]
    def differences(pair, e, key):   # over the seeds both methods have at this length
        ch, ro = cells[("crosshar", pair)].get(e, {}), cells[("recon_only", pair)].get(e, {})
        return [v - ro[key][seed] for seed, v in ch.get(key, {}).items() if seed in ro.get(key, {})]

    for key, title in METRICS:
        for label, chosen in [(p, [p]) for p in pairs] + ([("all pairs", pairs)] if len(pairs) > 1 else []):
            row = []
            for e in epochs:
                diffs = [d for p in chosen for d in differences(p, e, key)]
                if diffs:
                    text, wins = percent_mean_se(diffs)
                    row.append(f"{text} ({wins} of {len(diffs)})")
                else:
                    row.append("-")
            lines.append(f"| {title} | {label} | " + " | ".join(row) + " |")
    return lines + [""]


def figure(cells):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pairs = sorted({pair for _, pair in cells})
    fig, axes = plt.subplots(len(METRICS), len(pairs), figsize=(4.2 * len(pairs), 6.4), squeeze=False)
    for (method, pair), per in sorted(cells.items()):
        epochs = sorted(per)
        for row, (key, title) in enumerate(METRICS):
            ax = axes[row][pairs.index(pair)]
            values = [list(per[e][key].values()) for e in epochs]
            means = [100 * statistics.mean(v) for v in values]
            sds = [100 * statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
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
    return fig


def main(argv=None):
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=Path("results/schedule"))
    p.add_argument("--out", type=Path, default=None, help="default: --runs")
    a = p.parse_args(argv)
    out = a.out or a.runs
    cells = collect(a.runs)
    if not cells:
        raise UserError(f"no result files under {a.runs}/e<EPOCHS>/; expected the result JSONs of "
                        "cross_dataset_test.py, one folder per pretraining length")
    text, fig = table(cells), figure(cells)
    atomic_write_many({out / "schedule.md": lambda f: f.write(text.encode()),
                       out / "schedule.png": lambda f: fig.savefig(f, dpi=110, format="png")})
    print(text)
    print(f"wrote {out / 'schedule.md'} and {out / 'schedule.png'}")


if __name__ == "__main__":
    run(main)
