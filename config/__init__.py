"""Configuration: dataclass defaults, overridden by a JSON or YAML file, then by CLI flags.

The files beside this module hold the reference values of CrossHAR / LIMU-BERT; the
`*_small.json` files are the CPU-sized schedule. Unknown keys and wrong types are rejected,
so a typo in a config never silently falls back to a default.
"""
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from common.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parent


@dataclass
class TrainConfig:
    """What every training stage takes (classifier_train.json holds these values)."""
    seed: int = 3431
    batch_size: int = 128
    lr: float = 1e-3
    n_epochs: int = 100
    train_rate: float = 0.8         # the split is shared by pretraining and the classifier,
    val_rate: float = 0.1           # so the source test windows are never seen in pretraining


@dataclass
class PretrainConfig(TrainConfig):
    batch_size: int = 512
    n_epochs: int = 1600
    n_epochs_cl: int = 800          # the last n_epochs_cl epochs add the contrastive loss
    lambda_recon: float = 6.0
    lambda_cl: float = 1.0


ClassifierTrainConfig = TrainConfig


@dataclass
class MaskConfig:
    mask_ratio: float = 0.15
    mask_alpha: int = 6             # kept for LIMU-BERT compatibility; unused by span masking
    max_gram: int = 10
    mask_prob: float = 0.8
    replace_prob: float = 0.0


def read_file(path) -> dict:
    """Read a JSON or YAML mapping; one-line UserError on a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} not found (expected a JSON or YAML file)")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml
            obj = yaml.safe_load(text)
        else:
            obj = json.loads(text)
    except Exception as e:  # noqa: BLE001 - any parse error becomes one line
        raise UserError(f"config file {path} is not valid {path.suffix[1:] or 'JSON'}: {e}".splitlines()[0])
    if not isinstance(obj, dict):
        raise UserError(f"config file {path} must hold a mapping, got {type(obj).__name__}")
    return obj


def from_dict(cls, values: dict, source="config"):
    """Build dataclass `cls` from `values`, rejecting unknown keys and wrong types."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UserError(f"{source}: unknown key(s) {unknown}; expected some of {sorted(known)}")
    out = {}
    for k, v in values.items():
        want = known[k].type if isinstance(known[k].type, type) else type(known[k].default)
        if want is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, want) or (want is int and isinstance(v, bool)):
            raise UserError(f"{source}: key {k!r} must be {want.__name__}, got {v!r}")
        out[k] = v
    return cls(**out)


def load(cls, path):
    return from_dict(cls, read_file(path), source=str(path))


def load_model_config(path, key: str) -> dict:
    """One entry of a model config file (e.g. `limu_v1` of pretrain_model.json)."""
    entries = read_file(path)
    if key not in entries:
        raise UserError(f"{path} has no entry {key!r}; it has {sorted(entries)}")
    return dict(entries[key])


__all__ = ["PretrainConfig", "MaskConfig", "ClassifierTrainConfig", "CONFIG_DIR", "read_file",
           "from_dict", "load", "load_model_config", "asdict"]
