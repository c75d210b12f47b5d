"""scripts/embedding_map.py and training/embedding_map.py on tiny synthetic prepared datasets:
the files are written, obviously different datasets separate (~1.0), two draws of one
distribution do not (~chance), "before pretraining" is the pretraining's initial encoder, the
map records its encoder, and the command refuses what does not apply in one line."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from common.errors import UserError
from dataset.classes import FOUR_CLASSES
from training.embedding_map import embedding_map, load_encoder

REPO = Path(__file__).resolve().parents[1]


def sines(n, seed):
    """Smooth windows: per channel a sine of 1-2 Hz, random phase and amplitude, a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(120) / 20
    f, phase, amp = rng.uniform(1, 2, (n, 1, 6)), rng.uniform(0, 6.3, (n, 1, 6)), rng.uniform(1, 3, (n, 1, 6))
    return amp * np.sin(2 * np.pi * f * t[None, :, None] + phase) + rng.normal(0, 0.1, (n, 120, 6))


def noise(n, seed):
    return np.random.default_rng(seed).normal(0, 1, (n, 120, 6))


def write_prepared(data_dir, name, data, seed):
    """A prepared 4-class version as dataset.prepare writes it (arrays + config entry)."""
    classes = np.random.default_rng(seed).integers(0, 4, len(data))
    (data_dir / name).mkdir(parents=True, exist_ok=True)
    np.save(data_dir / name / "data_20_120_4c.npy", data)
    labels = np.zeros((len(data), 120, 2))
    labels[:, :, 0] = classes[:, None]
    np.save(data_dir / name / "label_20_120_4c.npy", labels)
    config_path = data_dir / "data_config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    config[f"{name}_20_120_4c"] = {"activity_label_index": 0, "activity_label": FOUR_CLASSES,
                                   "size": len(data)}
    config_path.write_text(json.dumps(config))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("maps")
    write_prepared(d, "smooth", sines(100, 1), 1)
    write_prepared(d, "smooth_again", sines(100, 2), 2)   # the same distribution, another draw
    write_prepared(d, "noisy", noise(120, 3), 3)
    return d


@pytest.mark.slow
def test_command_writes_map_and_separates_different_datasets(data_dir, tmp_path):
    out = tmp_path / "m" / "map.png"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "embedding_map.py"), "-d", "smooth", "noisy",
                           "--random-init", "--per-dataset", "90", "--data-dir", str(data_dir), "-o", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and 10_000 < out.stat().st_size < 300_000
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["windows_per_dataset"] == 90 and result["datasets"] == ["smooth", "noisy"]
    assert result["domain"]["chance"] == 0.5 and len(result["domain"]["folds"]) == 5
    assert result["domain"]["accuracy"] >= 0.95
    assert f"accuracy {result['domain']['accuracy']:.3f}" in proc.stdout
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]   # no temp files left


def test_two_draws_of_one_distribution_are_not_separable(data_dir, tmp_path):
    result = embedding_map(["smooth", "smooth_again"], tmp_path / "same.png", random_init=True,
                           spec_for=limu_spec, data_dir=data_dir, per_dataset=100,
                           say=lambda *a: None)
    assert abs(result["domain"]["accuracy"] - 0.5) < 0.15
    # the classes are random here too: no better than the largest class
    assert result["class"]["accuracy"] < result["class"]["majority"] + 0.15
    assert (tmp_path / "same.png").stat().st_size > 10_000


def limu_spec(windows=None):
    from config import CONFIG_DIR, load_model_config
    from models.spec import encoder_spec
    return encoder_spec("limu", "v1", load_model_config(CONFIG_DIR / "pretrain_model.json", "limu_v1"), 6, 120)


def pretrained(folder, seed=11):
    """An encoder checkpoint as pretrain.py writes it, its weights moved off the start it was
    built with under `seed`; -> (the start's state, the checkpoint's state, its id)."""
    from common.io import save_torch
    from config import CONFIG_DIR, load_model_config
    from training.artifacts import new_id
    from training.pretrain import PretrainModel
    torch.manual_seed(seed)          # what run_pretraining does before building its model
    start = PretrainModel(limu_spec(), load_model_config(CONFIG_DIR / "pretrain_model.json",
                                                         "contrastive_head")).encoder.state_dict()
    trained = {k: v + 1 for k, v in start.items()}
    ckpt_id = new_id()
    save_torch({"kind": "encoder", "id": ckpt_id, "model_args": limu_spec(), "state": trained, "epoch": 3,
                "config": {"train": {"seed": seed}}}, folder / "best.pt")
    return start, trained, ckpt_id


def test_random_init_is_the_pretraining_start(tmp_path):
    start, trained, _ = pretrained(tmp_path)
    before, _, what, _ = load_encoder(tmp_path, random_init=True)
    after, _, _, _ = load_encoder(tmp_path)
    for k, v in start.items():
        assert torch.equal(before.state_dict()[k], v) and torch.equal(after.state_dict()[k], trained[k])
    assert "seed 11" in what and "before pretraining" in what


def test_map_records_its_encoder(data_dir, tmp_path, monkeypatch):
    """-s RUN finds saved/pretrain_RUN/best.pt (training/paths.py); the default output is named
    after the run; the JSON holds the encoder's id and its path relative to the JSON."""
    import importlib.util
    from training.embedding_map import pooled
    folder = tmp_path / "saved" / "pretrain_R"
    folder.mkdir(parents=True)
    _, _, ckpt_id = pretrained(folder)
    spec = importlib.util.spec_from_file_location("embedding_map_cli", REPO / "scripts" / "embedding_map.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.chdir(tmp_path)
    script.main(["-d", "smooth", "noisy", "-s", "R", "--per-dataset", "20", "--folds", "2",
                 "--data-dir", str(data_dir)])
    out = tmp_path / "results" / "maps" / "R__smooth+noisy_20_120_4c.png"
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["lineage"]["encoder"] == {"path": "../../saved/pretrain_R/best.pt", "id": ckpt_id}
    assert result["model_args"] == limu_spec() and "epoch 3" in result["encoder"]
    assert out.read_bytes()[:4] == b"\x89PNG"
    # the pooled vector is the encoder's own, of raw windows: it normalises them itself
    encoder, _, _, _ = load_encoder(folder)
    x = torch.randn(3, 120, 6, dtype=torch.float32) * 5 + 9
    assert torch.equal(torch.as_tensor(pooled(encoder, x, "cpu")), encoder(x)[1].double().detach())


@pytest.mark.parametrize("argv, named", [
    (["-f", "x.pt", "--backbone", "mamba"], "--backbone: only for --random-init without -f / -s"),
    (["-s", "R", "--random-init", "-mv", "v2"], "-mv: only for --random-init"),
    (["--norm", "limu"], "--norm: only for --random-init"),
    (["--random-init", "--init-seed", "-1"], "seed must be an integer >= 0"),
    (["-s", "R", "--init-seed", "3"], "--init-seed: only with --random-init"),
    (["-f", "x.pt", "-s", "R"], "-f and -s both"),
    ([], "no encoder"),
    (["-s", "../elsewhere"], "no path separator"),
    (["--random-init", "-d", "smooth", "nowhere"], "invalid choice: 'nowhere' (choose from uci"),
    (["--random-init", "-d", "smooth", "a,b"], "one dataset name here"),
])
def test_command_refuses_in_one_line(data_dir, capsys, argv, named):
    import importlib.util
    spec = importlib.util.spec_from_file_location("embedding_map_cli", REPO / "scripts" / "embedding_map.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    argv = (["-d", "smooth", "noisy"] if "-d" not in argv else []) + argv
    with pytest.raises(SystemExit) as exit_:
        script.main([*argv, "--data-dir", str(data_dir)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and named in err[0], err
    if "nowhere" in named:
        assert "prepared in" in err[0] and "noisy, smooth, smooth_again" in err[0]


@pytest.mark.parametrize("kwargs, named", [
    ({"datasets": ["smooth"]}, "two or more"),
    ({"datasets": ["smooth", "smooth"]}, "two or more"),
    ({"random_init": False}, "no encoder"),
    ({"out": "map.jpg"}, "expected a .png"),
    ({"per_dataset": 3}, "2 windows per fold"),
    ({"datasets": ["smooth", "nowhere"]}, "nowhere"),
])
def test_bad_arguments_are_one_line_errors(data_dir, tmp_path, kwargs, named):
    call = {"datasets": ["smooth", "noisy"], "out": tmp_path / "m.png", "random_init": True,
            "spec_for": limu_spec, "data_dir": data_dir, "say": lambda *a: None, **kwargs}
    with pytest.raises(UserError, match=named):
        embedding_map(call.pop("datasets"), call.pop("out"), **call)
    assert not list(tmp_path.iterdir())
