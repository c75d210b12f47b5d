"""--download: fetch a dataset's official zip into a cache folder with urllib, check it opens.

The server can be overridden for mirrors and tests: CROSSHAR_DOWNLOAD_BASE=http://host/dir
replaces everything before the archive's file name; --url replaces the whole address.
"""
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from .files import PrepareError

BASE_ENV = "CROSSHAR_DOWNLOAD_BASE"
DEFAULT_CACHE = "~/.cache/crosshar"


def _opens_as_zip(path):
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def fetch(name, official_url, cache=None, url=None):
    """Path of NAME's zip in the cache, downloaded first unless a good copy is already there."""
    if url is None:
        if official_url is None:
            raise PrepareError(f"{name}: no zip download (the dataset is published only as a "
                               ".rar archive); expected --raw with its extracted folder")
        base = os.environ.get(BASE_ENV)
        url = f"{base.rstrip('/')}/{official_url.rsplit('/', 1)[1]}" if base else official_url
    dest = Path(cache or DEFAULT_CACHE).expanduser() / f"{name}.zip"
    if _opens_as_zip(dest):
        print(f"{name}: using {dest} (delete it to download again)")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    print(f"{name}: downloading {url} -> {dest}")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as f:
            shutil.copyfileobj(response, f, 1 << 20)
        if not _opens_as_zip(part):
            raise PrepareError(f"{url}: the download is not a zip archive; expected the "
                               f"official {name} zip")
        os.replace(part, dest)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PrepareError(f"{url}: download failed ({reason}); expected the official "
                           f"{name} zip (or prepare from a local copy with --raw)")
    finally:
        part.unlink(missing_ok=True)
    return dest
