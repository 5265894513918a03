"""An undo stack for a rig's setup: every step that made something pushes how to unmake it."""

from __future__ import annotations

from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)


class Undo:
    """Run pushed actions last-in first-out; each runs once, a failing one does not stop the rest."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], object]]] = []

    def push(self, what: str, action: Callable[[], object]) -> None:
        self._actions.append((what, action))

    def __len__(self) -> int:
        return len(self._actions)

    def run(self) -> list[str]:
        """Undo everything; the failures (``"what: error"``), empty when all went well."""
        failures = []
        while self._actions:
            what, action = self._actions.pop()
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - the rest must still be undone
                log.warning("undo_failed", what=what, error=f"{type(exc).__name__}: {exc}")
                failures.append(f"{what}: {type(exc).__name__}: {exc}")
        return failures
