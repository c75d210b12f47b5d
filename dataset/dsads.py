"""UCI DSADS (data/aAA/pP/sSS.txt) -> one recording per person and activity.

The 60 five-second segments of a person and activity are consecutive, so they are joined in
segment order before resampling 25 -> 20 Hz. One body unit (default torso), acc + gyro only.
"""
import numpy as np

from .files import PrepareError, load_table, progress
from .windows import Recording

RATE, RESAMPLE = 25, "poly"
ACTIVITIES = [f"a{i:02d}" for i in range(1, 20)]
LABELS = {"activity": [
    "sitting", "standing", "lying_on_back", "lying_on_right_side", "ascending_stairs",
    "descending_stairs", "standing_in_elevator", "moving_in_elevator", "walking_parking_lot",
    "walking_treadmill_flat", "walking_treadmill_inclined", "running_treadmill", "stepper",
    "cross_trainer", "cycling_horizontal", "cycling_vertical", "rowing", "jumping",
    "basketball"],
    "user": 8}
UNITS = ["torso", "ra", "la", "rl", "ll"]   # 9 columns each: acc, gyro, magnetometer (x y z)
OPTIONS = {"unit": "torso"}
DOWNLOAD_URL = "https://archive.ics.uci.edu/static/public/256/daily+and+sports+activities.zip"
LAYOUT = "the UCI DSADS zip or its folder (data/aAA/pP/sSS.txt, 45 comma-separated columns)"


def read(src, unit="torso"):
    if unit not in UNITS:
        raise PrepareError(f"unit {unit!r}: unknown; expected one of {', '.join(UNITS)}")
    columns = 9 * UNITS.index(unit) + np.arange(6)
    files = src.require(r"(?:^|/)a(\d\d)/p(\d+)/s(\d\d)\.txt$", "aAA/pP/sSS.txt files")
    groups = {}
    for name, match in files:
        activity, person, segment = map(int, match.groups())
        if activity not in range(1, 20) or person not in range(1, 9):
            raise src.error(name, "activity or person number out of range")
        groups.setdefault((activity, person), []).append((segment, name))
    for (activity, person), segments in progress(sorted(groups.items()), "dsads recordings"):
        x = np.concatenate([load_table(src, name, 45, delimiter=",")[:, columns]
                            for _, name in sorted(segments)])
        yield Recording(x, (activity - 1, person - 1))
