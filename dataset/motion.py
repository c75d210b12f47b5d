"""MotionSense (A_DeviceMotion_data/<act>_<trial>/sub_<k>.csv) -> one recording per file.

Columns: unnamed index, attitude.roll/pitch/yaw, gravity.x/y/z, rotationRate.x/y/z (rad/s),
userAcceleration.x/y/z; acc = gravity + userAcceleration (g -> m/s^2). 50 Hz.
"""
import numpy as np

from .files import load_table, progress
from .windows import G, Recording

RATE, RESAMPLE = 50, "block"
ACTIVITIES = ["dws", "ups", "sit", "std", "wlk", "jog"]   # LIMU-BERT's label order
LABELS = {"activity": ["downstairs", "upstairs", "sitting", "standing", "walking", "jogging"],
          "user": 24}
DOWNLOAD_URL = ("https://github.com/mmalekzadeh/motion-sense/raw/master/data/"
                "A_DeviceMotion_data.zip")
LAYOUT = ("MotionSense's A_DeviceMotion_data.zip or its folder (<act>_<trial>/sub_<k>.csv, "
          "13 comma-separated columns)")


def read(src):
    files = src.require(r"(?:^|/)([a-z]{3})_(\d+)/sub_(\d+)\.csv$",
                        "<act>_<trial>/sub_<k>.csv files")
    for name, match in progress(files, "motion files"):
        code, user = match.group(1), int(match.group(3))
        if code not in ACTIVITIES or user not in range(1, 25):
            raise src.error(name, f"unknown activity code {code!r} or subject {user}")
        t = load_table(src, name, 13, delimiter=",", skiprows=1)
        acc = (t[:, 4:7] + t[:, 10:13]) * G
        gyro = t[:, 7:10]
        yield Recording(np.concatenate([acc, gyro], axis=1), (ACTIVITIES.index(code), user - 1))
