"""Running a test's body in a forked child, with a guard against hangs."""

from __future__ import annotations

import os
import signal
import traceback
from collections.abc import Callable


def in_forked_child(body: Callable[[], object], seconds: int = 10) -> int:
    """Run ``body`` in a child made by ``os.fork``: its exit code (-14: hung until SIGALRM)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            signal.alarm(seconds)
            body()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
