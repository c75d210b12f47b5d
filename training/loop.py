"""The training loop every stage shares: device, precision, seeding, mini-batches over
device-resident tensors, per-epoch validation, best-by-validation selection, progress."""
import contextlib
import math
import time
from dataclasses import asdict, dataclass

import torch
from tqdm import tqdm

from .errors import UserError

PRECISIONS = ("auto", "fp32", "bf16")


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
    """One seeded generator on the training device drives every random draw of a run."""
    torch.manual_seed(seed)
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def batches(n, batch_size, generator=None, min_batch=2):
    """Index tensors covering a shuffled (generator given) or ordered range(n). Training
    drops a last partial batch smaller than `min_batch` (BatchNorm needs two samples)."""
    if generator is not None:
        order = torch.randperm(n, generator=generator, device=generator.device)
    else:
        order = torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        if generator is not None and len(idx) < min(min_batch, n):
            break
        yield idx


@dataclass
class FitState:
    epoch: int = 0                 # epochs completed
    best_val: float = math.inf
    best_epoch: int = -1
    train_seconds: float = 0.0
    windows_seen: int = 0


def fit(*, state, n_epochs, n_train, batch_size, generator, step, validate, on_best=None,
        on_epoch=None, reset_best_at=None, desc="train"):
    """Run epochs state.epoch..n_epochs-1.

    step(idx, epoch) -> dict of scalar tensors (training losses of one batch);
    validate(epoch) -> dict with 'loss' (the selection criterion) and other floats;
    on_best(epoch) saves the selected model; on_epoch(state) saves resumable state.
    The best validation loss is reset at epoch `reset_best_at` (a new training phase).
    """
    bar = tqdm(range(state.epoch, n_epochs), desc=desc, initial=state.epoch, total=n_epochs,
               dynamic_ncols=True, leave=True)
    for epoch in bar:
        if epoch == reset_best_at:
            state.best_val, state.best_epoch = math.inf, -1
        sums, count, t0 = {}, 0, time.perf_counter()
        for idx in batches(n_train, batch_size, generator):
            logs = step(idx, epoch)
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v.detach()
            count += 1
            state.windows_seen += len(idx)
        state.train_seconds += time.perf_counter() - t0
        train = {k: float(v) / max(count, 1) for k, v in sums.items()}
        val = validate(epoch)
        if val["loss"] < state.best_val:
            state.best_val, state.best_epoch = float(val["loss"]), epoch
            if on_best:
                on_best(epoch)
        state.epoch = epoch + 1
        if on_epoch:
            on_epoch(state)
        bar.set_postfix({**{k: f"{v:.4f}" for k, v in train.items()},
                         "val": f"{val['loss']:.4f}", "best": state.best_epoch + 1})
    bar.close()
    return state


def state_dict(state):
    return asdict(state)
