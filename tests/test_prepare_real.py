"""dataset.prepare on the real uci, usc_had and dsads zips in ../shared/data (read-only)."""
import hashlib
import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow     # the session fixture prepares all three (about 20 s)

# LIMU-BERT's published dataset/uci arrays (shared/data/README.md)
UCI_SHA256 = {
    "data_20_120.npy": "9a306aa99d30dde9c7281868671fa559fd1760b631093e4204fa6abfa57dcfaa",
    "label_20_120.npy": "e3264ce6709c80fa2e9bf6c0cee85531ab185fb186f149bf138a0ef11cf26d27"}


def prepared(out, name, version="20_120"):
    if not (out / name).exists():
        pytest.skip(f"{name}'s zip not found under ../shared/data (see tests/conftest.py)")
    data = np.load(out / name / f"data_{version}.npy")
    labels = np.load(out / name / f"label_{version}.npy")
    return data, labels[:, 0, :].astype(int)


def static_units(data, labels, static):
    """Mean |acc| (m/s^2) and |gyro| (rad/s) over the windows of static activities."""
    windows = data[np.isin(labels[:, 0], static)]
    return (np.linalg.norm(windows[:, :, :3], axis=-1).mean(),
            np.linalg.norm(windows[:, :, 3:], axis=-1).mean())


def test_uci_reproduces_limu_bert_bit_for_bit(prepared_real):
    prepared(prepared_real, "uci")
    for filename, sha in UCI_SHA256.items():
        assert hashlib.sha256((prepared_real / "uci" / filename).read_bytes()).hexdigest() == sha
    seconds = json.loads((prepared_real / "prepare_seconds.json").read_text())
    assert seconds["uci"] < 30


def test_uci_four_classes(prepared_real):
    data, labels = prepared(prepared_real, "uci", "20_120_4c")
    assert data.shape == (1687, 120, 6)
    assert np.bincount(labels[:, 0]).tolist() == [355, 318, 254, 760]
    config = json.loads((prepared_real / "data_config.json").read_text())
    assert config["uci_20_120_4c"]["size"] == 1687 and config["uci_20_120"]["size"] == 2088
    assert config["uci_20_120_4c"]["activity_label_size"] == 4
    assert config["uci_20_120"]["user_label_size"] == 30


@pytest.mark.parametrize("name, users, activities, static", [
    ("usc_had", 14, 12, [7, 8, 9, 10]),    # sitting, standing, sleeping, elevator up
    ("dsads", 8, 8, [0, 1]),               # a01 sitting, a02 standing
])
def test_usc_had_and_dsads(prepared_real, name, users, activities, static):
    data, labels = prepared(prepared_real, name)
    assert data.shape[1:] == (120, 6) and len(data) > 1000
    assert len(set(labels[:, 1])) == users
    assert len(set(labels[:, 0])) == activities
    acc, gyro = static_units(data, labels, static)
    assert acc == pytest.approx(9.81, rel=0.05)          # m/s^2, not g
    assert gyro < 0.5                                    # rad/s, not deg/s
    data4, labels4 = prepared(prepared_real, name, "20_120_4c")
    assert set(labels4[:, 0]) == {0, 1, 2, 3}
    assert len(set(labels4[:, 1])) == users
    config = json.loads((prepared_real / "data_config.json").read_text())
    assert config[f"{name}_20_120"]["size"] == len(data)
    assert config[f"{name}_20_120_4c"]["size"] == len(data4)
    assert config[f"{name}_20_120"]["activity_label_size"] == (19 if name == "dsads" else 12)


def test_dsads_window_counts(prepared_real):
    # 60 x 5 s at 25 Hz joined = 6000 samples at 20 Hz = 50 windows per person and activity
    _, labels = prepared(prepared_real, "dsads")
    assert len(labels) == 8 * 8 * 50
    _, labels4 = prepared(prepared_real, "dsads", "20_120_4c")
    assert np.bincount(labels4[:, 0]).tolist() == [800, 400, 400, 800]
