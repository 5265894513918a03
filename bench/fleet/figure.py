"""The figure every benchmark hands the bench runner: ``bench.figures.Figure`` once it is there.

Until the bench-core's ``bench/figures.py`` is on main, this is a copy of that exact struct (as the
shared brief defines it); the import prefers the shared one, so the runner gets its own type.
"""

from __future__ import annotations

try:
    from bench.figures import Figure
except ImportError:  # bench/figures.py not on this branch yet
    import msgspec

    class Figure(msgspec.Struct, kw_only=True):  # type: ignore[no-redef]
        """One measured figure, its baseline from the same run, the ratio and the goal."""

        name: str
        value: float
        unit: str
        baseline: str | None
        baseline_value: float | None
        ratio: float | None
        goal: str | None
        ok: bool | None
        note: str | None = None

__all__ = ["Figure"]
