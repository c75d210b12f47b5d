"""Throughput benchmark: this machine's matmul peak, then per backbone and precision the
pretraining step rate, FLOPs per window, achieved GFLOP/s and % of the measured peak of
that precision, classifier-stage seconds, batch-1 inference latency and peak memory.

    python scripts/bench.py [--backbones limu mamba] [--precisions fp32 bf16] [--repeats 5]
                            [--classifier-epochs 100] [--compile] [--ranks 2]
                            [--interleave [--with-torch-scan]] [--json results/bench.json]

--compile adds rows with the pretraining step under torch.compile (compile time reported
apart); --ranks N adds rows with the step data-parallel over N processes of cores/N threads
each (global batch 512, gloo on the CPU): what `torchrun --nproc_per_node N pretrain.py` runs.
--interleave adds the mamba and limu steps timed in turn in one process (and with
--with-torch-scan the mamba step on the PyTorch scan). The selective-scan rows (PyTorch scan,
C++ kernel, CUDA kernel where there is one) are always timed, in turn in one process.

Each (setup, backbone, precision) runs in its own subprocess so its peak memory is its own. The
machine is shared and noisy: compare ratios within one run, not absolute figures across runs.
Medians of --repeats timed repetitions after warm-up.
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

# The classifier workload measured: 809 labelled windows of 120 x 72, validation 1,012, batch 128.
CLF_TRAIN, CLF_VAL, SEQ = 809, 1012, 120
BATCH = 512                  # the reference pretraining batch (global, also under --ranks)
# FLOPs per window of the original CrossHAR's LIMU step (flop_counter): "% peak, ref." is the
# share of the peak that the original's work done at our rate would take (the yardstick of
# the throughput targets in docs/performance.md)
REFERENCE_MFLOP = 208.5
SCAN_EVENTS = ("selective_scan", "_SelectiveScanFnBackward", "selective_scan_backward", "KernelScanFnBackward")
SCAN_SHAPE = dict(batch=512, d_inner=128, d_state=16)      # mamba_v1's scan at batch 512
SCAN_LENGTHS = (61, 121)     # mamba_v1's tokens on 120-sample windows; twice as many


def device_sync(device):
    """What to call before reading the clock: CUDA runs asynchronously."""
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def threads_per_rank(ranks):
    return max(1, (os.cpu_count() or 1) // ranks)


def median_time(fn, repeats, warmup=2, sync=lambda: None):
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_peak(dtype, device, repeats, n=4096):
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    t = median_time(lambda: a @ b, repeats, sync=device_sync(device))
    return 2 * n ** 3 / t / 1e9


def hardware():
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def pretrain_step(backbone, precision, device, batch, wrap=lambda m: m, seed=0):
    """(model, step): one phase-2 pretraining step on `batch` uci-sized random windows."""
    from config import CONFIG_DIR, MaskConfig, PretrainConfig, load_model_config
    from models.spec import encoder_spec
    from training.loop import make_generator
    from training.pretrain import PretrainModel, train_step

    models_cfg = json.loads((CONFIG_DIR / "pretrain_model.json").read_text())
    model_cfg = load_model_config(CONFIG_DIR / "pretrain_model.json", f"{backbone}_v1")
    torch.manual_seed(0)
    spec = encoder_spec(backbone, "v1", model_cfg, 6, SEQ)
    model = PretrainModel(spec, models_cfg["contrastive_head"]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    train_cfg, mask_cfg = PretrainConfig(), MaskConfig()
    g = make_generator(device, seed)
    x = torch.randn(batch, SEQ, 6, device=device) * 3 + 1
    run = wrap(model)
    model.train()
    return model, lambda: train_step(run, opt, x, mask_cfg, train_cfg, g, True, device, precision,
                                     model.encoder.normalize)


def one_config(backbone, precision, repeats, clf_epochs, device):
    """Measure one (backbone, precision) in this process; returns a dict."""
    from config import CONFIG_DIR, ClassifierTrainConfig, load_model_config
    from models.heads import TransformerClassifier
    from training.classifier import train_classifier
    from training.loop import autocast

    sync = device_sync(device)
    model, step = pretrain_step(backbone, precision, device, BATCH)
    step_s = median_time(step, repeats, sync=sync)

    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode
    # the counter misses the fused CPU attention kernels: count the same step on the math
    # backend, whose matmuls it sees (same arithmetic, so the same FLOPs)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        step()
    flops_per_window = fc.get_total_flops() / BATCH

    # share of the step in the selective scan (mamba only)
    scan_share = None
    if backbone == "mamba":
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])) as prof:
            with torch.profiler.record_function("step"):
                step()
            sync()
        events = prof.key_averages()
        total = sum(e.cpu_time_total for e in events if e.key == "step")
        # the forward is recorded as "selective_scan", the backward as the torch scan's autograd
        # node or, on the C++ kernels, as "selective_scan_backward" / the kernel's node
        scan = sum(e.cpu_time_total for e in events if e.key in SCAN_EVENTS)
        scan_share = scan / total if total else None

    # classifier stage at the workload above
    hidden = model.encoder.num_features      # the measured workload is LIMU's 72
    feats = torch.randn(CLF_TRAIN + CLF_VAL, SEQ, hidden, device=device)
    y = torch.randint(0, 4, (CLF_TRAIN + CLF_VAL,), device=device)
    clf_cfg = load_model_config(CONFIG_DIR / "classifier.json", "transformer_v1")
    clf = TransformerClassifier(hidden, 4, SEQ, **clf_cfg).to(device)
    cfg = ClassifierTrainConfig(n_epochs=clf_epochs, seed=0)
    t0 = time.perf_counter()
    train_classifier(model=clf, x=feats, y=y, train_idx=list(range(CLF_TRAIN)),
                     val_idx=list(range(CLF_TRAIN, CLF_TRAIN + CLF_VAL)), cfg=cfg, device=device,
                     precision=precision, desc=f"bench classifier {precision}")
    sync()
    clf_s = (time.perf_counter() - t0) * 100 / clf_epochs

    # batch-1 latency: encoder + classifier on one window
    model.eval()
    clf.eval()
    one = torch.randn(1, SEQ, 6, device=device)

    @torch.no_grad()
    def infer():
        with autocast(device, precision):
            feats1, _ = model.encoder(one)
            clf(feats1.float())
    latency = median_time(infer, max(20, repeats * 4), warmup=5, sync=sync)

    peak_mem = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"step_s": step_s, "mflop_per_window": flops_per_window / 1e6,
            "scan_share": scan_share, "classifier_stage_s": clf_s,
            "classifier_epochs_timed": clf_epochs, "latency_ms": latency * 1e3,
            "peak_mem_mib": peak_mem}


def compiled_config(backbone, precision, repeats, device):
    """The pretraining step under torch.compile, as `pretrain.py --compile` runs it."""
    from training.pretrain import compiled
    sync = device_sync(device)
    _, step = pretrain_step(backbone, precision, device, BATCH, wrap=compiled)
    t0 = time.perf_counter()
    step()
    sync()
    compile_s = time.perf_counter() - t0
    return {"step_s": median_time(step, repeats, sync=sync), "compile_s": compile_s}


def _ddp_worker(rank, ranks, backbone, precision, repeats, port, queue, compile):
    import torch.distributed as dist
    from training.pretrain import compiled
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(threads_per_rank(ranks))
    dist.init_process_group("gloo", rank=rank, world_size=ranks)
    ddp = torch.nn.parallel.DistributedDataParallel
    try:
        # each rank a BATCH / ranks shard of the global batch; NT-Xent gathers the projections
        _, step = pretrain_step(backbone, precision, torch.device("cpu"), BATCH // ranks,
                                wrap=(lambda m: compiled(ddp(m))) if compile else ddp, seed=rank)
        if compile:
            step()      # compile outside the timed warm-up
        t = median_time(step, repeats, sync=dist.barrier)
        if rank == 0:
            queue.put(t)
    finally:
        dist.destroy_process_group()


def ddp_config(backbone, precision, ranks, repeats, compile=False):
    """The pretraining step data-parallel over `ranks` CPU processes (global batch BATCH)."""
    import queue as queue_module
    import socket
    import torch.multiprocessing as mp
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ddp_worker, args=(r, ranks, backbone, precision, repeats, port, queue, compile))
             for r in range(ranks)]
    for proc in procs:
        proc.start()
    while True:         # a rank that dies must end the measurement, not hang it
        try:
            step_s = queue.get(timeout=5)
            break
        except queue_module.Empty:
            if any(proc.exitcode not in (None, 0) for proc in procs):
                for proc in procs:
                    proc.kill()
                raise RuntimeError("a data-parallel rank failed (its error is above)")
    for proc in procs:
        proc.join()
    return {"step_s": step_s}


def scan_timings(repeats, device):
    """Forward+backward of each selective-scan implementation at mamba_v1's sizes (B 512, D 128,
    N 16, z, D, delta_bias and softplus on; (B, D, L) inputs), timed in rounds that take the
    implementations in turn, in this process and under the same thread settings; medians."""
    from models.ops import selective_scan as ss
    impls = ["torch"] + (["kernel"] if ss.kernel_unavailable_reason() is None and device.type == "cpu" else []) \
        + (["cuda"] if device.type == "cuda" else [])
    rows = []
    for L in SCAN_LENGTHS:
        g = torch.Generator(device="cpu").manual_seed(0)
        B, D, N = SCAN_SHAPE["batch"], SCAN_SHAPE["d_inner"], SCAN_SHAPE["d_state"]
        mk = lambda *s, scale=1.0: (scale * torch.randn(*s, generator=g)).to(device).requires_grad_()  # noqa: E731
        inputs = [mk(B, D, L), mk(B, D, L, scale=0.5), (-0.1 - torch.rand(D, N, generator=g)).to(device).requires_grad_(),
                  mk(B, N, L), mk(B, N, L), mk(D), mk(B, D, L), mk(D, scale=0.5)]
        sync = device_sync(device)

        def run(impl):
            for t in inputs:
                t.grad = None
            sync()
            t0 = time.perf_counter()
            u, delta, A, Bm, Cm, Dv, z, bias = inputs
            ss.selective_scan(u, delta, A, Bm, Cm, Dv, z, bias, delta_softplus=True, impl=impl).sum().backward()
            sync()
            return time.perf_counter() - t0
        times = {impl: [] for impl in impls}
        for impl in impls:
            run(impl)                                   # warm-up (and the kernel's first build)
        for _ in range(max(1, repeats)):
            for impl in impls:
                times[impl].append(run(impl))
        for impl in impls:
            rows.append({"impl": impl, "L": L, "fwd_bwd_ms": 1e3 * statistics.median(times[impl]),
                         "rounds": len(times[impl])})
    return rows


def interleaved_steps(precisions, repeats, setups):
    """Pretraining steps of several (backbone, scan) setups timed in turn in one process (the
    fairest ratio on a shared machine): {(setup, precision): median seconds}."""
    device = torch.device("cpu")
    out = {}
    for precision in precisions:
        steps = {}
        for name, backbone, scan in setups:
            model, step = pretrain_step(backbone, precision, device, BATCH)
            if scan:
                from models.mamba import Mamba
                for m in model.modules():
                    if isinstance(m, Mamba):
                        m.scan = scan
            step()                                      # warm-up
            steps[name] = step
        times = {name: [] for name in steps}
        for _ in range(repeats):
            for name, step in steps.items():
                t0 = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - t0)
        for name, ts in times.items():
            out[(name, precision)] = statistics.median(ts)
    return out


def main():
    from common.cli import Parser
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--backbones", nargs="*", default=["limu", "mamba"],
                   help="backbones measured each in its own process (none: only the scan rows and --interleave)")
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--classifier-epochs", type=int, default=100,
                   help="classifier epochs actually timed; the stage time is scaled to 100")
    p.add_argument("--compile", action="store_true", help="also time the pretraining step under torch.compile")
    p.add_argument("--ranks", type=int, default=0,
                   help="also time the step data-parallel over this many CPU processes (0: no)")
    p.add_argument("--interleave", action="store_true",
                   help="also time the mamba and limu steps in turn in one process (mamba / limu per window)")
    p.add_argument("--with-torch-scan", action="store_true",
                   help="with --interleave: also the mamba step on the PyTorch scan (the slow baseline)")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--one", nargs=3, metavar=("SETUP", "BACKBONE", "PRECISION"), help=argparse.SUPPRESS)
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.one:        # one measurement in this (sub)process; setup: plain | compile | ranks | ranks+compile
        setup, backbone, precision = args.one
        r = (one_config(backbone, precision, args.repeats, args.classifier_epochs, device) if setup == "plain"
             else compiled_config(backbone, precision, args.repeats, device) if setup == "compile"
             else ddp_config(backbone, precision, args.ranks, args.repeats, compile=setup == "ranks+compile"))
        print(json.dumps(r))
        return

    from training.loop import cpu_has_native_bf16
    hw = hardware()
    print(f"hardware: {hw}")
    peaks = {"fp32": matmul_peak(torch.float32, device, args.repeats)}
    bf16_ok = device.type == "cuda" or cpu_has_native_bf16()
    if bf16_ok:
        peaks["bf16"] = matmul_peak(torch.bfloat16, device, args.repeats)
    print("matmul peak (4096^3): " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()))
    setups = ["plain"] + (["compile"] if args.compile else [])
    if args.ranks > 1 and device.type == "cpu":
        setups += ["ranks"] + (["ranks+compile"] if args.compile else [])
    rows, flops = [], {}
    for backbone in args.backbones:
        for setup in setups:
            for precision in args.precisions:
                if precision == "bf16" and not bf16_ok:
                    print(f"skip {backbone} bf16: no native bf16 on this device")
                    continue
                cmd = [sys.executable, __file__, "--one", setup, backbone, precision, "--repeats",
                       str(args.repeats), "--classifier-epochs", str(args.classifier_epochs),
                       "--ranks", str(args.ranks)]
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode != 0:
                    print(f"{backbone} {precision} ({setup}) failed:\n{out.stderr[-2000:]}")
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                # FLOPs are counted once, in the plain setup: the others run the same arithmetic
                flops.setdefault((backbone, precision), r.get("mflop_per_window"))
                mflop, rate = flops[(backbone, precision)], BATCH / r["step_s"]
                label = precision + ("+compile" if "compile" in setup else "") + (
                    f", {args.ranks} ranks x {threads_per_rank(args.ranks)} thread(s)" if setup.startswith("ranks") else "")
                r.update(backbone=backbone, precision=precision, setup=setup, label=label,
                         pretrain_windows_per_s=rate, mflop_per_window=mflop)
                if mflop is not None:
                    r["achieved_gflops"] = mflop * rate / 1e3
                    r["pct_of_peak"] = 100 * r["achieved_gflops"] / peaks[precision]
                if backbone == "limu":
                    r["pct_of_peak_reference_work"] = 100 * REFERENCE_MFLOP * rate / 1e3 / peaks[precision]
                rows.append(r)
    head = ("backbone", "precision", "windows/s", "MFLOP/win", "GFLOP/s", "% peak", "% peak, ref.",
            "scan %", "classifier s", "latency ms", "peak MiB")
    if rows:
        print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))

    def fmt(r, key, spec, scale=1.0):
        return format(scale * r[key], spec) if r.get(key) is not None else "-"

    for r in rows:
        print(f"| {r['backbone']} | {r['label']} | {r['pretrain_windows_per_s']:.0f} | "
              + " | ".join(fmt(r, *f) for f in (
                  ("mflop_per_window", ".1f"), ("achieved_gflops", ".1f"), ("pct_of_peak", ".0f"),
                  ("pct_of_peak_reference_work", ".0f"), ("scan_share", ".0f", 100),
                  ("classifier_stage_s", ".0f"), ("latency_ms", ".2f"), ("peak_mem_mib", ".0f"))) + " |")
    for r in rows:
        if "compile_s" in r:
            print(f"({r['backbone']} {r['label']}: first step incl. compilation {r['compile_s']:.0f} s)")
    if rows and args.classifier_epochs != 100:
        print(f"(classifier stage: {args.classifier_epochs} epochs timed, scaled to 100)")
    scans = scan_timings(args.repeats, device)
    print(f"\nselective scan fwd+bwd, B {SCAN_SHAPE['batch']}, D {SCAN_SHAPE['d_inner']}, N {SCAN_SHAPE['d_state']}, "
          f"{torch.get_num_threads()} threads, medians of rounds taking the implementations in turn:")
    for L in SCAN_LENGTHS:
        at = {s["impl"]: s["fwd_bwd_ms"] for s in scans if s["L"] == L}
        speedup = f"   torch / kernel: {at['torch'] / at['kernel']:.1f}x" if "kernel" in at else ""
        print(f"  L {L}: " + ", ".join(f"{impl} {ms:.0f} ms" for impl, ms in at.items()) + speedup)
    steps = {}
    if args.interleave and device.type == "cpu":
        setups = [("mamba", "mamba", None), ("limu", "limu", None)] + (
            [("mamba, torch scan", "mamba", "torch")] if args.with_torch_scan else [])
        precisions = [p for p in args.precisions if p != "bf16" or bf16_ok]
        steps = interleaved_steps(precisions, args.repeats, setups)
        print(f"\npretraining steps in turn in one process (batch {BATCH}, {args.repeats} rounds, medians):")
        for precision in precisions:
            at = {name: steps[(name, precision)] for name, _, _ in setups}
            line = ", ".join(f"{name} {BATCH / s:.0f} windows/s" for name, s in at.items())
            line += f"; mamba / limu per window: {at['mamba'] / at['limu']:.1f}x"
            if "mamba, torch scan" in at:
                line += f"; mamba vs on the torch scan: {at['mamba, torch scan'] / at['mamba']:.1f}x faster"
            print(f"  {precision}: {line}")
    if args.json:
        from common.io import save_json
        save_json({"hardware": hw, "peaks_gflops": peaks, "rows": rows, "scan": scans,
                   "interleaved_steps_s": {f"{n}|{p}": s for (n, p), s in steps.items()}}, args.json)


if __name__ == "__main__":
    main()
