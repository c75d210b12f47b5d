"""Heads on top of any backbone: they see only per-step features (B, T, H) or pooled (B, H)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .ops.attention import attention
from .ops.dropout import Dropout
from .ops.feedforward import feedforward


class ReconstructionHead(nn.Module):
    """LIMU-BERT's decoder: features at the masked steps -> reconstructed raw channels."""

    def __init__(self, hidden, feature_num):
        super().__init__()
        self.linear = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.decoder = nn.Linear(hidden, feature_num)

    def forward(self, feats, positions):
        """feats (B, T, H), positions (B, M) -> (B, M, C)."""
        h = torch.gather(feats, 1, positions.unsqueeze(-1).expand(-1, -1, feats.size(-1)))
        return self.decoder(self.norm(F.gelu(self.linear(h))))


class ContrastiveHead(nn.Module):
    """CrossHAR's temporal-contrastive head: a one-layer pre-norm transformer over the
    time-step tokens with a class token, then a projection (Linear, BatchNorm, ReLU, Linear).

    Only the class token's output is used, and with one layer that output is an attention
    pooling of the tokens: the class token is a parameter, so its query is the same for every
    window, and keys and values are bias-free linear maps of the normed tokens. So the query is
    folded into the key weights (q . W_k h = (W_k^T q) . h) and the value map applied after
    pooling (sum_t p_t W_v h_t = W_v sum_t p_t h_t): no keys or values are computed for the
    tokens, no (B, 1+T, D) concatenation is built. Same function as the full layer at the class
    token (tests/test_losses.py), a fraction of the work (measured in the README). Dropout as
    in the original: after the attention output and in the ReLU feed-forward, none on the
    attention weights. `attention_scale`: "width" scales the scores by the whole width's
    dim**-0.5 as the published code does (config/pretrain_model.json, the default there since it
    measured better), "head" by the standard per-head width's (this class's default, so that a
    checkpoint whose config predates the key is rebuilt as it was trained).
    """

    def __init__(self, in_features, hidden=100, n_heads=4, hidden_ff=64, dropout=0.1,
                 proj_hidden=36, proj_out=18, temperature=0.2, attention_scale="head"):
        super().__init__()
        if hidden % n_heads:
            raise ValueError(f"contrastive head: hidden {hidden} must be divisible by n_heads {n_heads}")
        self.temperature = temperature   # read by the loss; kept here so it travels with the head
        if attention_scale not in ("head", "width"):
            raise ValueError(f"contrastive head: attention_scale {attention_scale!r}; expected 'head' or 'width'")
        # scores scaled by 1/sqrt(head width) (standard) or 1/sqrt(whole width) (the published code)
        self.scale = (hidden // n_heads if attention_scale == "head" else hidden) ** -0.5
        self.n_heads = n_heads
        self.embed = nn.Linear(in_features, hidden)
        self.cls_token = nn.Parameter(torch.randn(1, 1, hidden))
        self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=False)
        self.out = nn.Linear(hidden, hidden)
        self.ff1, self.ff2 = nn.Linear(hidden, hidden_ff), nn.Linear(hidden_ff, hidden)
        self.drop = Dropout(dropout)
        self.project = nn.Sequential(nn.Linear(hidden, proj_hidden), nn.BatchNorm1d(proj_hidden),
                                     nn.ReLU(inplace=True), nn.Linear(proj_hidden, proj_out))

    def forward(self, feats):
        """feats (B, T, H) -> projections (B, proj_out)."""
        B, D, heads = feats.size(0), self.cls_token.size(-1), self.n_heads
        hd = D // heads
        tokens = self.norm1(self.embed(feats))                          # (B, T, D)
        cls = self.cls_token.view(1, D)
        cls_normed = self.norm1(cls)                                    # (1, D), the same for every window
        w_q, w_k, w_v = self.qkv.weight.split(D)
        q = F.linear(cls_normed, w_q).view(heads, 1, hd)
        key_query = (q @ w_k.view(heads, hd, D)).squeeze(1) * self.scale      # (heads, D): W_k^T q per head
        scores = torch.cat([(cls_normed @ key_query.t()).expand(B, 1, heads),
                            tokens @ key_query.t()], dim=1)                   # (B, 1+T, heads)
        # softmax in at least fp32 (the scores are bf16 under autocast)
        p = torch.softmax(scores, dim=1, dtype=torch.promote_types(scores.dtype, torch.float32)).transpose(1, 2)
        pooled = p[..., :1] * cls_normed + p[..., 1:] @ tokens                # (B, heads, D)
        a = (pooled.unsqueeze(2) @ w_v.view(heads, hd, D).transpose(1, 2)).reshape(B, D)   # W_v per head
        c = cls + self.drop(self.out(a))
        c = c + self.drop(self.ff2(self.drop(F.relu(self.ff1(self.norm2(c))))))
        return self.project(c)


def sinusoidal_positions(seq_len, dim):
    pos = torch.arange(seq_len, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(seq_len, dim)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : dim // 2]
    return pe


class PostNormEncoderLayer(nn.Module):
    """The arithmetic of `nn.TransformerEncoderLayer` (post-norm, ReLU, dropout on the
    attention weights, after attention and in the feed-forward), written out so that the
    attention kernel, the dropout mask and the feed-forward can be the fast ones for the device."""

    def __init__(self, dim, n_heads, dim_feedforward, dropout_p):
        super().__init__()
        self.n_heads, self.p = n_heads, dropout_p
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ff1, self.ff2 = nn.Linear(dim, dim_feedforward), nn.Linear(dim_feedforward, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop = Dropout(dropout_p)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        a = attention(q, k, v, self.p if self.training else 0.0).transpose(1, 2).reshape(B, T, D)
        x = self.norm1(x + self.drop(self.out(a)))
        return self.norm2(x + self.drop(feedforward(x, self.ff1, self.ff2, self.p, self.training)))


class TransformerClassifier(nn.Module):
    """CrossHAR's classifier on per-step embeddings: linear to `hidden_size`, sinusoidal
    positions, `num_layers` post-norm encoder layers, mean over time, linear to classes."""

    def __init__(self, in_features, n_classes, seq_len=120, hidden_size=100, num_layers=1,
                 num_heads=4, dropout=0.1, dim_feedforward=2048):
        super().__init__()
        self.embed = nn.Linear(in_features, hidden_size)
        # a buffer: built once, moved with the module, never rebuilt per step
        self.register_buffer("positions", sinusoidal_positions(seq_len, hidden_size), persistent=False)
        self.layers = nn.ModuleList(PostNormEncoderLayer(hidden_size, num_heads, dim_feedforward, dropout)
                                    for _ in range(num_layers))
        self.fc = nn.Linear(hidden_size, n_classes)

    def forward(self, feats):
        x = self.embed(feats) + self.positions[: feats.size(1)]
        for layer in self.layers:
            x = layer(x)
        return self.fc(x.mean(dim=1))


class SupervisedModel(nn.Module):
    """A backbone trained end to end from scratch with either a linear head on its pooled
    vector (HARMamba's supervised setting) or CrossHAR's transformer classifier on its
    per-step features (the no-pretraining baseline: same encoder, same classifier)."""

    def __init__(self, backbone, n_classes, head="linear", seq_len=120, classifier_cfg=None):
        super().__init__()
        self.backbone = backbone
        self.head_type = head
        if head == "linear":
            self.head = nn.Linear(backbone.num_features, n_classes)
        elif head == "transformer":
            self.head = TransformerClassifier(backbone.num_features, n_classes, seq_len, **(classifier_cfg or {}))
        else:
            raise ValueError(f"unknown supervised head {head!r}; expected 'linear' or 'transformer'")

    def forward(self, x):
        feats, pooled = self.backbone(x)
        return self.head(pooled if self.head_type == "linear" else feats)
