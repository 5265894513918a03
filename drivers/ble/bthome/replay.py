"""Replay protection for BTHome adverts: :class:`ReplayGuard` and its :class:`Verdict`.

The guard drops replayed encrypted adverts (counter not above the last
accepted one) and the repeats of plain ones (same packet id as the last one),
per device, keyed by :attr:`~drivers.ble.bthome.advert.Advert.mac`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from drivers.ble.bthome.advert import Advert
from drivers.ble.bthome.arguments import format_mac

__all__ = ["ACCEPTED", "ReplayGuard", "Verdict"]


class Verdict(enum.Enum):
    """What :class:`ReplayGuard` makes of an advert."""

    ACCEPT = "accept"
    #: the same advert again: encrypted with the last counter, or plain with the last packet id
    DUPLICATE = "duplicate"
    #: encrypted with a counter below the last accepted one
    REPLAY = "replay"
    #: plain, from a device that has sent encrypted adverts
    DOWNGRADE = "downgrade"
    #: encrypted, with a counter that started again from zero (new battery, reflash, wrap): accepted
    RESTART = "restart"


#: The verdicts under which an advert is taken.
ACCEPTED = frozenset({Verdict.ACCEPT, Verdict.RESTART})


@dataclass(slots=True)
class _Seen:
    counter: int | None = None
    packet_id: int | None = None
    at: float | None = None
    #: the last counter before a restart, while the new count is still below it
    retired: int | None = None


class ReplayGuard:
    """Per-device replay protection and de-duplication, keyed by :attr:`Advert.mac`.

    * encrypted adverts must bring a counter above the last accepted one
      (equal: :attr:`Verdict.DUPLICATE`, below: :attr:`Verdict.REPLAY`);
    * except a counter restart: a device counts from zero again after a new
      battery, a reflash or a wrap at 2**32. An advert with a counter below
      ``restart_below`` after one at or above it is :attr:`Verdict.RESTART`,
      and accepted, so a resident's button works again as soon as its battery
      is changed, not only after the hub restarts.
      Until the new count passes the old one, a jump of more than
      ``max_jump_after_restart`` is refused as a replay: it looks like an
      advert recorded before the restart, and taking it would shut the device
      out until its new count caught up. What this leaves open: a recorded
      advert from a count's first ``restart_below`` can be replayed once per
      restart; each restart is reported (:meth:`check` returns ``RESTART``).
      ``restart_below=0`` refuses every restart until :meth:`forget`;
    * plain adverts with the packet id of the last accepted advert are
      :attr:`Verdict.DUPLICATE` (devices repeat each advert several times).
      With ``duplicate_window_s`` and a ``now`` passed to :meth:`check`, the
      same packet id is new again once that long has passed since the last
      accepted advert (for sensors that keep their packet id between
      readings; leave it None for buttons, whose repeats must never count twice);
    * a plain advert from a device that has sent encrypted ones is
      :attr:`Verdict.DOWNGRADE`.

    ``counters`` (e.g. from :meth:`counters` saved before a restart) seeds the
    last accepted counters, so that a restart does not reopen the replay window.
    """

    def __init__(
        self,
        *,
        duplicate_window_s: float | None = None,
        counters: Mapping[str, int] | None = None,
        restart_below: int = 100,
        max_jump_after_restart: int = 10_000,
    ) -> None:
        self.duplicate_window_s = duplicate_window_s
        self.restart_below = restart_below
        self.max_jump_after_restart = max_jump_after_restart
        self._seen: dict[str, _Seen] = {}
        for mac, counter in (counters or {}).items():
            self._seen[format_mac(mac)] = _Seen(counter=int(counter))

    def peek(self, advert: Advert, *, now: float | None = None) -> Verdict:
        """The verdict on ``advert``, without recording it."""
        seen = self._seen.get(advert.mac)
        if seen is None:
            return Verdict.ACCEPT
        if advert.encrypted:
            if seen.counter is None or advert.counter is None:
                return Verdict.ACCEPT
            if advert.counter == seen.counter:
                return Verdict.DUPLICATE
            if advert.counter < seen.counter:
                if advert.counter < self.restart_below <= seen.counter:
                    return Verdict.RESTART
                return Verdict.REPLAY
            if (
                seen.retired is not None
                and advert.counter <= seen.retired
                and advert.counter - seen.counter > self.max_jump_after_restart
            ):
                return Verdict.REPLAY  # from before the restart
            return Verdict.ACCEPT
        if seen.counter is not None:
            return Verdict.DOWNGRADE
        if advert.packet_id is not None and advert.packet_id == seen.packet_id:
            expired = (
                self.duplicate_window_s is not None
                and now is not None
                and seen.at is not None
                and now - seen.at > self.duplicate_window_s
            )
            if not expired:
                return Verdict.DUPLICATE
        return Verdict.ACCEPT

    def check(self, advert: Advert, *, now: float | None = None) -> Verdict:
        """The verdict on ``advert``; an accepted advert becomes the device's last one."""
        verdict = self.peek(advert, now=now)
        if verdict in ACCEPTED:
            seen = self._seen.setdefault(advert.mac, _Seen())
            if advert.encrypted:
                if verdict is Verdict.RESTART:
                    seen.retired = max(seen.retired or 0, seen.counter or 0)
                elif seen.retired is not None and advert.counter is not None and advert.counter > seen.retired:
                    seen.retired = None  # the new count has passed the old one
                seen.counter = advert.counter
            seen.packet_id = advert.packet_id
            seen.at = now
        return verdict

    def accept(self, advert: Advert, *, now: float | None = None) -> bool:
        """:meth:`check`, as a bool."""
        return self.check(advert, now=now) in ACCEPTED

    def last_counter(self, mac: bytes | str) -> int | None:
        """The last accepted counter of a device, if it has sent encrypted adverts."""
        seen = self._seen.get(format_mac(mac))
        return seen.counter if seen is not None else None

    def forget(self, mac: bytes | str) -> None:
        """Drop what we know of a device (after its counter was reset on purpose)."""
        self._seen.pop(format_mac(mac), None)

    def counters(self) -> dict[str, int]:
        """The last accepted counter of each encrypted device, to persist across restarts."""
        return {mac: seen.counter for mac, seen in self._seen.items() if seen.counter is not None}
