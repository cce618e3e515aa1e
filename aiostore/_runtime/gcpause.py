"""A process-wide, counted pause of the cyclic garbage collector, for batches of containers.

Why: a batch that creates ~100,000 container objects (objects the cyclic
collector tracks, such as ``memoryview``, ``pickle.PickleBuffer`` or
``weakref.ref``) triggers collection after collection while it runs, and each
one walks everything created so far. Measured on a 2-core machine, per object
created, collector on vs off: py-lmdb's ``txn.get`` with ``buffers=True`` (which
makes a memoryview) 1.38 vs 0.51 µs, ``pickle.PickleBuffer(view)`` 0.44 vs
0.13 µs, ``memoryview(x)`` 0.43 vs 0.14 µs. ``bytes`` are not tracked, so code
that copies values never pays this. The objects are still tracked afterwards:
later collections look at them once or twice as they age, at the usual cost,
instead of many times during the batch.

The pause is counted and thread-safe: the first thread to enter records
whether the collector was enabled and disables it; the last one to leave
restores that, so a collector the program had disabled stays disabled. Other
threads' allocations are not collected during the pause either, which is why
a pause must cover a short, bounded stretch of work (one batch). A child made
by ``fork`` starts outside any pause (the pausing threads are not there).

>>> import gc
>>> with gc_paused():
...     with gc_paused():  # nested, or from other threads: counted
...         print(gc.isenabled())
...     print(gc.isenabled())
False
False
>>> gc.isenabled()
True
>>> gc.disable()
>>> with gc_paused():
...     pass
>>> gc.isenabled()  # it was off before: it stays off
False
>>> gc.enable()
"""

from __future__ import annotations

import gc
import threading
from types import TracebackType

from aiostore._runtime.forks import renew_after_fork

__all__ = ["GCPause", "gc_paused"]


class GCPause:
    """The counted pause (use the process's one, :func:`gc_paused`): a context manager."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._restore = False
        renew_after_fork(self, type(self)._renew_in_child)

    @property
    def depth(self) -> int:
        """How many pauses are in progress now (in all threads)."""
        return self._depth

    def __enter__(self) -> None:
        with self._lock:
            if not self._depth:
                self._restore = gc.isenabled()
                gc.disable()
            self._depth += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._lock:
            if self._depth <= 0:  # entered before a fork, in the parent: already restored here
                return
            self._depth -= 1
            if not self._depth and self._restore:
                gc.enable()

    def _renew_in_child(self) -> None:
        """After ``fork``: the threads inside a pause are not in the child; end it."""
        self._lock = threading.Lock()
        if self._depth:
            self._depth = 0
            if self._restore:
                gc.enable()


_PAUSE = GCPause()


def gc_paused() -> GCPause:
    """The process's pause of the garbage collector: ``with gc_paused(): ...``."""
    return _PAUSE
