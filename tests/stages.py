"""Helpers for the tests that run the stage scripts: tiny prepared datasets, a stage run as a
user runs it (a subprocess) or in this process (fast set-up: no torch import per stage), and
the check that bad input ends in one line."""
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["walking", "upstairs", "downstairs", "sitting&standing"]
TINY_PRETRAIN = {"seed": 1, "batch_size": 64, "lr": 1e-3, "n_epochs": 2, "n_epochs_cl": 1, "lambda_recon": 6.0,
                 "lambda_cl": 1.0, "train_rate": 0.8, "val_rate": 0.1}
TINY_CLASSIFIER = {"seed": 1, "batch_size": 32, "lr": 1e-3, "n_epochs": 2, "train_rate": 0.8, "val_rate": 0.1}


def tiny_prepared(root, names=("uci", "usc_had"), n=160):
    """Small prepared datasets in the prepare command's layout (4 separable classes)."""
    rng = np.random.default_rng(0)
    config = {}
    t = np.arange(120) / 20.0
    for name in names:
        act = rng.integers(0, 4, n)
        data = np.stack([np.sin(2 * np.pi * (1 + a) * t)[:, None] * (1 + a) + rng.normal(0, 0.3, (120, 6))
                         for a in act]).astype(np.float64)
        labels = np.stack([np.stack([np.full(120, a), np.full(120, i % 4)], -1) for i, a in enumerate(act)])
        (root / name).mkdir(parents=True)
        np.save(root / name / "data_20_120_4c.npy", data)
        np.save(root / name / "label_20_120_4c.npy", labels.astype(np.float64))
        config[f"{name}_20_120_4c"] = {"sr": 20, "seq_len": 120, "dimension": 6, "size": n,
                                       "activity_label_index": 0, "activity_label_size": 4,
                                       "activity_label": CLASSES, "user_label_index": 1,
                                       "user_label_size": 4}
    (root / "data_config.json").write_text(json.dumps(config))
    return root


def tiny_workdir(tmp_path, **pretrain):
    """tmp_path with tiny uci + usc_had under data/ and the tiny configs pt.json, ct.json;
    -> (workdir, the flags that point a stage at the data)."""
    tiny_prepared(tmp_path / "data")
    (tmp_path / "pt.json").write_text(json.dumps({**TINY_PRETRAIN, **pretrain}))
    (tmp_path / "ct.json").write_text(json.dumps(TINY_CLASSIFIER))
    return tmp_path, ["--data-dir", str(tmp_path / "data")]


def repo_copy(dest):
    """The code of this repository copied to `dest` (no data, artifacts or environment)."""
    shutil.copytree(REPO, dest, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "venv", "saved", "embed", "results", "__pycache__", ".pytest_cache", "*.npy",
        "*.npz", "*.pt", ".sweep"))
    return dest


def stage(script, *args, cwd, check=True, env=None, timeout=600):
    """A stage script in its own process, as a user runs it."""
    proc = subprocess.run([sys.executable, str(REPO / script), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} {args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def in_process(script, *args, cwd, monkeypatch):
    """A stage script's main() in this process (for set-up steps; errors raise)."""
    spec = importlib.util.spec_from_file_location(Path(script).stem + "_stage", REPO / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with monkeypatch.context() as m:
        m.chdir(cwd)
        m.setattr(sys, "argv", [script, *map(str, args)])
        module.main()


def one_line_error(proc, *needles, code=None):
    """Refused: non-zero exit (or `code`), no traceback, one line on stderr holding every needle."""
    assert proc.returncode != 0 if code is None else proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]
