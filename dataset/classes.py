"""CrossHAR's 4-class space and each dataset's mapping into it (shared/data/README.md).

Keys are the datasets' official activity codes, as the readers list them in ACTIVITIES;
activities not listed are dropped from the 4-class version.
"""
import numpy as np

FOUR_CLASSES = ["walking", "upstairs", "downstairs", "sitting&standing"]

# dataset -> official codes of [walking, upstairs, downstairs, sitting & standing]
TABLE = {
    "uci": [[1], [2], [3], [4, 5]],                    # HAPT activity ids
    "usc_had": [[1], [4], [5], [8, 9]],                # USC-HAD activity numbers
    "dsads": [["a09", "a10"], ["a05"], ["a06"], ["a01", "a02"]],
    "motion": [["wlk"], ["ups"], ["dws"], ["sit", "std"]],
    "hhar": [["walk"], ["stairsup"], ["stairsdown"], ["sit", "stand"]],
    "shoaib": [["walking"], ["upstairs"], ["downstairs"], ["sitting", "standing"]],
}


def four_class_lookup(name, codes, table=None):
    """Array: the reader's activity index -> 4-class index, -1 where the activity is dropped.
    table: the groups of codes per class, when not TABLE[name] (the custom reader's map)."""
    to_class = {code: c for c, group in enumerate(TABLE[name] if table is None else table)
                for code in group}
    return np.array([to_class.get(code, -1) for code in codes], dtype=np.int64)
