"""scripts/plot_schedule.py: result files per pretraining length -> table and plot, or one line."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "plot_schedule.py"


def result(runs, epochs, seed, acc, f1, method="crosshar", target="usc_had"):
    d = runs / f"e{epochs}"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{method}_uci_to_{target}_s{seed}.json").write_text(json.dumps(
        {"method": method, "source": "uci", "target": target, "seed": seed,
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


def test_contrastive_gain_is_paired_by_seed_per_pair_and_over_pairs(tmp_path):
    runs = tmp_path / "runs"
    for seed, (ch, ro) in enumerate([(0.60, 0.50), (0.52, 0.48)], start=1):   # usc_had: +10, +4
        result(runs, 20, seed, ch, ch, method="crosshar")
        result(runs, 20, seed, ro, ro - 0.1, method="recon_only")
    result(runs, 20, 1, 0.40, 0.30, method="crosshar", target="dsads")        # dsads: -2
    result(runs, 20, 1, 0.42, 0.30, method="recon_only", target="dsads")
    result(runs, 20, 2, 0.40, 0.30, method="crosshar", target="dsads")        # no recon_only seed 2
    out = subprocess.run([sys.executable, SCRIPT, "--runs", runs, "--out", tmp_path / "out"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    md = (tmp_path / "out" / "schedule.md").read_text()
    assert "| target accuracy | uci -> usc_had | +7.0 ± 3.0 (2 of 2) |" in md
    assert "| target accuracy | uci -> dsads | -2.0 (0 of 1) |" in md         # one pair of runs: no spread
    assert "| target accuracy | all pairs | +4.0 ± 3.5 (2 of 3) |" in md      # +10, +4, -2
    assert "| target macro-F1 | uci -> usc_had | +17.0 ± 3.0 (2 of 2) |" in md


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
