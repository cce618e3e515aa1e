"""zarr 3 adapter: :class:`ZarrStore` puts any aiostore store under zarr 3.

zarr 3 dropped the DBM, LMDB, nested-directory and temporary stores and the LRU
cache, and no longer accepts a ``MutableMapping`` as a store. Wrapping an
aiostore store (or any mapping) in :class:`ZarrStore` gives zarr 3 all of them,
with little Python per chunk: zarr 3 calls ``get`` once per chunk, concurrently;
a blocking backend's cheap reads (small values in the page cache) are made in the
event loop's thread with no thread hop at all, slower ones are coalesced into a
few hops, and concurrent ``set`` calls into batches.

This module imports zarr (>= 3.1); ``import aiostore`` never does.

Examples
--------
>>> import numpy as np
>>> import zarr
>>> from aiostore import MemoryStore
>>> backend = MemoryStore()
>>> z = zarr.create_array(ZarrStore(backend), shape=(4, 4), chunks=(2, 2), dtype="i4")
>>> z[:] = np.arange(16).reshape(4, 4)
>>> sorted(backend.root["c"]["1"])
['0', '1']
>>> int(zarr.open_array(ZarrStore(backend), mode="r")[3, 3])
15
"""

from __future__ import annotations

from aiostore.zarr3._conversions import to_buffer, to_byte_range
from aiostore.zarr3._store import ZarrStore

__all__ = ["ZarrStore", "to_buffer", "to_byte_range"]
