import json

import pytest

from config import CONFIG_DIR, ClassifierTrainConfig, MaskConfig, PretrainConfig, load
from common.errors import UserError


def test_reference_configs_load():
    p = load(PretrainConfig, CONFIG_DIR / "pretrain.json")
    assert (p.batch_size, p.n_epochs, p.n_epochs_cl) == (512, 1600, 800)
    assert load(MaskConfig, CONFIG_DIR / "mask.json").max_gram == 10
    assert load(ClassifierTrainConfig, CONFIG_DIR / "classifier_train.json").n_epochs == 100


def test_unknown_key_wrong_type_and_yaml(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"n_epoch": 3}))
    with pytest.raises(UserError, match="unknown key"):
        load(PretrainConfig, bad)
    bad.write_text(json.dumps({"n_epochs": "3"}))
    with pytest.raises(UserError, match="must be int"):
        load(PretrainConfig, bad)
    y = tmp_path / "p.yaml"
    y.write_text("n_epochs: 4\nn_epochs_cl: 2\nlr: 1\n")
    cfg = load(PretrainConfig, y)
    assert cfg.n_epochs == 4 and cfg.lr == 1.0
    with pytest.raises(UserError, match="not found"):
        load(PretrainConfig, tmp_path / "missing.json")


@pytest.mark.parametrize("cls, values, says", [
    (PretrainConfig, {"n_epochs": 0, "n_epochs_cl": 0}, "n_epochs must be >= 1, got 0"),
    (PretrainConfig, {"n_epochs": -3, "n_epochs_cl": 0}, "n_epochs must be >= 1"),
    (PretrainConfig, {"batch_size": -8}, "batch_size must be >= 1, got -8"),
    (PretrainConfig, {"batch_size": 0}, "batch_size must be >= 1"),
    (PretrainConfig, {"lr": -0.001}, "lr must be a finite number > 0"),
    (PretrainConfig, {"lr": float("nan")}, "lr must be a finite number > 0, got nan"),
    (PretrainConfig, {"lr": float("inf")}, "lr must be a finite number > 0"),
    (PretrainConfig, {"seed": -1}, "seed must be >= 0"),
    (PretrainConfig, {"train_rate": 1.5}, "train_rate must be in (0, 1), got 1.5"),
    (PretrainConfig, {"val_rate": 0.0}, "val_rate must be in (0, 1)"),
    (PretrainConfig, {"train_rate": 0.8, "val_rate": 0.2}, "train_rate + val_rate must be < 1"),
    (PretrainConfig, {"n_epochs": 4, "n_epochs_cl": 5}, "n_epochs_cl must be in 0..n_epochs (4), got 5"),
    (PretrainConfig, {"lambda_cl": -1.0}, "lambda_cl must be a finite number >= 0"),
    (ClassifierTrainConfig, {"n_epochs": -1}, "n_epochs must be >= 1, got -1"),
    (ClassifierTrainConfig, {"batch_size": 0}, "batch_size must be >= 1"),
    (MaskConfig, {"mask_ratio": 1.5}, "mask_ratio must be in (0, 1), got 1.5"),
    (MaskConfig, {"mask_ratio": 0.0}, "mask_ratio must be in (0, 1)"),
    (MaskConfig, {"max_gram": 0}, "max_gram must be >= 1, got 0"),
    (MaskConfig, {"mask_prob": 1.2}, "mask_prob must be in [0, 1]"),
])
def test_values_that_cannot_train_are_refused_on_load(tmp_path, cls, values, says):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(values))      # json writes nan/inf as NaN/Infinity, which it reads back
    with pytest.raises(UserError) as err:
        load(cls, path)
    assert str(err.value) == f"{path}: {says}" or str(err.value).startswith(f"{path}: {says}")


def test_mask_config_has_no_unused_keys(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"mask_ratio": 0.15, "mask_alpha": 6}))
    with pytest.raises(UserError, match=r"unknown key\(s\) \['mask_alpha'\]"):
        load(MaskConfig, path)
