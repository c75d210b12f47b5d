"""Selective scan and causal conv: the fast torch scan against the sequential reference, the
dispatcher, and (on a CUDA machine with mamba_ssm / causal_conv1d) the kernels against ours."""
import itertools
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from models.ops import selective_scan as ss

REPO = Path(__file__).resolve().parents[1]
F32_TOL = dict(rtol=6e-4, atol=2e-3)          # mamba's own kernel-vs-reference tolerance in fp32
OPTIONS = list(itertools.product([False, True], repeat=4))  # (z, D, delta_bias, delta_softplus)


def make_inputs(batch=3, d_inner=4, d_state=5, L=7, dtype=torch.float64, softplus=True, seed=0,
                device="cpu"):
    """Seeded (u, delta, A, B, C, D, z, delta_bias); A < 0 as -exp(A_log) is. Without softplus
    delta and its bias stay positive, as Mamba's would, so exp(delta * A) decays."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    def pos(*shape):
        return 0.05 + 0.5 * torch.rand(*shape, generator=g, dtype=dtype)

    delta = 0.5 * r(batch, d_inner, L) if softplus else pos(batch, d_inner, L)
    delta_bias = 0.5 * r(d_inner) if softplus else pos(d_inner) * 0.3
    A = -(0.1 + 2 * torch.rand(d_inner, d_state, generator=g, dtype=dtype))
    ts = [r(batch, d_inner, L), delta, A, r(batch, d_state, L), r(batch, d_state, L), r(d_inner),
          r(batch, d_inner, L), delta_bias]
    return [t.to(device).requires_grad_() for t in ts]


def run(fn, ts, use_z, use_D, use_bias, softplus, last_weight=1.0):
    """-> (out, last_state, grads of a fixed random weighting of out and last_state w.r.t. the
    used inputs). last_weight=0 for mamba_ssm's kernel, whose backward ignores last_state."""
    u, delta, A, B, C, D, z, bias = ts
    out, last = fn(u, delta, A, B, C, D=D if use_D else None, z=z if use_z else None,
                   delta_bias=bias if use_bias else None, delta_softplus=softplus, return_last_state=True)
    g = torch.Generator().manual_seed(1)
    weights = (torch.randn(out.shape, generator=g, dtype=out.dtype).to(out.device),
               last_weight * torch.randn(last.shape, generator=g, dtype=last.dtype).to(last.device))
    used = [u, delta, A, B, C] + [t for t, on in ((D, use_D), (z, use_z), (bias, use_bias)) if on]
    grads = torch.autograd.grad((out * weights[0]).sum() + (last * weights[1]).sum(), used)
    return out, last, grads


@pytest.mark.parametrize("L", [1, 7, 70])
@pytest.mark.parametrize("use_z,use_D,use_bias,softplus", OPTIONS)
def test_torch_scan_matches_ref_float64(L, use_z, use_D, use_bias, softplus):
    ts = make_inputs(L=L, softplus=softplus)
    ref = run(ss.selective_scan_ref, ts, use_z, use_D, use_bias, softplus)
    fast = run(ss.selective_scan_torch, ts, use_z, use_D, use_bias, softplus)
    torch.testing.assert_close(fast[0], ref[0], rtol=0, atol=1e-10)
    torch.testing.assert_close(fast[1], ref[1], rtol=0, atol=1e-10)
    for g_fast, g_ref in zip(fast[2], ref[2]):
        torch.testing.assert_close(g_fast, g_ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("L", [33, 120])
@pytest.mark.parametrize("use_z,use_D,use_bias,softplus", [(True, True, True, True), (False, False, False, False)])
def test_torch_scan_matches_ref_float32(L, use_z, use_D, use_bias, softplus):
    ts = make_inputs(batch=4, d_inner=16, d_state=16, L=L, dtype=torch.float32, softplus=softplus)
    ref = run(ss.selective_scan_ref, ts, use_z, use_D, use_bias, softplus)
    fast = run(ss.selective_scan_torch, ts, use_z, use_D, use_bias, softplus)
    for a, b in zip([fast[0], fast[1], *fast[2]], [ref[0], ref[1], *ref[2]]):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, **F32_TOL)


@pytest.mark.parametrize("return_last_state", [False, True])
def test_gradcheck_torch_scan(return_last_state):
    ts = make_inputs(batch=2, d_inner=2, d_state=3, L=5)

    def f(*args):
        res = ss.selective_scan_torch(*args, delta_softplus=True, return_last_state=return_last_state)
        return res if return_last_state else (res,)

    assert torch.autograd.gradcheck(f, ts)


def test_return_last_state_is_the_final_state():
    u, delta, A, B, C, *_ = make_inputs(L=9)
    out, last = ss.selective_scan_torch(u, delta, A, B, C, return_last_state=True)
    assert last.shape == (u.shape[0], u.shape[1], A.shape[1])
    # Without D and z, y_{L-1} = <C_{L-1}, h_{L-1}>.
    torch.testing.assert_close(out[..., -1], (last * C[:, None, :, -1]).sum(-1))
    assert isinstance(ss.selective_scan_torch(u, delta, A, B, C), torch.Tensor)


def test_uneven_batch_blocks_match_one_block(monkeypatch):
    ts = make_inputs(batch=7, L=10)
    whole = run(ss.selective_scan_torch, ts, True, True, True, True)
    monkeypatch.setattr(ss, "_BLOCK_ELEMS", 3 * 10 * 4 * 5)     # blocks of 3, 3, 1 sequences
    assert len(ss._batch_blocks(10, 7, 4, 5, torch.device("cpu"))) == 3
    blocked = run(ss.selective_scan_torch, ts, True, True, True, True)
    for a, b in zip([blocked[0], blocked[1], *blocked[2]], [whole[0], whole[1], *whole[2]]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_low_precision_inputs_return_their_dtype():
    ts = [t.detach().to(torch.bfloat16) for t in make_inputs()]
    out = ss.selective_scan_torch(*ts[:5], D=ts[5], z=ts[6])
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_bad_shapes_raise():
    u, delta, A, B, C, *_ = make_inputs()
    with pytest.raises(ValueError, match="B has shape"):
        ss.selective_scan_torch(u, delta, A, B[:, :, :-1], C)


# ---- dispatch ---------------------------------------------------------------------------------

def test_auto_on_cpu_uses_torch_scan_without_importing_kernels(monkeypatch):
    calls = []
    monkeypatch.setattr(ss, "_load_kernel", lambda *a: pytest.fail("kernel import tried for CPU tensors"))
    monkeypatch.setattr(ss, "selective_scan_torch", lambda *a: calls.append("torch") or a[0])
    u, delta, A, B, C, *_ = make_inputs()
    ss.selective_scan(u, delta, A, B, C, impl="auto")
    ss.causal_conv1d(u, torch.randn(u.shape[1], 4, dtype=u.dtype), impl="auto")
    assert calls == ["torch"]


def test_ref_impl_dispatches_to_ref():
    u, delta, A, B, C, *_ = make_inputs()
    torch.testing.assert_close(ss.selective_scan(u, delta, A, B, C, impl="ref"),
                               ss.selective_scan_ref(u, delta, A, B, C))


def test_cuda_impl_without_kernel_raises_clearly(monkeypatch):
    monkeypatch.setattr(ss, "_load_kernel", lambda *a: (None, "ImportError: no selective_scan_cuda"))
    u, delta, A, B, C, *_ = make_inputs()
    with pytest.raises(RuntimeError, match="impl='cuda' needs mamba_ssm's compiled kernel.*no selective_scan_cuda"):
        ss.selective_scan(u, delta, A, B, C, impl="cuda")
    with pytest.raises(RuntimeError, match="causal_conv1d's compiled kernel"):
        ss.causal_conv1d(u, torch.randn(u.shape[1], 4, dtype=u.dtype), impl="cuda")


def test_cuda_impl_on_cpu_tensors_raises_clearly(monkeypatch):
    monkeypatch.setattr(ss, "_load_kernel", lambda *a: (lambda *args, **kw: None, None))
    u, delta, A, B, C, *_ = make_inputs()
    with pytest.raises(RuntimeError, match="needs CUDA tensors, got cpu"):
        ss.selective_scan(u, delta, A, B, C, impl="cuda")


def test_unknown_impl_raises():
    u, delta, A, B, C, *_ = make_inputs()
    with pytest.raises(ValueError, match="unknown scan impl 'fast'"):
        ss.selective_scan(u, delta, A, B, C, impl="fast")


@pytest.mark.parametrize("error", [ImportError, OSError, RuntimeError])
def test_broken_kernel_install_falls_back(monkeypatch, error):
    """An import that fails like a CPU-only or mismatched build leaves the kernel unavailable."""
    class BrokenFinder:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("mamba_ssm", "causal_conv1d"):
                raise error("undefined symbol: _ZN3c10 (simulated broken build)")
            return None

    for name in [m for m in sys.modules if m.split(".")[0] in ("mamba_ssm", "causal_conv1d")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [BrokenFinder()] + sys.meta_path)
    ss._load_kernel.cache_clear()
    try:
        fn, why = ss._load_kernel("mamba_ssm.ops.selective_scan_interface", "selective_scan_fn")
        assert fn is None and "simulated broken build" in why
        u, delta, A, B, C, *_ = make_inputs()
        torch.testing.assert_close(ss.selective_scan(u, delta, A, B, C), ss.selective_scan_ref(u, delta, A, B, C))
    finally:
        ss._load_kernel.cache_clear()


def test_module_imports_with_broken_mamba_ssm_in_a_fresh_interpreter():
    """A fake mamba_ssm that raises on any attribute access must not break importing us."""
    code = textwrap.dedent("""
        import sys, types
        import torch  # first: torch's own import walks sys.modules with hasattr
        class Broken(types.ModuleType):
            def __getattr__(self, name):
                raise RuntimeError("selective_scan_cuda.so: undefined symbol (simulated)")
        sys.modules["mamba_ssm"] = Broken("mamba_ssm")
        sys.modules["causal_conv1d"] = Broken("causal_conv1d")
        from models.ops import selective_scan as ss
        fn, why = ss._load_kernel("mamba_ssm.ops.selective_scan_interface", "selective_scan_fn")
        assert fn is None and "simulated" in why, why
        fn, why = ss._load_kernel("causal_conv1d", "causal_conv1d_fn")
        assert fn is None and "simulated" in why, why
        u = torch.randn(2, 3, 5); B = torch.randn(2, 4, 5)
        ss.selective_scan(u, u.abs(), -torch.ones(3, 4), B, B)
        print("ok")
    """)
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


# ---- causal conv ------------------------------------------------------------------------------

def test_causal_conv1d_ref_matches_direct_sum():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 9, generator=g, dtype=torch.float64)
    w = torch.randn(3, 4, generator=g, dtype=torch.float64)
    b = torch.randn(3, generator=g, dtype=torch.float64)
    xp = torch.nn.functional.pad(x, (3, 0))                   # out_t = b + sum_k w_k x_{t-3+k}
    direct = b[:, None] + sum(w[:, k, None] * xp[..., k:k + 9] for k in range(4))
    torch.testing.assert_close(ss.causal_conv1d(x, w, b, activation=None), direct)
    torch.testing.assert_close(ss.causal_conv1d(x, w, b), torch.nn.functional.silu(direct))


# ---- CUDA kernels (skipped without CUDA / the packages) ---------------------------------------

def _kernel_or_skip(module, name):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    fn, why = ss._load_kernel(module, name)
    if fn is None:
        pytest.skip(f"{module} kernel not importable ({why}); pip install -r requirements-cuda.txt")
    return fn


@pytest.mark.parametrize("use_z,use_D,use_bias,softplus", [(True, True, True, True), (False, True, False, False)])
def test_mamba_ssm_kernel_matches_torch_scan(use_z, use_D, use_bias, softplus):
    kernel = _kernel_or_skip("mamba_ssm.ops.selective_scan_interface", "selective_scan_fn")
    ts = make_inputs(batch=4, d_inner=64, d_state=16, L=120, dtype=torch.float32, softplus=softplus, device="cuda")
    got = run(kernel, ts, use_z, use_D, use_bias, softplus, last_weight=0.0)
    want = run(ss.selective_scan_torch, ts, use_z, use_D, use_bias, softplus, last_weight=0.0)
    torch.testing.assert_close(got[0], want[0], **F32_TOL)
    torch.testing.assert_close(got[1], want[1], **F32_TOL)
    for a, b in zip(got[2], want[2]):                         # mamba checks grads 2-10x looser
        torch.testing.assert_close(a, b, rtol=6e-4 * 5, atol=2e-3 * 5)


def test_causal_conv1d_kernel_matches_ref():
    kernel = _kernel_or_skip("causal_conv1d", "causal_conv1d_fn")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 64, 120, generator=g).cuda().requires_grad_()
    w = torch.randn(64, 4, generator=g).cuda().requires_grad_()
    b = torch.randn(64, generator=g).cuda().requires_grad_()
    got, want = kernel(x, w, b, activation="silu"), ss.causal_conv1d_ref(x, w, b)
    torch.testing.assert_close(got, want, **F32_TOL)
    for a, b_ in zip(torch.autograd.grad(got.sum(), (x, w, b)), torch.autograd.grad(want.sum(), (x, w, b))):
        torch.testing.assert_close(a, b_, rtol=6e-4 * 5, atol=2e-3 * 5)
