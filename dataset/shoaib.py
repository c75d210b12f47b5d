"""Shoaib et al. 2014 (Participant_N.csv) -> one recording per body position and activity run.

Two header rows, then 70 columns: 5 positions x 14 (time_stamp, Ax Ay Az, Lx Ly Lz, Gx Gy Gz,
Mx My Mz, one more) with the activity in the last column. acc = A (m/s^2), gyro = G (rad/s), 50 Hz.
"""
import numpy as np

from .files import PrepareError, encode, load_table, progress
from .windows import Recording, runs

RATE, RESAMPLE = 50, "block"
ACTIVITIES = ["walking", "sitting", "standing", "jogging", "biking", "upstairs", "downstairs"]
SPELLINGS = {"upsatirs": "upstairs"}            # as written in the published files
POSITIONS = ["left_pocket", "right_pocket", "wrist", "upper_arm", "belt"]
LABELS = {"activity": ACTIVITIES, "position": POSITIONS, "user": 10}
OPTIONS = {"positions": POSITIONS}
DOWNLOAD_URL = None   # published only as a .rar archive (utwente.nl), no zip to fetch
LAYOUT = "a folder or zip of the Shoaib Participant_N.csv files (2 header rows, 70 columns)"
SENSOR_COLUMNS = np.array([1, 2, 3, 7, 8, 9])   # Ax Ay Az Gx Gy Gz within a position's 14


def _floats(src, name, cells):
    try:
        return np.where(cells == "", "nan", cells).astype(np.float64)   # empty cell = missing
    except ValueError as exc:
        raise src.error(name, f"non-numeric sensor value ({exc})")


def read(src, positions=POSITIONS):
    unknown = sorted(set(positions) - set(POSITIONS))
    if unknown:
        raise PrepareError(f"position {unknown[0]!r}: unknown; expected {', '.join(POSITIONS)}")
    files = src.require(r"(?:^|/)Participant_(\d+)\.csv$", "Participant_N.csv files")
    files.sort(key=lambda found: int(found[1].group(1)))
    for name, match in progress(files, "shoaib participants"):
        user = int(match.group(1))
        if user not in range(1, 11):
            raise src.error(name, f"participant {user} out of range")
        table = load_table(src, name, 70, delimiter=",", skiprows=2, dtype=str)
        activity = encode(src, name, np.char.lower(np.char.strip(table[:, -1])), ACTIVITIES,
                          "activity", SPELLINGS)
        for position in positions:
            index = POSITIONS.index(position)
            x = _floats(src, name, table[:, 14 * index + SENSOR_COLUMNS])
            for start, end in runs(activity):
                yield Recording(x[start:end], (int(activity[start]), index, user - 1))
