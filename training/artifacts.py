"""What each artifact holds, checked when it is loaded, and the lineage that ties them.

Every artifact gets an id when it is written (a random hex string stored inside it) and
records the id and the path of what it was made from, the path relative to itself, so it
resolves from any working directory:
    encoder      saved/pretrain_<run>/best.pt     pretrain.py
    embedding    embed/<run>__<data>.npz          embedding.py       <- encoder
    classifier   saved/<kind>_<run>_lr<r>/model.pt  classifier.py    <- encoder, embedding
    result       results/<...>_to_<target>.json   cross_dataset_test.py <- classifier, encoder
A --supervised classifier has no predecessor. Each stage verifies what it loads against that
record and refuses a mismatch in one line that says which stage to rerun; checkpoints are
loaded with weights_only=True and models are rebuilt from their stored spec (model_args).
"""
import json
import os
import uuid
from pathlib import Path

import numpy as np

from common.errors import UserError
from common.io import atomic_write, load_npz, load_torch, read_json
from common.lock import refuse_if_held
from models import spec as model_spec

KEYS = {"encoder": ("id", "model_args", "state", "epoch", "config"),
        "pretrain_state": ("model_args", "model", "optimizer", "fit_state", "config"),
        "classifier": ("id", "model_args", "state", "class_names", "run", "encoder", "embedding",
                       "source_test", "config")}
MADE_BY = {"encoder": "pretrain.py", "pretrain_state": "pretrain.py", "classifier": "classifier.py"}


def new_id():
    return uuid.uuid4().hex


def ref(path, artifact_id, holder_dir):
    """The record of a predecessor: its path relative to the folder of the artifact that holds
    the record, and its id."""
    return {"path": os.path.relpath(Path(path).resolve(), Path(holder_dir).resolve()), "id": artifact_id}


def resolve(record, holder_dir):
    return Path(os.path.normpath(Path(holder_dir) / record["path"]))


def load_checkpoint(path, kind, map_location="cpu", own_run=False):
    """Load and check a checkpoint of `kind`; any problem is one UserError line naming the file.
    A run another process is still writing is refused (own_run: the caller holds its lock)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{kind} checkpoint {path} not found; expected one written by {MADE_BY[kind]}")
    if not own_run:
        refuse_if_held(path.parent)
    ckpt = load_torch(path, f"{kind} checkpoint", map_location)
    if "kind" not in ckpt:
        raise UserError(f"checkpoint {path} is not a CrossHAR-Mamba checkpoint")
    if ckpt["kind"] != kind:
        raise UserError(f"checkpoint {path} is a {ckpt['kind']!r} checkpoint; expected {kind!r}")
    missing = [k for k in KEYS[kind] if k not in ckpt]
    if missing:
        raise UserError(f"checkpoint {path} lacks {', '.join(missing)}; expected the {kind} checkpoint "
                        f"written by this version of {MADE_BY[kind]} (rerun it)")
    return ckpt


def build_model(ckpt, path, device):
    """The model a checkpoint's spec describes, with its weights, on `device`."""
    model = model_spec.build(ckpt["model_args"], path)
    try:
        model.load_state_dict(ckpt["state"])
    except (RuntimeError, TypeError, AttributeError) as e:
        raise UserError(f"checkpoint {path}: its weights do not fit its model_args "
                        f"({str(e).splitlines()[0]})") from None
    return model.to(device)


def save_embedding(path, features, encoder_path, encoder, windows):
    meta = {"id": new_id(), "encoder": ref(encoder_path, encoder["id"], Path(path).parent),
            "dataset": windows.name, "version": windows.version, "n": len(features)}
    atomic_write(path, lambda f: np.savez(f, features=features, meta=json.dumps(meta)))


def load_embedding(path, windows, rerun):
    """(features, meta) of an embedding file made for exactly these windows."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"embedding file {path} not found; run {rerun} first")
    refuse_if_held(path)
    z = load_npz(path, ["features", "meta"], "embedding file")
    try:
        meta = json.loads(str(z["meta"]))
        made_for = (meta["dataset"], meta["version"], int(meta["n"]), meta["encoder"]["id"])
    except (ValueError, KeyError, TypeError):
        raise UserError(f"embedding file {path} has no readable record of its encoder; re-run {rerun}") from None
    features = z["features"]
    want = (windows.name, windows.version, len(windows.data))
    if made_for[:3] != want or features.ndim != 3 or len(features) != want[2]:
        raise UserError(f"embedding file {path} holds {len(features)} windows of {made_for[0]}_{made_for[1]}; "
                        f"{windows.name}_{windows.version} has {want[2]}: re-run {rerun}")
    return features, meta


def verify(record, artifact, holder, path, rerun):
    """Refuse `holder` if it was not made from the artifact now at `path` (that was rerun or
    extended since, or `holder` was copied from another run)."""
    if record["id"] != artifact["id"]:
        raise UserError(f"{holder} was not made from the encoder now at {path} (rerun or extended "
                        f"since, or a file of another run); re-run {rerun}")


def classifier_encoder(path, clf, map_location, rerun):
    """(path, checkpoint) of the encoder a classifier was trained on, verified; None for a
    --supervised model (its encoder is inside it)."""
    if clf["encoder"] is None:
        return None, None
    enc_path = resolve(clf["encoder"], Path(path).parent)
    if not enc_path.is_file():
        raise UserError(f"{enc_path}, the encoder {path} was trained on, is gone; re-run {rerun}")
    enc = load_checkpoint(enc_path, "encoder", map_location)
    verify(clf["encoder"], enc, path, enc_path, rerun)
    return enc_path, enc


def check_result_slot(json_path, lineage, fresh):
    """A result never silently replaces the result of another classifier or encoder."""
    if fresh or not Path(json_path).exists():
        return
    old = read_json(json_path, "earlier result", "a result JSON (pass --fresh to replace it)")
    ids = {k: (v or {}).get("id") for k, v in lineage.items()}
    if {k: (old.get("lineage", {}).get(k) or {}).get("id") for k in ids} != ids:
        raise UserError(f"{json_path} holds the result of another classifier or encoder; pass --fresh "
                        f"to replace it, or --results-dir DIR to keep both")
