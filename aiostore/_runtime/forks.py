"""Process-local state renewed in a child made by ``fork``.

A process forks with all its memory but only the thread that called ``fork``.
A lock another thread held at that moment stays held in the child, by a thread
that does not exist there: the child's first call that takes it waits forever.
Work under way in those threads (a fetch others wait for) never ends there
either. An object whose state is like that registers, once, a function that
renews it -- new locks, forgotten work in flight -- and every child forked
afterwards calls it first thing, while the object is alive.

>>> import threading
>>> class Counter:
...     def __init__(self):
...         self.lock = threading.Lock()
...         renew_after_fork(self, Counter._renew)
...     def _renew(self):
...         self.lock = threading.Lock()
>>> counter = Counter()
>>> registered(counter)
True
"""

from __future__ import annotations

import os
import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["registered", "renew_after_fork"]

T = TypeVar("T")

# id(owner) -> (a weak reference to it, its renew function). Owners need not be
# hashable (stores are not): the weak reference's callback drops the entry.
_RENEW: dict[int, tuple[weakref.ref[Any], Callable[[Any], object]]] = {}
_lock = threading.RLock()  # reentrant: a collection inside the block may call `forget`


def renew_after_fork(owner: T, renew: Callable[[T], object]) -> None:
    """Call ``renew(owner)`` in every child forked from now on, before the child
    runs anything else, as long as ``owner`` is alive.

    ``renew`` takes the owner as its argument (a function or an unbound method),
    so the registration does not keep the owner alive. Registering an owner
    again replaces its function.
    """
    key = id(owner)

    def forget(ref: weakref.ref[Any]) -> None:
        with _lock:
            if _RENEW.get(key, (None,))[0] is ref:
                del _RENEW[key]

    with _lock:
        _RENEW[key] = (weakref.ref(owner, forget), renew)


def registered(owner: object) -> bool:
    """Whether ``owner`` is renewed in forked children."""
    entry = _RENEW.get(id(owner))
    return entry is not None and entry[0]() is owner


def _renew_all() -> None:
    """In the child, right after ``fork``: the only thread, so no lock is needed
    (the module's own may be held by a thread that did not come along)."""
    global _lock
    _lock = threading.RLock()
    for ref, renew in list(_RENEW.values()):
        owner = ref()
        if owner is None:
            continue
        try:
            renew(owner)
        except Exception as exc:  # one object's failure must not leave the others stuck
            warnings.warn(
                f"aiostore could not renew {owner!r} in a forked child: {exc!r}", RuntimeWarning, stacklevel=1
            )


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_all)
