"""UCI HAPT (RawData/) -> recordings, exactly as LIMU-BERT prepared its dataset/uci.

Per labelled segment of activities 1-6 (labels.txt order, experiments ascending): acc (g ->
m/s^2) and gyro (rad/s) samples [start, end), block-averaged 50 -> 20 Hz by windows.py.
"""
import numpy as np

from .files import load_table, progress
from .windows import G, Recording

RATE, RESAMPLE = 50, "block"
ACTIVITIES = [1, 2, 3, 4, 5, 6]     # HAPT ids; 7-12 are postural transitions, not used
LABELS = {"activity": ["walking", "upstairs", "downstairs", "sitting", "standing", "lying"],
          "user": 30}
DOWNLOAD_URL = ("https://archive.ics.uci.edu/static/public/341/smartphone+based+recognition"
                "+of+human+activities+and+postural+transitions.zip")
LAYOUT = ("the UCI HAPT zip or its RawData/ folder (acc_expXX_userYY.txt, "
          "gyro_expXX_userYY.txt, labels.txt)")


def read(src):
    accs = src.require(r"(?:^|/)acc_exp(\d+)_user(\d+)\.txt$", "RawData/acc_expXX_userYY.txt")
    labels = load_table(src, src.sibling(accs[0][0], "labels.txt"), 5).astype(np.int64)
    accs.sort(key=lambda found: int(found[1].group(1)))
    for name, match in progress(accs, "uci experiments"):
        exp, user = int(match.group(1)), int(match.group(2))
        gyro_name = src.sibling(name, "gyro" + name.rsplit("/", 1)[-1][3:])
        acc, gyro = load_table(src, name, 3), load_table(src, gyro_name, 3)
        if len(acc) != len(gyro):
            raise src.error(gyro_name, f"{len(gyro)} rows (not {len(acc)} as in {name})")
        samples = np.concatenate([acc * G, gyro], axis=1)
        for _, _, activity, start, end in labels[(labels[:, 0] == exp) & (labels[:, 1] == user)]:
            if activity in ACTIVITIES:
                yield Recording(samples[start:end], (activity - 1, user - 1))
