"""The one model description a checkpoint stores (its `model_args`) and the one builder.

A spec is a plain dict, built here and nowhere else:
  * encoder:     {"type": "encoder", "backbone", "version", "cfg", "feature_num", "seq_len", "norm"}
  * transformer: CrossHAR's classifier on per-step embeddings of an encoder;
  * supervised:  an encoder spec plus a head, trained end to end on raw windows.
`build(spec)` rebuilds the module; every stage does, so no stage assembles a model by hand.
The encoder owns its input normalisation (`norm`): it takes raw windows (acc m/s^2, gyro rad/s).
"""
import torch
import torch.nn as nn

from common.errors import UserError

from . import build_backbone
from .heads import SupervisedModel, TransformerClassifier

NORMS = ("instance", "limu")
HEADS = ("linear", "transformer")


def instance_norm(x, eps=1e-5):
    """Per-window, per-channel normalisation over time (InstanceNorm1d without affine)."""
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, unbiased=False, keepdim=True)
    return (x - mean) * torch.rsqrt(var + eps)


def normalize(x, how="instance"):
    """'instance' (CrossHAR): per window and channel, which also removes the gravity offset and
    with it the device orientation (sitting, standing and lying look alike); 'limu'
    (LIMU-BERT's): acc / 9.8 only, orientation kept."""
    if how == "instance":
        return instance_norm(x)
    if how == "limu":
        return torch.cat([x[..., :3] / 9.8, x[..., 3:]], dim=-1)
    raise ValueError(f"unknown normalisation {how!r}; expected one of {NORMS}")


class Encoder(nn.Module):
    """A backbone behind its input normalisation: raw windows (B, T, C) -> (feats (B, T, H),
    pooled (B, H)). Pretraining masks between the two halves, so they are apart:
    forward(x) == encode(normalize(x))."""

    def __init__(self, backbone, norm):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown normalisation {norm!r}; expected one of {NORMS}")
        self.backbone, self.norm = backbone, norm
        self.num_features = backbone.num_features

    def normalize(self, x):
        return normalize(x, self.norm)

    def encode(self, x):
        """The backbone on windows already normalised (and masked) by the caller."""
        return self.backbone(x)

    def forward(self, x):
        return self.backbone(self.normalize(x))


def encoder_spec(backbone, version, cfg, feature_num, seq_len, norm="instance"):
    return {"type": "encoder", "backbone": backbone, "version": version, "cfg": dict(cfg),
            "feature_num": int(feature_num), "seq_len": int(seq_len), "norm": norm}


def transformer_spec(in_features, seq_len, n_classes, cfg):
    return {"type": "transformer", "in_features": int(in_features), "seq_len": int(seq_len),
            "n_classes": int(n_classes), "cfg": dict(cfg)}


def supervised_spec(encoder, n_classes, head, classifier_cfg):
    return {"type": "supervised", "encoder": encoder, "n_classes": int(n_classes), "head": head,
            "classifier_cfg": dict(classifier_cfg)}


def encoder_of(spec):
    """The encoder spec inside a spec (None for a classifier on embeddings)."""
    return {"encoder": spec, "supervised": spec.get("encoder")}.get(spec.get("type"))


def _build(s):
    if s["type"] == "encoder":
        return Encoder(build_backbone(s["backbone"], s["cfg"], s["feature_num"], s["seq_len"]), s["norm"])
    if s["type"] == "transformer":
        return TransformerClassifier(s["in_features"], s["n_classes"], s["seq_len"], **s["cfg"])
    if s["type"] == "supervised":
        enc = s["encoder"]
        return SupervisedModel(_build(enc), s["n_classes"], s["head"], enc["seq_len"], s["classifier_cfg"])
    raise ValueError(f"unknown model type {s['type']!r}")


def build(spec, source):
    """The module a spec describes; a malformed spec is one UserError line naming `source`."""
    try:
        return _build(spec)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UserError(f"{source}: cannot build the model ({type(e).__name__}: {e})") from None


def check_input(spec, seq_len, channels, what):
    """Windows must have the length and channel count the model was built for."""
    enc = encoder_of(spec)
    if (seq_len, channels) != (enc["seq_len"], enc["feature_num"]):
        raise UserError(f"{what} has windows of {seq_len} steps x {channels} channels; the model "
                        f"expects {enc['seq_len']} x {enc['feature_num']}")
