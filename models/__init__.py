"""Backbone registry (timm's idea): every encoder is built by name behind one interface.

Contract for a backbone ``m = build_backbone(name, cfg, feature_num, seq_len)``:
  * ``m(x)`` with x of shape (B, T, C) returns ``(feats, pooled)``: per-step features
    (B, T, H) and a pooled vector (B, H);
  * ``m.num_features`` is H.
Heads, losses, embeddings and the classifier never ask which backbone they have.
"""
from typing import Callable, Dict

_REGISTRY: Dict[str, Callable] = {}


def register_backbone(name: str):
    def deco(factory):
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} registered twice")
        _REGISTRY[name] = factory
        return factory
    return deco


def list_backbones():
    _import_all()
    return sorted(_REGISTRY)


def build_backbone(name: str, cfg: dict, feature_num: int, seq_len: int):
    _import_all()
    if name not in _REGISTRY:
        raise KeyError(f"unknown backbone {name!r}; expected one of {sorted(_REGISTRY)}")
    return _REGISTRY[name](cfg, feature_num=feature_num, seq_len=seq_len)


def _import_all():
    # Registration happens in these modules; imported lazily so `models` stays cheap to import.
    from . import limu, mamba  # noqa: F401
