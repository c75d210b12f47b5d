"""python -m dataset.prepare as a user runs it: bad input (one stderr line, exit 2, nothing
written) and --download from a local HTTP server serving an archive in the official layout."""
import functools
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from .test_prepare_formats import write_motion

REPO = Path(__file__).resolve().parents[1]


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "dataset.prepare", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def write_uci(root, n=1000):
    """RawData/ of one HAPT experiment: 600 samples walking, 400 sitting (50 Hz)."""
    rng = np.random.default_rng(3)
    raw = root / "RawData"
    raw.mkdir(parents=True)
    np.savetxt(raw / "acc_exp01_user01.txt", rng.normal([1, 0, 0], 0.05, size=(n, 3)))
    np.savetxt(raw / "gyro_exp01_user01.txt", rng.normal(0, 0.05, size=(n, 3)))
    (raw / "labels.txt").write_text("1 1 1 0 600\n1 1 4 600 1000\n")
    return raw


def zip_folder(folder, archive):
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(folder.rglob("*")):
            z.write(path, path.relative_to(folder.parent).as_posix())
    return archive


# --- bad input ------------------------------------------------------------------------------

def missing(tmp):
    return ["uci", "--raw", tmp / "no_such_dir"], "no_such_dir"


def unknown_dataset(tmp):
    return ["nosuch", "--raw", tmp], "nosuch"


def truncated_zip(tmp):
    whole = zip_folder(write_uci(tmp / "uci"), tmp / "whole.zip").read_bytes()
    (tmp / "half.zip").write_bytes(whole[: len(whole) // 2])
    return ["uci", "--raw", tmp / "half.zip"], "half.zip"


def truncated_text_file(tmp):
    raw = write_uci(tmp / "uci")
    acc = raw / "acc_exp01_user01.txt"
    text = acc.read_text().rstrip("\n")
    acc.write_text(text[: text.rfind(" ")])           # last row cut after its second value
    return ["uci", "--raw", raw], "acc_exp01_user01.txt"


def truncated_mat(tmp):
    folder = tmp / "USC-HAD" / "Subject1"
    folder.mkdir(parents=True)
    scipy.io.savemat(folder / "a1t1.mat", {"sensor_readings": np.ones((2000, 6))})
    data = (folder / "a1t1.mat").read_bytes()
    (folder / "a1t1.mat").write_bytes(data[: len(data) // 2])
    return ["usc_had", "--raw", tmp / "USC-HAD"], "a1t1.mat"


def wrong_column_count(tmp):
    folder = tmp / "data" / "a01" / "p1"
    folder.mkdir(parents=True)
    for segment, columns in (("s01", 45), ("s02", 44)):
        np.savetxt(folder / f"{segment}.txt", np.ones((125, columns)), delimiter=",")
    return ["dsads", "--raw", tmp], "s02.txt"


def all_windows_nan(tmp):
    return ["motion", "--raw", write_motion(tmp, nan_rows=[100, 400])], "NaN"


@pytest.mark.parametrize("case", [missing, unknown_dataset, truncated_zip, truncated_text_file,
                                  truncated_mat, wrong_column_count, all_windows_nan])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, case):
    args, named = case(tmp_path / "raw")
    out = tmp_path / "out"
    result = run(*args, "--out", out)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert named in lines[0]
    assert not out.exists() or not any(out.rglob("*"))


def test_nan_samples_drop_their_windows(tmp_path):
    raw = write_motion(tmp_path / "raw", nan_rows=[100])    # hits the first window of each file
    result = run("motion", "--raw", raw, "--out", tmp_path / "out", "--classes", "all")
    assert result.returncode == 0, result.stderr
    assert "dropped 12 windows with NaN or inf samples" in result.stdout
    assert np.load(tmp_path / "out" / "motion" / "data_20_120.npy").shape == (12, 120, 6)


def test_option_of_another_dataset_is_refused(tmp_path):
    result = run("motion", "--raw", write_motion(tmp_path), "--unit", "ra", "--out", tmp_path / "o")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "unit" in result.stderr


def test_outputs_replace_and_config_keeps_other_entries(tmp_path):
    out = tmp_path / "out"
    assert run("uci", "--raw", write_uci(tmp_path / "uci"), "--out", out).returncode == 0
    result = run("motion", "--raw", write_motion(tmp_path / "m"), "--out", out, "--classes", "4")
    assert result.returncode == 0, result.stderr
    assert "motion_20_120_4c: 20 windows" in result.stdout
    config = (out / "data_config.json").read_text()
    for key in ("uci_20_120", "uci_20_120_4c", "motion_20_120_4c"):
        assert f'"{key}"' in config
    assert '"motion_20_120"' not in config
    leftovers = [p.name for p in out.rglob("*") if p.name.startswith(".")]
    assert not leftovers


# --- --download -------------------------------------------------------------------------------

class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """(folder served, base URL) of an HTTP server on 127.0.0.1."""
    root = tmp_path / "www"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0),
                                functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download(tmp_path, server):
    root, base = server
    # MotionSense's official A_DeviceMotion_data.zip: the folder at top level, macOS junk beside
    archive = zip_folder(write_motion(tmp_path / "src"), root / "A_DeviceMotion_data.zip")
    with zipfile.ZipFile(archive, "a") as z:
        z.writestr("__MACOSX/A_DeviceMotion_data/dws_1/._sub_1.csv", b"\x00\x05junk")
    env = {"CROSSHAR_DOWNLOAD_BASE": base, "no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}
    cache, out = tmp_path / "cache", tmp_path / "out"
    result = run("motion", "--download", "--cache", cache, "--out", out, env=env)
    assert result.returncode == 0, result.stderr
    assert zipfile.ZipFile(cache / "motion.zip").namelist()
    assert np.load(out / "motion" / "data_20_120.npy").shape == (24, 120, 6)
    archive.unlink()                                          # second run: from the cache
    shutil.rmtree(out)
    result = run("motion", "--download", "--cache", cache, "--out", out, env=env)
    assert result.returncode == 0 and "using" in result.stdout, result.stderr
    # a dataset the server does not have: one line naming the address
    result = run("dsads", "--download", "--cache", cache, "--out", out, env=env)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert base in result.stderr and "download failed" in result.stderr
    assert not (cache / "dsads.zip").exists()


def test_shoaib_has_no_download(tmp_path):
    result = run("shoaib", "--download", "--cache", tmp_path, "--out", tmp_path / "out")
    assert result.returncode == 2 and "rar" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# --- all or nothing, and the details of one-line errors -------------------------------------

def test_a_corrupt_data_config_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "out"
    assert run("uci", "--raw", write_uci(tmp_path / "uci"), "--out", out).returncode == 0
    arrays = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (out / "uci").iterdir()}
    (out / "data_config.json").write_text('{"uci_20_120": ')          # truncated
    result = run("uci", "--raw", write_uci(tmp_path / "uci2", n=1200), "--out", out)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "data_config.json is malformed" in result.stderr and "fix or delete it" in result.stderr
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (out / "uci").iterdir()} == arrays


def test_an_output_folder_under_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    result = run("uci", "--raw", write_uci(tmp_path / "uci"), "--out", tmp_path / "file" / "out")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "cannot write" in result.stderr and "a file stands where a folder" in result.stderr


@pytest.mark.parametrize("garbage", [b"MATLAB", bytes(range(256)) * 8])
def test_a_garbage_mat_file_is_one_line(tmp_path, garbage):
    folder = tmp_path / "USC-HAD" / "Subject1"
    folder.mkdir(parents=True)
    (folder / "a1t1.mat").write_bytes(garbage)
    result = run("usc_had", "--raw", tmp_path / "USC-HAD", "--out", tmp_path / "out")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "a1t1.mat: unreadable .mat" in result.stderr and "Traceback" not in result.stderr


def test_a_parse_error_names_the_files_line(tmp_path):
    raw = write_uci(tmp_path / "uci")
    acc = raw / "acc_exp01_user01.txt"
    lines = acc.read_text().splitlines()
    lines[41] = "1.0 oops 2.0"                                           # line 42 of the file
    acc.write_text("\n".join(lines) + "\n")
    result = run("uci", "--raw", raw, "--out", tmp_path / "out")
    assert result.returncode == 2 and "at line 42," in result.stderr, result.stderr


def test_outputs_get_the_users_umask(tmp_path):
    result = subprocess.run([sys.executable, "-m", "dataset.prepare", "uci", "--raw", str(write_uci(tmp_path / "uci")),
                             "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True,
                            preexec_fn=lambda: os.umask(0o022))
    assert result.returncode == 0, result.stderr
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert set(modes.values()) == {0o644}, modes
    assert sorted(modes) == ["data_20_120.npy", "data_20_120_4c.npy", "data_config.json", "label_20_120.npy",
                             "label_20_120_4c.npy"], "no lock or temporary file is left"
