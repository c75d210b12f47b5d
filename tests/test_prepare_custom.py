"""The generic reader (python -m dataset.prepare custom) on small tables the tests write: unit
conversion, any rate through the one resampling path, timestamp gaps, file-name patterns,
formats, the one-line errors; and a dataset prepared by it through the four stages."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dataset import windows
from dataset.prepare import prepare

REPO = Path(__file__).resolve().parents[1]
G = 9.80665
SENSORS = ["ax", "ay", "az", "gx", "gy", "gz"]
COLUMNS = dict(acc=SENSORS[:3], gyro=SENSORS[3:])


def write_csv(path, table, header=True, delimiter=","):
    """table: {column: values}; numbers as written by repr (exact), strings as they are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(table)
    cells = [[v if isinstance(v, str) else repr(float(v)) for v in table[c]] for c in names]
    lines = ([delimiter.join(names)] if header else []) + [delimiter.join(row) for row in zip(*cells)]
    path.write_text("\n".join(lines) + "\n")
    return path


def recording(rate, seconds, acc=(0.0, 0.0, 1.0), gyro=(0.0, 0.0, 0.0), **labels):
    """{column: values} of constant sensors for `seconds` at `rate`, with label columns."""
    n = int(round(rate * seconds))
    table = {"t": np.arange(n) / rate}
    table.update({c: np.full(n, v) for c, v in zip(SENSORS, (*acc, *gyro))})
    table.update({k: [v] * n for k, v in labels.items()})
    return table


def joined(*tables):
    return {c: np.concatenate([np.asarray(t[c]) for t in tables]) for c in tables[0]}


def load(out, name, version="20_120"):
    data = np.load(out / name / f"data_{version}.npy")
    labels = np.load(out / name / f"label_{version}.npy")
    assert data.shape[1:] == (120, 6) and (labels == labels[:, :1]).all()
    config = json.loads((out / "data_config.json").read_text())[f"{name}_{version}"]
    return data, labels[:, 0].astype(int), config


def prep(raw, out, **options):
    options = {"dataset_name": "mine", **COLUMNS, **options}
    return prepare("custom", raw, out, verbose=False, **options)


# --- values ---------------------------------------------------------------------------------

@pytest.mark.parametrize("rate, acc_unit, gyro_unit, windows_expected", [
    (50, "g", "deg/s", 3),        # 20 s -> 400 samples at 20 Hz -> 3 windows
    (100, "m/s^2", "rad/s", 3),
    (416, "g", "rad/s", 3),
    (29.97, "m/s^2", "deg/s", 3),  # not a whole ratio: 333/499
])
def test_units_and_rates(tmp_path, rate, acc_unit, gyro_unit, windows_expected):
    acc, gyro = (0.1, -0.2, 0.97), (90.0, 0.0, -45.0)
    write_csv(tmp_path / "raw" / "rec.csv", recording(rate, 20, acc, gyro, act="walking", who="p1"))
    prep(tmp_path / "raw" / "rec.csv", tmp_path / "out", rate=rate, activity="act", user="who",
         acc_unit=acc_unit, gyro_unit=gyro_unit)
    data, labels, config = load(tmp_path / "out", "mine")
    assert len(data) == windows_expected
    want = np.array([*(np.array(acc) * (G if acc_unit == "g" else 1)),
                     *(np.array(gyro) * (np.pi / 180 if gyro_unit == "deg/s" else 1))])
    np.testing.assert_allclose(data, np.broadcast_to(want, data.shape), rtol=1e-5, atol=1e-9)
    assert config["activity_label"] == ["walking"] and config["user_label"] == ["p1"]
    assert config["options"]["rate"] == rate and config["sr"] == 20


@pytest.mark.parametrize("rate", [100, 416, 29.97, 12.5])
def test_sine_keeps_its_frequency(tmp_path, rate):
    """A 1.3 Hz sine sampled at `rate` equals the same sine sampled at 20 Hz after resampling."""
    table = recording(rate, 36.5, act="walking")
    t = table["t"]
    table["ax"] = np.sin(2 * np.pi * 1.3 * t)
    table["gz"] = 0.5 * np.cos(2 * np.pi * 0.4 * t)
    write_csv(tmp_path / "raw" / "sine.csv", table)
    prep(tmp_path / "raw", tmp_path / "out", rate=rate, activity="act")
    data, _, _ = load(tmp_path / "out", "mine")
    assert len(data) == 6                                  # 36.5 s -> 730 samples -> 6 windows
    x = data.reshape(-1, 6)
    t20 = np.arange(len(x)) / 20
    inner = slice(20, -20)                                 # away from the recording's edges
    np.testing.assert_allclose(x[inner, 0], np.sin(2 * np.pi * 1.3 * t20)[inner], atol=2e-3)
    np.testing.assert_allclose(x[inner, 5], 0.5 * np.cos(2 * np.pi * 0.4 * t20)[inner], atol=2e-3)
    spectrum = np.abs(np.fft.rfft(x[:, 0]))
    assert np.fft.rfftfreq(len(x), 1 / 20)[spectrum.argmax()] == pytest.approx(1.3, abs=0.02)


def test_poly_ratio_is_exact_or_close():
    assert [str(windows.poly_ratio(r)) for r in (25, 100, 416, 44.1, 12.5)] == \
        ["4/5", "1/5", "5/104", "200/441", "8/5"]
    r = windows.poly_ratio(29.97)
    assert r.denominator <= 1000 and abs(float(r) * 29.97 - 20) < 1e-4


def test_time_gap_splits_recordings(tmp_path):
    # 10 s at 1 g, 3 s without samples, 10 s at 2 g (50 Hz)
    first = recording(50, 10, acc=(0, 0, 1), act="sitting")
    second = recording(50, 10, acc=(0, 0, 2), act="sitting")
    second["t"] = second["t"] + 13.0
    write_csv(tmp_path / "raw" / "rec.csv", joined(first, second))
    raw, out = tmp_path / "raw", tmp_path / "out"
    prep(raw, out, rate=50, activity="act", time="t", acc_unit="g")
    data, _, _ = load(out, "mine")
    # each part gives one window of its own constant; no window spans the gap
    assert len(data) == 2
    np.testing.assert_allclose(data[:, :, 2], [[G] * 120, [2 * G] * 120], rtol=1e-5)
    # without timestamps, or with a gap threshold above 3 s (> 150 periods), one 20 s recording
    for options in ({}, {"time": "t", "gap": 200}):
        prep(raw, out, rate=50, activity="act", acc_unit="g", **options)
        data, _, _ = load(out, "mine")
        assert len(data) == 3
        assert data[1, 0, 2] == pytest.approx(G) and data[1, -1, 2] == pytest.approx(2 * G)


def test_label_columns_split_one_table(tmp_path):
    """One table: the activity and user change within it; each stretch is its own recording."""
    parts = [recording(50, 7, acc=(0, 0, a), act=act, who=who)
             for a, act, who in ((1, "walk", "bob"), (2, "sit", "bob"), (3, "walk", "ann"),
                                 (4, "jog", "ann"), (5, "stairs up", "ann"))]
    write_csv(tmp_path / "all.csv", joined(*parts))
    prep(tmp_path / "all.csv", tmp_path / "out", rate=50, activity="act", user="who",
         activity_map=["walk=walking", "sit=sitting&standing", "stairs up=upstairs"])
    data, labels, config = load(tmp_path / "out", "mine")
    assert config["activity_label"] == ["jog", "sit", "stairs up", "walk"]
    assert config["user_label"] == ["ann", "bob"]
    # 7 s = 140 samples: one window per stretch, holding only its own value
    got = sorted((config["activity_label"][a], config["user_label"][u], round(data[i, 0, 2]))
                 for i, (a, u) in enumerate(labels))
    assert got == [("jog", "ann", 4), ("sit", "bob", 2), ("stairs up", "ann", 5),
                   ("walk", "ann", 3), ("walk", "bob", 1)]
    np.testing.assert_allclose(data[:, :, 2], np.broadcast_to(data[:, :1, 2], (5, 120)), rtol=1e-5)
    data4, labels4, config4 = load(tmp_path / "out", "mine", "20_120_4c")
    assert config4["activity_label"] == ["walking", "upstairs", "downstairs", "sitting&standing"]
    assert sorted(labels4[:, 0].tolist()) == [0, 0, 1, 3]        # jog left out
    assert config4["user_label"] == ["ann", "bob"]


def test_pattern_formats_and_default_map(tmp_path):
    """{user}/{activity}_{trial}: the same windows from CSV, headerless whitespace text, .npy."""
    raw = tmp_path / "raw"
    rng = np.random.default_rng(0)
    expected = {}
    for k, (user, activity, ext) in enumerate([("u2", "walking", "csv"), ("u10", "sitting", "txt"),
                                               ("u2", "standing", "npy"), ("u10", "walking", "csv")]):
        table = recording(50, 8, act="x")
        table.update({c: rng.normal(size=len(table["t"])) for c in SENSORS})
        del table["act"], table["t"]
        path = raw / user / f"{activity}_{k}.{ext}"
        if ext == "csv":
            write_csv(path, table)
        elif ext == "txt":
            write_csv(path, table, header=False, delimiter=" ")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, np.stack([table[c] for c in SENSORS], axis=1))
        expected[(user, activity, k)] = windows.resample(np.stack([table[c] for c in SENSORS], 1), 50,
                                                         "poly")[:120]
    (raw / "README.txt").write_text("not a recording\n")
    out = tmp_path / "out"
    # the CSV files name their columns; the headerless text and the .npy ones number them 0..5
    prep(raw, out, rate=50, pattern="{user}/{activity}_{trial}.csv")
    data, labels, config = load(out, "mine")
    assert config["user_label"] == ["u2", "u10"]                 # natural order
    assert config["activity_label"] == ["walking"]
    by_user = {config["user_label"][u]: data[i] for i, u in enumerate(labels[:, 1])}
    np.testing.assert_allclose(by_user["u2"], expected[("u2", "walking", 0)])
    np.testing.assert_allclose(by_user["u10"], expected[("u10", "walking", 3)])
    for ext, key in (("txt", ("u10", "sitting", 1)), ("npy", ("u2", "standing", 2))):
        prep(raw, out, rate=50, pattern="{user}/{activity}_{trial}." + ext, acc=["0", "1", "2"],
             gyro=["3", "4", "5"], header=False)
        data, _, config = load(out, "mine")
        np.testing.assert_allclose(data, [expected[key]], rtol=1e-12)
        # sitting / standing map onto sitting&standing without --activity-map
        _, labels4, _ = load(out, "mine", "20_120_4c")
        assert labels4[:, 0].tolist() == [3]


@pytest.mark.parametrize("file, delimiter, option", [("walking.tsv", "\t", None),
                                                     ("walking.dat", "\t", "tab"),
                                                     ("walking.dat", ";", ";")])
def test_delimiters(tmp_path, file, delimiter, option):
    write_csv(tmp_path / "raw" / file, recording(50, 7, acc=(0, 0, 3)), delimiter=delimiter)
    prep(tmp_path / "raw", tmp_path / "out", rate=50, pattern="{activity}." + file.split(".")[1],
         delimiter=option)
    data, _, config = load(tmp_path / "out", "mine")
    assert len(data) == 1 and config["user_label"] == ["all"]
    np.testing.assert_allclose(data[0, :, 2], 3.0, rtol=1e-5)


def test_nan_cells_drop_their_windows(tmp_path):
    table = recording(50, 25, act="walking")           # 500 samples at 20 Hz: 4 windows
    table["gy"] = [repr(float(v)) for v in table["gy"]]
    table["gy"][50] = ""                               # an empty cell in the first window
    write_csv(tmp_path / "raw" / "r.csv", table)
    prep(tmp_path / "raw", tmp_path / "out", rate=50, activity="act")
    data, _, _ = load(tmp_path / "out", "mine")
    assert len(data) == 3 and np.isfinite(data).all()


# --- one-line errors (python -m dataset.prepare custom, as a user runs it) ------------------

def run(*args):
    return subprocess.run([sys.executable, "-m", "dataset.prepare", "custom", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def two_files(raw, drop=None):
    write_csv(raw / "p1_walking.csv", recording(50, 10))
    second = recording(50, 10)
    second.pop(drop, None)
    write_csv(raw / "p2_walking.csv", second)
    return raw


def flags(**changes):
    """The command line of two_files' layout, with flags changed (None: left out) or added."""
    spec = {"name": "mine", "rate": "50", "acc": ["ax", "ay", "az"], "gyro": ["gx", "gy", "gz"],
            "pattern": "{user}_{activity}.csv", **changes}
    args = []
    for flag, value in spec.items():
        if value is not None:
            args += [f"--{flag.replace('_', '-')}", *([value] if isinstance(value, str) else value)]
    return args


ERRORS = {
    "bad column name": (flags(acc=["ax", "ay", "aq"]), None, "no column 'aq'"),
    "missing column": (flags(), "gz", "p2_walking.csv: no column 'gz'"),
    "bad acc unit": (flags(acc_unit="G"), None, "--acc-unit 'G'"),
    "bad gyro unit": (flags(gyro_unit="dps"), None, "--gyro-unit 'dps'"),
    "unknown activity in the map": (flags(activity_map=["walk=walking"]), None,
                                    "activity 'walk', which is not in the data"),
    "unknown class in the map": (flags(activity_map=["walking=running"]), None, "unknown class"),
    "no activity": (flags(pattern=None), None, "no activity"),
    "timestamps disagree with the rate": (flags(rate="100", time="t"), None,
                                          "median time step is 0.02 s (50 Hz)"),
    "a published name": (flags(name="uci"), None, "--name uci"),
    "a pattern matching nothing": (flags(pattern="{user}-{activity}.tsv"), None, "no file matches"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, case):
    args, drop, named = ERRORS[case]
    raw = two_files(tmp_path / "raw", drop)
    out = tmp_path / "out"
    result = run("--raw", raw, "--out", out, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert named in lines[0], lines[0]
    assert not out.exists() or not any(out.rglob("*"))


def test_zip_of_tables(tmp_path):
    import zipfile
    raw = two_files(tmp_path / "raw", drop="gz")
    with zipfile.ZipFile(tmp_path / "rec.zip", "w") as z:
        for path in sorted(raw.iterdir()):
            z.write(path, f"rec/{path.name}")
    result = run("--raw", tmp_path / "rec.zip", "--out", tmp_path / "out", *flags())
    assert result.returncode == 2 and "rec.zip:rec/p2_walking.csv: no column 'gz'" in result.stderr
    (raw / "p2_walking.csv").unlink()
    with zipfile.ZipFile(tmp_path / "rec.zip", "w") as z:
        z.write(raw / "p1_walking.csv", "rec/p1_walking.csv")
    result = run("--raw", tmp_path / "rec.zip", "--out", tmp_path / "out", *flags())
    assert result.returncode == 0, result.stderr
    assert "mine_20_120: 1 windows" in result.stdout         # 10 s: one window


def test_content_errors_name_file_and_line(tmp_path):
    raw = tmp_path / "raw"
    short = recording(50, 5.5)
    write_csv(raw / "p1_walking.csv", short)
    result = run("--raw", raw, "--out", tmp_path / "out", *flags())
    assert result.returncode == 2 and "has 275 samples = 5.50 s" in result.stderr, result.stderr
    table = recording(50, 10)
    table["ay"] = [repr(float(v)) for v in table["ay"]]
    table["ay"][7] = "n/a"
    write_csv(raw / "p1_walking.csv", table)
    result = run("--raw", raw, "--out", tmp_path / "out", *flags())
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "p1_walking.csv: column 'ay' has 'n/a' at line 9" in result.stderr
    (raw / "p1_walking.csv").unlink()
    (raw / "p1_walking.parquet").write_bytes(b"PAR1")
    result = run("--raw", raw, "--out", tmp_path / "out", *flags(pattern="{user}_{activity}.parquet"))
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        assert result.returncode == 2 and "pip install pyarrow" in result.stderr, result.stderr
    else:
        assert result.returncode == 2 and "unreadable Parquet" in result.stderr, result.stderr


# --- through the four stages ----------------------------------------------------------------

def write_activities(raw, rate, seconds, acc_unit_scale=1.0, seed=0):
    """Four activities x 2 users with distinct motion (so a classifier has something to learn)."""
    rng = np.random.default_rng(seed)
    for user in ("a", "b"):
        for k, activity in enumerate(["walk", "up", "down", "sit"]):
            table = recording(rate, seconds)
            t = table["t"]
            motion = 0.0 if activity == "sit" else 1.0 + 0.5 * k
            table["ax"] = (motion * np.sin(2 * np.pi * (1 + 0.3 * k) * t) +
                           rng.normal(0, 0.1, len(t))) * acc_unit_scale
            table["az"] = (G + motion * np.cos(2 * np.pi * 2 * t)) * acc_unit_scale
            table["gx"] = motion * 0.5 * np.sin(2 * np.pi * 1.7 * t) + rng.normal(0, 0.05, len(t))
            write_csv(raw / f"{user}_{activity}.csv", table)


@pytest.mark.slow
def test_four_stages_on_custom_datasets(tmp_path):
    data_dir = tmp_path / "data"
    mapping = ["walk=walking", "up=upstairs", "down=downstairs", "sit=sitting&standing"]
    write_activities(tmp_path / "src", 50, 66)
    write_activities(tmp_path / "tgt", 100, 30, acc_unit_scale=1 / G, seed=1)
    for name, raw, rate, extra in (("watch", tmp_path / "src", "50", {}),
                                   ("phone", tmp_path / "tgt", "100", {"acc_unit": "g"})):
        result = run("--raw", raw, "--out", data_dir,
                     *flags(name=name, rate=rate, activity_map=mapping, **extra))
        assert result.returncode == 0, result.stderr
        # 66 s at 50 Hz: 1320 samples at 20 Hz, 11 windows per file; 30 s: 600 samples, 5
        assert f"{name}_20_120_4c: {88 if name == 'watch' else 40} windows" in result.stdout
    (tmp_path / "pt.json").write_text(json.dumps({"seed": 5, "batch_size": 32, "lr": 1e-3, "n_epochs": 2,
                                                  "n_epochs_cl": 1, "lambda_recon": 6.0, "lambda_cl": 1.0,
                                                  "train_rate": 0.8, "val_rate": 0.1}))
    (tmp_path / "ct.json").write_text(json.dumps({"seed": 5, "batch_size": 32, "lr": 1e-3, "n_epochs": 2,
                                                  "train_rate": 0.8, "val_rate": 0.1}))

    def stage(script, *args):
        return subprocess.run([sys.executable, str(REPO / script), "--data-dir", str(data_dir), *args],
                              cwd=tmp_path, capture_output=True, text=True, timeout=600)

    for script, args in (("pretrain.py", ["-am", "none", "-t", "pt.json"]), ("embedding.py", []),
                         ("classifier.py", ["-t", "ct.json", "-lr", "0.5"]),
                         ("cross_dataset_test.py", ["-td", "phone", "-lr", "0.5"])):
        proc = stage(script, "-d", "watch", *args)
        assert proc.returncode == 0, f"{script}: {proc.stdout}\n{proc.stderr}"
    result = json.loads((tmp_path / "results" / "limu_watch_20_120_4c_v1_lr0.5_to_phone.json").read_text())
    assert result["source"] == "watch" and result["target"] == "phone"
    assert result["target_metrics"]["n"] == 40 and len(result["target_metrics"]["confusion_matrix"]) == 4
    # a name that is neither published nor prepared there: one line naming what is
    proc = stage("pretrain.py", "-d", "wacth")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "'wacth'" in proc.stderr and "prepared in" in proc.stderr and "phone, watch" in proc.stderr
    # the sweep asks training.paths where a stage's artifact is: the one the stage wrote
    proc = subprocess.run([sys.executable, "-m", "training.paths", "result", "-d", "watch", "-td", "phone",
                           "-lr", "0.5"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout == "results/limu_watch_20_120_4c_v1_lr0.5_to_phone.json\n", proc.stderr


def test_stages_take_prepared_names(tmp_path, capsys):
    """-d / -td: a published name, or one prepared in --data-dir; names only (python -m
    training.paths, which the sweep asks): any plain dataset name."""
    from common.cli import Parser
    from common.errors import UserError
    from training import paths
    (tmp_path / "data_config.json").write_text(json.dumps({"mine_20_120_4c": {}, "uci_20_120": {}}))
    p = Parser(prog="stage")
    paths.add_run(p)
    paths.add_target(p)
    p.add_argument("--data-dir")
    args = paths.parse(p, ["-d", "mine,usc_had", "-td", "mine", "--data-dir", str(tmp_path)])
    assert paths.run_name(args) == "limu_mine+usc_had_20_120_4c_v1" and args.target_dataset == "mine"
    for argv, named in ((["-d", "mien"], "invalid choice: 'mien' (choose from uci"),
                        (["-td", "mien"], "argument -td/--target_dataset"),
                        (["-d", "a/b"], "dataset names: letters"), (["-d", "a+b"], "dataset names"),
                        (["-d", "mine,mine"], "distinct"), (["-td", "mine,uci"], "one dataset name")):
        with pytest.raises(SystemExit):
            paths.parse(p, [*argv, "--data-dir", str(tmp_path)])
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and named in err[0], err
    with pytest.raises(SystemExit):
        paths.parse(p, ["-d", "mien", "--data-dir", str(tmp_path)])
    assert f"or prepared in {tmp_path}: mine;" in capsys.readouterr().err
    (tmp_path / "data_config.json").write_text("{")
    with pytest.raises(UserError, match="data_config.json is malformed"):
        paths.parse(p, ["-d", "mine", "--data-dir", str(tmp_path)])
    paths.main(["pretrain", "-d", "mine"])
    assert capsys.readouterr().out == "saved/pretrain_limu_mine_20_120_4c_v1/best.pt\n"
