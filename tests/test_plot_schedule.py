"""scripts/plot_schedule.py: result files per pretraining length -> table and plot, or one line."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "plot_schedule.py"


def result(runs, epochs, seed, acc, f1, method="crosshar"):
    d = runs / f"e{epochs}"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{method}_uci_to_usc_had_s{seed}.json").write_text(json.dumps(
        {"method": method, "source": "uci", "target": "usc_had", "seed": seed,
         "target_metrics": {"accuracy": acc, "macro_f1": f1}}))


def test_table_and_plot_per_epoch_count(tmp_path):
    runs = tmp_path / "runs"
    result(runs, 4, 1, 0.50, 0.40)
    result(runs, 4, 2, 0.54, 0.44)
    result(runs, 20, 1, 0.60, 0.55)
    result(runs, 20, 1, 0.45, 0.30, method="recon_only")
    out = subprocess.run([sys.executable, SCRIPT, "--runs", runs, "--out", tmp_path / "out"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    md = (tmp_path / "out" / "schedule.md").read_text()
    assert "| crosshar | uci -> usc_had | 52.0 ± 2.8 (n=2) | 60.0 (n=1) |" in md    # accuracy
    assert "| crosshar | uci -> usc_had | 42.0 ± 2.8 (n=2) | 55.0 (n=1) |" in md    # macro-F1
    assert "| recon_only | uci -> usc_had | - | 45.0 (n=1) |" in md
    assert (tmp_path / "out" / "schedule.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_or_missing_results_are_one_line_and_write_nothing(tmp_path):
    runs = tmp_path / "runs"
    out = subprocess.run([sys.executable, SCRIPT, "--runs", runs], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "no result files" in out.stderr
    result(runs, 4, 1, 0.5, 0.4)
    (runs / "e4" / "broken.json").write_text("{not json")
    out = subprocess.run([sys.executable, SCRIPT, "--runs", runs], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "broken.json" in out.stderr and "Traceback" not in out.stderr
    assert not (runs / "schedule.md").exists() and not (runs / "schedule.png").exists()
