"""Artifacts a researcher can trust, as a user meets them: run names that could reach outside
saved/, two writers on one run, lineage (stale or foreign embeddings, a changed encoder, stored
paths that depended on the working directory), result metadata from the checkpoints, and
outputs that cannot be written. Set-up runs in this process; what is checked runs as a user
runs it."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch

from .stages import REPO, in_process, one_line_error, stage, tiny_workdir

pytestmark = pytest.mark.slow      # each runs the stages on tiny data (10-60 s)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """(workdir, data flags, run(script, *args) in this process) on tiny uci + usc_had."""
    wd, data = tiny_workdir(tmp_path)
    return wd, data, lambda script, *args: in_process(script, *args, cwd=wd, monkeypatch=monkeypatch)


def trained(tiny, run="R", **kw):
    """Pretraining, embedding and classifier of `run` on tiny uci."""
    wd, data, call = tiny
    call("pretrain.py", "-d", "uci", *data, "-t", "pt.json", "-am", kw.get("am", "none"), "-s", run,
         *(["--fresh"] if kw.get("fresh") else []))
    call("embedding.py", "-d", "uci", *data, "-s", run)
    call("classifier.py", "-d", "uci", *data, "-t", "ct.json", "-s", run)


def test_a_run_name_cannot_reach_outside_saved(tiny):
    wd, data, call = tiny
    keep = wd / "saved" / "keep.txt"
    keep.parent.mkdir()
    keep.write_text("an earlier run")
    pretrain = ["pretrain.py", "-d", "uci", *data, "-t", "pt.json", "-am", "none"]
    # today's code: `-s ../x` makes saved/pretrain_.., then `-s ../.. --fresh` is saved/ itself
    one_line_error(stage(*pretrain, "-s", "../x", cwd=wd, check=False), "'../x'", "no path separator", code=2)
    one_line_error(stage(*pretrain, "-s", "../..", "--fresh", cwd=wd, check=False), "'../..'", code=2)
    for script in ("embedding.py", "classifier.py"):
        one_line_error(stage(script, "-d", "uci", *data, "-s", "../../../../elsewhere/evil", cwd=wd, check=False),
                       "no path separator", code=2)
    assert keep.read_text() == "an earlier run"
    assert sorted(p.name for p in wd.rglob("*") if "elsewhere" in str(p) or "evil" in p.name) == []


def test_one_writer_per_run(tiny):
    wd, data, _ = tiny
    (wd / "long.json").write_text(json.dumps({**json.loads((wd / "pt.json").read_text()),
                                              "n_epochs": 500, "n_epochs_cl": 0}))
    base = ["-d", "uci", *data, "-am", "none", "-s", "dup"]
    first = subprocess.Popen([sys.executable, str(REPO / "pretrain.py"), *base, "-t", "long.json"], cwd=wd,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while not (wd / "saved" / "pretrain_dup" / "best.pt").exists():
            assert first.poll() is None and time.time() < deadline, "the first run did not start training"
            time.sleep(0.2)
        # a second pretraining (another config) under the same name, and a reader of the run
        one_line_error(stage("pretrain.py", *base, "-t", "pt.json", cwd=wd, check=False),
                       "saved/pretrain_dup is being written by", f"pid {first.pid}", code=2)
        one_line_error(stage("embedding.py", "-d", "uci", *data, "-s", "dup", cwd=wd, check=False),
                       "saved/pretrain_dup is still being written", code=2)
    finally:
        first.kill()
        first.wait()
    # the lock died with its holder: the run can be taken over (it resumes or is complete)
    (wd / "one.json").write_text(json.dumps({**json.loads((wd / "long.json").read_text()), "n_epochs": 1}))
    assert stage("pretrain.py", *base, "-t", "one.json", cwd=wd, check=False).returncode == 0


def test_lineage_refuses_foreign_stale_and_changed_artifacts(tiny):
    wd, data, call = tiny
    trained(tiny, "R")
    call("pretrain.py", "-d", "uci", *data, "-t", "pt.json", "-am", "none", "-s", "R2")
    call("embedding.py", "-d", "uci", *data, "-s", "R2")
    classifier = ["classifier.py", "-d", "uci", *data, "-t", "ct.json", "-s", "R"]
    cross = ["cross_dataset_test.py", "-d", "uci", *data, "-s", "R", "-td", "usc_had"]

    # an embedding file copied from another encoder's run
    npz = wd / "embed" / "R__uci_20_120_4c.npz"
    own = npz.read_bytes()
    shutil.copy(wd / "embed" / "R2__uci_20_120_4c.npz", npz)
    one_line_error(stage(*classifier, cwd=wd, check=False), str(npz.relative_to(wd)),
                   "re-run python embedding.py -d uci", code=2)
    npz.write_bytes(own)

    # the run pretrained again (same epoch count): its old embedding and classifier are stale
    call("pretrain.py", "-d", "uci", *data, "-t", "pt.json", "-am", "jitter", "-s", "R", "--fresh")
    one_line_error(stage(*classifier, cwd=wd, check=False), "re-run python embedding.py", code=2)
    one_line_error(stage(*cross, cwd=wd, check=False), "saved/pretrain_R/best.pt", "re-run", code=2)

    # paths stored in artifacts do not depend on the working directory: from elsewhere, with a
    # different encoder at elsewhere/saved/pretrain_R, the classifier's own encoder is used
    call("embedding.py", "-d", "uci", *data, "-s", "R")
    call(*classifier)
    elsewhere = wd / "elsewhere"
    (elsewhere / "saved" / "pretrain_R").mkdir(parents=True)
    shutil.copy(wd / "saved" / "pretrain_R2" / "best.pt", elsewhere / "saved" / "pretrain_R" / "best.pt")
    stage("cross_dataset_test.py", "-f", wd / "saved" / "classifier_R_lr0.1" / "model.pt", "-td", "usc_had",
          *data, cwd=elsewhere)
    result = json.loads((elsewhere / "results" / "R_lr0.1_to_usc_had.json").read_text())
    encoder = torch.load(wd / "saved" / "pretrain_R" / "best.pt", weights_only=True)
    assert result["lineage"]["encoder"]["id"] == encoder["id"]
    assert (elsewhere / "results" / result["lineage"]["encoder"]["path"]).resolve() == \
        (wd / "saved" / "pretrain_R" / "best.pt").resolve()


def test_result_metadata_comes_from_the_checkpoints(tiny):
    wd, data, call = tiny
    trained(tiny, "base")
    cross = ["cross_dataset_test.py", *data, "-s", "base", "-td", "usc_had"]
    one_line_error(stage("cross_dataset_test.py", "-d", "usc_had", *data, "-s", "base", "-td", "uci",
                         cwd=wd, check=False), "was made with -d uci, not usc_had", code=2)
    one_line_error(stage(*cross, "--backbone", "mamba", cwd=wd, check=False),
                   "was made with --backbone limu, not mamba", code=2)
    stage(*cross, cwd=wd)
    path = wd / "results" / "base_lr0.1_to_usc_had.json"
    first = path.read_bytes()
    result = json.loads(first)
    assert (result["source"], result["target"], result["backbone"], result["model_version"]) == \
        ("uci", "usc_had", "limu", "v1")
    assert (result["seed"], result["label_rate"], result["dataset_version"]) == (1, 0.1, "20_120_4c")

    # a retrained classifier's result does not silently replace the earlier one
    call("classifier.py", "-d", "uci", *data, "-t", "ct.json", "-s", "base")
    one_line_error(stage(*cross, cwd=wd, check=False), "holds the result of another classifier", "--fresh", code=2)
    assert path.read_bytes() == first
    stage(*cross, "--fresh", cwd=wd)
    model = torch.load(wd / "saved" / "classifier_base_lr0.1" / "model.pt", weights_only=True)
    assert json.loads(path.read_text())["lineage"]["classifier"]["id"] == model["id"]


def test_outputs_that_cannot_be_written_are_one_line(tiny):
    wd, data, call = tiny
    base = ["-d", "uci", *data, "-s", "R"]

    def blocked(path, script, *args):
        """`path` made a file, so the stage's output would be under a file."""
        path.write_text("not a folder")
        try:
            one_line_error(stage(script, *base, *args, cwd=wd, check=False), "cannot write", code=2)
        finally:
            path.unlink()

    blocked(wd / "saved", "pretrain.py", "-t", "pt.json", "-am", "none")
    call("pretrain.py", *base, "-t", "pt.json", "-am", "none")
    blocked(wd / "embed", "embedding.py")
    call("embedding.py", *base)
    blocked(wd / "saved" / "classifier_R_lr0.1", "classifier.py", "-t", "ct.json")
    call("classifier.py", *base, "-t", "ct.json")
    blocked(wd / "results", "cross_dataset_test.py", "-td", "usc_had")
    assert not [p for p in wd.rglob("*.tmp")], "no temporary is left behind"
    assert sorted(os.listdir(wd / "saved")) == ["classifier_R_lr0.1", "pretrain_R"], "no lock file is left"
