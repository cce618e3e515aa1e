"""The stress suite's counters, and its scale.

Every stress test adds what it did to :data:`TALLY` (kills, keys checked,
processes, cancellations, faults injected) and what it found (torn values,
lost writes, escapes: each must stay zero, and the test asserts that too).
``tests/stress/conftest.py`` prints the totals as one line at the end of the run.

``AIOSTORE_STRESS=full`` (the ``stress`` nox session) runs every test at full
scale, hundreds of kills per store; by default (CI) each runs a bounded number
of rounds, so the whole stress suite stays under three minutes.
"""

from __future__ import annotations

import dataclasses
import os
import threading

#: "quick" (the default, CI) or "full" (``nox -s stress``).
SCALE = "full" if os.environ.get("AIOSTORE_STRESS", "").lower() == "full" else "quick"


def rounds(quick: int, full: int) -> int:
    """The number of rounds for this run's scale."""
    return full if SCALE == "full" else quick


@dataclasses.dataclass
class Tally:
    kills: int = 0
    keys_checked: int = 0
    processes: int = 0
    cancellations: int = 0
    faults: int = 0
    torn: int = 0
    lost: int = 0
    escapes: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, **counts: int) -> None:
        """Add to the named counters, e.g. ``TALLY.add(kills=1, keys_checked=40)``."""
        with self._lock:
            for name, n in counts.items():
                if name.startswith("_") or not hasattr(self, name):
                    raise AttributeError(f"no stress counter {name!r}")
                setattr(self, name, getattr(self, name) + n)

    def line(self) -> str:
        return (
            f"stress ({SCALE}): {self.kills:,} kills, {self.keys_checked:,} keys checked, "
            f"{self.processes:,} processes, {self.cancellations:,} cancellations, "
            f"{self.faults:,} faults injected; {self.torn} torn values, {self.lost} lost writes, "
            f"{self.escapes} escapes"
        )


TALLY = Tally()
