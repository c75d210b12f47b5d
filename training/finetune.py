"""Stages 2-4: embeddings from a pretrained encoder, a classifier on a few labelled source
windows (chosen on validation loss, never on test), and evaluation on a target dataset."""
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from config import ClassifierTrainConfig
from dataset.load import labelled_subset, split_indices
from models import build_backbone
from models.heads import SupervisedModel, TransformerClassifier

from .augment import normalize
from .checkpoint import load_checkpoint
from .errors import UserError
from .distributed import World
from .loop import FitState, autocast, fit, sharded_sums
from .metrics import classification_metrics

EMBED_BATCH = 512


def build_encoder(ckpt, device):
    a = ckpt["model_args"]
    enc = build_backbone(a["backbone"], a["cfg"], a["feature_num"], a["seq_len"])
    enc.load_state_dict(ckpt["state"])
    return enc.to(device).eval()


def check_compatible(windows, model_args, what):
    """A target must have the channel count and window length the model was built for."""
    _, seq_len, channels = windows.data.shape
    if channels != model_args["feature_num"] or seq_len != model_args["seq_len"]:
        raise UserError(f"{windows.name}_{windows.version} has windows of {seq_len} steps x "
                        f"{channels} channels; the {what} expects {model_args['seq_len']} x "
                        f"{model_args['feature_num']}")


def normalized_windows(windows, device, model_args):
    """The windows as the model expects them (its model_args say which normalisation)."""
    return normalize(torch.as_tensor(windows.data, device=device), model_args.get("norm", "instance"))


@torch.no_grad()
def batched_eval(fn, x, device, precision, batch_size=EMBED_BATCH):
    """fn over x in batches, without gradients, results concatenated in float32."""
    out = []
    for start in range(0, len(x), batch_size):
        with autocast(device, precision):
            out.append(fn(x[start:start + batch_size]).float())
    return torch.cat(out)


def embed(encoder, x, device, precision):
    """Per-step features (N, T, H) of normalised windows x, in float32 on the device."""
    return batched_eval(lambda b: encoder(b)[0], x, device, precision)


def predict(model, x, device, precision):
    model.eval()
    return batched_eval(model, x, device, precision)


def train_classifier(*, model, x, y, train_idx, val_idx, cfg: ClassifierTrainConfig, device,
                     precision, world=World(), desc="classifier"):
    """Cross-entropy training on x[train_idx]; returns the fit state and leaves the model
    with the weights of the lowest validation loss (the test part is not touched here)."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world.distributed else model
    tr = torch.as_tensor(train_idx, device=device)
    va = torch.as_tensor(val_idx, device=device)
    best = {}

    def step(idx, epoch, gen):
        model.train()
        with autocast(device, precision):
            loss = F.cross_entropy(ddp(x[tr[idx]]).float(), y[tr[idx]])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss}

    @torch.no_grad()
    def validate(epoch):
        model.eval()

        def batch_values(start, stop):
            with autocast(device, precision):
                logits = model(x[va[start:stop]]).float()
            return [F.cross_entropy(logits, y[va[start:stop]], reduction="sum"), stop - start]

        total, count = sharded_sums(batch_values, len(va), EMBED_BATCH, 2, world, device)
        return {"loss": total / max(count, 1)}

    def on_best(epoch):
        best["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    state = fit(state=FitState(), n_epochs=cfg.n_epochs, n_train=len(tr), batch_size=cfg.batch_size,
                seed=cfg.seed, device=device, step=step, validate=validate, on_best=on_best,
                world=world, desc=desc)
    model.load_state_dict(best["state"])
    return state


def classifier_splits(n, split, label_rate, label_seed, name):
    """Labelled training / validation / test indices. `split` = (seed, train_rate, val_rate)
    of the encoder's pretraining, so its test windows were never seen in pretraining."""
    train_idx, val_idx, test_idx = split_indices(n, *split)
    if len(val_idx) == 0 or len(test_idx) == 0:
        raise UserError(f"{name}: {n} windows are too few for train/validation/test splits")
    return labelled_subset(train_idx, label_rate, label_seed), val_idx, test_idx


def evaluate(model, x, y_true, n_classes, device, precision):
    pred = predict(model, x, device, precision).argmax(1).cpu().numpy()
    return classification_metrics(np.asarray(y_true), pred, n_classes)


def build_classifier(a, device):
    """Rebuild a classifier (embedding or supervised) from its checkpoint's model_args `a`."""
    if a["type"] == "transformer":
        model = TransformerClassifier(a["in_features"], a["n_classes"], a["seq_len"], **a["cfg"])
    else:
        model = SupervisedModel(build_backbone(a["backbone"], a["cfg"], a["feature_num"], a["seq_len"]),
                                a["n_classes"], a["head"], a["seq_len"], a.get("classifier_cfg"))
    return model.to(device)


def model_inputs(ckpt, windows, device, precision):
    """What a classifier checkpoint consumes for `windows`: embeddings from its encoder,
    or the normalised raw windows for a supervised model."""
    if ckpt["model_args"]["type"] == "supervised":
        check_compatible(windows, ckpt["model_args"], "supervised model")
        return normalized_windows(windows, device, ckpt["model_args"])
    enc_ckpt = load_checkpoint(Path(ckpt["encoder_path"]), "encoder", map_location=device)
    check_compatible(windows, enc_ckpt["model_args"], "encoder")
    x = normalized_windows(windows, device, enc_ckpt["model_args"])
    return embed(build_encoder(enc_ckpt, device), x, device, precision)


def make_label_tensor(windows, class_names, device):
    if windows.class_names != class_names:
        raise UserError(f"{windows.name}_{windows.version} has classes {windows.class_names}; the "
                        f"classifier was trained on {class_names} (use the 4-class versions, "
                        f"-dv 20_120_4c, across datasets)")
    return torch.as_tensor(windows.activity, device=device)


__all__ = ["build_encoder", "check_compatible", "embed", "train_classifier", "classifier_splits",
           "evaluate", "build_classifier", "model_inputs", "make_label_tensor"]
