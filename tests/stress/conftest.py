"""The stress suite: prints one summary line of what it did and found (see stress_tally)."""

from __future__ import annotations

import pytest
from stress_tally import TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(TALLY.line())
