"""On a CUDA machine: our PyTorch scan and (where it imports) mamba-ssm's CUDA kernel against the
float64 reference (max errors of the output and every gradient), then their forward+backward
times at mamba_v1's sizes (B 512, D 128, N 16, L 61 and 121), in turn in one process.

    python scripts/gpu_scan_check.py [--repeats 10]

Part of scripts/gpu_check.sh; also runs on its own. A missing mamba-ssm is reported, not fatal.
"""
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.cli import Parser  # noqa: E402
from models.ops import selective_scan as ss  # noqa: E402


def inputs(batch, d_inner, d_state, L, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(device, dtype).requires_grad_()

    A = (-0.1 - torch.rand(d_inner, d_state, generator=g, dtype=torch.float64)).to(device, dtype).requires_grad_()
    return [r(batch, d_inner, L), r(batch, d_inner, L, scale=0.5), A, r(batch, d_state, L), r(batch, d_state, L),
            r(d_inner), r(batch, d_inner, L), r(d_inner, scale=0.5)]


def forward_backward(impl, ts, weight):
    u, delta, A, B, C, D, z, bias = ts
    out = ss.selective_scan(u, delta, A, B, C, D, z, bias, delta_softplus=True, impl=impl)
    return [out] + list(torch.autograd.grad((out * weight).sum(), ts))


def errors(impls, device):
    """Max |impl - ref| / max |ref| over the output and the 8 gradients (float32 inputs)."""
    ref_ts = inputs(4, 64, 16, 121, torch.float64, device)
    weight = torch.randn(4, 64, 121, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(device)
    want = forward_backward("ref", ref_ts, weight)
    names = ["out", "du", "ddelta", "dA", "dB", "dC", "dD", "dz", "ddelta_bias"]
    for impl in impls:
        got = forward_backward(impl, [t.detach().float().requires_grad_() for t in ref_ts], weight.float())
        rel = {n: ((g.double() - w).abs().max() / w.abs().max()).item() for n, g, w in zip(names, got, want)}
        worst = max(rel, key=rel.get)
        print(f"  {impl:6s} max relative error vs the float64 reference: {rel[worst]:.1e} ({worst}); "
              f"output {rel['out']:.1e}")


def timings(impls, device, repeats):
    for L in (61, 121):
        ts = inputs(512, 128, 16, L, torch.float32, device)
        weight = torch.ones(512, 128, L, device=device)
        times = {impl: [] for impl in impls}
        for impl in impls:
            forward_backward(impl, ts, weight)          # warm-up
        for _ in range(repeats):
            for impl in impls:
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                forward_backward(impl, ts, weight)
                torch.cuda.synchronize()
                times[impl].append(time.perf_counter() - t0)
        print(f"  L {L}: " + ", ".join(f"{impl} {1e3 * statistics.median(t):.2f} ms" for impl, t in times.items()))


def main():
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_scan_check: no CUDA device")
    device = torch.device("cuda")
    print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    impls = ["torch"]
    fn, why = ss._load_kernel(*ss._SCAN_KERNEL[:2])
    if fn is None:
        print(f"  mamba-ssm's CUDA kernel is not importable ({why}): comparing our scan only")
    else:
        impls.append("cuda")
    errors(impls, device)
    print("selective scan fwd+bwd, B 512, D 128, N 16, medians of rounds taking the implementations in turn:")
    timings(impls, device, args.repeats)


if __name__ == "__main__":
    main()
