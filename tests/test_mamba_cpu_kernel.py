"""The fused C++ CPU kernels (models/ops/mamba_cpu.*): the scan and the conv against the float64
references (outputs and every gradient), their options and layouts, the fused mixers in the
model, the dispatch, and the build: fallback without a compiler, two processes building at once.
Skipped, with the reason, where the kernel cannot be built."""
import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from models.mamba import Mamba, build_mamba
from models.ops import mamba_cpu
from models.ops import selective_scan as ss
from tests.test_selective_scan import OPTIONS, make_inputs, run

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def kernel_or_skip():
    lib, why = mamba_cpu.load()
    if lib is None:
        pytest.skip(f"C++ kernel unavailable: {why}")


def assert_near(got, want, rel=1e-5):
    """float32 arithmetic against a float64 reference: within rel of the largest magnitude."""
    assert got.dtype == want.dtype and got.shape == want.shape
    scale = want.abs().max().item()
    err = (got - want).abs().max().item()
    assert err <= rel * scale + 1e-7, (err, scale)


def kernel(reverse=False):
    return lambda *a, **kw: ss.selective_scan_kernel(*a, **kw, reverse=reverse)


# ---- the scan -----------------------------------------------------------------------------------

@pytest.mark.parametrize("L", [1, 7, 70])
@pytest.mark.parametrize("use_z,use_D,use_bias,softplus", OPTIONS)
def test_scan_matches_ref(L, use_z, use_D, use_bias, softplus):
    """d_inner 19: a full and a partial block of 16 channels; d_state 5: padded states."""
    ts = make_inputs(batch=3, d_inner=19, d_state=5, L=L, softplus=softplus)
    want = run(ss.selective_scan_ref, ts, use_z, use_D, use_bias, softplus)
    got = run(kernel(), ts, use_z, use_D, use_bias, softplus)
    for g, w in zip([got[0], got[1], *got[2]], [want[0], want[1], *want[2]]):
        assert_near(g, w)


@pytest.mark.parametrize("d_state", [16, 17, 32])
def test_scan_state_sizes(d_state):
    ts = make_inputs(batch=2, d_inner=16, d_state=d_state, L=9)
    want = run(ss.selective_scan_ref, ts, True, True, True, True)
    got = run(kernel(), ts, True, True, True, True)
    for g, w in zip([got[0], got[1], *got[2]], [want[0], want[1], *want[2]]):
        assert_near(g, w)


def _relayout(t, how):
    """The same (batch, X, L) values in another memory layout."""
    if how == "channels_last":                       # a Linear layer's output, transposed
        return t.detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_()
    if how == "strided":                             # neither X nor L contiguous
        big = torch.zeros(t.shape[0], t.shape[1] * 2, t.shape[2] * 3, dtype=t.dtype)
        big[:, ::2, ::3] = t.detach()
        return big[:, ::2, ::3].requires_grad_()
    return t


@pytest.mark.parametrize("how", ["channels_last", "strided"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_scan_layouts_give_identical_results(how, dtype):
    ts = [t.detach().to(dtype).requires_grad_() for t in make_inputs(batch=2, d_inner=19, d_state=5, L=21)]
    streamed = (0, 1, 3, 4, 6)                         # u, delta, B, C, z
    other = [_relayout(t, how) if i in streamed else t for i, t in enumerate(ts)]
    assert other[0].stride() != ts[0].stride()
    a, b = run(kernel(), ts, True, True, True, True), run(kernel(), other, True, True, True, True)
    for x, y in zip([a[0], a[1], *a[2]], [b[0], b[1], *b[2]]):
        assert x.dtype == dtype and torch.equal(x, y)


def test_scan_reverse_is_the_flipped_scan():
    ts = make_inputs(batch=2, d_inner=19, d_state=5, L=13)
    flip = lambda t: t.flip(-1)                                          # noqa: E731
    u, delta, A, B, C, D, z, bias = ts
    rev = ss.selective_scan_kernel(u, delta, A, B, C, D, z, bias, True, reverse=True)
    want = flip(ss.selective_scan_kernel(flip(u), flip(delta), A, flip(B), flip(C), D, flip(z), bias, True))
    g = torch.randn_like(rev)
    grads = torch.autograd.grad((rev * g).sum(), ts)
    want_grads = torch.autograd.grad((want * g).sum(), ts)
    assert torch.equal(rev, want)
    for x, y in zip(grads, want_grads):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7)           # dA, dD, dbias: other sum order


def test_scan_low_rank_delta_is_dt_proj():
    g = torch.Generator().manual_seed(3)
    u, delta, A, B, C, D, z, bias = make_inputs(batch=2, d_inner=19, d_state=5, L=11)
    low = (0.3 * torch.randn(2, 4, 11, generator=g, dtype=torch.float64)).requires_grad_()
    weight = (0.5 * torch.randn(19, 4, generator=g, dtype=torch.float64)).requires_grad_()
    leaves = [u, low, weight, A, B, C, D, z, bias]
    got = ss.selective_scan_kernel(u, low, A, B, C, D, z, bias, True, delta_weight=weight)
    want = ss.selective_scan_ref(u, weight @ low, A, B, C, D, z, bias, True)
    w = torch.randn_like(want)
    for x, y in zip([got, *torch.autograd.grad((got * w).sum(), leaves)],
                    [want, *torch.autograd.grad((want * w).sum(), leaves)]):
        assert_near(x, y)
    with pytest.raises(ValueError, match=r"delta must be \(batch, rank, L\) = \(2, 4, 11\)"):
        ss.selective_scan_kernel(u, delta, A, B, C, D, z, bias, True, delta_weight=weight)


def test_scan_bf16_stays_bf16_and_close_to_fp32():
    ts32 = [t.detach().float().requires_grad_() for t in make_inputs(batch=2, d_inner=16, d_state=16, L=30)]
    ts16 = [t.detach().to(torch.bfloat16).requires_grad_() if i in (0, 1, 3, 4, 6) else t
            for i, t in enumerate(ts32)]
    a, b = run(kernel(), ts32, True, True, True, True), run(kernel(), ts16, True, True, True, True)
    assert b[0].dtype == torch.bfloat16 and b[2][0].dtype == torch.bfloat16
    for x, y in zip([a[0], *a[2][:2]], [b[0], *b[2][:2]]):
        assert (x - y.float()).abs().max() <= 0.03 * x.abs().max()


def test_scan_threads_change_nothing_but_summation_order():
    # big enough for the kernel to use threads (below about 2^20 state updates it runs on one)
    ts = make_inputs(batch=33, d_inner=19, d_state=16, L=64, dtype=torch.float32)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run(kernel(), ts, True, True, True, True)
        torch.set_num_threads(2)
        two = run(kernel(), ts, True, True, True, True)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])
    for x, y in zip(one[2], two[2]):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


def test_too_many_states_raise_for_kernel_and_fall_back_for_auto():
    ts = make_inputs(batch=2, d_inner=4, d_state=mamba_cpu.limits()[0] + 1, L=5, dtype=torch.float32)
    with pytest.raises(RuntimeError, match=r"impl='kernel'.*d_state 33 is above its maximum 32"):
        ss.selective_scan(*ts[:5], impl="kernel")
    torch.testing.assert_close(ss.selective_scan(*ts[:5], impl="auto"), ss.selective_scan_torch(*ts[:5]))


# ---- the conv -------------------------------------------------------------------------------

@pytest.mark.parametrize("width,activation,reverse,layout", list(itertools.product(
    [1, 4], [None, "silu"], [False, True], ["contiguous", "channels_last"])))
def test_conv_matches_ref(width, activation, reverse, layout):
    g = torch.Generator().manual_seed(width)
    x = torch.randn(3, 19, 23, generator=g, dtype=torch.float64)
    x = _relayout(x, layout).detach().requires_grad_()
    w = torch.randn(19, width, generator=g, dtype=torch.float64).requires_grad_()
    b = torch.randn(19, generator=g, dtype=torch.float64).requires_grad_()
    flip = (lambda t: t.flip(-1)) if reverse else (lambda t: t)         # noqa: E731
    want = flip(ss.causal_conv1d_ref(flip(x), w, b, activation))
    got = ss.causal_conv1d_kernel(x, w, b, activation, reverse=reverse)
    dout = torch.randn_like(want)
    for a, c in zip([got, *torch.autograd.grad((got * dout).sum(), (x, w, b))],
                    [want, *torch.autograd.grad((want * dout).sum(), (x, w, b))]):
        assert_near(a, c)


# ---- the mixers in the model ----------------------------------------------------------------

def _set_scan(model, scan):
    for m in model.modules():
        if isinstance(m, Mamba):
            m.scan = scan


def test_encoder_on_kernels_matches_torch_scan():
    """The fused path (one in_proj / out_proj matmul for both directions, conv and scan
    backwards in time without flips, dt_proj in the scan) is the same function."""
    torch.manual_seed(0)
    model = build_mamba({"depth": 2, "d_model": 32, "hidden": 24, "drop_path": 0.0}, 6, 120).double()
    x = torch.randn(3, 120, 6, dtype=torch.float64)
    results = {}
    for scan in ("torch", "kernel"):
        _set_scan(model, scan)
        model.zero_grad()
        feats, pooled = model(x)
        (feats.square().mean() + pooled.square().mean()).backward()
        results[scan] = [feats, pooled] + [p.grad.clone() for p in model.parameters()]
    for got, want in zip(results["kernel"], results["torch"]):
        assert_near(got, want, rel=2e-5)


def test_single_mixer_reverse_is_the_flipped_mixer():
    torch.manual_seed(0)
    m = Mamba(16, scan="kernel")
    x = torch.randn(2, 11, 16)
    torch.testing.assert_close(m(x, reverse=True), m(x.flip(1)).flip(1), rtol=1e-6, atol=1e-6)


# ---- dispatch and build -----------------------------------------------------------------------

def test_auto_picks_the_kernel_for_float32_and_torch_for_float64(monkeypatch):
    calls = []
    monkeypatch.setattr(ss, "selective_scan_kernel", lambda *a: calls.append("kernel") or a[0])
    monkeypatch.setattr(ss, "selective_scan_torch", lambda *a: calls.append("torch") or a[0])
    for dtype in (torch.float32, torch.float64):
        ts = make_inputs(dtype=dtype)
        ss.selective_scan(*ts[:5], impl="auto")
    assert calls == ["kernel", "torch"]


def test_unavailable_kernel_falls_back_saying_why_once(monkeypatch, capsys):
    monkeypatch.setattr(mamba_cpu, "load", lambda: (None, "no C++ compiler found (test)"))
    monkeypatch.setattr(ss, "_told_fallback", [])
    ts = make_inputs(dtype=torch.float32)
    for _ in range(2):
        torch.testing.assert_close(ss.selective_scan(*ts[:5]), ss.selective_scan_torch(*ts[:5]))
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["selective scan: using the PyTorch scan, the C++ kernel is unavailable: no C++ compiler found (test)"]
    with pytest.raises(RuntimeError, match=r"^impl='kernel': the C\+\+ selective-scan kernel cannot run: no C\+\+"):
        ss.selective_scan(*ts[:5], impl="kernel")


def _python(code, env, timeout=600):
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_no_compiler_falls_back_in_a_fresh_process(tmp_path):
    code = """
        import torch
        from models.ops import selective_scan as ss
        from models.mamba import build_mamba
        u = torch.randn(2, 3, 5); B = torch.randn(2, 4, 5)
        ss.selective_scan(u, u.abs(), -torch.ones(3, 4), B, B)
        build_mamba({"depth": 1}, 6, 120)(torch.randn(2, 120, 6))
        try:
            ss.selective_scan(u, u.abs(), -torch.ones(3, 4), B, B, impl="kernel")
        except RuntimeError as e:
            print(e)
        try:
            build_mamba({"depth": 1, "scan": "kernel"}, 6, 120)
        except ValueError as e:
            print(e)
    """
    proc = _python(code, {"CXX": "/nonexistent", "CROSSHAR_KERNEL_CACHE": str(tmp_path / "cache")})
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert err.strip().splitlines() == ["selective scan: using the PyTorch scan, the C++ kernel is unavailable: "
                                        "the C++ compiler CXX='/nonexistent' was not found"]
    why = "the C++ compiler CXX='/nonexistent' was not found"
    assert out.strip().splitlines() == [
        f"impl='kernel': the C++ selective-scan kernel cannot run: {why}",
        f"mamba: scan='kernel' needs the C++ CPU kernel, which cannot run here: {why}; use scan 'auto' or 'torch'"]


@pytest.mark.slow
def test_two_processes_build_into_an_empty_cache_at_once(tmp_path):
    cache = tmp_path / "cache"
    code = """
        import torch
        from models.ops import mamba_cpu, selective_scan as ss
        lib, why = mamba_cpu.load()
        assert lib is not None, why
        u = torch.randn(2, 3, 5); B = torch.randn(2, 4, 5)
        out = ss.selective_scan(u, u.abs(), -torch.ones(3, 4), B, B, impl="kernel")
        torch.testing.assert_close(out, ss.selective_scan_ref(u, u.abs(), -torch.ones(3, 4), B, B))
        print("ok")
    """
    procs = [_python(code, {"CROSSHAR_KERNEL_CACHE": str(cache)}) for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0 and out.strip() == "ok", err
    built = sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock"))
    assert len(built) == 1 and built[0].startswith("mamba_cpu-") and built[0].endswith(".so"), built
    # one of them compiled, the other waited for it and loaded its library
    assert sum("compiling the C++ CPU kernel" in err for _, err in results) == 1
