"""The settings of an LMDBStore's environment: its defaults over :func:`lmdb.open`'s, checked.

>>> settings = open_settings({"max_readers": 500}, readonly=True)
>>> settings["readonly"], settings["max_readers"], settings["max_spare_txns"]
(True, 500, 0)
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["check_open_kwargs", "open_settings"]


#: lmdb.open's settings that are counts or sizes.
_COUNTS = ("map_size", "max_readers", "max_dbs", "max_spare_txns", "mode")
_FLAGS = (
    "subdir",
    "readonly",
    "metasync",
    "sync",
    "map_async",
    "create",
    "readahead",
    "writemap",
    "meminit",
    "lock",
)


def open_settings(kwargs: dict[str, Any], readonly: bool) -> dict[str, Any]:
    """``kwargs`` for :func:`lmdb.open` over LMDBStore's defaults (see its docs), checked.

    >>> open_settings({"map_size": 2**20}, readonly=True)["map_size"], open_settings({}, False)["writemap"]
    (1048576, False)
    """
    settings = {
        "map_size": 2**40 if sys.maxsize >= 2**32 else 2**28,
        "meminit": False,
        "writemap": False,
        "metasync": False,
        "sync": False,
        "map_async": False,
        # A read transaction kept for reuse holds a reader slot: fork needs none held.
        "max_spare_txns": 0,
        **kwargs,
    }
    if readonly:
        settings["readonly"] = True
    check_open_kwargs(settings)
    return settings


def check_open_kwargs(kwargs: dict[str, Any]) -> None:
    """ValueError or TypeError naming the setting, for what :func:`lmdb.open` would refuse
    with a message that does not name it (an unknown name, a negative size).

    >>> check_open_kwargs({"map_size": -1})
    Traceback (most recent call last):
    ...
    ValueError: LMDBStore map_size must be a positive integer, not -1
    """
    unknown = sorted(set(kwargs) - set(_COUNTS) - set(_FLAGS))
    if unknown:
        raise TypeError(
            f"LMDBStore got unknown lmdb.open settings {unknown}; it takes {sorted(_COUNTS + _FLAGS)}"
        )
    for name in _COUNTS:
        value = kwargs.get(name)
        if value is None:
            continue
        kind = "a positive integer" if name == "map_size" else "a non-negative integer"
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"LMDBStore {name} must be {kind}, not {value!r}")
        if value < (name == "map_size"):
            raise ValueError(f"LMDBStore {name} must be {kind}, not {value!r}")
