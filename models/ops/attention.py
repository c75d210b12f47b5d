"""Scaled dot-product attention, choosing the kernel that is fastest where it runs.

softmax(q k^T / sqrt(d)) v over (B, heads, T, d). Measured on a 2-core AVX-512 CPU (LIMU
encoder, batch 512, 4 heads of 18, forward + backward): in fp32 the fused CPU kernel of
`scaled_dot_product_attention` wins (380 ms against 551 for its math path); under bf16
autocast it is the slowest (512 ms) and plain batched matmuls win (307 ms). CUDA always uses
the fused kernels.
"""
import torch
import torch.nn.functional as F

from .dropout import dropout


def attention(q, k, v, dropout_p=0.0):
    """dropout_p > 0 drops attention weights (as nn.MultiheadAttention does in training)."""
    if q.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        # bf16 throughout: casting the (B, heads, T, T) scores to fp32 and back cost more
        # than the matmuls (measured); softmax over 120 keys is accurate enough in bf16
        with torch.autocast("cpu", enabled=False):
            q, k, v = (t.to(torch.bfloat16) for t in (q, k, v))
            scores = (q * q.size(-1) ** -0.5) @ k.transpose(-1, -2)
            return dropout(torch.softmax(scores, dim=-1), dropout_p, dropout_p > 0) @ v
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
