"""Time the selective scan implementations and the HARMamba encoder, forward + backward.

    python scripts/bench_scan.py                      # CPU, batch 512, L 40 61 120 200
    python scripts/bench_scan.py --threads 1 --lengths 61 --skip-ref
    python scripts/bench_scan.py --device cuda        # adds mamba_ssm's kernel ("cuda")
On a CPU the C++ kernel ("kernel") is timed too where it builds.

Each figure is the median of --repeats timed runs after one warm-up run; the sequential
reference is slow, so it gets --ref-repeats runs and no warm-up. The load average is printed
before and after: on a shared machine other jobs inflate the figures.
"""
import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.cli import Parser  # noqa: E402
from models.mamba import build_mamba  # noqa: E402
from models.ops.selective_scan import selective_scan  # noqa: E402


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed(step, repeats, warmup, device):
    """-> median seconds of `repeats` calls of step()."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if warmup:
        step()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def scan_step(impl, batch, L, d_inner, d_state, device):
    g = torch.Generator().manual_seed(0)

    def r(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g)).to(device).requires_grad_()

    u, delta, z = r(batch, d_inner, L), r(batch, d_inner, L, scale=0.5), r(batch, d_inner, L)
    B, C, D, bias = r(batch, d_state, L), r(batch, d_state, L), r(d_inner), r(d_inner, scale=0.5)
    A = (-0.1 - torch.rand(d_inner, d_state, generator=g)).to(device).requires_grad_()

    def step():
        out = selective_scan(u, delta, A, B, C, D, z, delta_bias=bias, delta_softplus=True, impl=impl)
        out.sum().backward()
    return step


def encoder_step(impl, batch, seq_len, channels, device):
    torch.manual_seed(0)
    model = build_mamba({"scan": impl}, feature_num=channels, seq_len=seq_len).to(device).train()
    x = torch.randn(batch, seq_len, channels, device=device)

    def step():
        model.zero_grad(set_to_none=True)
        feats, pooled = model(x)
        (feats.square().mean() + pooled.square().mean()).backward()
    return step, model


def main():
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lengths", type=int, nargs="+", default=[40, 61, 120, 200])
    ap.add_argument("--d-inner", type=int, default=128)
    ap.add_argument("--d-state", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ref-repeats", type=int, default=1)
    ap.add_argument("--skip-ref", action="store_true", help="leave out the slow sequential reference")
    ap.add_argument("--channels", type=int, default=6)
    ap.add_argument("--seq-len", type=int, default=120)
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    from models.ops.selective_scan import kernel_unavailable_reason
    kernel = ["kernel"] if device.type == "cpu" and kernel_unavailable_reason() is None else []
    impls = ["torch"] + kernel + ([] if args.skip_ref else ["ref"]) + (["cuda"] if device.type == "cuda" else [])
    print(f"cpu: {cpu_name()} ({os.cpu_count()} logical cores), torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, cpu capability {torch.backends.cpu.get_cpu_capability()}")
    if device.type == "cuda":
        print(f"gpu: {torch.cuda.get_device_name(device)}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")

    print(f"\nselective scan fwd+bwd, batch {args.batch}, d_inner {args.d_inner}, d_state {args.d_state}, "
          f"z/D/delta_bias/softplus on; median seconds (torch/cuda: {args.repeats} runs after warm-up, "
          f"ref: {args.ref_repeats} run(s))")
    print("     L  " + "".join(f"{impl:>10s}" for impl in impls))
    for L in args.lengths:
        row = []
        for impl in impls:
            step = scan_step(impl, args.batch, L, args.d_inner, args.d_state, device)
            ref = impl == "ref"
            row.append(timed(step, args.ref_repeats if ref else args.repeats, not ref, device))
        print(f"  {L:4d}  " + "".join(f"{t:10.3f}" for t in row), flush=True)

    print(f"\nHARMamba encoder fwd+bwd, batch {args.batch}, T {args.seq_len}, C {args.channels} (default cfg)")
    for impl in impls:
        step, model = encoder_step(impl, args.batch, args.seq_len, args.channels, device)
        ref = impl == "ref"
        t = timed(step, args.ref_repeats if ref else args.repeats, not ref, device)
        tokens = model.n_patches * args.channels + 1
        n_params = sum(p.numel() for p in model.parameters())
        print(f"  scan={impl:5s} {t:8.3f} s   ({tokens} tokens, {len(model.blocks)} bidirectional blocks, "
              f"{n_params / 1e6:.3f} M params)", flush=True)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
