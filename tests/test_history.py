"""A run's history: the per-epoch CSV and the learning-curve PNG beside the checkpoint, appended
to on resume; TensorBoard when it is installed, one line when it is not."""
import csv
import sys
import types

import pytest

from common.errors import UserError
from training.history import History, summary_writer

from .stages import in_process, tiny_workdir


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_pretraining_leaves_history_and_curve_beside_its_checkpoint(tmp_path, monkeypatch):
    wd, data = tiny_workdir(tmp_path, n_epochs=2, n_epochs_cl=1)
    args = ["-d", "uci", *data, "-am", "none", "-s", "h"]
    in_process("pretrain.py", *args, "-t", "pt.json", cwd=wd, monkeypatch=monkeypatch)
    run = wd / "saved" / "pretrain_h"
    assert {"best.pt", "history.csv", "curve.png"} <= {p.name for p in run.iterdir()}
    first = rows(run / "history.csv")
    assert [r["epoch"] for r in first] == ["1", "2"]
    assert list(first[0]) == ["epoch", "train_recon", "train_cl", "val_loss", "val_recon", "val_cl",
                              "seconds", "windows_per_s"]
    assert first[0]["train_cl"] == "" and float(first[1]["train_cl"]) > 0     # phase 2 adds NT-Xent
    assert all(float(r["seconds"]) > 0 and float(r["windows_per_s"]) > 0 for r in first)
    assert (run / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # killed after the CSV row of epoch 3 but before last.pt: the resume drops that row, then appends
    with open(run / "history.csv", "a") as f:
        f.write("3,9,9,9,9,9,1,1\n")
    (wd / "pt3.json").write_text((wd / "pt.json").read_text().replace('"n_epochs": 2', '"n_epochs": 3'))
    in_process("pretrain.py", *args, "-t", "pt3.json", cwd=wd, monkeypatch=monkeypatch)
    resumed = rows(run / "history.csv")
    assert [r["epoch"] for r in resumed] == ["1", "2", "3"] and resumed[:2] == first
    assert resumed[2]["train_recon"] != "9"


class FakeWriter:
    made = []

    def __init__(self, log_dir, purge_step=None):
        self.log_dir, self.purge_step, self.scalars, self.closed = log_dir, purge_step, [], False
        FakeWriter.made.append(self)

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def flush(self):
        pass

    def close(self):
        self.closed = True


def test_tensorboard_gets_the_same_scalars_when_installed(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=FakeWriter))
    history = History(tmp_path, resume_epoch=4, tensorboard=True)
    history.log(5, {"recon": 1.5}, {"loss": 2.0}, seconds=3.0, train_seconds=2.0, windows=100)
    history.close()
    writer = FakeWriter.made[-1]
    assert writer.log_dir == str(tmp_path / "tensorboard") and writer.purge_step == 5 and writer.closed
    assert ("train_recon", 1.5, 5) in writer.scalars and ("val_loss", 2.0, 5) in writer.scalars
    assert ("windows_per_s", 50.0, 5) in writer.scalars
    assert [r["epoch"] for r in rows(tmp_path / "history.csv")] == ["5"]


def test_tensorboard_missing_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)     # import fails, as uninstalled
    with pytest.raises(UserError, match="--tensorboard: the tensorboard package is not installed"):
        summary_writer()
