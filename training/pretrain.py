"""Hierarchical self-supervised pretraining (CrossHAR stage 1).

Phase 1 (the first n_epochs - n_epochs_cl epochs): masked reconstruction of both views.
Phase 2: lambda_recon x reconstruction + lambda_cl x NT-Xent between the two views.
Split first (seeded, shared with the classifier), then expand the training part only.
"""
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn as nn

from common.errors import UserError
from common.io import save_json, save_torch
from config import MaskConfig, PretrainConfig
from dataset.load import split_indices
from models import spec as model_spec
from models.heads import ContrastiveHead, ReconstructionHead

from . import augment
from .artifacts import load_checkpoint, new_id
from .distributed import World, gather_with_grad
from .history import History
from .losses import nt_xent, reconstruction_loss
from .loop import FitState, autocast, fit, make_generator, sharded_sums
from .masking import mask_batch


class PretrainModel(nn.Module):
    """Encoder (built from its spec) + reconstruction head + contrastive head; forward = the
    losses of a batch of views, which make_views() normalised with the encoder's own
    normalisation before masking them."""

    def __init__(self, spec, head_cfg):
        super().__init__()
        self.encoder = model_spec.build(spec, "encoder model_args")
        self.recon_head = ReconstructionHead(self.encoder.num_features, spec["feature_num"])
        self.cl_head = ContrastiveHead(self.encoder.num_features, **head_cfg)

    def forward(self, views, with_cl, gather=True):
        """views: two (masked, positions, targets) triples -> (recon loss, NT-Xent or 0).
        Under torchrun (gather=True) the projections of all ranks are gathered, so NT-Xent
        sees the global batch's negatives exactly as a single process would."""
        recon, projections = 0.0, []
        for masked, pos, target in views:
            feats, _ = self.encoder.encode(masked)
            recon = recon + reconstruction_loss(self.recon_head(feats, pos), target) / len(views)
            if with_cl:
                z = self.cl_head(feats)
                projections.append(gather_with_grad(z) if gather else z)
        cl = nt_xent(*projections, self.cl_head.temperature) if with_cl else torch.zeros((), device=recon.device)
        return recon, cl


def draw_views(x, generator, normalize, weak_per):
    """Raw windows -> the weak and the strong view, normalised (the encoder's normalize)."""
    return [normalize(augment.weak_view(x, generator, weak_per)), normalize(augment.strong_view(x, generator))]


def make_views(x, mask_cfg, generator, normalize, weak_per, views=None):
    """Raw windows -> both views (or x's pre-drawn `views`), then masked."""
    views = draw_views(x, generator, normalize, weak_per) if views is None else views
    return [mask_batch(v, mask_cfg, generator) for v in views]


def train_step(model, opt, x, mask_cfg, train_cfg, generator, with_cl, device, precision, normalize,
               views=None):
    """One optimisation step on raw windows x (or their pre-drawn views): views, masking,
    losses, backward, Adam."""
    with autocast(device, precision):
        recon, cl = model(make_views(x, mask_cfg, generator, normalize, train_cfg.weak_view, views), with_cl)
        loss = train_cfg.lambda_recon * recon + train_cfg.lambda_cl * cl if with_cl else recon
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return {"recon": recon, "cl": cl} if with_cl else {"recon": recon}


def compiled(module):
    """torch.compile for the training step: one graph per batch shape (full and last batch) and
    phase, not a dynamic-shape graph; where Inductor cannot build (no C++ compiler), the
    step runs eagerly with a warning instead of failing. Dropout inside compiled graphs
    draws from Inductor's generator: seeded by the same per-epoch seeds, so a run is
    reproducible, but its draws differ from an eager run's."""
    import torch._dynamo
    torch._dynamo.config.suppress_errors = True
    return torch.compile(module, dynamic=False)


def _without_epochs(config):
    """A run may be resumed with a longer schedule; everything else must match."""
    return {**config, "train": {k: v for k, v in config["train"].items() if k != "n_epochs"}}


def run_pretraining(*, windows, spec, head_cfg, train_cfg: PretrainConfig, mask_cfg: MaskConfig,
                    augmentation, device, precision, run_dir, resolved_config, world=World(),
                    compile=False, tensorboard=False):
    """compile=True runs the training step's model under torch.compile (see compiled()).
    The caller holds the run folder's lock (rank 0)."""
    run_dir = Path(run_dir)
    say = print if world.main else (lambda *a, **k: None)
    n = len(windows.data)
    train_idx, val_idx, _ = split_indices(n, train_cfg.seed, train_cfg.train_rate, train_cfg.val_rate)
    if len(train_idx) < 2 or len(val_idx) < 1:
        raise UserError(f"{windows.name}: {n} windows are too few for a train/validation split")
    data = torch.as_tensor(windows.data, device=device)
    # the expansion and the validation views/masks are drawn once, from the seed alone
    x_train = augment.expand_training_set(data[torch.as_tensor(train_idx, device=device)], augmentation,
                                          make_generator(device, train_cfg.seed))
    torch.manual_seed(train_cfg.seed)
    model = PretrainModel(spec, head_cfg).to(device)
    normalize = model.encoder.normalize
    val_views = make_views(data[torch.as_tensor(val_idx, device=device)], mask_cfg,
                           make_generator(device, train_cfg.seed + 1), normalize, train_cfg.weak_view)
    # views "once" (the published code): one weak and one strong view per training window for
    # the whole run, masks still drawn per batch; "batch": both views drawn afresh per batch
    fixed_views = (draw_views(x_train, make_generator(device, train_cfg.seed + 2), normalize, train_cfg.weak_view)
                   if train_cfg.views == "once" else None)
    opt = torch.optim.Adam(model.parameters(), lr=train_cfg.lr)
    phase2_start = train_cfg.n_epochs - train_cfg.n_epochs_cl
    state = FitState()

    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if last_path.exists():
        ckpt = load_checkpoint(last_path, "pretrain_state", map_location=device, own_run=True)
        if _without_epochs(ckpt["config"]) != _without_epochs(resolved_config):
            raise UserError(f"{run_dir} holds a run with another configuration; pass --fresh to "
                            f"overwrite it, or -s NAME for a new run")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        state = FitState(**ckpt["fit_state"])
        say(f"resuming {run_dir} after epoch {state.epoch}/{train_cfg.n_epochs}")
    if state.epoch >= train_cfg.n_epochs:
        say(f"{run_dir}: already complete ({state.epoch} epochs); best epoch {state.best_epoch + 1}")
        return state
    say(f"pretraining {spec['backbone']} on {windows.name}: {len(x_train)} training windows "
        f"({augmentation}), {len(val_idx)} validation windows, device {device}, {precision}"
        + (f", {world.size} processes" if world.distributed else ""))
    # phase 1 leaves the contrastive head unused: DDP must be told
    ddp = (torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
           if world.distributed else model)
    train_module = compiled(ddp) if compile else ddp

    def step(idx, epoch, gen):
        model.train()
        views = None if fixed_views is None else [v[idx] for v in fixed_views]
        return train_step(train_module, opt, x_train[idx], mask_cfg, train_cfg, gen, epoch >= phase2_start,
                          device, precision, normalize, views)

    @torch.no_grad()
    def validate(epoch):
        model.eval()
        with_cl = epoch >= phase2_start

        def batch_values(start, stop):
            part = [tuple(t[start:stop] for t in v) for v in val_views]
            if with_cl and stop - start < 2:
                return None
            with autocast(device, precision):
                recon, cl = model(part, with_cl, gather=False)   # each val batch is whole on one rank
            return [recon, cl, 1.0]

        recon, cl, count = sharded_sums(batch_values, len(val_idx), train_cfg.batch_size, 3, world, device)
        recon, cl = recon / max(count, 1), cl / max(count, 1)
        loss = train_cfg.lambda_recon * recon + train_cfg.lambda_cl * cl if with_cl else recon
        return {"loss": loss, "recon": recon, "cl": cl}

    def on_best(epoch):
        if not world.main:
            return
        # a new id for every new best: embeddings made from an earlier one are refused
        save_torch({"kind": "encoder", "id": new_id(), "model_args": spec,
                    "state": model.encoder.state_dict(),
                    "heads": {"recon": model.recon_head.state_dict(), "cl": model.cl_head.state_dict()},
                    "epoch": epoch + 1, "val_loss": state.best_val, "config": resolved_config}, best_path)

    def on_epoch(st):
        # random draws derive from (seed, epoch, rank) (loop.epoch_seed): no RNG state to save
        save_torch({"kind": "pretrain_state", "model_args": spec, "model": model.state_dict(),
                    "optimizer": opt.state_dict(), "fit_state": asdict(st), "config": resolved_config},
                   last_path)

    history = None
    if world.main:
        save_json(resolved_config, run_dir / "config.json")
        history = History(run_dir, resume_epoch=state.epoch, tensorboard=tensorboard)
    try:
        state = fit(state=state, n_epochs=train_cfg.n_epochs, n_train=len(x_train),
                    batch_size=train_cfg.batch_size, seed=train_cfg.seed, device=device, step=step,
                    validate=validate, on_best=on_best, on_epoch=on_epoch, reset_best_at=phase2_start,
                    world=world, desc="pretrain", history=history)
    finally:
        if history:
            history.close()     # the curve, also for an interrupted run
    rate = state.windows_seen / max(state.train_seconds, 1e-9)
    say(f"done: best epoch {state.best_epoch + 1} (val {state.best_val:.4f}); "
        f"{rate:.0f} training windows/s over this run's epochs; encoder at {best_path}")
    return state
