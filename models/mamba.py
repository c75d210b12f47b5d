"""HARMamba backbone: channel-independent patches -> bidirectional Mamba blocks -> per-step features.

x (B, T, C) -> feats (B, T, H), pooled (B, H), as every backbone (see models/__init__.py).
Tokens: each channel is cut into patches of ``patch_size`` samples every ``stride`` samples
(N_p patches) and embedded by ONE linear layer shared by all channels, plus a learned channel
and patch-position embedding. The N_p * C tokens are laid out time-major (patch 0's C channel
tokens, then patch 1's, ...) so the recurrence runs along time; a class token sits in the
middle (Vision Mamba's choice: both directions reach it halfway). T=120, C=6, P=S=12 gives
10 patches, 60 tokens + 1 class token.
Per-step features: a patch's C channel tokens are concatenated and projected to H, spread
over the samples the patch covers (averaged where patches overlap), and a learned per-step
embedding is added so steps inside one patch differ. pooled = the class token.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import register_backbone
from .ops.selective_scan import (SCAN_IMPLS, causal_conv1d, cpu_kernel_selected, kernel_unavailable_reason,
                                 mamba_mixers_kernel, selective_scan)

# Keys of config/pretrain_model.json "mamba_v1". depth counts bidirectional blocks: 6 blocks =
# 12 Mamba layers = HARMamba's depth 12 (about 0.41 M parameters with d_model 64).
MAMBA_DEFAULTS = dict(patch_size=12, stride=12, d_model=64, depth=6, d_state=16, d_conv=4,
                      expand=2, drop_path=0.1, hidden=72, scan="auto")


class Mamba(nn.Module):
    """One Mamba (S6) mixer, causal along L: (B, L, d_model) -> (B, L, d_model)."""

    def __init__(self, d_model, d_state=16, d_conv=4, expand=2, scan="auto",
                 dt_min=1e-3, dt_max=1e-1, dt_floor=1e-4):
        super().__init__()
        d_inner = expand * d_model
        self.d_state, self.dt_rank, self.scan = d_state, math.ceil(d_model / 16), scan
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)             # -> x, z
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner)      # depthwise, made causal
        self.x_proj = nn.Linear(d_inner, self.dt_rank + 2 * d_state, bias=False)  # -> dt, B, C
        self.dt_proj = nn.Linear(self.dt_rank, d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        # Mamba's dt init: softplus(dt_proj.bias) log-uniform in [dt_min, dt_max].
        std = self.dt_rank ** -0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))         # inverse softplus
        # S4D-real init: A = -(1..N) for every channel, kept as log for positivity.
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(d_inner, 1))
        self.D = nn.Parameter(torch.ones(d_inner))

    def forward(self, x, reverse=False):
        """reverse=True: the mixer run backwards in time, i.e. forward(x.flip(1)).flip(1)."""
        if cpu_kernel_selected(self.scan, x, **self.kernel_sizes()):
            return self._forward_kernels(x, reverse)
        if reverse:
            return self._forward_generic(x.flip(1)).flip(1)
        return self._forward_generic(x)

    def _forward_generic(self, x):
        u, z = self.in_proj(x).transpose(1, 2).chunk(2, dim=1)               # (B, d_inner, L) each
        conv_impl = "auto" if self.scan == "cuda" else self.scan   # scan="cuda" needs mamba_ssm only
        u = causal_conv1d(u, self.conv1d.weight.squeeze(1), self.conv1d.bias, "silu", impl=conv_impl)
        dt, B, C = self.x_proj(u.transpose(1, 2)).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = (dt @ self.dt_proj.weight.t()).transpose(1, 2)                  # bias added in the scan
        y = selective_scan(u, delta, -torch.exp(self.A_log.float()), B.transpose(1, 2), C.transpose(1, 2),
                           self.D.float(), z, delta_bias=self.dt_proj.bias.float(), delta_softplus=True,
                           impl=self.scan)
        return self.out_proj(y.transpose(1, 2))

    def _forward_kernels(self, x, reverse):
        return self.out_proj(mamba_mixers_kernel(self.in_proj(x), [self], [reverse]))

    def kernel_sizes(self):
        return dict(d_state=self.d_state, rank=self.dt_rank, width=self.conv1d.weight.shape[-1])

    def mixer_params(self):
        """The parameters of the part between in_proj and out_proj (ops.mamba_cpu.MIXER_PARAMS)."""
        return (self.conv1d.weight, self.conv1d.bias, self.x_proj.weight, self.dt_proj.weight,
                self.dt_proj.bias, self.A_log, self.D)


def drop_path(x, p, training):
    """Stochastic depth: drop the whole residual branch per sample; identity at eval."""
    if p == 0.0 or not training:
        return x
    keep = x.new_empty(x.shape[0], *(1,) * (x.ndim - 1)).bernoulli_(1.0 - p)
    return x * keep.div_(1.0 - p)              # scale the (B, 1, 1) mask, not x: one pass over x


class BiMambaBlock(nn.Module):
    """x + drop_path(fwd(n) + flip(bwd(flip(n)))), n = RMSNorm(x); fwd and bwd own their weights
    (bwd runs with reverse=True, which the kernels do without flipping)."""

    def __init__(self, d_model, drop_path=0.0, **mamba_kw):
        super().__init__()
        self.norm = nn.RMSNorm(d_model, eps=1e-5)
        self.fwd = Mamba(d_model, **mamba_kw)
        self.bwd = Mamba(d_model, **mamba_kw)
        self.drop_path = drop_path

    def forward(self, x):                                                     # (B, L, d_model)
        h = self.norm(x)
        if cpu_kernel_selected(self.fwd.scan, h, **self.fwd.kernel_sizes()):
            # both directions in one in_proj and one out_proj matmul, whose sum over the
            # concatenated inner dimension adds the two directions
            w_in = torch.cat([self.fwd.in_proj.weight, self.bwd.in_proj.weight])
            w_out = torch.cat([self.fwd.out_proj.weight, self.bwd.out_proj.weight], dim=1)
            y = F.linear(mamba_mixers_kernel(F.linear(h, w_in), [self.fwd, self.bwd], [False, True]), w_out)
        else:
            y = self.fwd(h) + self.bwd(h, reverse=True)
        return x + drop_path(y, self.drop_path, self.training)


class HARMamba(nn.Module):
    def __init__(self, feature_num, seq_len, patch_size=12, stride=12, d_model=64, depth=6, d_state=16,
                 d_conv=4, expand=2, drop_path=0.1, hidden=72, scan="auto"):
        super().__init__()
        if scan not in SCAN_IMPLS:
            raise ValueError(f"mamba: scan must be one of {SCAN_IMPLS}, got {scan!r}")
        if patch_size > seq_len or stride < 1 or (seq_len - patch_size) % stride:
            raise ValueError(f"mamba: patches of {patch_size} every {stride} samples do not cover "
                             f"seq_len={seq_len} exactly; need (seq_len - patch_size) % stride == 0")
        self.feature_num, self.seq_len, self.patch_size, self.stride = feature_num, seq_len, patch_size, stride
        self.n_patches = (seq_len - patch_size) // stride + 1
        self.cls_index = self.n_patches * feature_num // 2
        self.num_features = hidden

        self.patch_embed = nn.Linear(patch_size, d_model)                      # shared by all channels
        self.channel_embed = nn.Parameter(torch.zeros(feature_num, d_model))
        self.patch_pos = nn.Parameter(torch.zeros(self.n_patches, d_model))
        self.cls_token = nn.Parameter(torch.zeros(d_model))
        rates = torch.linspace(0, drop_path, depth).tolist()                   # deeper blocks drop more
        self.blocks = nn.ModuleList(
            BiMambaBlock(d_model, p, d_state=d_state, d_conv=d_conv, expand=expand, scan=scan) for p in rates)
        why = kernel_unavailable_reason(**self.blocks[0].fwd.kernel_sizes()) if scan == "kernel" else None
        if why is not None:
            raise ValueError(f"mamba: scan='kernel' needs the C++ CPU kernel, which cannot run here: {why}; "
                             f"use scan 'auto' or 'torch'")
        self.norm = nn.RMSNorm(d_model, eps=1e-5)
        self.step_proj = nn.Linear(feature_num * d_model, hidden)              # a patch's C tokens -> H
        self.step_pos = nn.Parameter(torch.zeros(seq_len, hidden))
        self.pool_proj = nn.Identity() if d_model == hidden else nn.Linear(d_model, hidden)
        for p in (self.channel_embed, self.patch_pos, self.cls_token, self.step_pos):
            nn.init.trunc_normal_(p, std=0.02)
        # cover[t, p] = 1 / (number of patches holding sample t) if patch p holds t.
        cover = torch.zeros(seq_len, self.n_patches)
        for p in range(self.n_patches):
            cover[p * stride:p * stride + patch_size, p] = 1.0
        self.register_buffer("cover", cover / cover.sum(1, keepdim=True), persistent=False)

    def forward(self, x):
        batch, T, C = x.shape
        if (T, C) != (self.seq_len, self.feature_num):
            raise ValueError(f"mamba: built for (T, C) = ({self.seq_len}, {self.feature_num}), "
                             f"got {tuple(x.shape[1:])}")
        # patches cut along time are (B, N_p, C, P): already time-major, so the embedding's
        # output reshapes to the token sequence without a copy
        patches = x.unfold(1, self.patch_size, self.stride)
        tok = self.patch_embed(patches) + (self.patch_pos[:, None] + self.channel_embed)
        tok = tok.reshape(batch, self.n_patches * C, -1)
        mid = self.cls_index
        seq = torch.cat([tok[:, :mid], self.cls_token.expand(batch, 1, -1), tok[:, mid:]], dim=1)
        for block in self.blocks:
            seq = block(seq)
        seq = self.norm(seq)
        pooled = self.pool_proj(seq[:, mid])                                     # (B, H)
        tok = torch.cat([seq[:, :mid], seq[:, mid + 1:]], dim=1).reshape(batch, self.n_patches, -1)
        feats = self.cover @ self.step_proj(tok) + self.step_pos                 # (B, T, H)
        return feats, pooled


@register_backbone("mamba")
def build_mamba(cfg: dict, feature_num: int, seq_len: int) -> nn.Module:
    cfg = dict(cfg)
    # LIMU-BERT style configs repeat feature_num / seq_len; accept them only if they agree.
    for key, value in (("feature_num", feature_num), ("seq_len", seq_len)):
        given = cfg.pop(key, value)
        if given != value:
            raise ValueError(f"mamba: config {key}={given} disagrees with the data ({value})")
    unknown = sorted(set(cfg) - set(MAMBA_DEFAULTS))
    if unknown:
        raise ValueError(f"mamba: unknown config key(s) {unknown}; expected some of {sorted(MAMBA_DEFAULTS)}")
    return HARMamba(feature_num, seq_len, **{**MAMBA_DEFAULTS, **cfg})
