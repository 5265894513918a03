"""Text a passing test shows after the run: under pytest-xdist nothing a test prints reaches the
terminal (``capsys.disabled()`` included), so such a test adds a report section under :data:`SHOWN`
and the conftest's ``pytest_terminal_summary`` writes it out (the acceptance set's table)."""

from __future__ import annotations

import pytest

SHOWN = "shown"


def show(request: pytest.FixtureRequest, title: str, text: str) -> None:
    """Show ``text`` under ``title`` after the run, and with the test's report if it fails."""
    request.node.add_report_section("call", f"{SHOWN} {title}", text)


def write_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Write the sections the passed tests asked to show (a failed test's are in its report already)."""
    prefix = f"Captured {SHOWN} "
    for rep in terminalreporter.stats.get("passed", []):
        for title, text in rep.sections:
            if title.startswith(prefix):
                terminalreporter.write_sep("-", f"{rep.nodeid}: {title.removeprefix(prefix)}")
                terminalreporter.write_line(text.rstrip("\n"))
