"""Background worker tasks on aiostore's portal loop, started on demand.

A :class:`PortalWorkers` runs up to ``size`` tasks in a task group on the
background event loop (:mod:`aiostore._runtime.portal`), so code on either side -- a
sync caller with no event loop, or async code under asyncio or trio -- can hand
work off and return at once. The workers pull jobs from their owner until none
are left, then end: an idle pool holds no task, and the next :meth:`start`
begins a new one. :meth:`stop` cancels the pool and waits for it to finish.

The owner's state is guarded by the owner's lock, which the pool shares:
``next_job`` is called with it held.

>>> import threading
>>> lock, jobs, done = threading.Lock(), [1, 2, 3], []
>>> async def run(job):
...     done.append(job)
>>> pool = PortalWorkers(lock, 2, lambda: jobs.pop() if jobs else None, run, print)
>>> pool.start()
>>> import time
>>> while len(done) < 3: time.sleep(0.01)
>>> sorted(done)
[1, 2, 3]
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio
import anyio.abc
import anyio.to_thread

from aiostore._runtime.portal import portal_thread, spawn_on_portal

__all__ = ["PortalWorkers", "WAIT", "Wait"]

J = TypeVar("J")


class Wait:
    """The type of :data:`WAIT`."""

    def __repr__(self) -> str:
        return "WAIT"


#: What ``next_job`` returns when jobs remain but must wait for :meth:`PortalWorkers.wake_locked`.
WAIT = Wait()


class _Generation:
    """One run of the pool: a task group on the portal loop (fields under the lock)."""

    def __init__(self, workers: int) -> None:
        #: Workers running or scheduled; the generation ends when it drops to 0.
        self.active = workers
        self.stopped = False
        self.waiting = False
        self.pid = os.getpid()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task_group: anyio.abc.TaskGroup | None = None
        self.wakeup: anyio.Event | None = None
        self.all_done: anyio.Event | None = None
        self.finished = threading.Event()

    def wake(self) -> None:
        """Wake the waiting workers (runs in the portal loop)."""
        if self.wakeup is not None:
            self.wakeup.set()
            self.wakeup = anyio.Event()

    def call_soon(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` in the portal loop, in a clean context (see
        :func:`~aiostore._runtime.portal.spawn_on_portal`)."""
        assert self.loop is not None
        try:
            self.loop.call_soon_threadsafe(fn, *args, context=contextvars.Context())
        except RuntimeError:  # the loop is closed (interpreter exit): nothing to run
            pass


class PortalWorkers(Generic[J]):
    """Up to ``size`` worker tasks on the portal loop, pulling jobs from their owner.

    Parameters
    ----------
    lock : threading.Lock
        The owner's lock; ``next_job`` is called with it held.
    size : int
        Most workers at once.
    next_job : callable
        ``next_job()`` returns a job, ``None`` when there is nothing left to do
        (the worker ends), or :data:`WAIT` when jobs remain but must wait (the
        worker sleeps until :meth:`wake_locked`).
    run_job : async callable
        Runs one job, outside the lock.
    on_error : callable
        Receives every exception a job (or the pool) raised: none escapes as an
        unhandled task error.
    """

    def __init__(
        self,
        lock: threading.Lock,
        size: int,
        next_job: Callable[[], J | Wait | None],
        run_job: Callable[[J], Awaitable[None]],
        on_error: Callable[[Exception], object],
    ) -> None:
        self._lock = lock
        self._size = size
        self._next_job = next_job
        self._run_job = run_job
        self._on_error = on_error
        self._generation: _Generation | None = None

    def start(self) -> None:
        """Make sure ``size`` workers are running (call without the lock held)."""
        new: _Generation | None = None
        spawn = 0
        with self._lock:
            generation = self._generation
            if generation is not None and generation.pid != os.getpid():
                generation = self._generation = None  # forked: that loop is in the parent
            if generation is None:
                generation = new = self._generation = _Generation(self._size)
            elif generation.loop is not None and not generation.stopped:
                spawn = max(self._size - generation.active, 0)
                generation.active += spawn
        if new is not None:
            serve = self._serve(new)
            try:
                spawn_on_portal(serve)
            except BaseException:
                serve.close()
                with self._lock:
                    if self._generation is new:
                        self._generation = None
                new.finished.set()
                raise
        elif spawn and generation.task_group is not None:
            for _ in range(spawn):
                generation.call_soon(generation.task_group.start_soon, self._work, generation)

    def wake_locked(self) -> None:
        """Let waiting workers ask for jobs again (call with the lock held)."""
        generation = self._generation
        if generation is not None and generation.waiting and generation.loop is not None:
            generation.waiting = False
            generation.call_soon(generation.wake)

    @property
    def waiting(self) -> bool:
        """True while workers wait for :meth:`wake_locked`."""
        generation = self._generation
        return generation is not None and generation.waiting

    @property
    def running(self) -> bool:
        """True while a generation of workers is running or starting."""
        return self._generation is not None

    async def stop(self) -> None:
        """Cancel the workers and wait for them to finish.

        From the portal loop's own thread it only cancels: waiting there would
        block the loop the workers need in order to finish.
        """
        with self._lock:
            generation, self._generation = self._generation, None
            if generation is None or generation.pid != os.getpid():
                return
            generation.stopped = True
            task_group = generation.task_group
        if task_group is not None:
            generation.call_soon(task_group.cancel_scope.cancel)
        if threading.current_thread() is portal_thread():
            return
        await anyio.to_thread.run_sync(generation.finished.wait, abandon_on_cancel=True)

    async def _serve(self, generation: _Generation) -> None:
        try:
            async with anyio.create_task_group() as tg:
                with self._lock:
                    generation.loop = asyncio.get_running_loop()
                    generation.task_group = tg
                    generation.wakeup = anyio.Event()
                    generation.all_done = anyio.Event()
                    workers = generation.active
                    if generation.stopped:
                        tg.cancel_scope.cancel()
                for _ in range(workers):
                    tg.start_soon(self._work, generation)
                await generation.all_done.wait()
        except Exception as exc:  # a bug, not a job's error: reported, never unhandled
            self._on_error(exc)
        finally:
            with self._lock:
                if self._generation is generation:
                    self._generation = None
            generation.finished.set()

    async def _work(self, generation: _Generation) -> None:
        try:
            while True:
                with self._lock:
                    if generation.stopped:
                        return
                    job = self._next_job()
                    if job is None:
                        return
                    wakeup = generation.wakeup
                    if isinstance(job, Wait):
                        generation.waiting = True
                if isinstance(job, Wait):
                    if wakeup is not None:
                        await wakeup.wait()
                    continue
                try:
                    await self._run_job(job)
                except Exception as exc:
                    self._on_error(exc)
        finally:
            with self._lock:
                generation.active -= 1
                last = generation.active == 0
                if last and self._generation is generation:
                    self._generation = None
            if last and generation.all_done is not None:
                generation.all_done.set()
