"""One writer per run: an exclusive, non-blocking flock on a file beside the run folder (or
artifact file), `.NAME.lock`. The kernel drops the lock when its holder dies, so a killed run
never leaves a stale lock; the file's text (pid, host, command) only names the holder, and the
holder removes the file when it is done."""
import contextlib
import fcntl
import os
import socket
import sys
import time
from pathlib import Path

from .errors import UserError
from .io import ensure_dir, write_error

RETRIES = 5


def lock_file(target):
    target = Path(target)
    return target.parent / f".{target.name}.lock"


def _holder(fd):
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 512).decode(errors="replace").strip()
    return text or "another process"


def _acquire(path, target):
    """An fd holding the flock of the file now at `path` (a holder unlinks it on release, so
    a lock taken on an unlinked file is retried on the new one)."""
    for attempt in range(RETRIES * 4):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise write_error(path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            if attempt >= RETRIES - 1:
                raise UserError(f"{target} is being written by {holder}; wait for it to finish "
                                f"or choose another run name (-s)") from None
            time.sleep(0.05)      # a reader's refuse_if_held() holds it for microseconds
            continue
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
    raise UserError(f"{target}: could not take its lock {path}")


@contextlib.contextmanager
def hold(target):
    """Hold the lock of `target` (a run folder or an artifact file) for the with-block; a second
    process asking for it gets one UserError line naming the holder."""
    path = lock_file(target)
    ensure_dir(path.parent)
    fd = _acquire(path, target)
    try:
        os.ftruncate(fd, 0)
        command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} ({command})".encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)       # while still held: the next holder creates a fresh file
        os.close(fd)              # closing releases the flock


def refuse_if_held(target):
    """For a reader: refuse `target` while a writer holds its lock (a run still in progress)."""
    try:
        fd = os.open(lock_file(target), os.O_RDONLY)
    except OSError:
        return              # no lock file: nobody is writing it
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{target} is still being written by {_holder(fd)}; wait for it to "
                            f"finish") from None
    finally:
        os.close(fd)
