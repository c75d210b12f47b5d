"""torch.distributed on CPU (gloo): the gathered NT-Xent equals the single-process loss, and
pretraining runs and resumes under torchrun."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from training.distributed import gather_with_grad
from training.losses import nt_xent

REPO = Path(__file__).resolve().parents[1]


def fixed_batch():
    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    weight = torch.randn(4, 5, generator=g)
    return x1, x2, weight


def _rank_main(rank, world, port, out_dir):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    x1, x2, weight = fixed_batch()
    w = weight.clone().requires_grad_()
    part = slice(rank * 8 // world, (rank + 1) * 8 // world)
    loss = nt_xent(gather_with_grad(x1[part] @ w.T), gather_with_grad(x2[part] @ w.T))
    loss.backward()
    grad = w.grad.clone()
    dist.all_reduce(grad)
    grad /= world                      # what DDP does with parameter gradients
    torch.save({"loss": loss.detach(), "grad": grad}, Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_gathered_nt_xent_equals_single_process(tmp_path):
    x1, x2, weight = fixed_batch()
    w = weight.clone().requires_grad_()
    loss = nt_xent(x1 @ w.T, x2 @ w.T)
    loss.backward()
    mp.spawn(_rank_main, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        r = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert abs(r["loss"].item() - loss.item()) < 1e-6
        assert torch.allclose(r["grad"], w.grad, atol=1e-6, rtol=0)


@pytest.mark.slow
def test_torchrun_pretraining_two_processes_resumes(tmp_path, prepared_real):
    cfg = {"seed": 5, "batch_size": 256, "lr": 1e-3, "n_epochs": 2, "n_epochs_cl": 1,
           "lambda_recon": 6.0, "lambda_cl": 1.0, "train_rate": 0.8, "val_rate": 0.1}
    (tmp_path / "pt2.json").write_text(json.dumps(cfg))
    (tmp_path / "pt3.json").write_text(json.dumps({**cfg, "n_epochs": 3}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}

    def torchrun(config):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(REPO / "pretrain.py"), "-d", "uci", "--data-dir", str(prepared_real), "-am", "none",
               "-t", config, "-s", "ddp"]
        proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    first = torchrun("pt2.json")
    assert "2 processes" in first.stdout and first.stdout.count("pretraining limu") == 1, "rank 0 alone prints"
    run = tmp_path / "saved" / "pretrain_ddp"
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "config.json", "curve.png", "history.csv", "last.pt"]
    assert torch.load(run / "last.pt", weights_only=True)["fit_state"]["epoch"] == 2
    again = torchrun("pt3.json")
    assert "resuming" in again.stdout and "after epoch 2/3" in again.stdout
    assert torch.load(run / "last.pt", weights_only=True)["fit_state"]["epoch"] == 3
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["pretrain_ddp"]
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "config.json", "curve.png", "history.csv", "last.pt"]
