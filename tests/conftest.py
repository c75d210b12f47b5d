
# ==== dataset preparation: prepared_real (owned by tests/test_prepare_*.py) ==============
import json as _json
import time as _time
from pathlib import Path as _Path

import pytest as _pytest

SHARED_DATA = _Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_RAW = {"uci": SHARED_DATA / "uci_hapt" / "HAPT_RawData.zip",
            "usc_had": SHARED_DATA / "usc_had" / "USC-HAD.zip",
            "dsads": SHARED_DATA / "dsads" / "DSADS_subset.zip"}


@_pytest.fixture(scope="session")
def prepared_real(tmp_path_factory):
    """Output dir with uci, usc_had and dsads prepared once per session (--classes both) from
    the real zips in ../shared/data; prepare_seconds.json there holds each one's wall time.
    Datasets whose zip is absent are left out (their tests skip); none at all skips."""
    from dataset.prepare import prepare

    present = {name: raw for name, raw in REAL_RAW.items() if raw.exists()}
    if not present:
        _pytest.skip(f"real datasets not found under {SHARED_DATA}")
    out = tmp_path_factory.mktemp("prepared_real")
    seconds = {}
    for name, raw in present.items():
        start = _time.perf_counter()
        prepare(name, raw, out, verbose=False)
        seconds[name] = round(_time.perf_counter() - start, 2)
    (out / "prepare_seconds.json").write_text(_json.dumps(seconds))
    return out
# ==== end prepared_real ====================================================================
