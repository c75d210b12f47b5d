"""HHAR phones (Phones_accelerometer.csv, Phones_gyroscope.csv) -> runs of 20 Hz bins.

Per Device, each sensor's samples go into 50 ms bins of Creation_Time (ns) and are averaged
(the phones sample irregularly at 50-200 Hz). Bins where both sensors have data, with one user
and one activity (gt 'null' is unlabelled and dropped), are kept; each run of consecutive bins
with the same labels is one recording, already at 20 Hz. Units are m/s^2 and rad/s as given.
"""
import numpy as np

from .files import encode, iter_table, progress
from .windows import Recording, runs

RATE, RESAMPLE = 20, None
ACTIVITIES = ["bike", "sit", "stairsdown", "stairsup", "stand", "walk"]   # LIMU-BERT's order
USERS = list("abcdefghi")
MODELS = ["nexus4", "s3", "s3mini", "samsungold"]
LABELS = {"activity": ACTIVITIES, "user": USERS, "model": MODELS}
DOWNLOAD_URL = ("https://archive.ics.uci.edu/static/public/344/"
                "heterogeneity+activity+recognition.zip")
LAYOUT = ("the UCI HHAR zip or its folder (Phones_accelerometer.csv, Phones_gyroscope.csv "
          "with columns Index,Arrival_Time,Creation_Time,x,y,z,User,Model,Device,gt)")
HEADER = "Index,Arrival_Time,Creation_Time,x,y,z,User,Model,Device,gt"
BIN_NS = 50_000_000      # 50 ms = one 20 Hz sample
DTYPE = [("time", "i8"), ("xyz", "f8", 3), ("user", "U4"), ("model", "U12"),
         ("device", "U16"), ("gt", "U12")]


def _load(src, name, devices):
    """-> device code, Creation_Time, xyz, labels [activity, user, model] (-1: unlabelled)."""
    with src.open(name) as f:
        header = f.readline().decode("utf-8-sig", "replace").strip()
    if header != HEADER:
        raise src.error(name, f"header {header[:80]!r}")
    parts = []
    for t in iter_table(src, name, 10, delimiter=",", skiprows=1, dtype=DTYPE,
                        usecols=range(2, 10), chunk_rows=250_000):
        labels = np.stack([encode(src, name, t["gt"], ACTIVITIES, "gt", {"null": None}),
                           encode(src, name, t["user"], USERS, "User"),
                           encode(src, name, t["model"], MODELS, "Model")], axis=1)
        parts.append((encode(src, name, t["device"], devices, "Device", grow=True),
                      t["time"], t["xyz"], labels))
    return [np.concatenate(column) for column in zip(*parts)]


def _bin(time, xyz, labels):
    """Mean xyz per 50 ms bin; labels -1 where they change within the bin."""
    order = np.argsort(time, kind="stable")
    time, xyz, labels = time[order], xyz[order], labels[order]
    bins = time // BIN_NS
    starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
    counts = np.diff(np.r_[starts, len(bins)])
    same = np.minimum.reduceat(labels, starts) == np.maximum.reduceat(labels, starts)
    return (bins[starts], np.add.reduceat(xyz, starts) / counts[:, None],
            np.where(same.all(axis=1)[:, None], labels[starts], -1))


def read(src):
    devices = []
    acc_name = src.require(r"(?:^|/)Phones_accelerometer\.csv$", "Phones_accelerometer.csv")[0][0]
    gyro_name = src.require(r"(?:^|/)Phones_gyroscope\.csv$", "Phones_gyroscope.csv")[0][0]
    acc, gyro = _load(src, acc_name, devices), _load(src, gyro_name, devices)
    for device in progress(range(len(devices)), "hhar devices"):
        in_acc, in_gyro = acc[0] == device, gyro[0] == device
        if not (in_acc.any() and in_gyro.any()):
            continue          # e.g. samsungold phones, which have no gyroscope
        a_bins, a_xyz, a_lab = _bin(*(column[in_acc] for column in acc[1:]))
        g_bins, g_xyz, g_lab = _bin(*(column[in_gyro] for column in gyro[1:]))
        bins, ia, ig = np.intersect1d(a_bins, g_bins, assume_unique=True, return_indices=True)
        labels = a_lab[ia]
        keep = (labels >= 0).all(axis=1) & (labels == g_lab[ig]).all(axis=1)
        bins, labels = bins[keep], labels[keep]
        data = np.concatenate([a_xyz[ia], g_xyz[ig]], axis=1)[keep]
        # a run ends where the labels change or a bin is missing (bins - index jumps)
        for start, end in runs(labels, bins - np.arange(len(bins))):
            yield Recording(data[start:end], tuple(labels[start].tolist()))
