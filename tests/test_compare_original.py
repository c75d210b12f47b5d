"""The side-by-side harness's table: mean ± sd per code, and ours minus the original with the
standard error of an unpaired difference of means (the codes draw different splits)."""
import importlib.util

import pytest

from .stages import REPO


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("compare_original", REPO / "scripts" / "compare_original.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(code, acc, f1, source="uci", target="usc_had"):
    return {"code": code, "source": source, "source_test_accuracy": 0.8,
            "targets": {target: {"accuracy": acc, "macro_f1": f1}}}


def test_table_and_difference(harness):
    results = [run("original", 0.5, 0.4), run("original", 0.6, 0.5),
               run("ours", 0.55, 0.5), run("ours", 0.6, 0.55), run("ours", 0.65, 0.6)]
    text = harness.table(results, [("uci", ["usc_had"])])
    assert "| uci -> usc_had | original | 2 | 55.0 ± 7.1 | 45.0 ± 7.1 | 80.0 ± 0.0 |" in text
    assert "| uci -> usc_had | ours | 3 | 60.0 ± 5.0 | 55.0 ± 5.0 | 80.0 ± 0.0 |" in text
    # +5.0 points; se = sqrt(25/3 + 50/2) = 5.77
    assert "| uci -> usc_had | ours | 3 vs 2 | +5.0 ± 5.8 | +10.0 ± 5.8 |" in text


def test_no_difference_row_from_a_single_seed(harness):
    results = [run("original", 0.5, 0.4), run("ours", 0.55, 0.5), run("ours", 0.6, 0.55)]
    text = harness.table(results, [("uci", ["usc_had"])])
    assert "code - original" not in text


def test_source_test_over_the_runs_that_recorded_it(harness):
    kept = {**run("original", 0.5, 0.4), "source_test_accuracy": None}
    text = harness.table([kept, run("original", 0.6, 0.5)], [("uci", ["usc_had"])])
    assert "| uci -> usc_had | original | 2 | 55.0 ± 7.1 | 45.0 ± 7.1 | 80.0 (n=1) |" in text
