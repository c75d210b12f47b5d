"""The bottom package: atomic writes (all or nothing, the user's umask, temporaries of dead
writers removed), every failed read or write one UserError line naming the path, and the
run lock."""
import errno
import os
import subprocess
import sys

import numpy as np
import pytest

from common.errors import UserError
from common.io import HOST, atomic_write, atomic_write_many, load_npy, load_torch, read_json
from common.lock import hold, refuse_if_held

from .stages import REPO, tiny_prepared


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_files_get_the_users_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.json", lambda f: f.write(b"{}"))
        os.umask(0o002)
        atomic_write(tmp_path / "b.json", lambda f: f.write(b"{}"))
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o664


def test_a_failed_write_touches_nothing_and_says_so_in_one_line(tmp_path):
    (tmp_path / "keep.npy").write_bytes(b"old")

    def full(f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(UserError, match=r"cannot write .*second: No space left on device \(the disk is full\)"):
        atomic_write_many({tmp_path / "keep.npy": lambda f: f.write(b"new"), tmp_path / "second": full})
    assert (tmp_path / "keep.npy").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.npy"], "no temporary left"
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="cannot write .*file/x.json: a file stands where a folder"):
        atomic_write(tmp_path / "file" / "x.json", lambda f: f.write(b"{}"))


def test_temporaries_of_dead_writers_are_removed(tmp_path):
    stale = tmp_path / f".last.pt.{HOST}.{dead_pid()}.0123abcd.tmp"
    live = tmp_path / f".last.pt.{HOST}.{os.getpid()}.4567cdef.tmp"     # a writer still at work
    other = tmp_path / f".best.pt.{HOST}.{dead_pid()}.89abcdef.tmp"    # another file's: its own write cleans it
    for p in (stale, live, other):
        p.write_bytes(b"x" * 1000)
    atomic_write(tmp_path / "last.pt", lambda f: f.write(b"ckpt"))
    assert not stale.exists() and live.exists() and other.exists()


def test_reads_are_one_line_naming_the_file(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match=r"dataset config .*bad.json is malformed \(JSONDecodeError"):
        read_json(tmp_path / "bad.json", "dataset config")
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(UserError, match="dir.json could not be read"):
        read_json(tmp_path / "dir.json", "dataset config")
    np.save(tmp_path / "words.npy", np.array(["a", "b"]))
    with pytest.raises(UserError, match=r"words.npy holds <U1 values; expected a numeric"):
        load_npy(tmp_path / "words.npy", "prepared data file")
    (tmp_path / "junk.pt").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(UserError, match="junk.pt could not be read"):
        load_torch(tmp_path / "junk.pt", "encoder checkpoint")



def test_prepared_data_problems_are_one_line(tmp_path):
    from dataset.load import load_windows
    data = tiny_prepared(tmp_path / "data", names=("uci",), n=8)
    labels = np.load(data / "uci" / "label_20_120_4c.npy")
    labels[3, :, 0] = 7                        # class 7 of 4
    np.save(data / "uci" / "label_20_120_4c.npy", labels)
    with pytest.raises(UserError, match=r"1 windows have labels outside 0..3 in column 0 \(e.g. 7\)"):
        load_windows("uci", data_dir=data)
    np.save(data / "uci" / "data_20_120_4c.npy", np.full((8, 120, 6), "x"))
    with pytest.raises(UserError, match="data_20_120_4c.npy holds <U1 values"):
        load_windows("uci", data_dir=data)
    (data / "data_config.json").write_text("{truncated")
    with pytest.raises(UserError, match="data_config.json is malformed"):
        load_windows("uci", data_dir=data)


def test_the_lock_names_its_holder_and_is_gone_after(tmp_path):
    run = tmp_path / "saved" / "pretrain_x"
    probe = [sys.executable, "-c", "import sys; from common.lock import hold\n"
             "with hold(sys.argv[1]): pass", str(run)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with hold(run):
        other = subprocess.run(probe, capture_output=True, text=True, env=env)
        assert other.returncode == 1 and f"is being written by pid {os.getpid()}" in other.stderr
        with pytest.raises(UserError, match="still being written"):
            refuse_if_held(run)
    assert subprocess.run(probe, env=env).returncode == 0
    refuse_if_held(run)
    assert os.listdir(tmp_path / "saved") == [], "the lock file goes with its holder"
