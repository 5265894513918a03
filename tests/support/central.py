"""What a test alarm central reads off the broker."""

from __future__ import annotations

from typing import Any

from hil.harness.broker import Subscriber

BASE = "carehub/v1/test-hub"


def events(sub: Subscriber, type_: str | None = None, *, base: str = BASE) -> list[dict[str, Any]]:
    """Decoded events the subscriber received, in arrival order, optionally of one type (each event of a
    batch as one: the :class:`~hil.harness.subscriber.Subscriber` unpacks them)."""
    return [m for m in sub.json(f"{base}/event/#") if type_ is None or m["type"] == type_]
