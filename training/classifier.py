"""The classifier stage's training and evaluation: a classifier on a few labelled source
windows (chosen on validation loss, never on test), scored on the source test split and on a
target dataset."""
import numpy as np
import torch
import torch.nn.functional as F

from common.errors import UserError
from config import ClassifierTrainConfig
from dataset.load import labelled_subset, split_indices

from .distributed import World
from .loop import EVAL_BATCH, FitState, autocast, batched_eval, fit, sharded_sums
from .metrics import classification_metrics


def predict(model, x, device, precision):
    model.eval()
    return batched_eval(model, x, device, precision)


def train_classifier(*, model, x, y, train_idx, val_idx, cfg: ClassifierTrainConfig, device,
                     precision, world=World(), desc="classifier", history=None):
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

        total, count = sharded_sums(batch_values, len(va), EVAL_BATCH, 2, world, device)
        return {"loss": total / max(count, 1)}

    def on_best(epoch):
        best["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    state = fit(state=FitState(), n_epochs=cfg.n_epochs, n_train=len(tr), batch_size=cfg.batch_size,
                seed=cfg.seed, device=device, step=step, validate=validate, on_best=on_best,
                world=world, desc=desc, history=history)
    model.load_state_dict(best["state"])
    return state


def classifier_splits(n, split, label_rate, label_seed, name):
    """Training, labelled training, validation and test indices. `split` = (seed, train_rate,
    val_rate) of the encoder's pretraining, so its test windows were never seen in pretraining."""
    train_idx, val_idx, test_idx = split_indices(n, *split)
    if len(val_idx) == 0 or len(test_idx) == 0:
        raise UserError(f"{name}: {n} windows are too few for train/validation/test splits")
    return train_idx, labelled_subset(train_idx, label_rate, label_seed), val_idx, test_idx


def labelled_windows(data, y, train_idx, label_rate, cfg, augmentation, device):
    """The raw labelled training windows and their labels when the classifier config expands
    the labelled set, else None (the classifier trains on the labelled rows as they are). Only
    training-split windows are expanded (`augmentation`, seeded by the classifier's seed), so
    validation and test windows stay raw and unseen.
      label_pool "expanded": the label rate's share of the expanded training windows (the
        published code's count: copies of more distinct windows than that share of them);
      expand_labelled: the label rate's share of the distinct windows, each with its copies."""
    from .augment import expand_training_set
    from .loop import make_generator
    if cfg.label_pool == "windows" and not cfg.expand_labelled:
        return None
    idx = train_idx if cfg.label_pool == "expanded" else labelled_subset(train_idx, label_rate, cfg.seed)
    x = expand_training_set(data[torch.as_tensor(idx, device=device)], augmentation,
                            make_generator(device, cfg.seed + 2))
    labels = y[torch.as_tensor(np.tile(idx, len(x) // len(idx)), device=device)]
    if cfg.label_pool == "windows":
        return x, labels
    rows = torch.as_tensor(labelled_subset(np.arange(len(x)), label_rate, cfg.seed), device=device)
    return x[rows], labels[rows]


def evaluate(model, x, y_true, n_classes, device, precision):
    pred = predict(model, x, device, precision).argmax(1).cpu().numpy()
    return classification_metrics(np.asarray(y_true), pred, n_classes)


def make_label_tensor(windows, class_names, device):
    if windows.class_names != class_names:
        raise UserError(f"{windows.name}_{windows.version} has classes {windows.class_names}; the "
                        f"classifier was trained on {class_names} (use the 4-class versions, "
                        f"-dv 20_120_4c, across datasets)")
    return torch.as_tensor(windows.activity, device=device)
