"""The training loop every stage shares: device, precision, seeding, mini-batches over
device-resident tensors, per-epoch validation, best-by-validation selection, progress and the
per-epoch history (training/history.py); and evaluation in batches without gradients."""
import contextlib
import math
import time
from dataclasses import dataclass

import torch
from tqdm import tqdm

from .distributed import World, all_reduce_sum, shard
from common.errors import UserError

PRECISIONS = ("auto", "fp32", "bf16")
EVAL_BATCH = 512


def resolve_device(gpu=None):
    """`-g N` picks cuda:N when CUDA exists; without CUDA everything runs on the CPU."""
    if torch.cuda.is_available():
        index = int(gpu) if gpu not in (None, "") else 0
        if index >= torch.cuda.device_count():
            raise UserError(f"-g {gpu}: only {torch.cuda.device_count()} CUDA device(s) visible")
        return torch.device(f"cuda:{index}")
    if gpu not in (None, ""):
        print(f"note: -g {gpu} asked for a GPU but CUDA is not available; running on CPU")
    return torch.device("cpu")


def cpu_has_native_bf16():
    try:
        return bool(torch.backends.cpu.get_cpu_capability() in ("AVX512", "AMX")
                    and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # noqa: BLE001 - older builds lack one of these probes
        return False


def resolve_precision(precision, device):
    """'auto': bf16 autocast on CUDA and on CPUs with native bf16, fp32 elsewhere."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision!r}: expected one of {PRECISIONS}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" or cpu_has_native_bf16() else "fp32"
    return precision


def autocast(device, precision):
    """Matmuls in bf16 when asked; parameters, losses and optimiser state stay fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_generator(device, seed):
    """A seeded generator on the training device (draws stay on the device)."""
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def epoch_seed(seed, epoch, rank=0):
    """Every random draw of an epoch derives from (seed, epoch, rank): a resumed run draws
    exactly what an uninterrupted one would, with no RNG state to carry in checkpoints."""
    return (seed * 1_000_003 + epoch * 1_009 + rank * 7_919) % (2**63 - 1)


def batches(n, batch_size, order=None, world=World(), min_batch=2):
    """Index tensors of a shuffled (order generator given, shared by all ranks) or ordered
    range(n); each rank gets its shard of every global batch. Training drops a last batch
    smaller than `min_batch` per rank (BatchNorm needs two samples)."""
    if order is not None:
        perm = torch.randperm(n, generator=order, device=order.device)
    else:
        perm = torch.arange(n)
    for start in range(0, n, batch_size):
        idx = perm[start:start + batch_size]
        # decided on the global batch, so every rank stops at the same step (DDP needs that)
        if order is not None and len(idx) < min(min_batch * world.size, n):
            break
        if order is not None:       # equal shards: the NT-Xent gather needs equal sizes
            idx = idx[: len(idx) - len(idx) % world.size]
        yield shard(idx, world)


@dataclass
class FitState:
    epoch: int = 0                 # epochs completed
    best_val: float = math.inf
    best_epoch: int = -1
    train_seconds: float = 0.0
    windows_seen: int = 0


def fit(*, state, n_epochs, n_train, batch_size, seed, device, step, validate, on_best=None,
        on_epoch=None, reset_best_at=None, world=World(), desc="train", history=None):
    """Run epochs state.epoch..n_epochs-1.

    step(idx, epoch, generator) -> dict of scalar tensors (losses of this rank's batch shard);
    validate(epoch) -> dict with 'loss' (the selection criterion; equal on all ranks);
    on_best(epoch) keeps the selected model (called on every rank: validation losses agree);
    on_epoch(state) saves the resumable state (rank 0 only), after history.log() has
    recorded the epoch (rank 0; a resume drops rows after the epoch it resumes from).
    The best validation loss is reset at epoch `reset_best_at` (a new training phase).
    """
    bar = tqdm(range(state.epoch, n_epochs), desc=desc, initial=state.epoch, total=n_epochs,
               dynamic_ncols=True, disable=not world.main)
    for epoch in bar:
        if epoch == reset_best_at:
            state.best_val, state.best_epoch = math.inf, -1
        order = make_generator(device, epoch_seed(seed, epoch))            # shared by ranks
        gen = make_generator(device, epoch_seed(seed, epoch, world.rank + 1))  # this rank's draws
        torch.manual_seed(epoch_seed(seed, epoch, world.rank + 1))          # dropout
        sums, count, windows, t0 = {}, 0, 0, time.perf_counter()
        for idx in batches(n_train, batch_size, order, world):
            logs = step(idx, epoch, gen)
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v.detach()
            count += 1
            windows += len(idx) * world.size
        train_seconds = time.perf_counter() - t0
        state.train_seconds += train_seconds
        state.windows_seen += windows
        train = {k: float(v) / max(count, 1) for k, v in sums.items()}
        val = validate(epoch)
        if val["loss"] < state.best_val:
            state.best_val, state.best_epoch = float(val["loss"]), epoch
            if on_best:
                on_best(epoch)
        state.epoch = epoch + 1
        if history and world.main:
            history.log(epoch + 1, train, val, time.perf_counter() - t0, train_seconds, windows)
        if on_epoch and world.main:
            on_epoch(state)
        bar.set_postfix({**{k: f"{v:.4f}" for k, v in train.items()},
                         "val": f"{val['loss']:.4f}", "best": state.best_epoch + 1})
    bar.close()
    return state


def sharded_sums(batch_values, n, batch_size, n_values, world, device):
    """Sum batch_values(start, stop) -> list of n_values floats (or None to skip) over fixed
    validation batches; batch i is evaluated on rank i % W and the sums are reduced over
    ranks, so every rank gets the single-process numbers."""
    sums = [0.0] * n_values
    for i, start in enumerate(range(0, n, batch_size)):
        if i % world.size == world.rank:
            values = batch_values(start, min(n, start + batch_size))
            if values is not None:
                sums = [a + float(b) for a, b in zip(sums, values)]
    return all_reduce_sum(sums, device) if world.distributed else sums




@torch.no_grad()
def batched_eval(fn, x, device, precision, batch_size=EVAL_BATCH):
    """fn over x in batches, without gradients, results concatenated in float32."""
    out = []
    for start in range(0, len(x), batch_size):
        with autocast(device, precision):
            out.append(fn(x[start:start + batch_size]).float())
    return torch.cat(out)


def embed(encoder, x, device, precision):
    """Per-step features (N, T, H) of raw windows x (the encoder normalises them), float32."""
    encoder.eval()
    return batched_eval(lambda b: encoder(b)[0], x, device, precision)
