"""Cursor helpers of LMDBStore's listings: chunks of keys, and jumping past a subtree.

>>> after_subtree(b"a/b")
b'a/b0'
"""

from __future__ import annotations

from typing import Any

import lmdb

__all__ = ["LIST_CHUNK", "after_subtree", "list_chunk"]

#: Keys fetched per transaction while streaming ``list``.
LIST_CHUNK = 1024


def after_subtree(prefix: bytes) -> bytes:
    """The smallest key above every key that starts with ``prefix + b"/"``:
    ``"/"`` is 0x2F, so ``prefix + b"0"`` (0x30) sorts right after that subtree."""
    return prefix + b"0"


def list_chunk(txn: lmdb.Transaction[Any], prefix: bytes, after: bytes | None) -> list[bytes]:
    """Up to :data:`LIST_CHUNK` keys starting with ``prefix``, after the key ``after``."""
    keys: list[bytes] = []
    cursor = txn.cursor()
    if not cursor.set_range(prefix if after is None else after):
        return keys
    for key in cursor.iternext(keys=True, values=False):
        if not key.startswith(prefix):
            break
        if key != after:
            keys.append(key)
            if len(keys) >= LIST_CHUNK:
                break
    return keys
