"""dataset.prepare on tiny files written in each dataset's published format, and its shared
pieces (block averaging, resampling, runs, the 4-class table).

The writers here are reused by test_prepare_cli.py.
"""
import json
import math

import numpy as np
import pytest

from dataset import classes, windows
from dataset.prepare import prepare

G = 9.80665


def _noise(rng, n, scale=0.01):
    return rng.normal(0.0, scale, size=(n, 3))


# --- writers: the published layouts -------------------------------------------------------

MOTION_HEADER = (",attitude.roll,attitude.pitch,attitude.yaw,gravity.x,gravity.y,gravity.z,"
                 "rotationRate.x,rotationRate.y,rotationRate.z,"
                 "userAcceleration.x,userAcceleration.y,userAcceleration.z")
MOTION_TRIALS = {"dws": 1, "ups": 3, "sit": 5, "std": 6, "wlk": 7, "jog": 9}


def write_motion(root, n=700, subjects=(1, 2), nan_rows=()):
    """A_DeviceMotion_data/<act>_<trial>/sub_<k>.csv, 50 Hz, gravity/userAcceleration in g."""
    rng = np.random.default_rng(0)
    base = root / "A_DeviceMotion_data"
    for act, trial in MOTION_TRIALS.items():
        moving = act not in ("sit", "std")
        for k in subjects:
            attitude = _noise(rng, n, 0.5)
            gravity = np.tile([0.0, -0.8, -0.6], (n, 1))            # unit vector, in g
            rotation = _noise(rng, n, 1.0 if moving else 0.02)        # rad/s
            user = _noise(rng, n, 0.3 if moving else 0.005)           # g
            rows = np.concatenate([attitude, gravity, rotation, user], axis=1)
            rows[list(nan_rows), 5] = np.nan                           # gravity.z
            folder = base / f"{act}_{trial}"
            folder.mkdir(parents=True, exist_ok=True)
            lines = [MOTION_HEADER] + [f"{i}," + ",".join(f"{v:.6f}" for v in row)
                                       for i, row in enumerate(rows)]
            (folder / f"sub_{k}.csv").write_text("\n".join(lines) + "\n")
    return base


HHAR_HEADER = "Index,Arrival_Time,Creation_Time,x,y,z,User,Model,Device,gt"
T0 = 1424696631900000000                 # ns, on a 50 ms boundary
# (user, model, device, gt, seconds); the 1 s 'gap' has no samples at all
HHAR_SEGMENTS = [("a", "nexus4", "nexus4_1", "walk", 13.0),     # 260 bins -> 2 windows
                 ("a", "nexus4", "nexus4_1", "sit", 7.0),       # 140 -> 1
                 ("a", "nexus4", "nexus4_1", "null", 2.0),      # unlabelled: dropped
                 ("b", "s3", "s3_1", "stairsup", 6.5),          # 130 -> 1
                 ("b", "s3", "s3_1", "stand", 5.0),             # 100 + gap + 100 -> 0
                 ("b", "s3", "s3_1", "gap", 1.0),
                 ("b", "s3", "s3_1", "stand", 5.0)]
ACC_VALUE, GYRO_VALUE = (0.5, -0.25, 9.75), (0.1, -0.2, 0.05)


def write_hhar(root):
    """Phones_accelerometer.csv (about 200 Hz) and Phones_gyroscope.csv (100 Hz), jittered."""
    rng = np.random.default_rng(1)
    root.mkdir(parents=True, exist_ok=True)
    for sensor, period_ms, value in (("accelerometer", 5, ACC_VALUE),
                                     ("gyroscope", 10, GYRO_VALUE)):
        lines, index, start = [HHAR_HEADER], 0, {}
        for user, model, device, gt, seconds in HHAR_SEGMENTS:
            t = start.get(device, T0)
            steps = int(round(seconds * 1000 / period_ms))
            if gt != "gap":
                for s in range(steps):
                    ns = t + s * period_ms * 1_000_000 + int(rng.integers(0, 1_000_000))
                    lines.append(f"{index},{ns // 1_000_000 + 2000},{ns},"
                                 f"{value[0]},{value[1]},{value[2]},{user},{model},{device},{gt}")
                    index += 1
            start[device] = t + steps * period_ms * 1_000_000
        if sensor == "accelerometer":    # samsungold phones have no gyroscope: never windowed
            lines.append(f"{index},1,{T0},0.1,0.2,9.8,c,samsungold,samsungold_1,walk")
        (root / f"Phones_{sensor}.csv").write_text("\n".join(lines) + "\n")
    return root


SHOAIB_POSITIONS = ["Left_pocket", "Right_pocket", "Wrist", "Upper_arm", "Belt"]
SHOAIB_FIELDS = ["time_stamp", "Ax", "Ay", "Az", "Lx", "Ly", "Lz", "Gx", "Gy", "Gz",
                 "Mx", "My", "Mz"]
# participant -> [(activity as written in the file, 50 Hz samples)]
SHOAIB_ACTIVITIES = {1: [("walking", 700), ("sitting", 400), ("upsatirs", 400), ("jogging", 400)],
                     2: [("standing", 400), ("downstairs", 400), ("biking", 400)]}


def write_shoaib(root, blank_cell=None):
    """Participant_N.csv: 2 header rows, 5 positions x 14 columns, activity last (70 columns)."""
    rng = np.random.default_rng(2)
    root.mkdir(parents=True, exist_ok=True)
    head1 = ",".join(",".join([p] + [""] * 13) for p in SHOAIB_POSITIONS)
    head2 = ",".join(",".join(SHOAIB_FIELDS + [""]) for _ in SHOAIB_POSITIONS)
    for participant, activities in SHOAIB_ACTIVITIES.items():
        lines, t = [head1, head2], 1337000000000
        for activity, n in activities:
            moving = activity not in ("sitting", "standing")
            for _ in range(n):
                t += 20
                row = []
                for _ in SHOAIB_POSITIONS:
                    acc = np.array([0.3, 9.7, 1.2]) + _noise(rng, 1, 1.0 if moving else 0.01)[0]
                    gyro = _noise(rng, 1, 1.0 if moving else 0.01)[0]
                    values = [*acc, *(acc - [0.3, 9.7, 1.2]), *gyro, 20.0, -5.0, 40.0]
                    row += [str(t)] + [f"{v:.4f}" for v in values] + [""]
                row[-1] = activity
                lines.append(",".join(row))
        if blank_cell and participant == blank_cell[0]:
            cells = lines[blank_cell[1]].split(",")
            cells[blank_cell[2]] = ""
            lines[blank_cell[1]] = ",".join(cells)
        (root / f"Participant_{participant}.csv").write_text("\n".join(lines) + "\n")
    return root


def load(out, name, version="20_120"):
    data = np.load(out / name / f"data_{version}.npy")
    labels = np.load(out / name / f"label_{version}.npy")
    assert data.dtype == labels.dtype == np.float64
    assert data.shape[1:] == (120, 6) and labels.shape[:2] == data.shape[:2]
    # per-step labels are constant within a window
    assert (labels == labels[:, :1, :]).all()
    return data, labels[:, 0, :].astype(int)


def magnitude(x):
    return np.linalg.norm(x, axis=-1).mean()


# --- end to end ---------------------------------------------------------------------------

def test_motion(tmp_path):
    raw = write_motion(tmp_path / "raw")
    written = prepare("motion", raw, tmp_path / "out", verbose=False)
    data, labels = load(tmp_path / "out", "motion")
    assert data.shape == (24, 120, 6)                      # 6 activities x 2 subjects x 2
    assert sorted(set(labels[:, 1])) == [0, 1]
    assert np.bincount(labels[:, 0]).tolist() == [4] * 6
    static = np.isin(labels[:, 0], [2, 3])                  # sit, std
    assert magnitude(data[static, :, :3]) == pytest.approx(G, rel=0.01)
    assert magnitude(data[static, :, 3:]) < 0.1
    data4, labels4 = load(tmp_path / "out", "motion", "20_120_4c")
    # dws -> 2, ups -> 1, sit/std -> 3, wlk -> 0, jog dropped
    assert np.bincount(labels4[:, 0]).tolist() == [4, 4, 4, 8]
    config = json.loads((tmp_path / "out" / "data_config.json").read_text())
    assert config["motion_20_120"]["activity_label"][:2] == ["downstairs", "upstairs"]
    assert config["motion_20_120_4c"]["size"] == 20 == written["motion_20_120_4c"]["size"]
    assert config["motion_20_120"]["user_label_size"] == 24


def test_hhar(tmp_path):
    raw = write_hhar(tmp_path / "raw")
    prepare("hhar", raw, tmp_path / "out", verbose=False)
    data, labels = load(tmp_path / "out", "hhar")
    acts = ["bike", "sit", "stairsdown", "stairsup", "stand", "walk"]
    got = sorted((acts[a], u, m) for a, u, m in labels)
    # walk x2 (user a, nexus4), sit x1, stairsup x1 (user b, s3); stand split by the gap
    assert got == [("sit", 0, 0), ("stairsup", 1, 1), ("walk", 0, 0), ("walk", 0, 0)]
    np.testing.assert_allclose(data[:, :, :3], np.broadcast_to(ACC_VALUE, data[:, :, :3].shape))
    np.testing.assert_allclose(data[:, :, 3:], np.broadcast_to(GYRO_VALUE, data[:, :, 3:].shape))
    data4, labels4 = load(tmp_path / "out", "hhar", "20_120_4c")
    assert sorted(labels4[:, 0].tolist()) == [0, 0, 1, 3]
    config = json.loads((tmp_path / "out" / "data_config.json").read_text())["hhar_20_120"]
    assert config["label_names"] == ["activity", "user", "model"]
    assert config["model_label_index"] == 2 and config["user_label"][0] == "a"


def test_shoaib(tmp_path):
    raw = write_shoaib(tmp_path / "raw", blank_cell=(2, 2 + 900, 14 * 4 + 8))  # Belt Gy, biking
    written = prepare("shoaib", raw, tmp_path / "out", verbose=False)
    data, labels = load(tmp_path / "out", "shoaib")
    # P1: walking 2 + sitting 1 + upstairs 1 + jogging 1; P2: 3 (one Belt window has a blank)
    assert len(data) == 5 * 5 + 5 * 3 - 1
    assert np.bincount(labels[:, 1]).tolist() == [8, 8, 8, 8, 7]
    assert sorted(set(labels[:, 2])) == [0, 1]
    assert (labels[:, 0] == 5).sum() == 5                   # 'upsatirs' read as upstairs
    static = np.isin(labels[:, 0], [1, 2])
    assert magnitude(data[static, :, :3]) == pytest.approx(9.8, rel=0.01)
    assert magnitude(data[static, :, 3:]) < 0.1
    assert written["shoaib_20_120_4c"]["size"] == 5 * 4 + 5 * 2   # no jogging, biking
    _, labels4 = load(tmp_path / "out", "shoaib", "20_120_4c")
    assert np.bincount(labels4[:, 0]).tolist() == [10, 5, 5, 10]
    assert written["shoaib_20_120"]["position_label"][2] == "wrist"


def test_shoaib_one_position(tmp_path):
    raw = write_shoaib(tmp_path / "raw")
    prepare("shoaib", raw, tmp_path / "out", classes="all", positions=["wrist"], verbose=False)
    _, labels = load(tmp_path / "out", "shoaib")
    assert len(labels) == 8 and set(labels[:, 1]) == {2}
    assert not (tmp_path / "out" / "shoaib" / "data_20_120_4c.npy").exists()


# --- shared pieces --------------------------------------------------------------------------

def limu_down_sample(data, ratio):
    """LIMU-BERT's down_sample (dataset/uci.py), as published, for comparison."""
    result, window, remainder, i = [], int(ratio), 0.0, 0
    if float(ratio).is_integer():
        return np.array([np.mean(data[i:i + window], 0)
                         for i in range(0, len(data) - window, window)])
    while 0 <= i + window + 1 < len(data):
        remainder += ratio - window
        step = window + 1 if remainder >= 1 else window
        remainder -= 1 if remainder >= 1 else 0
        result.append(np.mean(data[i:i + step], 0))
        i += step
    return np.array(result)


@pytest.mark.parametrize("ratio", [2.5, 5])
@pytest.mark.parametrize("n", [0, 3, 4, 7, 10, 11, 501, 1000])
def test_block_average_is_limu_berts(ratio, n):
    x = np.random.default_rng(n).normal(size=(n, 6)) * 9.80665
    got = windows.block_average(x, ratio)
    want = limu_down_sample(x, ratio).reshape(-1, 6)
    assert got.shape == want.shape and np.array_equal(got, want)


def test_poly_resample_keeps_constant_edges():
    x = np.tile([0.0, 0.0, 9.81, 0.0, 0.0, 0.0], (7500, 1))      # 300 s at 25 Hz
    y = windows.resample(x, 25, "poly")
    assert y.shape == (6000, 6)
    np.testing.assert_allclose(y, np.broadcast_to(x[0], y.shape), rtol=2e-6)
    assert windows.resample(x, 20, None) is x


def test_cut_windows_needs_more_than_seq_len():
    assert len(windows.cut_windows(np.zeros((120, 6)))) == 0     # LIMU-BERT: longer than 120
    assert len(windows.cut_windows(np.zeros((359, 6)))) == 2


def test_runs():
    assert windows.runs(np.array([1, 1, 2, 2, 2, 1])) == [(0, 2), (2, 5), (5, 6)]
    assert windows.runs(np.array([[0, 1], [0, 1], [0, 2]]), np.array([5, 5, 5])) == [(0, 2), (2, 3)]
    assert windows.runs(np.array([])) == []


def test_four_class_table_matches_crosshar():
    """CrossHAR's table in LIMU-BERT's label indices (shared/data/README.md)."""
    from dataset import hhar, motion, shoaib, uci
    crosshar = {uci: [[0], [1], [2], [3, 4]], hhar: [[5], [3], [2], [1, 4]],
                motion: [[4], [1], [0], [2, 3]], shoaib: [[0], [5], [6], [1, 2]]}
    for module, groups in crosshar.items():
        lookup = classes.four_class_lookup(module.__name__.split(".")[-1], module.ACTIVITIES)
        assert [np.flatnonzero(lookup == c).tolist() for c in range(4)] == groups
    assert math.isclose(windows.G, G)
