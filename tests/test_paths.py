"""Run names and artifact paths: plain names only, nothing resolving outside its root,
--fresh only on a run folder, the `python -m training.paths` entry the sweep asks, and what
the artifact loaders refuse."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from common.errors import UserError
from training import artifacts, paths

from .stages import REPO, tiny_prepared


@pytest.mark.parametrize("name", ["../x", "..", "a/b", "/abs", ".hidden", "x/../../y", "", "a\\b", "a b"])
def test_names_are_plain(name):
    with pytest.raises(UserError, match="expected a plain name"):
        paths.check_name(name, "run name")


def test_no_path_resolves_outside_its_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "saved").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "saved" / "pretrain_link")
    with pytest.raises(UserError, match="outside saved/"):
        paths.pretrain_dir("link")
    assert paths.pretrain_dir("fine") == paths.SAVED / "pretrain_fine"
    (tmp_path / "saved" / "pretrain_odd").mkdir()
    (tmp_path / "saved" / "pretrain_odd" / "mine.txt").write_text("not a run")
    with pytest.raises(UserError, match="not a run folder of this stage"):
        paths.remove_run(paths.pretrain_dir("odd"), paths.SAVED, "config.json")
    assert (tmp_path / "saved" / "pretrain_odd" / "mine.txt").exists()


def test_paths_entry_for_the_sweep(tmp_path):
    run = [sys.executable, "-m", "training.paths"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ask = lambda *a: subprocess.run([*run, *a], capture_output=True, text=True, env=env, cwd=tmp_path)  # noqa: E731
    name = ["-d", "uci,dsads", "--backbone", "mamba", "-mv", "cpu", "--seed", "2"]
    assert ask("pretrain", *name).stdout == "saved/pretrain_mamba_uci+dsads_20_120_4c_cpu_s2/best.pt\n"
    assert ask("embedding", "-s", "R", "-d", "uci").stdout == "embed/R__uci_20_120_4c.npz\n"
    assert ask("classifier", "-s", "R", "--supervised", "--head", "linear", "-lr", "0.2").stdout == \
        "saved/supervised-linear_R_lr0.2/model.pt\n"
    assert ask("result", "-s", "R", "-td", "usc_had", "--results-dir", "results/runs").stdout == \
        "results/runs/R_lr0.1_to_usc_had.json\n"
    bad = ask("result", "-s", "../R")
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1 and "plain name" in bad.stderr
    assert json.dumps(paths.RUN_DEFAULTS)        # the defaults are plain data (also for the stages)


def test_a_checkpoint_of_an_older_layout_is_refused(tmp_path):
    torch.save({"kind": "encoder", "state": {}}, tmp_path / "old.pt")
    with pytest.raises(UserError, match="old.pt lacks id, model_args, epoch, config; expected the encoder"):
        artifacts.load_checkpoint(tmp_path / "old.pt", "encoder")


def test_an_embedding_of_other_windows_is_refused(tmp_path):
    from dataset.load import load_windows
    windows = load_windows("uci", data_dir=tiny_prepared(tmp_path / "data", names=("uci",), n=8))
    encoder = {"id": "e1"}
    artifacts.save_embedding(tmp_path / "e.npz", np.zeros((5, 120, 4), np.float32), tmp_path / "best.pt",
                             encoder, windows)
    with pytest.raises(UserError, match=r"holds 5 windows of uci_20_120_4c; uci_20_120_4c has 8: re-run embed"):
        artifacts.load_embedding(tmp_path / "e.npz", windows, "embedding.py")
