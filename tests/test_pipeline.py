"""End to end on real data: uci -> usc_had through the four scripts, with a tiny schedule;
resume; and the one-line errors of bad input."""
import json
from pathlib import Path

import pytest
import torch

from .stages import one_line_error, stage

PRETRAIN_TINY = {"seed": 7, "batch_size": 512, "lr": 1e-3, "n_epochs": 2, "n_epochs_cl": 1,
                 "lambda_recon": 6.0, "lambda_cl": 1.0, "train_rate": 0.8, "val_rate": 0.1}
CLASSIFIER_TINY = {"seed": 7, "batch_size": 128, "lr": 1e-3, "n_epochs": 2, "train_rate": 0.8, "val_rate": 0.1}


@pytest.fixture
def workdir(tmp_path, prepared_real):
    (tmp_path / "pt.json").write_text(json.dumps(PRETRAIN_TINY))
    (tmp_path / "ct.json").write_text(json.dumps(CLASSIFIER_TINY))
    return tmp_path, ["--data-dir", str(prepared_real)]


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["limu", "mamba"])
def test_four_stages_uci_to_usc_had(workdir, backbone):
    wd, data = workdir
    common = ["-d", "uci", "--backbone", backbone, *data]
    scan = []                     # pretraining builds the encoder; the later stages rebuild its spec
    if backbone == "mamba":       # on the C++ CPU kernels where they build (else the torch scan)
        from models.ops import mamba_cpu
        scan = ["--scan", "kernel" if mamba_cpu.load()[0] is not None else "torch"]
    stage("pretrain.py", *common, *scan, "-t", "pt.json", "-am", "none", cwd=wd)
    run = f"{backbone}_uci_20_120_4c_v1"        # the config's seed is not part of the name
    pre = wd / "saved" / f"pretrain_{run}"
    assert {p.name for p in pre.iterdir()} == {"best.pt", "last.pt", "config.json", "history.csv", "curve.png"}
    ckpt = torch.load(pre / "best.pt", weights_only=True)
    assert ckpt["kind"] == "encoder" and ckpt["model_args"]["backbone"] == backbone
    assert not scan or ckpt["model_args"]["cfg"]["scan"] == scan[1]
    assert json.loads((pre / "config.json").read_text())["model_args"]["backbone"] == backbone

    stage("embedding.py", *common, cwd=wd)
    emb = __import__("numpy").load(wd / "embed" / f"{run}__uci_20_120_4c.npz")
    assert emb["features"].shape[:2] == (1687, 120) and set(emb.files) == {"features", "meta"}
    assert json.loads(str(emb["meta"]))["encoder"]["id"] == ckpt["id"]
    hidden = emb["features"].shape[2]

    stage("classifier.py", *common, "-t", "ct.json", "-lr", "0.2", cwd=wd)
    clf = wd / "saved" / f"classifier_{run}_lr0.2"
    source = json.loads((clf / "source_test.json").read_text())["test"]
    assert source["n"] == 1687 - int(1687 * 0.8) - int(1687 * 0.1)

    out = stage("cross_dataset_test.py", *common, "-td", "usc_had", "-lr", "0.2", cwd=wd)
    res = json.loads((wd / "results" / f"{run}_lr0.2_to_usc_had.json").read_text())
    m = res["target_metrics"]
    assert (wd / "results" / f"{run}_lr0.2_to_usc_had.png").stat().st_size > 1000
    assert res["backbone"] == backbone and res["target"] == "usc_had" and res["source"] == "uci"
    assert res["lineage"]["encoder"]["id"] == ckpt["id"]
    cm = m["confusion_matrix"]
    assert len(cm) == 4 and sum(map(sum, cm)) == m["n"] > 1000
    assert 0 <= m["accuracy"] <= 1 and abs(m["accuracy"] - sum(cm[i][i] for i in range(4)) / m["n"]) < 1e-9
    assert abs(m["micro_f1"] - m["accuracy"]) < 1e-9
    assert f"accuracy {m['accuracy']:.4f}" in out.stdout
    assert hidden > 0


@pytest.mark.slow
def test_pretraining_resumes_from_saved_epoch(workdir):
    wd, data = workdir
    (wd / "pt1.json").write_text(json.dumps({**PRETRAIN_TINY, "n_epochs": 1, "n_epochs_cl": 0}))
    args = ["-d", "uci", *data, "-am", "none", "-s", "resume"]
    stage("pretrain.py", *args, "-t", "pt1.json", cwd=wd)
    last = wd / "saved" / "pretrain_resume" / "last.pt"
    assert torch.load(last, weights_only=True)["fit_state"]["epoch"] == 1
    # rerunning the completed command is a no-op
    assert "already complete" in stage("pretrain.py", *args, "-t", "pt1.json", cwd=wd).stdout
    # a longer schedule resumes after the saved epoch and continues the same checkpoint series
    (wd / "pt2.json").write_text(json.dumps({**PRETRAIN_TINY, "n_epochs": 2, "n_epochs_cl": 0}))
    resumed = stage("pretrain.py", *args, "-t", "pt2.json", cwd=wd)
    assert "resuming" in resumed.stdout and "after epoch 1/2" in resumed.stdout
    assert torch.load(last, weights_only=True)["fit_state"]["epoch"] == 2
    assert sorted(p.name for p in last.parent.iterdir()) == ["best.pt", "config.json", "curve.png",
                                                              "history.csv", "last.pt"]
    # the history of the resumed run continues the first one's
    assert [r.split(",")[0] for r in (last.parent / "history.csv").read_text().splitlines()] == ["epoch", "1", "2"]
    # any other change of configuration under the same run name is refused
    (wd / "pt_lr.json").write_text(json.dumps({**PRETRAIN_TINY, "n_epochs": 3, "n_epochs_cl": 0, "lr": 0.01}))
    one_line_error(stage("pretrain.py", *args, "-t", "pt_lr.json", cwd=wd, check=False), "another configuration")


@pytest.mark.slow
def test_bad_input_is_one_line(tmp_path):
    one_line_error(stage("pretrain.py", "-d", "uci", "--data-dir", str(tmp_path), cwd=tmp_path, check=False),
                   "data_20_120_4c.npy", "python -m dataset.prepare uci")
    one_line_error(stage("classifier.py", "-lr", "1.5", cwd=tmp_path, check=False), "label rate")
    one_line_error(stage("pretrain.py", "-d", "nope", cwd=tmp_path, check=False), "invalid choice")
    one_line_error(stage("pretrain.py", "--backbone", "resnet", cwd=tmp_path, check=False), "invalid choice")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    one_line_error(stage("embedding.py", "-f", str(bad), cwd=tmp_path, check=False), "bad.pt")
    torch.save({"kind": "classifier"}, tmp_path / "clf.pt")
    one_line_error(stage("embedding.py", "-f", str(tmp_path / "clf.pt"), cwd=tmp_path, check=False),
                   "'classifier'", "expected 'encoder'")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    one_line_error(stage("cross_dataset_test.py", "-f", str(tmp_path / "foreign.pt"), cwd=tmp_path, check=False),
                   "not a CrossHAR-Mamba checkpoint")


@pytest.mark.slow
def test_target_with_other_channel_count_is_refused(workdir):
    import numpy as np
    wd, data = workdir
    stage("pretrain.py", "-d", "uci", *data, "-t", "pt.json", "-am", "none", "-s", "ch", cwd=wd)
    d = Path(data[1])
    nine = wd / "nine"
    (nine / "dsads").mkdir(parents=True)
    x = np.zeros((3, 120, 9), np.float32) + np.arange(120, dtype=np.float32)[None, :, None]
    np.save(nine / "dsads" / "data_20_120_4c.npy", x)
    np.save(nine / "dsads" / "label_20_120_4c.npy", np.zeros((3, 120, 2), np.int64))
    cfg = json.loads((d / "data_config.json").read_text())
    (nine / "data_config.json").write_text(json.dumps({"dsads_20_120_4c": cfg["dsads_20_120_4c"]}))
    proc = stage("embedding.py", "-d", "dsads", "-f", "saved/pretrain_ch", "--data-dir", str(nine),
                 cwd=wd, check=False)
    one_line_error(proc, "9 channels", "expects 120 x 6")
