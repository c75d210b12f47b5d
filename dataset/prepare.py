"""Raw HAR dataset -> 20 Hz, 120-sample windows (LIMU-BERT / CrossHAR layout).

    python -m dataset.prepare NAME --raw PATH [--classes all|4|both] [--out DIR]
                              [--download [--cache DIR] [--url URL]] [--unit U] [--position P ...]

Writes OUT/NAME/data_20_120.npy (N x 120 x 6 float64: acc x y z m/s^2, gyro x y z rad/s) and
label_20_120.npy (N x 120 x L float64, per-step labels, column 0 the activity), the 4-class
version as data_20_120_4c.npy / label_20_120_4c.npy, and records each in OUT/data_config.json.
Bad input ends with one line on stderr and exit code 2. All or nothing: everything is read
and checked (data_config.json included) before the first output is written, outputs go to
temporary files, and they are renamed into place together at the end.
"""
import importlib
import json
import os
from pathlib import Path

import numpy as np

from common.cli import Parser, run
from common.lock import hold

from . import windows
from .classes import FOUR_CLASSES, four_class_lookup
from .download import DEFAULT_CACHE, fetch
from .files import PrepareError, Source, read_config, write_atomic

DATASETS = ["uci", "usc_had", "dsads", "motion", "hhar", "shoaib"]
CHANNELS = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
UNITS = {"acc": "m/s^2", "gyro": "rad/s"}
VERSIONS = {"all": "20_120", "4": "20_120_4c"}


def reader(name):
    """The reader module of a dataset (dataset/<name>.py)."""
    if name not in DATASETS:
        raise PrepareError(f"{name}: unknown dataset; expected one of {', '.join(DATASETS)}")
    return importlib.import_module(f"{__package__}.{name}")


def four_class(name, module, data, labels):
    """Windows of the 4 CrossHAR classes, label column 0 remapped to the 4-class index."""
    mapped = four_class_lookup(name, module.ACTIVITIES)[labels[:, 0, 0].astype(np.int64)]
    keep = mapped >= 0
    labels = labels[keep]
    labels[:, :, 0] = mapped[keep][:, None]
    return data[keep], labels


def label_columns(module, classes):
    """[(column name, list of value names or a count)], activity first."""
    columns = list(module.LABELS.items())
    return [("activity", FOUR_CLASSES if classes == "4" else columns[0][1])] + columns[1:]


def config_entry(module, data, classes, source, options):
    entry = {"sr": windows.RATE, "seq_len": windows.SEQ_LEN, "dimension": data.shape[2],
             "size": len(data)}
    columns = label_columns(module, classes)
    for index, (column, values) in enumerate(columns):
        entry[f"{column}_label_index"] = index
        entry[f"{column}_label_size"] = values if isinstance(values, int) else len(values)
        if not isinstance(values, int):
            entry[f"{column}_label"] = list(values)
    entry.update(label_names=[column for column, _ in columns], classes=classes,
                 channels=CHANNELS, units=UNITS, source=source, options=options)
    return entry


def summary(key, labels, columns):
    """Window counts per value of each label column (class, user, ...)."""
    lines = [f"{key}: {len(labels)} windows"]
    for index, (column, values) in enumerate(columns):
        counts = np.bincount(labels[:, 0, index].astype(np.int64))
        names = values if not isinstance(values, int) else range(values)
        lines.append(f"  per {column}: " + ", ".join(
            f"{names[i] if i < len(names) else i}={n}" for i, n in enumerate(counts) if n))
    return "\n".join(lines)


def prepare(name, raw=None, out="dataset", classes="both", *, download=False, cache=None,
            url=None, verbose=True, **options):
    """Prepare one dataset; -> {"NAME_VERSION": config entry + "data"/"label" paths}.

    options: dsads unit="torso"|"ra"|"la"|"rl"|"ll"; shoaib positions=[...] (all by default).
    Raises PrepareError on bad input; nothing is written unless every output can be.
    """
    say = print if verbose else (lambda *a, **k: None)
    module = reader(name)
    defaults = getattr(module, "OPTIONS", {})     # reader options and their defaults
    options = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise PrepareError(f"{name}: option {unknown[0]!r} does not apply; expected "
                           f"{', '.join(defaults) or 'no options'}")
    options = {**defaults, **options}
    if classes not in ("all", "4", "both"):
        raise PrepareError(f"{classes}: unknown --classes; expected all, 4 or both")
    out = Path(out)
    read_config(out / "data_config.json")          # a corrupt one is refused before any work
    if download:
        raw = fetch(name, module.DOWNLOAD_URL, cache, url)
    elif raw is None:
        raise PrepareError(f"{name}: no raw data given; expected --raw PATH ({module.LAYOUT}) "
                           "or --download")
    src = Source(raw, module.LAYOUT)
    data, labels, dropped = windows.make_windows(
        module.read(src, **options), module.RATE, module.RESAMPLE, len(module.LABELS))
    if dropped:
        say(f"{name}: dropped {dropped} windows with NaN or inf samples")
    if not len(data):
        raise src.error(None, f"no {windows.SEQ_LEN}-sample window could be cut"
                              + (f" ({dropped} dropped for NaN/inf)" if dropped else ""))

    versions = {}
    if classes in ("all", "both"):
        versions["all"] = data, labels
    if classes in ("4", "both"):
        versions["4"] = four_class(name, module, data, labels)
        if not len(versions["4"][0]):
            raise src.error(None, "no window of the 4 classes (walking, upstairs, downstairs, "
                                  "sitting & standing)")
    files, written, summaries = {}, {}, []
    for version_classes, (d, l) in versions.items():
        version = VERSIONS[version_classes]
        paths = {"data": out / name / f"data_{version}.npy",
                 "label": out / name / f"label_{version}.npy"}
        files.update({paths["data"]: d, paths["label"]: l})
        entry = config_entry(module, d, version_classes, os.path.abspath(raw), options)
        written[f"{name}_{version}"] = {**entry, **paths}
        summaries.append(summary(f"{name}_{version}", l, label_columns(module, version_classes)))
    entries = {key: {k: v for k, v in entry.items() if k not in ("data", "label")}
               for key, entry in written.items()}
    config_path = out / "data_config.json"
    with hold(config_path):     # two prepares into one folder must not drop each other's entries
        config = {**read_config(config_path), **entries}
        write_atomic({**files, config_path: json.dumps(config, indent=2) + "\n"})   # all, or none
    say("\n".join(summaries))
    return written


def main(argv=None):
    p = Parser(prog="python -m dataset.prepare", description=__doc__.split("\n\n")[0])
    p.add_argument("name", metavar="NAME", choices=DATASETS, help=", ".join(DATASETS))
    p.add_argument("--raw", help="the official zip or its extracted folder")
    p.add_argument("--classes", choices=["all", "4", "both"], default="both",
                   help="all activities, CrossHAR's 4 classes, or both (default)")
    p.add_argument("--out", default="dataset", help="output folder (default: dataset)")
    p.add_argument("--download", action="store_true",
                   help="fetch the official zip first (not for shoaib)")
    p.add_argument("--cache", default=DEFAULT_CACHE, help=f"download folder ({DEFAULT_CACHE})")
    p.add_argument("--url", help="download from this address instead of the official one "
                                 "(or set CROSSHAR_DOWNLOAD_BASE)")
    p.add_argument("--unit", choices=["torso", "ra", "la", "rl", "ll"],
                   help="dsads body unit (default torso)")
    p.add_argument("--position", nargs="+", dest="positions",
                   choices=["left_pocket", "right_pocket", "wrist", "upper_arm", "belt"],
                   help="shoaib body positions (default: all)")
    args = p.parse_args(argv)
    prepare(args.name, args.raw, args.out, args.classes, download=args.download,
            cache=args.cache, url=args.url, unit=args.unit, positions=args.positions)


if __name__ == "__main__":
    run(main, interrupted="interrupted; nothing was written (outputs are renamed into place only at the end)")
