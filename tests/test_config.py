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
    y.write_text("n_epochs: 4\nlr: 1\n")
    cfg = load(PretrainConfig, y)
    assert cfg.n_epochs == 4 and cfg.lr == 1.0
    with pytest.raises(UserError, match="not found"):
        load(PretrainConfig, tmp_path / "missing.json")
