"""Every way out of the residence and how it stands: the MQTT link, the modem (gsm), a second interface.

The central holds each hub to a supervision level by what its paths are:
``status`` and the heartbeat carry :meth:`PathBoard.status`, one entry per
path (``mqtt``; ``gsm`` once a modem reports, ``gsm:<id>`` for a second one;
``interface`` when ``[fallback] interface`` names one), each ``up``, ``down``
or ``unknown``, since when, why, and what was read. A second path that goes
down is ``path.lost`` (high, source the hub, ``data.path``, ``data.reason``),
back up ``path.restored`` (``data.outage_s``, ``data.was``). The MQTT link
has no such events: when it is down the central learns it from the last
will, and what it missed from ``seq``; its state is in the status all the same.

The interface is read from ``/sys/class/net/<name>/operstate`` and
``carrier`` every ``interface_check_s`` (up: operstate up or unknown, with
carrier; a missing interface is down, ``missing``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from drivers.base import PathState
from hub.emitter import HUB_SOURCE
from hub.events import Draft, Event, Priority, rfc3339

log = structlog.get_logger("hub.fallback")

#: Where the kernel shows network interfaces.
SYSFS_NET = Path("/sys/class/net")


@dataclass
class _Path:
    """One path: its state and since when (wall clock, monotonic), why it is down, what was read."""

    state: str = "unknown"
    since: float = field(default_factory=time.time)
    since_mono: float = field(default_factory=time.monotonic)
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    lost: int = 0


def read_interface(name: str, root: Path = SYSFS_NET) -> PathState:
    """An interface's state from sysfs: up with operstate up (or unknown, as for tunnels) and carrier."""
    base = root / name
    try:
        operstate = (base / "operstate").read_text().strip()
    except OSError:
        return PathState(up=False, reason="missing", detail={"interface": name})
    try:
        carrier = (base / "carrier").read_text().strip()
    except OSError:  # the kernel refuses to read carrier while the interface is down
        carrier = "0"
    detail = {"interface": name, "operstate": operstate, "carrier": carrier == "1"}
    if operstate == "down" or operstate == "lowerlayerdown":
        return PathState(up=False, reason="down", detail=detail)
    if carrier != "1" or operstate not in ("up", "unknown"):
        return PathState(up=False, reason="no_carrier", detail=detail)
    return PathState(up=True, detail=detail)


class PathBoard:
    """The paths' states; ``path.lost`` / ``path.restored`` for the second paths as they change."""

    def __init__(self, *, emit: Callable[[Draft], Awaitable[Event | None]], spawn: Callable[..., Any],
                 link_online: Callable[[], bool], interface: Callable[[], tuple[str | None, float]]) -> None:
        self.emit = emit
        self.spawn = spawn
        self.link_online = link_online
        self.interface = interface
        self.paths: dict[str, _Path] = {}
        self._mqtt = _Path()
        self._modems: dict[str, str] = {}  # modem device -> its path name

    # --- the MQTT link ----------------------------------------------------------------------

    def link_down_for(self) -> float:
        """Seconds the MQTT link has been down (0 while it is up); updates its entry."""
        up = self.link_online()
        m = self._mqtt
        if m.state == "unknown" and not up:  # not connected since the start: down since the start
            m.state, m.reason = "down", "not_connected_yet"
        elif (m.state == "up") != up:
            m.state, m.since, m.since_mono = ("up" if up else "down"), time.time(), time.monotonic()
            m.reason = None if up else "disconnected"
            if not up:
                m.lost += 1
        return 0.0 if up else time.monotonic() - m.since_mono

    # --- the second paths -------------------------------------------------------------------

    def modem(self, device: str, state: PathState) -> None:
        """A modem's check (the driver's ``port.path_state``)."""
        name = self._modems.get(device)
        if name is None:
            name = "gsm" if "gsm" not in self._modems.values() else f"gsm:{device}"
            self._modems[device] = name
        self.update(name, state, device=device)

    def forget(self, device: str) -> None:
        """A modem removed (its driver detached on a reload): its path is no longer reported."""
        name = self._modems.pop(device, None)
        if name is not None:
            self.paths.pop(name, None)

    def modem_up(self) -> list[str]:
        """The modems whose path is up, then the others (the order to send through)."""
        return sorted(self._modems, key=lambda d: self.paths.get(self._modems[d], _Path()).state != "up")

    def update(self, name: str, state: PathState, *, device: str | None = None) -> None:
        """Path ``name`` is ``state`` now: its entry, and an event when it goes down or comes back."""
        p = self.paths.setdefault(name, _Path())
        new = "up" if state.up else "down"
        detail = {**state.detail, **({"device": device} if device else {})}
        was, why, outage = p.state, p.reason, time.monotonic() - p.since_mono
        p.detail = detail
        if new == was:
            if not state.up and state.reason != p.reason:
                log.warning("path_reason_changed", path=name, reason=state.reason, was=p.reason)
                p.reason = state.reason
            return
        p.state, p.since, p.since_mono, p.reason = new, time.time(), time.monotonic(), state.reason
        if not state.up:
            p.lost += 1
            log.warning("path_lost", path=name, reason=state.reason, **detail)
            self._event("path.lost", Priority.HIGH, {"path": name, "reason": state.reason or "down",
                                                     "detail": _flat(detail)})
        elif was == "down":
            log.info("path_restored", path=name, outage_s=round(outage, 1), was=why)
            self._event("path.restored", Priority.NORMAL, {"path": name, "outage_s": round(outage, 3),
                                                            "was": why or "down", "detail": _flat(detail)})
        else:
            log.info("path_up", path=name, **detail)

    def _event(self, type_: str, priority: Priority, data: dict[str, Any]) -> None:
        draft = Draft(type=type_, priority=priority, source=HUB_SOURCE, data=data)
        self.spawn(self.emit(draft), type_)

    async def run_interface(self) -> None:
        """The supervised task: the interface of ``[fallback] interface`` read on its schedule (none: idle)."""
        current: str | None = None
        while True:
            name, every = self.interface()
            if name != current:
                if current is not None:
                    self.paths.pop("interface", None)
                current = name
            if name is not None:
                state = await asyncio.to_thread(read_interface, name)
                self.update("interface", state)
            await asyncio.sleep(every)

    # --- views ------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Each path: state (up, down, unknown), since, reason, lost (times since the hub started), detail."""
        self.link_down_for()
        out = {"mqtt": self._mqtt}
        out.update(sorted(self.paths.items()))
        return {name: {"state": p.state, "since": rfc3339(p.since), "reason": p.reason, "lost": p.lost,
                       "detail": dict(p.detail)} for name, p in out.items()}


def _flat(detail: dict[str, Any]) -> dict[str, str | int | float | bool | None]:
    """What was read, as plain values for an event's data."""
    return {k: v for k, v in detail.items() if v is None or isinstance(v, (str, int, float, bool))}
