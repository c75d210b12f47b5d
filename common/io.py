"""Atomic writes and checked reads.

Writes: every file goes to a temporary name beside its target, then is renamed onto it, so a
killed run never leaves a half-written artifact; several files are written all or nothing.
Temporaries are created with the user's umask (mkstemp's would be 0600) and carry their
writer's host and pid, so the ones a killed writer left are removed by the next write.
Reads: a missing, unreadable or malformed file is one UserError line naming the path and
what was expected, never a traceback.
"""
import errno
import io
import json
import os
import secrets
import socket
from pathlib import Path

from .errors import UserError

HOST = socket.gethostname().replace(".", "_")


def _temp(path):
    return path.with_name(f".{path.name}.{HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:      # someone else's process
        return True
    return True


def clean_stale_temps(path):
    """Remove the temporaries of `path` left by dead writers on this host."""
    for temp in Path(path).parent.glob(f".{Path(path).name}.*.tmp"):
        parts = temp.name[len(Path(path).name) + 2:].split(".")
        if len(parts) == 4 and parts[0] == HOST and parts[1].isdigit() and not _alive(int(parts[1])):
            temp.unlink(missing_ok=True)


def write_error(path, exc):
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    if exc.errno == errno.ENOSPC:
        reason += " (the disk is full)"
    elif exc.errno in (errno.EEXIST, errno.ENOTDIR):       # mkdir of a folder where a file is
        reason = "a file stands where a folder of that path should be"
    return UserError(f"cannot write {path}: {reason}; expected a writable folder with free space")


def ensure_dir(path):
    """Create a folder an output will go to, before the work that makes the output."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(path, exc) from None
    return Path(path)


class _Renaming:
    """While atomic_write_many renames its files, a ^C waits for the last rename."""
    active = False
    pending = None


def on_interrupt(stop):
    """Call stop() now, or once the renames in progress are done (common.cli's ^C handler)."""
    if _Renaming.active:
        _Renaming.pending = stop
    else:
        stop()


def atomic_write_many(writers):
    """{path: write(binary_file)}: write every file to a temporary beside it, then rename them
    all; on any failure no target is touched (all or nothing) and the temporaries are removed."""
    temps = {}
    current = None
    try:
        for path, write in writers.items():
            current = path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            clean_stale_temps(path)
            temps[path] = _temp(path)
            fd = os.open(temps[path], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)   # umask applies
            with os.fdopen(fd, "wb") as f:
                write(f)
        _Renaming.active = True
        for path, temp in temps.items():
            current = path
            os.replace(temp, path)
    except OSError as exc:
        raise write_error(current, exc) from None
    finally:
        _Renaming.active = False
        for temp in temps.values():
            if os.path.exists(temp):
                os.unlink(temp)
    if _Renaming.pending:
        _Renaming.pending()


def atomic_write(path, write):
    """Call write(binary_file) on a temporary beside `path`, then rename it onto `path`."""
    atomic_write_many({path: write})


def json_bytes(obj):
    return (json.dumps(obj, indent=2) + "\n").encode()


def save_json(obj, path):
    atomic_write(path, lambda f: f.write(json_bytes(obj)))


def torch_bytes(obj):
    """A checkpoint serialised in memory: a full disk then fails as a plain OSError on write."""
    import torch
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def save_torch(obj, path):
    data = torch_bytes(obj)
    atomic_write(path, lambda f: f.write(data))


def read_error(path, what, exc, expected):
    """One line for a failed read: missing, unreadable (OSError) or malformed."""
    if isinstance(exc, FileNotFoundError):
        problem = "not found"
    elif isinstance(exc, OSError):
        problem = f"could not be read ({os.strerror(exc.errno) if exc.errno else exc})"
    else:
        detail = str(exc).splitlines()[0] if str(exc) else ""
        problem = f"is malformed ({type(exc).__name__}{': ' + detail if detail else ''})"
    return UserError(f"{what} {path} {problem}; expected {expected}")


def read_json(path, what, expected="a JSON object"):
    """The JSON object in `path`; any problem is one line naming the file and what it should hold."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise read_error(path, what, exc, expected) from None
    if not isinstance(obj, dict):
        raise UserError(f"{what} {path} holds a JSON {type(obj).__name__}; expected {expected}")
    return obj


def load_npy(path, what):
    """A numeric array from a .npy file (no pickles)."""
    import numpy as np
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise read_error(path, what, exc, "a numeric .npy array") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        raise UserError(f"{what} {path} holds {getattr(array, 'dtype', type(array).__name__)} values; "
                        f"expected a numeric .npy array")
    return array


def load_npz(path, keys, what):
    """{key: array} of the named arrays of an .npz file (no pickles)."""
    import numpy as np
    import zipfile
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise UserError(f"{what} {path} lacks {missing}; expected an .npz with {list(keys)}")
            return {k: z[k] for k in keys}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise read_error(path, what, exc, f"an .npz with {list(keys)}") from None


def load_torch(path, what, map_location="cpu"):
    """A checkpoint dict, loaded with weights_only=True (a pickle that would run code is refused)."""
    import torch
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = torch.load(f, map_location=map_location, weights_only=True)
    except OSError as exc:
        raise read_error(path, what, exc, "a checkpoint written by this toolkit") from None
    except Exception as exc:  # noqa: BLE001 - truncated, foreign or code-carrying pickles
        raise UserError(f"{what} {path} could not be read ({type(exc).__name__}); "
                        f"expected a file written by this toolkit") from None
    if not isinstance(obj, dict):
        raise UserError(f"{what} {path} holds a {type(obj).__name__}; expected a checkpoint dict "
                        f"written by this toolkit")
    return obj
