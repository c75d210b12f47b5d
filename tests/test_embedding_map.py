"""scripts/embedding_map.py and training/embedding_map.py on tiny synthetic prepared datasets:
the files are written, obviously different datasets separate (~1.0), two draws of one
distribution do not (~chance), and "before pretraining" is the pretraining's initial encoder."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dataset.classes import FOUR_CLASSES
from training.embedding_map import embedding_map, load_encoder
from training.errors import UserError

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
                           backbone_args=limu_args(), data_dir=data_dir, per_dataset=100,
                           say=lambda *a: None)
    assert abs(result["domain"]["accuracy"] - 0.5) < 0.15
    # the classes are random here too: no better than the largest class
    assert result["class"]["accuracy"] < result["class"]["majority"] + 0.15
    assert (tmp_path / "same.png").stat().st_size > 10_000


def limu_args():
    from config import CONFIG_DIR, load_model_config
    return {"backbone": "limu", "cfg": load_model_config(CONFIG_DIR / "pretrain_model.json", "limu_v1"),
            "norm": "instance"}


def test_random_init_is_the_pretraining_start(tmp_path):
    from config import CONFIG_DIR, load_model_config
    from training.checkpoint import save_checkpoint
    from training.pretrain import PretrainModel
    args = {**limu_args(), "feature_num": 6, "seq_len": 120}
    torch.manual_seed(11)          # what run_pretraining does before building its model
    start = PretrainModel("limu", args["cfg"], load_model_config(CONFIG_DIR / "pretrain_model.json",
                                                                 "contrastive_head"), 6, 120).encoder
    trained = {k: v + 1 for k, v in start.state_dict().items()}
    save_checkpoint({"kind": "encoder", "backbone": "limu", "model_args": args, "state": trained,
                     "epoch": 3, "config": {"train": {"seed": 11}}}, tmp_path / "best.pt")
    before, _, what = load_encoder(tmp_path, random_init=True)
    after, _, _ = load_encoder(tmp_path)
    for k, v in start.state_dict().items():
        assert torch.equal(before.state_dict()[k], v) and torch.equal(after.state_dict()[k], trained[k])
    assert "seed 11" in what and "before pretraining" in what


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
            "backbone_args": limu_args(), "data_dir": data_dir, "say": lambda *a: None, **kwargs}
    with pytest.raises(UserError, match=named):
        embedding_map(call.pop("datasets"), call.pop("out"), **call)
    assert not list(tmp_path.iterdir())
