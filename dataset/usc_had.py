"""USC-HAD (SubjectK/aMtN.mat) -> one recording per trial file.

Subject, activity and trial come from the path: the .mat metadata is wrong in places.
sensor_readings: acc in g -> m/s^2, gyro in deg/s -> rad/s; 100 Hz, resampled by windows.py.
"""
import io

import numpy as np
import scipy.io

from .files import progress
from .windows import G, Recording

RATE, RESAMPLE = 100, "poly"
ACTIVITIES = list(range(1, 13))
LABELS = {"activity": ["walking_forward", "walking_left", "walking_right", "walking_upstairs",
                       "walking_downstairs", "running_forward", "jumping_up", "sitting",
                       "standing", "sleeping", "elevator_up", "elevator_down"],
          "user": 14}
DOWNLOAD_URL = "https://sipi.usc.edu/had/USC-HAD.zip"
LAYOUT = "the USC-HAD zip or its folder (SubjectK/aMtN.mat, K 1..14, M 1..12)"


def _readings(src, name):
    try:
        mat = scipy.io.loadmat(io.BytesIO(src.read_bytes(name)), variable_names=["sensor_readings"])
        x = np.asarray(mat["sensor_readings"], dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - on garbage, scipy's reader raises many types (IndexError, ...)
        raise src.error(name, f"unreadable .mat ({type(exc).__name__}: {exc})")
    if x.ndim != 2 or x.shape[1] != 6:
        raise src.error(name, f"sensor_readings of shape {x.shape} (not n x 6)")
    return x


def read(src):
    files = src.require(r"(?:^|/)Subject(\d+)/a(\d+)t(\d+)\.mat$", "SubjectK/aMtN.mat files")
    files.sort(key=lambda found: tuple(map(int, found[1].groups())))
    for name, match in progress(files, "usc_had trials"):
        subject, activity, _trial = map(int, match.groups())
        if subject not in range(1, 15) or activity not in ACTIVITIES:
            raise src.error(name, "subject or activity number out of range")
        x = _readings(src, name)
        yield Recording(np.concatenate([x[:, :3] * G, np.deg2rad(x[:, 3:])], axis=1),
                        (activity - 1, subject - 1))
