"""Prepared windows -> arrays, and the seeded splits every stage shares.

A prepared dataset version is `DATA_DIR/NAME/{data,label}_VERSION.npy` plus the entry
`NAME_VERSION` of `DATA_DIR/data_config.json` (written by `python -m dataset.prepare`).
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import UserError
from common.io import load_npy, read_json

from .prepare import DATASETS, VERSIONS  # noqa: F401 - DATASETS re-exported for the CLI
DEFAULT_VERSION = VERSIONS["4"]    # CrossHAR's shared 4-class space: needed across datasets


@dataclass
class Windows:
    name: str
    version: str
    data: np.ndarray          # (N, T, C) float32, raw units (acc m/s^2, gyro rad/s)
    activity: np.ndarray      # (N,) int64 activity index
    class_names: list
    info: dict                # the data_config.json entry


def _prepare_hint(name, version):
    classes = "4" if version.endswith("_4c") else "all"
    return f"python -m dataset.prepare {name} --raw PATH --classes {classes}"


def load_windows(name, version=DEFAULT_VERSION, data_dir="dataset", label_index=None) -> Windows:
    """Load one prepared dataset version, or the union of several ("uci,usc_had": the
    multi-source setting, label spaces aligned by the shared 4-class version). Any problem is
    one UserError line. A window's class is its `label_index` column (default: activity)."""
    names = name.split(",")
    if len(names) > 1:
        return _union([load_windows(n, version, data_dir, label_index) for n in names])
    data_dir = Path(data_dir)
    data_path = data_dir / name / f"data_{version}.npy"
    label_path = data_dir / name / f"label_{version}.npy"
    for p in (data_path, label_path):
        if not p.is_file():
            raise UserError(f"prepared dataset file {p} not found; create it with: "
                            f"{_prepare_hint(name, version)}")
    config_path = data_dir / "data_config.json"
    info = read_json(config_path, "dataset config", f"the JSON object {_prepare_hint(name, version)} writes")
    if not isinstance(info.get(f"{name}_{version}"), dict):
        raise UserError(f"{config_path} has no entry {name}_{version}; re-run: {_prepare_hint(name, version)}")
    info = info[f"{name}_{version}"]
    data = load_npy(data_path, "prepared data file")
    labels = load_npy(label_path, "prepared label file")
    if data.ndim != 3 or labels.ndim != 3 or len(data) != len(labels) or data.shape[1] != labels.shape[1]:
        raise UserError(f"{data_path} {data.shape} and {label_path} {labels.shape} do not match: "
                        f"expected (N, T, C) and (N, T, L)")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).any(axis=(1, 2)).sum())
        raise UserError(f"{data_path} holds NaN/inf in {bad} windows; re-run: {_prepare_hint(name, version)}")
    activity_index = info.get("activity_label_index", 0)
    column = activity_index if label_index is None else label_index
    if not 0 <= column < labels.shape[2]:
        raise UserError(f"-l {column}: {label_path} has label columns 0..{labels.shape[2] - 1}")
    act = labels[:, :, column].astype(np.int64)
    if (act != act[:, :1]).any():
        raise UserError(f"{label_path}: some windows mix labels in column {column}; expected one per window")
    names = info.get("activity_label") if column == activity_index else None
    names = list(names or range(int(act.max()) + 1))
    outside = (act[:, 0] < 0) | (act[:, 0] >= len(names))
    if outside.any():
        raise UserError(f"{label_path}: {int(outside.sum())} windows have labels outside 0..{len(names) - 1} "
                        f"in column {column} (e.g. {int(act[outside, 0][0])}); expected one of the "
                        f"{len(names)} classes of {config_path}")
    return Windows(name, version, data.astype(np.float32), act[:, 0], [str(n) for n in names], info)


def _union(parts):
    first = parts[0]
    for w in parts[1:]:
        if w.class_names != first.class_names or w.data.shape[1:] != first.data.shape[1:]:
            raise UserError(f"cannot join {first.name} and {w.name}: classes {first.class_names} vs "
                            f"{w.class_names}, windows {first.data.shape[1:]} vs {w.data.shape[1:]} "
                            f"(use a shared version such as 20_120_4c)")
    return Windows(",".join(w.name for w in parts), first.version,
                   np.concatenate([w.data for w in parts]), np.concatenate([w.activity for w in parts]),
                   first.class_names, {**first.info, "size": sum(len(w.data) for w in parts),
                                       "sources": [w.name for w in parts]})


def split_indices(n, seed, train_rate=0.8, val_rate=0.1):
    """Seeded permutation cut into train / validation / test index arrays. Pretraining and
    the classifier call this with the same seed and rates, so the test windows are never
    used for pretraining, augmentation or model selection."""
    perm = np.random.default_rng(seed).permutation(n)
    n_train, n_val = int(n * train_rate), int(n * val_rate)
    return perm[:n_train], perm[n_train:n_train + n_val], perm[n_train + n_val:]


def labelled_subset(train_idx, label_rate, seed):
    """The first `label_rate` share of a second seeded shuffle of the training indices."""
    n = max(1, int(len(train_idx) * label_rate))
    return np.random.default_rng(seed + 1).permutation(train_idx)[:n]
