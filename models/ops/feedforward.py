"""The transformer feed-forward `linear2(dropout(relu(linear1(x))))`, cache-blocked on the CPU.

CrossHAR's classifier has a feed-forward of width 2,048 over 120 steps: at batch 128 the hidden
activation is 31 M elements, so the plain version streams it through memory about ten times
per step (ReLU, dropout mask, scaling, saving it for backward, then the same in backward) and
on a 2-core CPU those element-wise passes cost more than the matmuls (profiled: `where` alone
was 39 % of a bf16 classifier step). Here the rows go through in blocks small enough that the
hidden block stays in cache; only the inputs and a uint8 dropout mask are kept, and backward
recomputes each hidden block (one extra matmul, cheaper than the memory traffic). The dropout
scale 1/(1-p) is folded into linear2's weight. Inference runs the same blocks and keeps
nothing; CUDA uses the plain ops.
"""
import torch
import torch.nn.functional as F

from .dropout import keep_mask

ROWS_PER_BLOCK = 256     # 256 x 2048 hidden values: 1 MB in bf16, about one core's L2


def _compute_dtype(x):
    return torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype


def _hidden(x, w1, b1, keep):
    """relu(x w1^T + b1) of one block, times its 0/1 dropout mask when there is one."""
    h = torch.addmm(b1, x, w1.t()).relu_()
    return h.mul_(keep) if keep.numel() else h


def _forward_blocks(x, w1, b1, w2, b2, p):
    """x (N, D) in the compute dtype -> (y (N, D_out), keep (N, F) 0/1 uint8 or empty when p = 0)."""
    n = x.shape[0]
    # bool where/masked_fill are scalar loops on the CPU; a 0/1 uint8 multiply is vectorised
    keep = torch.empty(n if p > 0 else 0, w1.shape[0], dtype=torch.uint8)
    y = torch.empty(n, w2.shape[0], dtype=x.dtype)
    w2s = w2 / (1.0 - p) if p > 0 else w2           # dropout scale folded into the weight
    for s in range(0, n, ROWS_PER_BLOCK):
        e = min(s + ROWS_PER_BLOCK, n)
        if p > 0:
            keep[s:e] = keep_mask((e - s, w1.shape[0]), p, x.device).view(torch.uint8)
        torch.addmm(b2, _hidden(x[s:e], w1, b1, keep[s:e]), w2s.t(), out=y[s:e])
    return y, keep


class _BlockedFeedForward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2, p):
        dt = _compute_dtype(x)
        shape = x.shape
        with torch.autocast("cpu", enabled=False):
            x2 = x.reshape(-1, shape[-1]).to(dt)
            w1c, b1c, w2c = w1.to(dt), b1.to(dt), w2.to(dt)
            y, keep = _forward_blocks(x2, w1c, b1c, w2c, b2.to(dt), p)
        ctx.save_for_backward(x2, w1c, b1c, w2c, keep)
        ctx.p, ctx.in_dtype, ctx.shape = p, x.dtype, shape
        return y.view(*shape[:-1], w2.shape[0])

    @staticmethod
    def backward(ctx, grad):
        x2, w1c, b1c, w2c, keep = ctx.saved_tensors
        dt = x2.dtype
        w2s = w2c / (1.0 - ctx.p) if ctx.p > 0 else w2c
        with torch.autocast("cpu", enabled=False):
            g = grad.reshape(-1, grad.shape[-1]).to(dt)
            n = x2.shape[0]
            gx = torch.empty_like(x2)
            gw1 = torch.zeros(w1c.shape, dtype=torch.float32)
            gb1 = torch.zeros(b1c.shape, dtype=torch.float32)
            gw2 = torch.zeros(w2c.shape, dtype=torch.float32)
            for s in range(0, n, ROWS_PER_BLOCK):
                e = min(s + ROWS_PER_BLOCK, n)
                h = _hidden(x2[s:e], w1c, b1c, keep[s:e])     # recomputed, not stored
                gw2 += (g[s:e].t() @ h).float()
                gh = (g[s:e] @ w2s).mul_(h.sign())    # zero where ReLU was off or dropped
                gw1 += (gh.t() @ x2[s:e]).float()
                gb1 += gh.sum(0, dtype=torch.float32)
                torch.mm(gh, w1c, out=gx[s:e])
            gb2 = g.sum(0, dtype=torch.float32)
        gw2 /= 1.0 - ctx.p
        return gx.to(ctx.in_dtype).view(ctx.shape), gw1, gb1, gw2, gb2, None


def feedforward(x, linear1, linear2, p, training):
    """linear2(dropout(relu(linear1(x)), p)) with dropout only while training."""
    p = p if training else 0.0
    if x.device.type != "cpu":
        h = F.relu(linear1(x))
        return linear2(F.dropout(h, p, True) if p > 0 else h)
    if torch.is_grad_enabled() and (x.requires_grad or linear1.weight.requires_grad):
        return _BlockedFeedForward.apply(x, linear1.weight, linear1.bias, linear2.weight, linear2.bias, p)
    dt = _compute_dtype(x)          # inference: the same blocks, nothing kept
    with torch.autocast("cpu", enabled=False):
        y, _ = _forward_blocks(x.reshape(-1, x.shape[-1]).to(dt), *(t.to(dt) for t in (
            linear1.weight, linear1.bias, linear2.weight, linear2.bias)), p)
    return y.view(*x.shape[:-1], -1)
