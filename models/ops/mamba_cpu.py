"""The fused C++ CPU kernels (mamba_cpu.cpp): build on first use, load with ctypes, and wrap
them as torch.autograd.Functions: the selective scan (``selective_scan_fn``'s arguments, plus
reverse time and a low-rank delta), the causal depthwise conv, and Mamba's mixers between
in_proj and out_proj as one node (``MixersFn``).

Build: the system C++ compiler (``CXX``, else g++, c++ or clang++ on PATH) turns the source into
a plain shared library (no torch headers: a few seconds, not a torch extension's minute) in
``CROSSHAR_KERNEL_CACHE`` (default ``~/.cache/crosshar/kernels``), named by a hash of the
source, the compiler, the flags and the CPU (``-march=native`` code runs only where it was
built). Two processes building at once take turns on a file lock, and each build goes to a
temporary name renamed into place, so a reader never sees half a library.

Numerics: float32 throughout; bfloat16 inputs are read and written as bfloat16 by the kernel
(computed in float32), any other dtype is computed in float32 and cast back. Threads: as many
as ``torch.get_num_threads()``. Sizes up to ``limits()`` (d_state is padded to a multiple of 16).
"""
import contextlib
import ctypes
import functools
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("mamba_cpu.cpp")
ABI = 3                      # mamba_cpu_abi() of a library this module can drive
# -O3 -march=native: the vector extensions compile to the CPU's widest registers. No
# -ffast-math: the kernel's exp rounds by adding 1.5 * 2^23, which reassociation would remove.
# -fopenmp where the compiler has it (the kernel then shares torch's OpenMP threads), else
# std::thread.
FLAGS = ["-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-pthread"]
FLAG_SETS = (FLAGS + ["-fopenmp"], FLAGS)
BUILD_TIMEOUT_S = 600


class KernelUnavailable(RuntimeError):
    """The kernel cannot be built or loaded here; the message says why, in one line."""


def cache_dir():
    if os.environ.get("CROSSHAR_KERNEL_CACHE"):
        return Path(os.environ["CROSSHAR_KERNEL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "crosshar" / "kernels"


def compiler():
    """-> the compiler command as a list; KernelUnavailable if there is none."""
    if os.environ.get("CXX"):
        cmd = shlex.split(os.environ["CXX"])
        if not cmd or shutil.which(cmd[0]) is None:
            raise KernelUnavailable(f"the C++ compiler CXX={os.environ['CXX']!r} was not found")
        return cmd
    for name in ("g++", "c++", "clang++"):
        if shutil.which(name):
            return [name]
    raise KernelUnavailable("no C++ compiler found (g++, c++ or clang++ on PATH; or set CXX)")


def cpu_id():
    """What -march=native depends on: the CPU model and its feature flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        keep = [l for l in lines if l.split(":")[0].strip() in ("model name", "flags", "Features", "CPU part")]
        return "\n".join(sorted(set(keep)))
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def _first_line(text):
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    errors = [l for l in lines if "error" in l.lower()]
    return (errors or lines or ["no output"])[0]


@contextlib.contextmanager
def _file_lock(path):
    try:
        import fcntl
    except ImportError:          # no fcntl (Windows): builds still land by atomic rename
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def library_path():
    """-> the built library (building it if needed); KernelUnavailable with the reason."""
    cxx = compiler()
    try:
        version = subprocess.run([*cxx, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise KernelUnavailable(f"the C++ compiler {cxx[0]} does not run ({e})") from None
    source = SOURCE.read_bytes()
    flags = repr((cxx, FLAG_SETS)).encode()
    key = hashlib.sha256(b"\0".join([source, flags, version.encode(), cpu_id().encode()])).hexdigest()[:16]
    folder = cache_dir()
    lib = folder / f"mamba_cpu-{key}.so"
    if lib.exists():
        return lib
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with _file_lock(folder / f"{lib.name}.lock"):
            if lib.exists():                     # built by another process while we waited
                return lib
            tmp = folder / f"{lib.name}.{os.getpid()}.tmp"
            print(f"selective scan: compiling the C++ CPU kernel into {lib} (once per machine)",
                  file=sys.stderr, flush=True)
            for flags in FLAG_SETS:
                try:
                    proc = subprocess.run([*cxx, *flags, str(SOURCE), "-o", str(tmp)], capture_output=True,
                                          text=True, timeout=BUILD_TIMEOUT_S)
                except (OSError, subprocess.SubprocessError) as e:
                    raise KernelUnavailable(f"{cxx[0]} failed to run ({e})") from None
                if proc.returncode == 0:
                    break
            else:
                tmp.unlink(missing_ok=True)
                raise KernelUnavailable(f"{cxx[0]} failed on {SOURCE.name}: {_first_line(proc.stderr + proc.stdout)}")
            os.replace(tmp, lib)
    except OSError as e:
        raise KernelUnavailable(f"cannot write the kernel cache {folder} ({e}); set CROSSHAR_KERNEL_CACHE") from None
    return lib


class Ten(ctypes.Structure):
    _fields_ = [("p", ctypes.c_void_p), ("sb", ctypes.c_int64), ("sx", ctypes.c_int64), ("st", ctypes.c_int64)]


class ScanArgs(ctypes.Structure):          # mirrors struct ScanArgs in mamba_cpu.cpp
    _fields_ = ([(k, ctypes.c_int64) for k in ("batch", "dim", "len", "nstate")]
                + [(k, ctypes.c_int32) for k in ("bf16", "nthreads", "softplus", "reverse")]
                + [(k, Ten) for k in ("u", "delta", "z", "B", "C", "out")]
                + [(k, ctypes.c_void_p) for k in ("A", "D", "bias", "last")]
                + [(k, Ten) for k in ("dout", "du", "ddelta", "dz", "dB", "dC")]
                + [(k, ctypes.c_void_p) for k in ("dlast", "dA", "dD", "dbias")]
                + [("rank", ctypes.c_int64), ("delta_weight", ctypes.c_void_p), ("ddelta_weight", ctypes.c_void_p)])


class ConvArgs(ctypes.Structure):          # mirrors struct ConvArgs in mamba_cpu.cpp
    _fields_ = ([(k, ctypes.c_int64) for k in ("batch", "dim", "len", "width")]
                + [(k, ctypes.c_int32) for k in ("bf16", "nthreads", "silu", "reverse")]
                + [(k, Ten) for k in ("x", "out")] + [(k, ctypes.c_void_p) for k in ("weight", "bias")]
                + [(k, Ten) for k in ("dout", "dx")] + [(k, ctypes.c_void_p) for k in ("dweight", "dbias")])


@functools.lru_cache(maxsize=None)
def load():
    """-> (library, None) or (None, why): built and loaded once per process."""
    try:
        path = library_path()
        lib = ctypes.CDLL(str(path))              # CDLL calls release the GIL
        if lib.mamba_cpu_abi() != ABI:
            raise KernelUnavailable(f"{path} has ABI {lib.mamba_cpu_abi()}, expected {ABI}")
    except KernelUnavailable as e:
        return None, str(e)
    except OSError as e:                          # a library that does not load
        return None, f"cannot load the compiled kernel ({e})"
    for name in ("mamba_cpu_scan_forward", "mamba_cpu_scan_backward"):
        getattr(lib, name).argtypes = [ctypes.POINTER(ScanArgs)]
    for name in ("mamba_cpu_conv_forward", "mamba_cpu_conv_backward"):
        getattr(lib, name).argtypes = [ctypes.POINTER(ConvArgs)]
    return lib, None


def limits():
    """-> the largest d_state, rank of a low-rank delta and conv width the kernels take (0s
    without them)."""
    lib, _ = load()
    if lib is None:
        return 0, 0, 0
    return lib.mamba_cpu_max_nstate(), lib.mamba_cpu_max_rank(), lib.mamba_cpu_max_width()


_ERRORS = {2: "d_state is too large for the kernel", 3: "out of memory", 4: "internal error",
           5: "the rank of delta_weight is too large for the kernel", 6: "the conv is too wide for the kernel"}


def _call(name, args):
    lib, why = load()
    if lib is None:
        raise KernelUnavailable(why)
    rc = getattr(lib, name)(ctypes.byref(args))
    if rc:
        raise RuntimeError(f"selective scan kernel: {_ERRORS.get(rc, f'error {rc}')}")


def _ten(t):
    return Ten(t.data_ptr(), *t.stride()) if t is not None else Ten(None, 0, 0, 0)


def _ptr(t):
    return t.data_ptr() if t is not None else None


def _empty_like_layout(t, dtype):
    """A new (batch, X, L) tensor laid out like t: X innermost if t has it so (the layout of a
    Linear layer's output), else L innermost."""
    batch, x, L = t.shape
    if t.stride(1) == 1 and x > 1:
        return torch.empty(batch, L, x, dtype=dtype).transpose(1, 2)
    return torch.empty(batch, x, L, dtype=dtype)


def _io_dtype(*tensors):
    """bfloat16 if every streamed tensor is bfloat16 (the kernel reads it directly), else float32."""
    return torch.bfloat16 if all(t.dtype == torch.bfloat16 for t in tensors if t is not None) else torch.float32


def _f32(t):
    return None if t is None else t.detach().to(torch.float32).contiguous()


def _args(u, delta, A, B, C, D, z, bias, W, softplus, reverse):
    batch, dim, L = u.shape
    return ScanArgs(batch=batch, dim=dim, len=L, nstate=A.shape[1], bf16=int(u.dtype == torch.bfloat16),
                    nthreads=torch.get_num_threads(), softplus=int(softplus), reverse=int(reverse),
                    u=_ten(u), delta=_ten(delta), z=_ten(z), B=_ten(B), C=_ten(C),
                    A=_ptr(A), D=_ptr(D), bias=_ptr(bias),
                    rank=0 if W is None else W.shape[1], delta_weight=_ptr(W))


# The four kernel calls. Streamed (batch, X, L) tensors (any strides) share one dtype, float32
# or bfloat16; parameters are contiguous float32; outputs are written into the given tensors
# (views allowed), gradients of parameters added to zero-filled ones.

def scan_forward(u, delta, A, B, C, D, z, bias, W, softplus, reverse, out, last=None):
    args = _args(u, delta, A, B, C, D, z, bias, W, softplus, reverse)
    args.out, args.last = _ten(out), _ptr(last)
    _call("mamba_cpu_scan_forward", args)


def scan_backward(u, delta, A, B, C, D, z, bias, W, softplus, reverse, dout, dlast, du, ddelta, dz, dB, dC,
                  dA, dD, dbias, dW):
    args = _args(u, delta, A, B, C, D, z, bias, W, softplus, reverse)
    for name, t in (("dout", dout), ("du", du), ("ddelta", ddelta), ("dz", dz), ("dB", dB), ("dC", dC)):
        setattr(args, name, _ten(t))
    args.dlast, args.dA, args.dD, args.dbias, args.ddelta_weight = map(_ptr, (dlast, dA, dD, dbias, dW))
    _call("mamba_cpu_scan_backward", args)


def _conv_args(x, weight, bias, silu, reverse):
    return ConvArgs(batch=x.shape[0], dim=x.shape[1], len=x.shape[2], width=weight.shape[1],
                    bf16=int(x.dtype == torch.bfloat16), nthreads=torch.get_num_threads(), silu=int(silu),
                    reverse=int(reverse), x=_ten(x), weight=_ptr(weight), bias=_ptr(bias))


def conv_forward(x, weight, bias, silu, reverse, out):
    args = _conv_args(x, weight, bias, silu, reverse)
    args.out = _ten(out)
    _call("mamba_cpu_conv_forward", args)


def conv_backward(x, weight, bias, silu, reverse, dout, dx, dweight, dbias):
    args = _conv_args(x, weight, bias, silu, reverse)
    args.dout, args.dx, args.dweight, args.dbias = _ten(dout), _ten(dx), _ptr(dweight), _ptr(dbias)
    _call("mamba_cpu_conv_backward", args)


def _grads(grads, ctx, dtypes):
    """Cast each gradient to its input's dtype; None where the input needs none."""
    return tuple(None if g is None or not need else g.to(dt)
                 for g, need, dt in zip(grads, ctx.needs_input_grad, dtypes))


class KernelScanFn(torch.autograd.Function):
    """The scan on the kernel. delta_weight (d_inner, rank), if given, makes delta the low-rank
    (batch, rank, L) factor of the scan's delta = delta_weight @ delta (Mamba's dt_proj, fused).
    The last state is computed only if want_last (else an empty tensor is returned)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_weight, delta_softplus, reverse, want_last):
        io = _io_dtype(u, delta, B, C, z)
        streamed = [None if t is None else t.detach().to(io) for t in (u, delta, B, C, z)]
        params = [_f32(t) for t in (A, D, delta_bias, delta_weight)]
        us, ds, Bs, Cs, zs = streamed
        out = _empty_like_layout(zs if zs is not None else us, io)
        last = torch.zeros(u.shape[0], u.shape[1], A.shape[1]) if want_last else torch.empty(0)
        A, D, bias, W = params
        scan_forward(us, ds, A, Bs, Cs, D, zs, bias, W, delta_softplus, reverse, out, last if want_last else None)
        ctx.save_for_backward(*streamed, *params)
        ctx.flags = (delta_softplus, reverse)
        ctx.dtypes = [None if t is None else t.dtype for t in (u, delta, A, B, C, D, z, delta_bias, delta_weight)]
        ctx.set_materialize_grads(False)
        return out.to(u.dtype), last.to(u.dtype)

    @staticmethod
    def backward(ctx, dout, dlast):
        us, ds, Bs, Cs, zs, A, D, bias, W = ctx.saved_tensors
        io = us.dtype
        dout = torch.zeros_like(us) if dout is None else dout.to(io)
        du, ddelta, dB, dC = (_empty_like_layout(t, io) for t in (us, ds, Bs, Cs))
        dz = None if zs is None else _empty_like_layout(zs, io)
        dA = torch.zeros_like(A)
        dD, dbias, dW = (None if t is None else torch.zeros_like(t) for t in (D, bias, W))
        dlast = None if dlast is None or dlast.numel() == 0 else dlast.to(torch.float32).contiguous()
        scan_backward(us, ds, A, Bs, Cs, D, zs, bias, W, *ctx.flags, dout, dlast, du, ddelta, dz, dB, dC,
                      dA, dD, dbias, dW)
        return _grads((du, ddelta, dA, dB, dC, dD, dz, dbias, dW), ctx, ctx.dtypes) + (None, None, None)


class KernelConvFn(torch.autograd.Function):
    """Depthwise causal conv1d (+ SiLU) on the kernel; reverse=True looks ahead instead of back
    (the conv of the time-flipped input, flipped back)."""

    @staticmethod
    def forward(ctx, x, weight, bias, silu, reverse):
        xs = x.detach().to(_io_dtype(x))
        w, b = _f32(weight), _f32(bias)
        out = _empty_like_layout(xs, xs.dtype)
        conv_forward(xs, w, b, silu, reverse, out)
        ctx.save_for_backward(xs, w, b)
        ctx.flags, ctx.dtypes = (silu, reverse), (x.dtype, weight.dtype, None if bias is None else bias.dtype)
        return out.to(x.dtype)

    @staticmethod
    def backward(ctx, dout):
        xs, w, b = ctx.saved_tensors
        dx = _empty_like_layout(xs, xs.dtype)
        dw, db = torch.zeros_like(w), None if b is None else torch.zeros_like(b)
        conv_backward(xs, w, b, *ctx.flags, dout.to(xs.dtype), dx, dw, db)
        return _grads((dx, dw, db), ctx, ctx.dtypes) + (None, None)


# ---- Mamba mixers between in_proj and out_proj, fused -----------------------------------------

MIXER_PARAMS = ("conv_weight", "conv_bias", "x_proj_weight", "dt_proj_weight", "dt_proj_bias", "A_log", "D")


class MixersFn(torch.autograd.Function):
    """Mamba mixers without their in_proj / out_proj: for mixer k, xz[..., 2dk : 2d(k+1)] (a
    (batch, L, 2 d_inner) slice of one in_proj matmul's output) -> y[..., dk : d(k+1)] (the
    input of one out_proj matmul), k running backwards in time if reverses[k]. One autograd
    node: the conv, x_proj and the scan (dt_proj inside) write their outputs and gradients
    straight into slices of shared tensors, so nothing is transposed, split, concatenated or
    flipped. params: len(reverses) groups of MIXER_PARAMS."""

    @staticmethod
    def forward(ctx, xz, reverses, *params):
        ctx.dtypes = [xz.dtype] + [t.dtype for t in params]
        io = _io_dtype(xz)
        xz = xz.detach().to(io)
        batch, L, _ = xz.shape
        groups = [params[i:i + len(MIXER_PARAMS)] for i in range(0, len(params), len(MIXER_PARAMS))]
        d_inner = groups[0][0].shape[0]
        y = torch.empty(batch, L, d_inner * len(groups), dtype=io)
        saved, f32 = [], []
        for k, (group, reverse) in enumerate(zip(groups, reverses)):
            conv_w, conv_b, x_w, dt_w, dt_b, A_log, D = group
            p = dict(conv_w=_f32(conv_w.reshape(d_inner, -1)), conv_b=_f32(conv_b), dt_w=_f32(dt_w),
                     dt_b=_f32(dt_b), A=-torch.exp(_f32(A_log)), D=_f32(D))
            xk = xz[..., 2 * d_inner * k:2 * d_inner * (k + 1)]
            u = torch.empty(batch, L, d_inner, dtype=io)
            conv_forward(xk[..., :d_inner].transpose(1, 2), p["conv_w"], p["conv_b"], True, reverse, u.transpose(1, 2))
            x_dbl = (u.view(-1, d_inner) @ x_w.detach().to(io).t()).view(batch, L, -1)
            dt, B, C = _split_x_dbl(x_dbl, dt_w.shape[1], A_log.shape[1])
            with torch.profiler.record_function("selective_scan"):        # the scan's share in profiles
                scan_forward(u.transpose(1, 2), dt, p["A"], B, C, p["D"], xk[..., d_inner:].transpose(1, 2),
                             p["dt_b"], p["dt_w"], True, reverse, y[..., d_inner * k:d_inner * (k + 1)].transpose(1, 2))
            saved += [u, x_dbl]
            f32.append(p)
        ctx.save_for_backward(xz, *saved, *params)
        ctx.reverses, ctx.f32 = reverses, f32
        return y.to(ctx.dtypes[0])

    @staticmethod
    def backward(ctx, dy):
        xz, *rest = ctx.saved_tensors
        n_mix = len(ctx.reverses)
        saved, params = rest[:2 * n_mix], rest[2 * n_mix:]
        io = xz.dtype
        dy = dy.to(io)
        batch, L, _ = xz.shape
        d_inner = params[0].shape[0]
        dxz = torch.empty_like(xz)
        grads = []
        for k, reverse in enumerate(ctx.reverses):
            u, x_dbl = saved[2 * k:2 * k + 2]
            conv_w, _, x_w, dt_w, _, A_log, _ = params[len(MIXER_PARAMS) * k:len(MIXER_PARAMS) * (k + 1)]
            p = ctx.f32[k]
            g = {name: torch.zeros_like(t) for name, t in p.items()}
            xk, dxk = (t[..., 2 * d_inner * k:2 * d_inner * (k + 1)] for t in (xz, dxz))
            du = torch.empty(batch, L, d_inner, dtype=io)
            dx_dbl = torch.empty_like(x_dbl)
            (dt, B, C), (ddt, dB, dC) = (_split_x_dbl(t, dt_w.shape[1], A_log.shape[1]) for t in (x_dbl, dx_dbl))
            with torch.profiler.record_function("selective_scan_backward"):
                scan_backward(u.transpose(1, 2), dt, p["A"], B, C, p["D"], xk[..., d_inner:].transpose(1, 2),
                              p["dt_b"], p["dt_w"], True, reverse, dy[..., d_inner * k:d_inner * (k + 1)].transpose(1, 2),
                              None, du.transpose(1, 2), ddt, dxk[..., d_inner:].transpose(1, 2), dB, dC,
                              g["A"], g["D"], g["dt_b"], g["dt_w"])
            flat = dx_dbl.view(-1, dx_dbl.shape[-1])                 # x_proj
            dx_w = flat.t() @ u.view(-1, d_inner)
            du.view(-1, d_inner).addmm_(flat, x_w.detach().to(io))
            conv_backward(xk[..., :d_inner].transpose(1, 2), p["conv_w"], p["conv_b"], True, reverse,
                          du.transpose(1, 2), dxk[..., :d_inner].transpose(1, 2), g["conv_w"], g["conv_b"])
            grads += [g["conv_w"].view(conv_w.shape), g["conv_b"], dx_w, g["dt_w"], g["dt_b"],
                      g["A"] * p["A"], g["D"]]                        # A = -exp(A_log): dA_log = dA * A
        out = _grads([dxz], ctx, ctx.dtypes[:1])
        param_grads = tuple(None if gr is None or not need else gr.to(dt)
                            for gr, need, dt in zip(grads, ctx.needs_input_grad[2:], ctx.dtypes[1:]))
        return out + (None,) + param_grads


def _split_x_dbl(x_dbl, rank, d_state):
    """x_proj's output (batch, L, rank + 2 d_state) -> dt, B, C as (batch, k, L) views."""
    return x_dbl.transpose(1, 2).split([rank, d_state, d_state], dim=1)
