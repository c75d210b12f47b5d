"""Your own recordings: CSV / Parquet / .npy tables -> recordings, the layout given by options.

    python -m dataset.prepare custom --name NAME --raw PATH --rate HZ --acc AX AY AZ --gyro GX GY GZ
        (--activity COL | --pattern '{user}_{activity}.csv') [--user COL]
        [--acc-unit g|m/s^2] [--gyro-unit rad/s|deg/s] [--time COL [--time-unit s|ms|us|ns] [--gap P]]
        [--activity-map RAW=CLASS ... | --activity-map MAP.json] [--no-header] [--delimiter D]

PATH is one table, or a folder or zip of them (*.csv, *.tsv, *.txt, *.parquet, *.npy; with
--pattern only the files it matches). Columns are named by the header row (by 0-based index
with --no-header and for plain .npy arrays). The activity and user come from columns or from
the file names; each stretch of one activity and one user without a time gap is a recording,
resampled from --rate to 20 Hz by windows.py. Activities become labels in natural order;
--activity-map sends them onto CrossHAR's 4 classes (unmapped ones are left out of the 4-class
version; without a map, names equal to a class name, and sitting / standing, map to it).
"""
import io
import json
import re
from pathlib import Path

import numpy as np

from .classes import FOUR_CLASSES
from .files import PrepareError, Source, load_table, progress
from .windows import G, RATE, SEQ_LEN, Recording, runs

SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".npy")
ACC_UNITS = {"m/s^2": 1.0, "g": G}
GYRO_UNITS = {"rad/s": 1.0, "deg/s": np.pi / 180}
TIME_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
DELIMITERS = {".csv": ",", ".tsv": "\t", ".txt": None}   # None: any whitespace
DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "space": None, "whitespace": None}
RATE_TOLERANCE = 0.1     # timestamps must agree with --rate to 10 % (median step)
OPTIONS = {"dataset_name": None, "rate": None, "acc": None, "gyro": None, "acc_unit": "m/s^2",
           "gyro_unit": "rad/s", "activity": None, "user": None, "pattern": None, "time": None,
           "time_unit": "s", "gap": 2.0, "activity_map": None, "header": True, "delimiter": None,
           "resample": "poly"}
LAYOUT = ("one table, or a folder or zip of them (CSV, Parquet or .npy), with the columns "
          "named by --acc, --gyro, --activity / --pattern; --activity-map onto walking, "
          "upstairs, downstairs, sitting&standing (or --classes all)")


def _fail(problem, expected):
    return PrepareError(f"custom: {problem}; expected {expected}")


def natural_sorted(values):
    """Digit runs by value: u2 before u10, 9 before 10."""
    # re.split with a group alternates text and digits, so keys compare str to str, int to int
    return sorted(values, key=lambda v: [int(t) if i % 2 else t
                                         for i, t in enumerate(re.split(r"(\d+)", v))])


def parse_activity_map(spec):
    """{raw activity: 4-class name} from a dict, ["raw=class", ...] or the path of a JSON object."""
    if spec is None:
        return None
    if isinstance(spec, (str, Path)):
        spec = [str(spec)]
    if not isinstance(spec, dict) and len(spec) == 1 and spec[0].endswith(".json"):
        try:
            spec = json.loads(Path(spec[0]).expanduser().read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise _fail(f"--activity-map {spec[0]} unreadable ({exc})",
                        'a JSON object {"raw name": "walking", ...}')
        if not isinstance(spec, dict):
            raise _fail(f"--activity-map file holds a {type(spec).__name__}",
                        'a JSON object {"raw name": "walking", ...}')
    if not isinstance(spec, dict):
        pairs = [item.split("=", 1) for item in spec]
        bad = [item for item, pair in zip(spec, pairs) if len(pair) != 2]
        if bad:
            raise _fail(f"--activity-map entry {bad[0]!r}", "RAW=CLASS, e.g. walk=walking")
        spec = dict(pairs)
    mapping = {}
    for raw, target in spec.items():
        target = str(target).strip().lower()
        if target not in FOUR_CLASSES:
            raise _fail(f"--activity-map {raw}={target}: unknown class",
                        f"one of {', '.join(FOUR_CLASSES)}")
        mapping[str(raw).strip()] = target
    return mapping


def default_activity_map(activities):
    """Without --activity-map: names equal to a class name (case aside), and sitting / standing."""
    aliases = {c: c for c in FOUR_CLASSES}
    aliases.update(sitting="sitting&standing", standing="sitting&standing")
    return {a: aliases[a.lower()] for a in activities if a.lower() in aliases}


def pattern_regex(pattern):
    """'{user}/{activity}_{trial}.csv' -> a regex over member paths with one group per field;
    a field matches the shortest text without '/', a repeated field the same text again."""
    parts, seen, position = [], set(), 0
    for match in re.finditer(r"\{(\w*)\}", pattern):
        field = match.group(1)
        if not field:
            raise _fail(f"--pattern {pattern!r} has an empty {{}}", "fields such as {user}")
        parts.append(re.escape(pattern[position:match.start()]))
        parts.append(f"(?P={field})" if field in seen else f"(?P<{field}>[^/]+?)")
        seen.add(field)
        position = match.end()
    rest = pattern[position:]
    if "{" in rest or "}" in rest:
        raise _fail(f"--pattern {pattern!r} has an unmatched brace", "fields such as {user}")
    return "(?:^|/)" + "".join(parts) + re.escape(rest) + "$", seen


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _codes(values, vocab):
    """Index of each value in vocab; -1 for values not in it (the empty, unlabelled one)."""
    uniq, inverse = np.unique(values, return_inverse=True)
    index = {v: i for i, v in enumerate(vocab)}
    return np.array([index.get(v, -1) for v in uniq.tolist()], dtype=np.int64)[inverse.reshape(-1)]


def _columns(spec, option):
    columns = spec.split(",") if isinstance(spec, str) else list(spec or [])
    columns = [str(c).strip() for c in columns]
    if len(columns) != 3 or not all(columns):
        raise _fail(f"--{option} {' '.join(columns) or '(missing)'}",
                    f"3 column names (x y z) for --{option}")
    return columns


class OneTable(Source):
    """A Source over a single table file (a zip or a folder goes to Source itself)."""

    def __init__(self, path, expected):
        path = Path(path).expanduser()
        self.single = path.is_file() and path.suffix.lower() in SUFFIXES
        if self.single:
            self.path, self.expected, self._members, self._inner = path, expected, {}, []
            self._add(path.name, path)
        else:
            super().__init__(path, expected)

    def where(self, name=None):
        return str(self.path) if self.single else super().where(name)


class Reader:
    """The generic reader configured by the options; prepare() uses it like a reader module."""
    DOWNLOAD_URL = None
    SOURCE = OneTable

    def __init__(self, *, dataset_name, rate, acc, gyro, acc_unit, gyro_unit, activity, user, pattern,
                 time, time_unit, gap, activity_map, header, delimiter, resample):
        from .prepare import DATASETS, NAME
        if not dataset_name or not NAME.fullmatch(str(dataset_name)):
            raise _fail(f"--name {dataset_name or '(missing)'}",
                        "a name of letters, digits, '_' or '-', at most 64 (the -d of every stage)")
        if dataset_name in DATASETS or dataset_name == "custom":
            raise _fail(f"--name {dataset_name} is a published dataset's name", "another name")
        try:
            rate = float(rate)
        except (TypeError, ValueError):
            rate = None
        if rate is None or not np.isfinite(rate) or rate <= 0:
            raise _fail("--rate missing or not a positive number", "the sampling rate in Hz")
        units = [(acc_unit, ACC_UNITS, "acc"), (gyro_unit, GYRO_UNITS, "gyro"),
                 (time_unit, TIME_UNITS, "time")]
        for unit, table, what in units:
            if unit not in table:
                raise _fail(f"--{what}-unit {unit!r} unknown", f"one of {', '.join(table)}")
        try:
            gap = float(gap)
        except (TypeError, ValueError):
            gap = 0.0
        if not gap > 1:
            raise _fail(f"--gap {gap}", "a number of sample periods > 1 (default 2)")
        if resample not in ("poly", "block") or (resample == "block" and rate < RATE):
            raise _fail(f"--resample {resample} at {rate:g} Hz",
                        "poly, or block for rates of 20 Hz and more")
        self.pattern, fields = pattern_regex(pattern) if pattern else (None, set())
        for what, column in (("activity", activity), ("user", user)):
            if column is not None and what in fields:
                raise _fail(f"the {what} comes from both --{what} and --pattern",
                            f"one of them for the {what}")
        if activity is None and "activity" not in fields:
            raise _fail("no activity", "--activity COLUMN, or --pattern with {activity}")
        self.sensors = _columns(acc, "acc") + _columns(gyro, "gyro")
        self.labels = {"activity": activity, "user": user, "time": time}
        wanted = self.sensors + [c for c in self.labels.values() if c is not None]
        repeated = sorted({c for c in wanted if wanted.count(c) > 1})
        if repeated:
            raise _fail(f"column {repeated[0]!r} given for two roles", "distinct columns")
        self.wanted = [str(c) for c in wanted]
        self.NAME, self.RATE = str(dataset_name), rate
        self.RESAMPLE = resample
        self.scale = np.array([ACC_UNITS[acc_unit]] * 3 + [GYRO_UNITS[gyro_unit]] * 3)
        self.time_unit, self.time_scale = time_unit, TIME_UNITS[time_unit]
        self.gap, self.header = gap, bool(header)
        self.delimiter, self.acc_unit = delimiter, acc_unit
        self.activity_map = parse_activity_map(activity_map)
        self.LAYOUT = LAYOUT
        self.ACTIVITIES, self.FOUR_CLASS = [], [[] for _ in FOUR_CLASSES]
        self.LABELS = {"activity": [], "user": []}
        self.notes = []      # printed by prepare() after the windows

    # --- tables -------------------------------------------------------------------------

    def _files(self, src):
        tables = src.find(r"(?i)\.(?:" + "|".join(s[1:] for s in SUFFIXES) + r")$")
        if self.pattern is None:
            if not tables:
                raise src.error(None, "no table file found")
            return [(name, {}) for name, _ in tables]
        found = src.find(self.pattern)
        if not found:
            raise src.error(None, f"no file matches --pattern (regex {self.pattern})")
        if len(found) < len(tables):
            self.notes.append(f"{self.NAME}: {len(tables) - len(found)} table files do not match "
                              "--pattern and were skipped")
        return [(name, match.groupdict()) for name, match in found]

    def _missing(self, src, name, available):
        missing = [c for c in self.wanted if c not in available]
        if missing:
            shown = ", ".join(available[:20]) + (", ..." if len(available) > 20 else "")
            raise PrepareError(f"{src.where(name)}: no column {missing[0]!r}; expected one of "
                               f"its columns: {shown}")

    def _text(self, src, name):
        delimiter = self.delimiter
        if delimiter is None:
            delimiter = DELIMITERS.get(Path(name).suffix.lower(), ",")
        delimiter = DELIMITER_NAMES.get(delimiter, delimiter)
        with src.open(name) as f:
            first = f.readline().decode("utf-8-sig", "replace").rstrip("\r\n")
        cells = first.split(delimiter)
        names = ([c.strip().strip('"') for c in cells] if self.header
                 else [str(i) for i in range(len(cells))])
        self._missing(src, name, names)
        index = [names.index(c) for c in self.wanted]
        rows = load_table(src, name, len(names), delimiter=delimiter, skiprows=int(self.header),
                          dtype=str, usecols=index, chunk_rows=200_000).reshape(-1, len(index))
        return {c: rows[:, i] for i, c in enumerate(self.wanted)}, 1 + int(self.header)

    def _parquet(self, src, name):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise PrepareError(f"{src.where(name)}: reading Parquet needs pyarrow, which is not "
                               "installed; expected `pip install pyarrow`, or CSV files")
        try:
            table = pq.read_table(io.BytesIO(src.read_bytes(name)))
        except (OSError, ValueError) as exc:   # pyarrow's errors derive from these
            raise src.error(name, f"unreadable Parquet ({exc})")
        self._missing(src, name, list(table.column_names))
        return {c: table.column(c).to_numpy(zero_copy_only=False) for c in self.wanted}, 1

    def _npy(self, src, name):
        try:
            array = np.load(io.BytesIO(src.read_bytes(name)), allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise src.error(name, f"unreadable .npy ({exc})")
        if array.dtype.names:
            self._missing(src, name, list(array.dtype.names))
            return {c: array[c] for c in self.wanted}, 0
        if array.ndim != 2:
            raise src.error(name, f"a .npy array of shape {array.shape} (not samples x columns)")
        self._missing(src, name, [str(i) for i in range(array.shape[1])])
        return {c: array[:, int(c)] for c in self.wanted}, 0

    @staticmethod
    def _strings(values):
        values = np.asarray(values)
        if values.dtype.kind == "O":      # Parquet strings; None = a missing cell
            return np.array(["" if v is None else str(v) for v in values.tolist()])
        return np.char.strip(values.astype(str), ' "')

    def _floats(self, src, name, column, values, first_line):
        """A numeric column; an empty cell is a missing value (NaN: its windows are dropped)."""
        if values.dtype.kind in "biuf":
            return values.astype(np.float64)
        cells = self._strings(values)
        try:
            return np.where(cells == "", "nan", cells).astype(np.float64)
        except ValueError:
            row = next(i for i, cell in enumerate(cells.tolist()) if not _is_number(cell or "0"))
            where = f"line {row + first_line}" if first_line else f"row {row}"
            raise PrepareError(f"{src.where(name)}: column {column!r} has {str(cells[row])!r} at "
                               f"{where}; expected a number")

    def _names(self, values):
        """Label values as strings ('' = unlabelled); whole numbers without a decimal point."""
        values = np.asarray(values)
        if values.dtype.kind not in "biuf":
            return self._strings(values)
        values = values.astype(np.float64)
        whole = np.isfinite(values) & (values == np.round(values))
        text = np.where(whole, np.round(np.nan_to_num(values)).astype(np.int64).astype(str),
                        values.astype(str))
        return np.where(np.isnan(values), "", text)

    def _load(self, src, name, fields):
        """-> samples (n, 6) in m/s^2 and rad/s, activity and user names (n,), segment ids (n,)."""
        suffix = Path(name).suffix.lower()
        loader = {".parquet": self._parquet, ".npy": self._npy}.get(suffix, self._text)
        columns, first_line = loader(src, name)
        x = np.stack([self._floats(src, name, c, columns[c], first_line) for c in self.sensors], 1)
        n = len(x)
        label = {}
        for what in ("activity", "user"):
            column = self.labels[what]
            if column is not None:
                label[what] = self._names(columns[column])
            else:
                label[what] = np.full(n, fields.get(what, "all"))
        segment = np.zeros(n, dtype=np.int64)
        if self.labels["time"] is not None:
            segment = self._segments(src, name, self._floats(src, name, self.labels["time"],
                                                             columns[self.labels["time"]],
                                                             first_line), first_line)
        return x * self.scale, label["activity"], label["user"], segment

    def _segments(self, src, name, t, first_line):
        """Segment id per sample: a new segment after a step > gap periods or not forward."""
        if not np.isfinite(t).all():
            row = int(np.flatnonzero(~np.isfinite(t))[0])
            raise PrepareError(f"{src.where(name)}: time column {self.labels['time']!r} is empty "
                               f"or not finite at {'line' if first_line else 'row'} "
                               f"{row + first_line}; expected a timestamp on every row")
        step = np.diff(t) / self.time_scale
        if len(step):
            median = float(np.median(step))
            if not abs(median * self.RATE - 1) <= RATE_TOLERANCE:
                measured = f"{1 / median:.4g} Hz" if median > 0 else "not increasing"
                raise PrepareError(
                    f"{src.where(name)}: the median time step is {median:.6g} s ({measured}) "
                    f"in --time-unit {self.time_unit}; expected about 1/{self.RATE:g} s "
                    f"(--rate {self.RATE:g}): check --rate and --time-unit")
        breaks = (step <= 0) | (step > self.gap / self.RATE)
        return np.concatenate([[0], np.cumsum(breaks)])

    # --- recordings -----------------------------------------------------------------------

    def read(self, src):
        files = self._files(src)
        tables = [(name, *self._load(src, name, fields))
                  for name, fields in progress(files, f"{self.NAME} files", total=len(files))]
        activities = natural_sorted({a for _, _, act, _, _ in tables for a in np.unique(act) if a})
        users = natural_sorted({u for _, _, _, user, _ in tables for u in np.unique(user) if u})
        if not activities:
            raise src.error(None, "no labelled row (every activity is empty)")
        mapping = self.activity_map
        if mapping is None:
            mapping = default_activity_map(activities)
        unknown = sorted(set(mapping) - set(activities))
        if unknown:
            raise PrepareError(f"custom: --activity-map names activity {unknown[0]!r}, which is "
                               f"not in the data; expected one of {', '.join(activities)}")
        self.ACTIVITIES = activities
        self.LABELS = {"activity": activities, "user": users}
        self.FOUR_CLASS = [[a for a in activities if mapping.get(a) == c] for c in FOUR_CLASSES]
        recordings, unlabelled, gaps, longest = [], 0, 0, 0
        for name, x, act, user, segment in tables:
            codes = _codes(act, activities), _codes(user, users)
            gaps += int(segment[-1]) if len(segment) else 0
            for start, end in runs(codes[0], codes[1], segment):
                labels = (int(codes[0][start]), int(codes[1][start]))
                if min(labels) < 0:
                    unlabelled += end - start
                    continue
                longest = max(longest, end - start)
                recordings.append(Recording(x[start:end], labels))
        if longest <= SEQ_LEN / RATE * self.RATE:
            raise src.error(None, f"the longest recording (one activity and user, no time gap) "
                                  f"has {longest} samples = {longest / self.RATE:.2f} s at "
                                  f"{self.RATE:g} Hz; a window needs more than "
                                  f"{SEQ_LEN / RATE:g} s")
        self._note(gaps, unlabelled, recordings)
        return recordings

    def _note(self, gaps, unlabelled, recordings):
        if gaps:
            self.notes.append(f"{self.NAME}: {gaps} time gaps (steps > {self.gap:g} sample periods, "
                              "or not forward) split recordings")
        if unlabelled:
            self.notes.append(f"{self.NAME}: {unlabelled} rows with an empty activity or user "
                              "left out")
        # a wrong --acc-unit is the likeliest mistake: gravity says which unit the data is in
        acc = np.concatenate([r.data[:, :3] for r in recordings])
        median = float(np.nanmedian(np.linalg.norm(acc, axis=1)))    # m/s^2
        if self.acc_unit == "m/s^2" and 0.5 < median < 1.5:
            self.notes.append(f"{self.NAME}: note: the median |acc| is {median:.2f} m/s^2, about "
                              "1 g: if the files are in g, pass --acc-unit g")
        elif self.acc_unit == "g" and 0.5 * G < median / G < 1.5 * G:
            self.notes.append(f"{self.NAME}: note: the median |acc| is {median / G:.2f} g: if the "
                              "files are in m/s^2, pass --acc-unit m/s^2")


def configure(**options):
    """The reader for these options (see OPTIONS); PrepareError names a bad one."""
    return Reader(**{**OPTIONS, **options})


# --- command line ------------------------------------------------------------------------

def add_arguments(parser):
    """The custom reader's flags (all default None: only given ones reach prepare())."""
    g = parser.add_argument_group("custom (your own recordings: python -m dataset.prepare custom ...)")
    g.add_argument("--name", dest="dataset_name", metavar="NAME", help="the dataset's name (what -d takes later)")
    g.add_argument("--rate", type=float, metavar="HZ", help="sampling rate in Hz (any; resampled to 20 Hz)")
    g.add_argument("--acc", nargs=3, metavar="COL", help="accelerometer x y z columns")
    g.add_argument("--gyro", nargs=3, metavar="COL", help="gyroscope x y z columns")
    g.add_argument("--acc-unit", metavar="UNIT", help="g or m/s^2 (default m/s^2)")
    g.add_argument("--gyro-unit", metavar="UNIT", help="rad/s or deg/s (default rad/s)")
    g.add_argument("--activity", metavar="COL", help="activity column (or {activity} in --pattern)")
    g.add_argument("--user", metavar="COL", help="user column (or {user} in --pattern; default: one user)")
    g.add_argument("--pattern", help="file names, e.g. '{user}_{activity}.csv' or "
                                     "'{user}/{activity}_{trial}.csv' (other fields: any text)")
    g.add_argument("--time", metavar="COL", help="timestamp column: gaps split recordings")
    g.add_argument("--time-unit", metavar="UNIT", help="s, ms, us or ns (default s)")
    g.add_argument("--gap", type=float, metavar="PERIODS", help="a time step over this many sample periods splits a "
                                             "recording (default 2)")
    g.add_argument("--activity-map", nargs="+", metavar="RAW=CLASS",
                   help="raw activity -> walking | upstairs | downstairs | sitting&standing (quote "
                        "the &), or one MAP.json; unmapped activities stay out of the 4-class version")
    g.add_argument("--no-header", dest="header", action="store_const", const=False,
                   help="text tables without a header row: columns are 0, 1, 2, ...")
    g.add_argument("--delimiter", metavar="D", help="text tables: field separator, or tab / space "
                                                    "(default: , for .csv, tab for .tsv, whitespace for .txt)")
    g.add_argument("--resample", metavar="METHOD", help="poly (default: anti-aliased polyphase) or block "
                                      "(LIMU-BERT's block averaging, rates >= 20 Hz)")


def cli_options(args):
    return {key: getattr(args, key) for key in OPTIONS}
