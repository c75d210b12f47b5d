"""Checkpoint and artifact I/O: every file is written to a temporary name, then renamed, so
a run killed mid-write never leaves a half-written artifact behind.

A checkpoint is a plain dict: {"kind", "backbone", "model_args", "state", "config", ...};
models are rebuilt from "model_args", never from the command line (nanoGPT's rule), and
loaded with `weights_only=True`.
"""
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from .errors import UserError


def atomic_write_many(writers):
    """{path: write(binary_file)}: write every file to a temp name beside it, then rename
    them all; on any failure no target is touched (all or nothing)."""
    temps = {}
    try:
        for path, write in writers.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temps[path] = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                write(f)
        for path, temp in temps.items():
            os.replace(temp, path)
    finally:
        for temp in temps.values():
            if os.path.exists(temp):
                os.unlink(temp)


def atomic_write(path, write):
    """Call write(binary_file) on a temp file beside `path`, then rename it onto `path`."""
    atomic_write_many({path: write})


def save_checkpoint(obj, path):
    atomic_write(path, lambda f: torch.save(obj, f))


def save_json(obj, path):
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


def save_npz(path, **arrays):
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path, kind, backbone=None, map_location="cpu"):
    """Load and check a checkpoint; any problem is one UserError line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated, foreign or pickled-object files
        raise UserError(f"checkpoint {path} could not be read ({type(e).__name__}): "
                        f"expected a file written by this toolkit")
    if not isinstance(ckpt, dict) or "kind" not in ckpt:
        raise UserError(f"checkpoint {path} is not a CrossHAR-Mamba checkpoint")
    if ckpt["kind"] != kind:
        raise UserError(f"checkpoint {path} is a {ckpt['kind']!r} checkpoint; expected {kind!r}")
    if backbone is not None and ckpt.get("backbone") != backbone:
        raise UserError(f"checkpoint {path} holds a {ckpt.get('backbone')!r} backbone; "
                        f"this run asked for --backbone {backbone}")
    return ckpt


def load_npz(path, keys):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"embedding file {path} not found; run embedding.py first")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in keys}
    except Exception as e:  # noqa: BLE001
        raise UserError(f"embedding file {path} could not be read ({type(e).__name__}); "
                        f"expected an .npz with {list(keys)}")
