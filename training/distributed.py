"""torchrun / torch.distributed support. Run plainly, everything is single-process.

Under `torchrun --nproc_per_node N` (and multi-node with --nnodes and a c10d rendezvous) the
process group comes from the environment: NCCL on CUDA, gloo on CPU, one device per local
rank, with a timeout so a rank that dies takes the job down instead of hanging it.
"""
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from common.errors import UserError

TIMEOUT_MIN = float(os.environ.get("CROSSHAR_DIST_TIMEOUT_MIN", "10"))


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.size > 1


def setup(device):
    """-> (World, device). Initialises the process group when launched by torchrun."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise UserError(f"local rank {local} has no GPU: only {torch.cuda.device_count()} visible")
        device = torch.device(f"cuda:{local}")
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(minutes=TIMEOUT_MIN))
    return World(rank, size, local), device


def teardown(world):
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums the incoming gradients over ranks and returns this
    rank's slice (SimCLR's GatherLayer). Every rank computes the same global loss, so the
    summed gradient is W x the single-process one, and DDP's averaging divides W back out."""

    @staticmethod
    def forward(ctx, x):
        out = [torch.zeros_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x.contiguous())
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads):
        g = torch.stack(grads)
        dist.all_reduce(g)
        return g[dist.get_rank()]


def gather_with_grad(x):
    """Concatenate x from every rank along dim 0, keeping the gradient path to this rank's x."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return torch.cat(_GatherWithGrad.apply(x))


def all_reduce_sum(values, device):
    """Sum a list of floats over ranks (used for sharded validation losses)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t.tolist()


def shard(idx, world):
    """This rank's contiguous part of a global batch of indices."""
    if not world.distributed:
        return idx
    return idx.tensor_split(world.size)[world.rank]
