"""Per-stage command lines: each stage takes the flags it uses and refuses the others in one
line; backbone names come from the registry; the augmentation flag keeps CrossHAR's spelling;
a ^C at any moment, start-up included, is one line that says truthfully what was kept."""
import importlib.util
import signal
import subprocess
import sys
import time

import pytest

from models import list_backbones

from .stages import REPO, one_line_error, stage, tiny_workdir


def parser(script):
    spec = importlib.util.spec_from_file_location(script + "_cli", REPO / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parser()


def refused(capsys, script, *argv):
    with pytest.raises(SystemExit) as exit_:
        parser(script).parse_args(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("script, flags", [
    ("pretrain", [["-lr", "0.1"], ["-td", "uci"], ["-f", "x.pt"], ["-l", "0"], ["--supervised"]]),
    ("embedding", [["-t", "c.json"], ["-am", "none"], ["--norm", "limu"], ["-lr", "0.1"], ["--scan", "torch"]]),
    ("classifier", [["-a", "mask.json"], ["-td", "uci"], ["--fresh"], ["--compile"]]),
    ("cross_dataset_test", [["--norm", "limu"], ["--scan", "torch"], ["-am", "none"], ["-t", "c.json"]]),
])
def test_each_stage_refuses_flags_it_does_not_use(capsys, script, flags):
    for argv in flags:
        assert "unrecognized arguments" in refused(capsys, script, *argv)


def test_stage_flags_and_choices(capsys):
    pre = parser("pretrain")
    assert pre.parse_args(["-am", "jitter"]).augmentation == "jitter"
    assert pre.parse_args(["--augument_method", "scaling"]).augmentation == "scaling"   # CrossHAR's spelling
    backbone = next(a for a in pre._actions if "--backbone" in a.option_strings)
    assert list(backbone.choices) == list_backbones()
    assert "invalid choice" in refused(capsys, "pretrain", "--backbone", "resnet")
    from models.ops.selective_scan import SCAN_IMPLS          # --scan: the scan registry's, the C++ kernel's too
    for script in ("pretrain", "classifier"):
        scan = next(a for a in parser(script)._actions if "--scan" in a.option_strings)
        assert list(scan.choices) == list(SCAN_IMPLS) and "kernel" in scan.choices
    assert pre.parse_args(["--scan", "kernel"]).scan == "kernel"
    assert "seed must be an integer >= 0" in refused(capsys, "classifier", "--seed", "-1")
    for script in ("pretrain", "embedding", "classifier", "cross_dataset_test"):
        assert "no path separator" in refused(capsys, script, "-s", "../../../../elsewhere/evil")


@pytest.mark.slow
def test_refusals_as_a_user_sees_them(tmp_path):
    one_line_error(stage("pretrain.py", "-lr", "0.1", cwd=tmp_path, check=False),
                   "pretrain.py: error: unrecognized arguments: -lr 0.1", code=2)
    one_line_error(stage("pretrain.py", "--seed", "-1", cwd=tmp_path, check=False), "seed must be", code=2)
    bad = tmp_path / "b.json"
    bad.write_text('{"batch_size": 0}')
    one_line_error(stage("classifier.py", "-t", bad, cwd=tmp_path, check=False),
                   "b.json: batch_size must be >= 1, got 0", code=2)


INTERRUPTED = {"pretrain.py": "epochs completed so far are saved", "embedding.py": "no embedding file",
               "classifier.py": "nothing was saved", "cross_dataset_test.py": "no result was written"}


@pytest.mark.slow
@pytest.mark.parametrize("script", list(INTERRUPTED))
def test_interrupt_during_start_up_is_one_line(tmp_path, script):
    wd, data = tiny_workdir(tmp_path)
    proc = subprocess.Popen([sys.executable, str(REPO / script), "-d", "uci", *data], cwd=wd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.8)                          # torch is still being imported
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    one_line_error(subprocess.CompletedProcess(proc.args, proc.returncode, "", err), INTERRUPTED[script], code=130)
    assert "resume" not in err or script == "pretrain.py"


def test_one_set_of_extra_flags_split_by_stage():
    from training.cli import flags_for
    argv = ["--backbone", "mamba", "--seed=3", "--compile", "-am", "jitter", "--norm", "limu", "-g", "0"]
    assert flags_for(parser("pretrain"), argv) == argv
    assert flags_for(parser("embedding"), argv) == ["--backbone", "mamba", "--seed=3", "-g", "0"]
    assert flags_for(parser("classifier"), argv, skip=("--norm",)) == ["--backbone", "mamba", "--seed=3", "-am", "jitter", "-g", "0"]
