"""The hostile-key bodies print what they did as one line the runner parses."""

from __future__ import annotations

import os

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from hostile import TALLY

    if TALLY.calls or os.environ.get("AIOSTORE_SANDBOX") == "1":
        terminalreporter.write_line(TALLY.line())
