"""Configuration: dataclass defaults, overridden by a JSON or YAML file, then by CLI flags.

The files beside this module hold the reference values of CrossHAR / LIMU-BERT; the
`*_small.json` files are the CPU-sized schedule. Unknown keys, wrong types and values that
cannot train (0 epochs, a negative batch, NaN learning rate, rates that leave no test
split...) are rejected on load, so a typo never silently falls back to a default or runs.
"""
import json
import math
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

    def problems(self):
        yield from _at_least(self, seed=0, batch_size=1, n_epochs=1)
        if not (math.isfinite(self.lr) and self.lr > 0):
            yield f"lr must be a finite number > 0, got {self.lr}"
        yield from _open_unit(self, "train_rate", "val_rate")
        if self.train_rate + self.val_rate >= 1:
            yield (f"train_rate + val_rate must be < 1 (the rest is the test split), got "
                   f"{self.train_rate} + {self.val_rate}")


@dataclass
class PretrainConfig(TrainConfig):
    batch_size: int = 512
    n_epochs: int = 1600
    n_epochs_cl: int = 800          # the last n_epochs_cl epochs add the contrastive loss
    lambda_recon: float = 6.0
    lambda_cl: float = 1.0
    # The published code's choices, the defaults since they measured better (README, "Side by side"):
    weak_view: str = "step"         # the weak view's N(2, 1.1) factor per time step, shared by the channels
    #                                 ("channel": per channel, which instance normalisation cancels but for sign)
    views: str = "once"             # both contrastive views drawn once per run, or afresh per batch ("batch")

    def problems(self):
        yield from super().problems()
        yield from _one_of(self, weak_view=("channel", "step"), views=("batch", "once"))
        if not 0 <= self.n_epochs_cl <= self.n_epochs:
            yield f"n_epochs_cl must be in 0..n_epochs ({self.n_epochs}), got {self.n_epochs_cl}"
        for key in ("lambda_recon", "lambda_cl"):
            if not (math.isfinite(getattr(self, key)) and getattr(self, key) >= 0):
                yield f"{key} must be a finite number >= 0, got {getattr(self, key)}"


@dataclass
class ClassifierTrainConfig(TrainConfig):
    # the labelled training windows: "windows" = the label rate's share of the distinct training
    # windows; "expanded" = that share of the training windows expanded by -am (the published
    # code's count: copies of more distinct windows, so more labels)
    label_pool: str = "windows"
    expand_labelled: bool = False   # also train on the -am expansion of every labelled window

    def problems(self):
        yield from super().problems()
        yield from _one_of(self, label_pool=("windows", "expanded"))
        if self.label_pool == "expanded" and self.expand_labelled:
            yield "label_pool 'expanded' already samples expanded windows: set expand_labelled false"


@dataclass
class MaskConfig:
    mask_ratio: float = 0.15
    max_gram: int = 10
    mask_prob: float = 0.8
    replace_prob: float = 0.0

    def problems(self):
        yield from _open_unit(self, "mask_ratio")
        yield from _at_least(self, max_gram=1)
        for key in ("mask_prob", "replace_prob"):
            if not 0 <= getattr(self, key) <= 1:
                yield f"{key} must be in [0, 1], got {getattr(self, key)}"


def _at_least(cfg, **minimum):
    for key, low in minimum.items():
        if getattr(cfg, key) < low:
            yield f"{key} must be >= {low}, got {getattr(cfg, key)}"


def _one_of(cfg, **choices):
    for key, allowed in choices.items():
        if getattr(cfg, key) not in allowed:
            yield f"{key} must be one of {', '.join(allowed)}, got {getattr(cfg, key)!r}"


def _open_unit(cfg, *keys):
    for key in keys:
        if not 0 < getattr(cfg, key) < 1:        # also false for NaN
            yield f"{key} must be in (0, 1), got {getattr(cfg, key)}"


def read_file(path) -> dict:
    """Read a JSON or YAML mapping; one-line UserError on a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} not found (expected a JSON or YAML file)")
    try:
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml
            obj = yaml.safe_load(text)
        else:
            obj = json.loads(text)
    except OSError as e:
        raise UserError(f"config file {path} could not be read ({e.strerror}); expected a JSON or YAML file")
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
    cfg = cls(**out)
    check(cfg, source)
    return cfg


def check(cfg, source="config"):
    """Refuse values that cannot train, in one line naming the first problem and the file."""
    problem = next(iter(cfg.problems()), None)
    if problem:
        raise UserError(f"{source}: {problem}")


def load(cls, path):
    return from_dict(cls, read_file(path), source=str(path))


def load_model_config(path, key: str) -> dict:
    """One entry of a model config file (e.g. `limu_v1` of pretrain_model.json)."""
    entries = read_file(path)
    if not isinstance(entries.get(key, {}), dict):
        raise UserError(f"{path}: entry {key!r} must be a mapping of model settings")
    if key not in entries:
        raise UserError(f"{path} has no entry {key!r}; it has {sorted(entries)}")
    return dict(entries[key])


__all__ = ["PretrainConfig", "MaskConfig", "ClassifierTrainConfig", "CONFIG_DIR", "read_file",
           "from_dict", "check", "load", "load_model_config", "asdict"]
