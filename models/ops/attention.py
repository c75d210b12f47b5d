"""Scaled dot-product attention, choosing the kernel that is fastest where it runs.

softmax(q k^T / sqrt(d)) v over (B, heads, T, d). Measured on a 2-core AVX-512 CPU (LIMU
encoder, batch 512, 4 heads of 18, forward + backward): in fp32 the fused CPU kernel of
`scaled_dot_product_attention` wins (380 ms against 551 for its math path); under bf16
autocast it is the slowest (512 ms) and plain batched matmuls win (307 ms). CUDA always uses
the fused kernels.
"""
import torch
import torch.nn.functional as F


def attention(q, k, v):
    if q.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            q, k, v = (t.to(torch.bfloat16) for t in (q, k, v))
            scores = (q * q.size(-1) ** -0.5) @ k.transpose(-1, -2)
            return torch.softmax(scores, dim=-1) @ v
    return F.scaled_dot_product_attention(q, k, v)
