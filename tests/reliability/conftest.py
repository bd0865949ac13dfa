"""The reliability suite: prints every test's figure at the end of the run."""

from __future__ import annotations

import pytest

from ._figures import collected


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = collected()
    if lines:
        terminalreporter.section("reliability figures")
        for line in lines:
            terminalreporter.write_line(line)
