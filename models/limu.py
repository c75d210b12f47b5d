"""LIMU-BERT encoder (Xu et al., SenSys 2021) as CrossHAR uses it.

One transformer block applied `n_layers` times with shared weights, learned position
embedding, TF-style LayerNorm (eps 1e-12). The block keeps LIMU-BERT's arithmetic exactly:
h = attn(h); h = norm1(h + proj(h)); h = norm2(h + ff(h)) -- the first residual wraps the
projection of the attention output, not the block input. Fast paths: one fused QKV matmul
and the attention kernel that is fastest for the device and precision
(models/ops/attention.py).
"""
import torch.nn as nn
import torch.nn.functional as F

from . import register_backbone
from .ops.attention import attention

LIMU_KEYS = {"hidden", "hidden_ff", "n_layers", "n_heads", "emb_norm"}


class LimuEncoder(nn.Module):
    def __init__(self, feature_num, seq_len, hidden=72, hidden_ff=144, n_layers=1, n_heads=4,
                 emb_norm=True):
        super().__init__()
        if hidden % n_heads:
            raise ValueError(f"limu: hidden {hidden} must be divisible by n_heads {n_heads}")
        self.num_features = hidden
        self.seq_len = seq_len
        self.n_layers, self.n_heads, self.emb_norm = n_layers, n_heads, emb_norm
        self.embed = nn.Linear(feature_num, hidden)
        self.pos_embed = nn.Embedding(seq_len, hidden)
        self.embed_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.norm1 = nn.LayerNorm(hidden, eps=1e-12)
        self.ff1 = nn.Linear(hidden, hidden_ff)
        self.ff2 = nn.Linear(hidden_ff, hidden)
        self.norm2 = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x):
        """x (B, T, C) -> (per-step features (B, T, H), pooled mean (B, H))."""
        B, T, _ = x.shape
        if T > self.seq_len:
            raise ValueError(f"limu: window of {T} steps is longer than seq_len {self.seq_len}")
        h = self.embed(x)
        if self.emb_norm:
            h = self.embed_norm(h)
        h = self.embed_norm(h + self.pos_embed.weight[:T])
        for _ in range(self.n_layers):
            q, k, v = self.qkv(h).view(B, T, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
            h = attention(q, k, v).transpose(1, 2).reshape(B, T, -1)
            h = self.norm1(h + self.proj(h))
            h = self.norm2(h + self.ff2(F.gelu(self.ff1(h))))
        return h, h.mean(dim=1)


@register_backbone("limu")
def build_limu(cfg, feature_num, seq_len):
    unknown = set(cfg) - LIMU_KEYS
    if unknown:
        raise ValueError(f"limu: unknown config key(s) {sorted(unknown)}; expected some of {sorted(LIMU_KEYS)}")
    return LimuEncoder(feature_num, seq_len, **cfg)
