"""The virtual rig's line to the hub's sim socket, across the hub's deaths and restarts.

A press, a release or an advert stands for something outside the hub (a finger on a
wire, a radio in the air): while the rig has the hub killed, frozen or starting, it
happens all the same and nobody hears it, as on a real bench; it is counted, and no
alarm is owed for it. Any other sim op on a dead hub is the rig's error.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from drivers.base import SimCommandError
from hil.fixtures import RigError
from hil.harness.hubproc import HubProcess

#: Sim ops that stand for something happening outside the hub.
UNHEARD = frozenset({"press", "release", "ble_advert"})


class SimLine:
    """Calls to one hub's sim socket, one at a time; :meth:`down` around every kill, cut and start."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Set while the rig kills, cuts or starts the hub: a sim socket that fails then is the hub being down.
        self.restarting = False
        #: Edges and adverts that happened while the hub was down (op -> count).
        self.unheard: dict[str, int] = {}

    def call(self, hub: HubProcess, req: dict[str, Any]) -> dict[str, Any]:
        """The hub's reply to ``req``; RigError when it refuses or cannot answer (but see :data:`UNHEARD`)."""
        op = req.get("op")
        if hub.returncode is not None or hub.proc is None:
            if op in UNHEARD:
                return self._unheard(op)
            raise RigError(f"the hub is not running (op {op})")
        try:
            with self._lock:
                return hub.sim.call(req)
        except SimCommandError as exc:
            raise RigError(f"the hub refused sim op {op}: {exc}") from exc
        except OSError as exc:
            if op in UNHEARD and (hub.returncode is not None or self.restarting):
                return self._unheard(op)
            raise RigError(f"the hub's sim socket failed (op {op}): {exc}") from exc

    def _unheard(self, op: Any) -> dict[str, Any]:
        with self._lock:
            self.unheard[str(op)] = self.unheard.get(str(op), 0) + 1
        return {"mono_ns": time.monotonic_ns(), "delivered": False, "unheard": True}

    @contextlib.contextmanager
    def down(self, hub: HubProcess | None) -> Iterator[None]:
        """While the hub is killed, cut or started; a sim client made meanwhile (to the dead hub, or before
        the new one listened) is dropped at the end."""
        self.restarting = True
        try:
            yield
        finally:
            with self._lock:
                if hub is not None:
                    hub._drop_sim()
                self.restarting = False
