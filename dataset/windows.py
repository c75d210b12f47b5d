"""The one resample + window path every reader's recordings go through.

A reader yields `Recording`s (samples at its own rate, constant labels); `make_windows`
resamples each to 20 Hz, cuts non-overlapping 120-sample windows from its start (the tail is
dropped) and drops windows holding NaN/inf samples.
"""
import math
from fractions import Fraction
from typing import NamedTuple

import numpy as np

RATE = 20        # Hz of every prepared dataset
SEQ_LEN = 120    # samples per window (6 s)
G = 9.80665      # standard gravity: g -> m/s^2


class Recording(NamedTuple):
    data: np.ndarray   # (n, 6): acc x y z in m/s^2, gyro x y z in rad/s
    labels: tuple      # one int per label column, constant over the recording


def block_average(x, ratio):
    """Average consecutive blocks of x, LIMU-BERT's down-sampler, generalised to any ratio >= 1.

    Block k covers samples [floor(k*ratio), floor((k+1)*ratio)): 50 -> 20 Hz gives blocks of
    2, 3, 2, 3, ... from x[0]. As in LIMU-BERT a block is kept only while its start +
    ceil(ratio) < len(x), and each block is summed in sample order, then divided by its length,
    so uci reproduces LIMU-BERT's published arrays bit for bit.
    """
    r = Fraction(ratio).limit_denominator(1000)
    n, longest = len(x), math.ceil(r)
    k = np.arange(math.floor(n / r) + 1)
    starts = k * r.numerator // r.denominator
    lengths = (k + 1) * r.numerator // r.denominator - starts
    keep = starts + longest < n
    starts, lengths = starts[keep], lengths[keep]
    total = x[starts]
    for j in range(1, longest):
        # where() rather than adding zeros, so short blocks keep np.mean's exact bits
        total = np.where((lengths > j)[:, None], total + x[np.minimum(starts + j, n - 1)], total)
    return total / lengths[:, None]


def resample(x, rate, method):
    """x (n, C) at `rate` Hz -> 20 Hz.

    "block": block averaging (LIMU-BERT's method for its 50 Hz datasets uci, motion, shoaib);
    "poly": scipy's polyphase FIR resampler (anti-aliased; for any rate, e.g. 25 or 100 Hz). Edges
    are padded with their own value so gravity does not sag toward zero at the ends, and a Kaiser
    beta of 10 (scipy: 5) keeps the per-phase gain ripple of 25 -> 20 Hz below 2e-6.
    """
    if rate == RATE:
        return x
    if method == "block":
        return block_average(x, Fraction(rate) / RATE)
    from scipy.signal import resample_poly   # here: importing scipy.signal takes ~0.7 s

    r = poly_ratio(rate)
    return resample_poly(x, r.numerator, r.denominator, axis=0, padtype="edge",
                         window=("kaiser", 10.0))


def poly_ratio(rate, max_down=1000):
    """up/down ~ RATE/rate: exact for rates such as 25, 44.1, 100 or 416 Hz; otherwise the closest
    fraction with down <= 1000 (the filter has ~20 x max(up, down) taps), e.g. 29.97 Hz ->
    333/499, an output rate off by 1e-6."""
    return (Fraction(RATE) / Fraction(str(rate))).limit_denominator(max_down)


def cut_windows(x):
    """Non-overlapping SEQ_LEN windows from the start, tail dropped; as LIMU-BERT, a recording
    must be longer than SEQ_LEN samples to give any."""
    m = len(x) // SEQ_LEN if len(x) > SEQ_LEN else 0
    return x[: m * SEQ_LEN].reshape(m, SEQ_LEN, x.shape[1])


def make_windows(recordings, rate, method, n_labels):
    """-> data (N, 120, 6) float64, per-step labels (N, 120, n_labels) float64, windows dropped."""
    data, labels = [], []
    for rec in recordings:
        w = cut_windows(resample(np.asarray(rec.data, dtype=np.float64), rate, method))
        if len(w):
            data.append(w)
            labels.append(np.repeat(np.asarray([rec.labels], dtype=np.float64), len(w), axis=0))
    if not data:
        return np.empty((0, SEQ_LEN, 6)), np.empty((0, SEQ_LEN, n_labels)), 0
    data, labels = np.concatenate(data), np.concatenate(labels)
    finite = np.isfinite(data).all(axis=(1, 2))
    per_step = np.repeat(labels[finite][:, None, :], SEQ_LEN, axis=1)
    return data[finite], per_step, int((~finite).sum())


def runs(*keys):
    """[(start, end)] of the maximal stretches over which every key (1-D or 2-D) stays equal."""
    n = len(keys[0])
    if n == 0:
        return []
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for key in keys:
        diff = np.asarray(key[1:]) != np.asarray(key[:-1])
        change[1:] |= diff.reshape(n - 1, -1).any(axis=1)
    starts = np.flatnonzero(change)
    return list(zip(starts.tolist(), np.append(starts[1:], n).tolist()))
