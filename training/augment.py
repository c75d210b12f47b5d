"""Augmentation as batched tensor operations on the training device.

Two kinds, both applied to the *training part only*, after the split (the published code
augmented before splitting, so augmented copies of validation/test windows leaked):
  * `expand_training_set` (-am): CrossHAR's physics-guided dataset expansion, done once;
  * `weak_view` / `strong_view`: the two contrastive views, drawn once per run (`views`
    "once", the published code's way and the default) or afresh for every batch ("batch").
Channels are [acc x y z, gyro x y z, ...]: transforms that act on axes act identically on
the acc and the gyro triple, as the same physical rotation of the device would.
"""
import itertools

import numpy as np
import torch

AUGMENTATIONS = ("channel_aug", "rotation_random", "jitter", "scaling", "permutation", "none")
N_COPIES = 5   # the published code adds 5 random copies to the originals (6x data)


def axis_permutations():
    """The 6 permutations of (x, y, z) as channel index lists over acc+gyro."""
    return [list(p) + [i + 3 for i in p] for p in itertools.permutations(range(3))]


def rotate(x, rotations):
    """Apply per-window 3x3 rotations (B, 3, 3) to the acc and the gyro triple of x (B, T, 6)."""
    acc = x[..., 0:3] @ rotations.transpose(1, 2)
    gyro = x[..., 3:6] @ rotations.transpose(1, 2)
    return torch.cat([acc, gyro, x[..., 6:]], dim=-1)


def random_rotations(n, generator):
    from scipy.spatial.transform import Rotation
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device))
    mats = Rotation.random(n, random_state=np.random.default_rng(seed)).as_matrix()
    return torch.as_tensor(mats, dtype=torch.float32)


def _rand(shape, generator, device, kind="uniform"):
    # draw with the generator on its own device (kept on the training device by the loop)
    fn = torch.rand if kind == "uniform" else torch.randn
    return fn(shape, generator=generator, device=generator.device).to(device)


def scale(x, factors):
    """x (B, T, C) times per-window factors (B, 3) applied to acc and gyro alike."""
    rest = torch.ones(x.size(0), x.size(-1) - 6, dtype=x.dtype, device=x.device)
    f = torch.cat([factors, factors, rest], -1)
    return x * f.unsqueeze(1)


def permute_segments(x, generator, max_segments=8, min_segments=1):
    """Cut each window into 1..max_segments-1 random segments and shuffle their order."""
    B, T, _ = x.shape
    dev = x.device
    n_segs = torch.randint(min_segments, max_segments, (B,), generator=generator,
                           device=generator.device).to(dev)
    # choose n_segs-1 distinct cut points in 1..T-1 by ranking random scores
    scores = _rand((B, T - 1), generator, dev)
    rank = scores.argsort(dim=1).argsort(dim=1)
    cuts = rank < (n_segs - 1).unsqueeze(1)
    seg_id = torch.cat([torch.zeros(B, 1, dtype=torch.long, device=dev), cuts.long().cumsum(1)], 1)
    # a random rank per segment; steps sort by (rank of their segment, time)
    seg_rank = _rand((B, max_segments), generator, dev).argsort(1).argsort(1)
    order = (torch.gather(seg_rank, 1, seg_id) * T + torch.arange(T, device=dev)).argsort(1)
    return torch.gather(x, 1, order.unsqueeze(-1).expand_as(x))


def expand_training_set(x, method, generator):
    """CrossHAR's -am expansion of the training windows x (N, T, C) in raw units."""
    n = x.size(0)
    if method == "none":
        return x
    if method == "channel_aug":
        return torch.cat([x[..., p + list(range(6, x.size(-1)))] for p in axis_permutations()])
    copies = []
    for _ in range(N_COPIES):
        if method == "rotation_random":
            copies.append(rotate(x, random_rotations(n, generator).to(x.device)))
        elif method == "jitter":
            copies.append(x + 0.05 * _rand(x.shape, generator, x.device, "normal"))
        elif method == "scaling":
            copies.append(scale(x, 1.0 + 0.1 * _rand((n, 3), generator, x.device, "normal")))
        elif method == "permutation":
            copies.append(permute_segments(x, generator, max_segments=5, min_segments=4))
        else:
            raise ValueError(f"unknown augmentation {method!r}; expected one of {AUGMENTATIONS}")
    return torch.cat(copies + [x])


def weak_view(x, generator, per="step"):
    """CrossHAR's weak view: scaling by N(2, 1.1) factors. "step" (the published code's
    `scaling()`): one factor per window and time step, shared by the channels; "channel": one
    per window and channel, which the per-channel instance normalisation then cancels but for
    sign flips."""
    if per not in ("step", "channel"):
        raise ValueError(f"weak view per {per!r}; expected 'step' or 'channel'")
    shape = (x.size(0), x.size(1), 1) if per == "step" else (x.size(0), 1, x.size(2))
    return x * (2.0 + 1.1 * _rand(shape, generator, x.device, "normal"))


def strong_view(x, generator):
    """CrossHAR's strong view: segment permutation (up to 8 segments), then jitter 0.01."""
    x = permute_segments(x, generator, max_segments=8)
    return x + 0.01 * _rand(x.shape, generator, x.device, "normal")
