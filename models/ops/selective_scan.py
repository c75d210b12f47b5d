"""Mamba's selective scan (S6) and causal depthwise conv: pure maths, no nn.Module.

Three scans share mamba_ssm's ``selective_scan_fn`` signature and shapes:
    u, delta: (batch, d_inner, L)   A: (d_inner, d_state)   B, C: (batch, d_state, L)
    D: (d_inner,)   z: (batch, d_inner, L)   delta_bias: (d_inner,)
    -> out (batch, d_inner, L) [, last_state (batch, d_inner, d_state)]
Recurrence (per batch b, channel d, state n):
    delta = softplus(delta + delta_bias)        (the bias if given, softplus if asked)
    h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t,   h_{-1} = 0
    y_t = <C_t, h_t> + D * u_t;   out = y * silu(z)

* ``selective_scan_ref``: the sequential recurrence with autograd; the readable ground truth.
* ``selective_scan_torch``: the fast pure-PyTorch scan (CPU, or GPUs without mamba_ssm).
* ``selective_scan_kernel``: the fused C++ CPU kernel (mamba_cpu.cpp, built on first use).
* ``selective_scan(..., impl=)``: dispatch; "auto" takes mamba_ssm's CUDA kernel for CUDA
  tensors when it imports, the C++ kernel for CPU tensors when it builds (float64 inputs keep
  the exact torch scan), else the torch scan.
Everything computes in float32 (float64 if an input is float64; always float32 in the C++
kernel) and returns the dtype of u. mamba_ssm and causal_conv1d are optional and imported
lazily: on a CPU machine their packages install without their compiled kernels and fail on
import (see requirements-cuda.txt).
"""
import functools
import importlib
import sys

import torch
import torch.nn.functional as F

SCAN_IMPLS = ("auto", "ref", "torch", "kernel", "cuda")

# Elements (L * batch_block * d_inner * d_state) per intermediate in the torch scan: three
# such tensors live at once in the backward, so ~2M floats keeps them inside a 32 MB L3.
_BLOCK_ELEMS = 2 ** 21


def _compute_dtype(*tensors):
    return torch.float64 if any(t is not None and t.dtype == torch.float64 for t in tensors) \
        else torch.float32


def _check_shapes(u, delta, A, B, C, D, z, delta_bias):
    batch, d_inner, L = u.shape
    d_state = A.shape[-1]
    expected = {"delta": (delta, (batch, d_inner, L)), "A": (A, (d_inner, d_state)),
                "B": (B, (batch, d_state, L)), "C": (C, (batch, d_state, L)),
                "D": (D, (d_inner,)), "z": (z, (batch, d_inner, L)),
                "delta_bias": (delta_bias, (d_inner,))}
    for name, (t, shape) in expected.items():
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"selective scan: {name} has shape {tuple(t.shape)}, expected {shape} "
                             f"(only input-dependent B, C of shape (batch, d_state, L) are supported)")


def _discretized_delta(delta, delta_bias, delta_softplus, dtype):
    delta = delta.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[:, None]
    return F.softplus(delta) if delta_softplus else delta


def _finish(y, u, D, z, dtype):
    """y (batch, d_inner, L) in compute dtype -> (y + D u) * silu(z)."""
    if D is not None:
        y = y + u.to(dtype) * D.to(dtype)[:, None]
    if z is not None:
        y = y * F.silu(z.to(dtype))
    return y


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False):
    """Sequential reference: one recurrence step per time step, plain autograd."""
    _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    ct = _compute_dtype(u, delta, A, B, C, D, z, delta_bias)
    dt = _discretized_delta(delta, delta_bias, delta_softplus, ct)
    u_, A_, B_, C_ = u.to(ct), A.to(ct), B.to(ct), C.to(ct)
    h = u_.new_zeros(u.shape[0], u.shape[1], A.shape[1])          # (batch, d_inner, d_state)
    ys = []
    for t in range(u.shape[-1]):
        decay = torch.exp(dt[:, :, t, None] * A_)
        h = decay * h + (dt[:, :, t] * u_[:, :, t])[:, :, None] * B_[:, None, :, t]
        ys.append((h * C_[:, None, :, t]).sum(-1))
    out = _finish(torch.stack(ys, dim=-1), u, D, z, ct).to(u.dtype)
    return (out, h.to(u.dtype)) if return_last_state else out


# ---------------------------------------------------------------------------------------------
# Fast torch scan. Why it is fast on a CPU: the recurrence itself is one in-place addcmul per
# time step over a whole batch block; every other product and contraction is a bulk op over
# all time steps. Inputs are moved to time-major layout (L, batch, ...) so each step's slice is
# contiguous, and the batch is cut into blocks whose (L, block, d_inner, d_state) tensors stay
# in cache. The backward is a hand-written reverse scan that recomputes the states instead of
# keeping L states per layer for autograd.

def _states(u, dt, A, B):
    """u, dt: (L, b, d); A: (d, n); B: (L, b, n) -> states H and decays exp(dt A), both (L, b, d, n)."""
    decay = torch.exp(dt.unsqueeze(-1) * A)
    H = (dt * u).unsqueeze(-1) * B.unsqueeze(2)                 # delta * B * u, overwritten by h
    for t in range(1, H.shape[0]):
        H[t].addcmul_(decay[t], H[t - 1])                       # h_t = decay_t * h_{t-1} + dBu_t
    return H, decay


def _time_major(x, dtype):
    """(batch, k, L) -> contiguous (L, batch, k) in dtype."""
    return x.to(dtype).permute(2, 0, 1).contiguous()


def _batch_blocks(L, batch, d_inner, d_state, device):
    limit = _BLOCK_ELEMS if device.type == "cpu" else 2 ** 26    # a GPU wants big ops, not cache
    size = max(1, limit // max(1, L * d_inner * d_state))
    return [slice(i, min(i + size, batch)) for i in range(0, batch, size)]


class _SelectiveScanFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        with torch.autocast(u.device.type, enabled=False):         # keep the scan in ct under amp
            return _SelectiveScanFn._forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus)

    @staticmethod
    def _forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        ct = _compute_dtype(u, delta, A, B, C, D, z, delta_bias)
        dt = _discretized_delta(delta, delta_bias, delta_softplus, ct)
        ut, dtt, Bt, Ct = _time_major(u, ct), _time_major(dt, ct), _time_major(B, ct), _time_major(C, ct)
        A_ = A.to(ct)
        L, batch, d_inner = ut.shape
        y = ut.new_empty(L, batch, d_inner)
        last = ut.new_empty(batch, d_inner, A.shape[1])
        for sl in _batch_blocks(L, batch, d_inner, A.shape[1], u.device):
            H, _ = _states(ut[:, sl], dtt[:, sl], A_, Bt[:, sl])
            y[:, sl] = (H * Ct[:, sl].unsqueeze(2)).sum(-1)
            last[sl] = H[-1]
        y = y.permute(1, 2, 0).contiguous()                       # (batch, d_inner, L), like the kernel
        y = _finish(y, u, D, None, ct)                              # y + D u, kept for dz
        out = _finish(y, u, None, z, ct)
        ctx.delta_softplus = delta_softplus
        ctx.set_materialize_grads(False)                            # dlast is None unless used
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, y if z is not None else None)
        return out.to(u.dtype), last.to(u.dtype)

    @staticmethod
    def backward(ctx, dout, dlast):
        u, delta, A, B, C, D, z, delta_bias, y = ctx.saved_tensors
        ct = _compute_dtype(u, delta, A, B, C, D, z, delta_bias)
        batch, d_inner, L = u.shape
        dout = torch.zeros_like(u, dtype=ct) if dout is None else dout.to(ct)
        dz = None
        if z is not None:
            zc = z.to(ct)
            sz = torch.sigmoid(zc)
            dz = dout * y * sz * (1 + zc * (1 - sz))                # d silu(z) / dz
            dout = dout * zc * sz                                   # grad w.r.t. y
        u_c = u.to(ct)
        dD = (dout * u_c).sum((0, 2)) if D is not None else None
        du = dout * D.to(ct)[:, None] if D is not None else torch.zeros_like(u_c)

        pre = _discretized_delta(delta, delta_bias, False, ct)     # delta + delta_bias
        dt = F.softplus(pre) if ctx.delta_softplus else pre
        ut, dtt, Bt, Ct, dyt = (_time_major(x, ct) for x in (u, dt, B, C, dout))
        A_ = A.to(ct)
        du_t, ddt = torch.empty_like(ut), torch.empty_like(ut)
        dB, dC, dA = torch.empty_like(Bt), torch.empty_like(Ct), torch.zeros_like(A_)
        for sl in _batch_blocks(L, batch, d_inner, A.shape[1], u.device):
            u_b, dt_b, B_b, dy_b = ut[:, sl], dtt[:, sl], Bt[:, sl], dyt[:, sl]
            H, decay = _states(u_b, dt_b, A_, B_b)
            dC[:, sl] = (dy_b.unsqueeze(-2) @ H).squeeze(-2)      # sum_d dy * h
            # G_t = dL/dh_t, a reverse scan: G_t = C_t dy_t + decay_{t+1} G_{t+1}
            G = dy_b.unsqueeze(-1) * Ct[:, sl].unsqueeze(2)
            if dlast is not None:
                G[-1] += dlast[sl].to(ct)
            for t in range(L - 2, -1, -1):
                G[t].addcmul_(decay[t + 1], G[t + 1])
            GB = (G * B_b.unsqueeze(2)).sum(-1)                     # sum_n G * B
            du_t[:, sl] = dt_b * GB
            ddt[:, sl] = u_b * GB
            dB[:, sl] = ((dt_b * u_b).unsqueeze(-2) @ G).squeeze(-2)
            # through the decay: Q = dL/d(delta*A) = G_t * h_{t-1} * decay_t (zero at t = 0)
            Q = G[1:].mul_(H[:-1]).mul_(decay[1:])
            ddt[1:, sl] += (Q * A_).sum(-1)
            dA += (Q * dt_b[1:].unsqueeze(-1)).sum((0, 1))

        ddt = ddt.permute(1, 2, 0)
        if ctx.delta_softplus:
            ddt = ddt * torch.sigmoid(pre)                          # softplus' = sigmoid
        ddelta_bias = ddt.sum((0, 2)) if delta_bias is not None else None
        du = du + du_t.permute(1, 2, 0)
        grads = (du, ddt, dA, dB.permute(1, 2, 0), dC.permute(1, 2, 0), dD, dz, ddelta_bias)
        inputs = (u, delta, A, B, C, D, z, delta_bias)
        return tuple(None if g is None else g.to(x.dtype) for g, x in zip(grads, inputs)) + (None,)


def selective_scan_torch(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                         return_last_state=False):
    """Fast pure-PyTorch scan; same arguments and results as selective_scan_ref."""
    _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    out, last = _SelectiveScanFn.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    return (out, last) if return_last_state else out


# ---------------------------------------------------------------------------------------------
# The fused C++ CPU kernel (models/ops/mamba_cpu.py builds and loads it).

def _eager(fn):
    """Under torch.compile, run fn outside the graph (a ctypes call, or the build behind it, is
    nothing a graph can hold); torch._dynamo is imported only then, not with this module."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        if torch.compiler.is_compiling():
            import torch._dynamo as dynamo
            return dynamo.disable(fn)(*args, **kwargs)
        return fn(*args, **kwargs)
    return run


@_eager
def kernel_unavailable_reason(x=None, d_state=None, rank=None, width=None):
    """None if the C++ kernels can run here (on tensor x, for these sizes: d_state, the rank of
    a low-rank delta, the conv width), else why not (one line)."""
    from . import mamba_cpu
    lib, why = mamba_cpu.load()
    if lib is None:
        return why
    if x is not None and x.device.type != "cpu":
        return f"it runs on CPU tensors, got {x.device}"
    for what, value, limit in zip(("d_state", "the rank of delta", "the conv width"), (d_state, rank, width),
                                  mamba_cpu.limits()):
        if value is not None and value > limit:
            return f"{what} {value} is above its maximum {limit}"
    return None


@_eager
def selective_scan_kernel(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                          return_last_state=False, reverse=False, delta_weight=None):
    """The C++ CPU kernel; same arguments and results as selective_scan_ref, computed in float32.
    reverse=True scans from the last step to the first: the same as flipping the time axis of
    u, delta, B, C, z before and of the output after, without the copies. delta_weight
    (d_inner, rank), if given, makes delta the (batch, rank, L) factor of the scan's delta =
    delta_weight @ delta (Mamba's dt_proj inside the kernel)."""
    rank = None
    if delta_weight is not None:
        batch, d_inner, L = u.shape
        rank = delta_weight.shape[-1]
        if tuple(delta_weight.shape) != (d_inner, rank) or tuple(delta.shape) != (batch, rank, L):
            raise ValueError(f"selective scan: with delta_weight {tuple(delta_weight.shape)} delta must be "
                             f"(batch, rank, L) = ({batch}, {rank}, {L}), got {tuple(delta.shape)}")
    _check_shapes(u, u if delta_weight is not None else delta, A, B, C, D, z, delta_bias)
    why = kernel_unavailable_reason(u, A.shape[1], rank)
    if why is not None:
        raise RuntimeError(f"impl='kernel': the C++ selective-scan kernel cannot run: {why}")
    from .mamba_cpu import KernelScanFn
    with torch.autocast("cpu", enabled=False):
        out, last = KernelScanFn.apply(u, delta, A, B, C, D, z, delta_bias, delta_weight, delta_softplus, reverse,
                                       return_last_state)
    return (out, last) if return_last_state else out


_told_fallback = []


def cpu_kernel_selected(impl, x, **sizes):
    """Whether impl runs on the C++ kernels for tensor x (sizes: see kernel_unavailable_reason):
    always for "kernel" (which raises if they cannot run); for "auto", CPU tensors that are not
    float64 (the torch scan keeps those exact) when the kernels run here, otherwise the torch
    path, saying why once per process."""
    if impl == "kernel":
        return True
    if impl != "auto" or x.is_cuda or x.dtype == torch.float64:
        return False
    why = kernel_unavailable_reason(x, **sizes)
    if why is not None and not _told_fallback:
        _told_fallback.append(why)
        print(f"selective scan: using the PyTorch scan, the C++ kernel is unavailable: {why}",
              file=sys.stderr, flush=True)
    return why is None


# ---------------------------------------------------------------------------------------------
# Optional CUDA kernels, imported lazily (never at module import).

_SCAN_KERNEL = ("mamba_ssm.ops.selective_scan_interface", "selective_scan_fn", "mamba_ssm")
_CONV_KERNEL = ("causal_conv1d", "causal_conv1d_fn", "causal_conv1d")


@functools.lru_cache(maxsize=None)
def _load_kernel(module, name):
    """-> (function, None) or (None, why). A CPU-only install of mamba_ssm raises ImportError;
    one built against another torch raises OSError/RuntimeError (undefined symbols)."""
    try:
        return getattr(importlib.import_module(module), name), None
    except (ImportError, OSError, RuntimeError) as e:
        return None, f"{type(e).__name__}: {e}"


def _pick_kernel(impl, kernel, tensor, usable=True):
    """-> the CUDA kernel to call, or None for the PyTorch path. impl="cuda" raises instead."""
    module, name, package = kernel
    if impl == "cuda":
        fn, why = _load_kernel(module, name)
        if fn is None:
            raise RuntimeError(f"impl='cuda' needs {package}'s compiled kernel, which failed to import "
                               f"({why}); install requirements-cuda.txt on a CUDA machine, or use "
                               f"impl='auto' or 'torch'")
        if not tensor.is_cuda:
            raise RuntimeError(f"impl='cuda' needs CUDA tensors, got {tensor.device}")
        return fn
    if impl == "auto" and tensor.is_cuda and usable:
        return _load_kernel(module, name)[0]
    return None


def _check_impl(impl):
    if impl not in SCAN_IMPLS:
        raise ValueError(f"unknown scan impl {impl!r}; expected one of {SCAN_IMPLS}")


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, impl="auto"):
    """Dispatch: "auto" (CUDA kernel for CUDA tensors when mamba_ssm imports, the C++ kernel
    for CPU tensors when it builds, else "torch"), "ref", "torch", "kernel" (the C++ kernel or
    a RuntimeError), or "cuda" (mamba_ssm's kernel or a RuntimeError)."""
    _check_impl(impl)
    args = (u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    # Profiler label for the forward; the backward shows as _SelectiveScanFnBackward (torch
    # scan) or KernelScanFnBackward (C++ kernel).
    with torch.profiler.record_function("selective_scan"):
        if impl == "ref":
            return selective_scan_ref(*args)
        if cpu_kernel_selected(impl, u, d_state=A.shape[-1]):
            return selective_scan_kernel(*args)
        kernel = _pick_kernel(impl, _SCAN_KERNEL, u)
        return kernel(*args) if kernel is not None else selective_scan_torch(*args)


def causal_conv1d_ref(x, weight, bias=None, activation="silu"):
    """Depthwise causal conv: x (batch, dim, L), weight (dim, width) -> (batch, dim, L);
    output t sees inputs t-width+1..t only."""
    if activation not in (None, "silu", "swish"):
        raise ValueError(f"causal_conv1d: activation must be None, 'silu' or 'swish', got {activation!r}")
    width = weight.shape[-1]
    y = F.conv1d(x, weight.unsqueeze(1), bias, padding=width - 1, groups=x.shape[1])[..., :x.shape[-1]]
    return F.silu(y) if activation else y


@_eager
def causal_conv1d_kernel(x, weight, bias=None, activation="silu", reverse=False):
    """causal_conv1d_ref on the C++ CPU kernel (float32 compute); reverse=True convolves the
    time-flipped input and flips the result back (the conv then looks ahead)."""
    if activation not in (None, "silu", "swish"):
        raise ValueError(f"causal_conv1d: activation must be None, 'silu' or 'swish', got {activation!r}")
    why = kernel_unavailable_reason(x, width=weight.shape[-1])
    if why is not None:
        raise RuntimeError(f"impl='kernel': the C++ conv kernel cannot run: {why}")
    from .mamba_cpu import KernelConvFn
    with torch.autocast("cpu", enabled=False):
        return KernelConvFn.apply(x, weight, bias, activation is not None, reverse)


@_eager
def mamba_mixers_kernel(xz, mixers, reverses):
    """Mamba mixers (with kernel_sizes() and mixer_params()) from in_proj's output to out_proj's
    input on the C++ kernels: xz (batch, L, 2 d_inner * len(mixers)) -> (batch, L, d_inner *
    len(mixers)), mixer k backwards in time if reverses[k] (ops.mamba_cpu.MixersFn)."""
    sizes = {k: max(m.kernel_sizes()[k] for m in mixers) for k in mixers[0].kernel_sizes()}
    why = kernel_unavailable_reason(xz, **sizes)
    if why is not None:
        raise RuntimeError(f"scan='kernel': the C++ Mamba kernels cannot run: {why}")
    from .mamba_cpu import MixersFn
    params = [t for m in mixers for t in m.mixer_params()]
    with torch.autocast("cpu", enabled=False):
        return MixersFn.apply(xz, tuple(reverses), *params)


def causal_conv1d(x, weight, bias=None, activation="silu", impl="auto"):
    """Dispatch like selective_scan: the causal_conv1d kernel ("cuda", or "auto" on CUDA tensors
    when it imports and 2 <= width <= 4), the C++ kernel ("kernel"), else causal_conv1d_ref
    ("ref", "torch"; "auto" on CPU tensors)."""
    _check_impl(impl)
    if impl == "kernel":
        return causal_conv1d_kernel(x, weight, bias, activation)
    kernel = _pick_kernel(impl, _CONV_KERNEL, x, usable=2 <= weight.shape[-1] <= 4)
    if kernel is not None:
        return kernel(x, weight, bias, activation=activation)
    return causal_conv1d_ref(x, weight, bias, activation)
