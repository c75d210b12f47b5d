"""Raw-input access and output writing shared by every dataset reader.

- `PrepareError`: bad input; `python -m dataset.prepare` prints it as one stderr line, exit 2.
- `Source`: one view over "the official zip or its extracted folder", nested zips included.
- `iter_table` / `load_table`: np.loadtxt with the file named in every error.
- `read_config` / `write_atomic`: the existing data_config.json is read (and checked) before
  anything is written; every output is a temporary file renamed into place at the very end.
"""
import io
import itertools
import re
import shutil
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from common.errors import UserError
from common.io import atomic_write_many, read_json

# What a broken zip member or file can raise while being read.
READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zlib.error, UnicodeDecodeError)


class PrepareError(UserError):
    """Bad input, reported as one line: '<path>: <problem>; expected <what>'."""


def _junk(name):
    # macOS archivers add __MACOSX/ and ._name resource forks (MotionSense's zip has them).
    return "__MACOSX/" in name or Path(name).name.startswith("._")


class Source:
    """Files of a dataset given as a zip archive or a folder, addressed by relative posix names."""

    def __init__(self, path, expected):
        self.path = Path(path).expanduser()
        self.expected = expected
        self._members = {}   # name -> (ZipFile, member) or Path
        self._inner = []     # names of zips inside, opened only when a search needs them
        if self.path.is_dir():
            for p in sorted(self.path.rglob("*")):
                if p.is_file():
                    self._add(p.relative_to(self.path).as_posix(), p)
        elif self.path.is_file():
            self._add_zip(self.path, "")
        else:
            raise self.error(None, "no such file or folder")

    def _add(self, name, where):
        if not _junk(name):
            self._members[name] = where
            if name.lower().endswith(".zip"):
                self._inner.append(name)

    def _add_zip(self, file, prefix):
        try:
            archive = zipfile.ZipFile(file)
        except (zipfile.BadZipFile, OSError) as exc:
            raise self.error(prefix.rstrip("/") or None, f"not a readable zip archive ({exc})")
        for info in archive.infolist():
            if not info.is_dir():
                self._add(prefix + info.filename, (archive, info.filename))

    def _open_inner_zips(self):
        # The official UCI archives may wrap the published zip in another one: spool each
        # inner zip to an unnamed temp file (zip members are not cheaply seekable) and add it.
        inner, self._inner = self._inner, []
        for name in inner:
            spool = tempfile.TemporaryFile()
            try:
                with self.open(name) as f:
                    shutil.copyfileobj(f, spool)
            except READ_ERRORS as exc:
                raise self.error(name, f"unreadable or truncated ({exc})")
            self._add_zip(spool, name + "/")

    def where(self, name=None):
        """Printable location of a member: 'archive.zip:inner/path' or 'folder/inner/path'."""
        if name is None:
            return str(self.path)
        return f"{self.path / name}" if self.path.is_dir() else f"{self.path}:{name}"

    def error(self, name, problem):
        return PrepareError(f"{self.where(name)}: {problem}; expected {self.expected}")

    def find(self, pattern):
        """[(name, match)] for members whose name matches regex `pattern` (re.search), by name."""
        regex = re.compile(pattern)
        while True:
            found = [(n, m) for n in sorted(self._members) if (m := regex.search(n))]
            if found or not self._inner:
                return found
            self._open_inner_zips()

    def require(self, pattern, what):
        found = self.find(pattern)
        if not found:
            raise self.error(None, f"no {what} found")
        return found

    def sibling(self, name, filename):
        """Name of `filename` in the same folder as member `name`, checked to exist."""
        other = f"{name.rsplit('/', 1)[0]}/{filename}" if "/" in name else filename
        if other not in self._members:
            raise self.error(other, "missing file")
        return other

    def open(self, name):
        where = self._members[name]
        try:
            return where.open("rb") if isinstance(where, Path) else where[0].open(where[1])
        except READ_ERRORS as exc:
            raise self.error(name, f"unreadable ({exc})")

    def read_bytes(self, name):
        try:
            with self.open(name) as f:
                return f.read()
        except READ_ERRORS as exc:
            raise self.error(name, f"unreadable or truncated ({exc})")


def _clean(message):
    # numpy's messages end with advice for programmers; the user needs the first clause.
    return message.split("; use `usecols`")[0].rstrip(".")


def iter_table(src, name, ncols, *, delimiter=None, skiprows=0, dtype=float, usecols=None,
               chunk_rows=None):
    """Yield np.loadtxt chunks (2-D, or 1-D structured) of a text table with `ncols` columns.

    chunk_rows bounds memory for multi-GB files (HHAR); None reads the file in one chunk.
    A changed column count, an unparsable field or a broken file raises PrepareError.
    """
    expected = f"{ncols} {'comma' if delimiter == ',' else 'space'}-separated columns"
    first = skiprows
    try:
        with src.open(name) as raw, \
                io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace") as text:
            for _ in range(skiprows):
                next(text, None)
            while True:
                lines = list(itertools.islice(text, chunk_rows))
                if not lines:
                    break
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")   # "input contained no data"
                        table = np.loadtxt(lines, delimiter=delimiter, dtype=dtype,
                                           usecols=usecols, ndmin=1 if usecols else 2)
                except ValueError as exc:
                    # numpy counts rows from 0 within the chunk: report the file's 1-based line.
                    msg = re.sub(r"at row (\d+)",
                                 lambda m: f"at line {first + int(m.group(1)) + 1}", str(exc))
                    raise src.error(name, _clean(msg) + f" (not {expected})")
                if usecols is None and table.shape[1] != ncols:
                    raise src.error(name, f"{table.shape[1]} columns (not {expected})")
                yield table
                first += len(lines)
    except READ_ERRORS as exc:
        raise src.error(name, f"unreadable or truncated ({exc})")
    if first == skiprows:
        raise src.error(name, f"no data rows (not {expected})")


def load_table(src, name, ncols, **kw):
    """The whole table as one array (see iter_table)."""
    chunks = list(iter_table(src, name, ncols, **kw))
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def _writer(content):
    if isinstance(content, str):
        return lambda f: f.write(content.encode("utf-8"))
    return lambda f: np.save(f, content)


def write_atomic(files):
    """Write {path: ndarray or str} to temp names, then rename them all (all or nothing)."""
    atomic_write_many({path: _writer(content) for path, content in files.items()})


def read_config(path):
    """The entries of an existing data_config.json ({} if there is none yet); a corrupt one is
    refused before anything is written."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        return read_json(path, "dataset config", "a JSON object (fix or delete it)")
    except UserError as exc:
        raise PrepareError(str(exc)) from None


def progress(iterable, desc, total=None):
    """tqdm progress on stderr; silent when stderr is not a terminal (tests, logs)."""
    from tqdm import tqdm
    return tqdm(iterable, desc=desc, total=total, unit="file", leave=False, disable=None)



def encode(src, name, values, vocab, what, aliases=None, grow=False):
    """Index in `vocab` of each string in `values` (an alias maps to a vocab entry, or to None
    for 'unlabelled', coded -1). Other strings are bad input, unless grow: then they are
    appended to vocab."""
    aliases = aliases or {}
    uniq, inverse = np.unique(values, return_inverse=True)
    codes = []
    for value in uniq.tolist():
        value = aliases.get(value, value)
        if value is not None and value not in vocab:
            if not grow:
                raise src.error(name, f"unknown {what} {value!r}")
            vocab.append(value)
        codes.append(-1 if value is None else vocab.index(value))
    return np.asarray(codes, dtype=np.int64)[inverse.reshape(-1)]
