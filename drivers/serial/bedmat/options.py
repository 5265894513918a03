"""The options of a ``protocol = "bedmat"`` device and their checks.

Imported by the config loader, so it imports nothing but msgspec.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

Pct = Annotated[int, msgspec.Meta(ge=1, le=100)]
HoldSeconds = Annotated[float, msgspec.Meta(gt=0, le=3600)]


class BedMatOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Options of a bed mat's logic. Ranges are checked by ``msgspec.convert``/decode;
    the cross-field rule by :meth:`check` (both done by :func:`load_options`)."""

    exit_after_s: Annotated[
        HoldSeconds, msgspec.Meta(description="bed.exit once the mat has read OUT this long without a break.")
    ] = 10.0
    return_after_s: Annotated[
        HoldSeconds, msgspec.Meta(description="bed.return once the mat has read IN this long after a bed.exit.")
    ] = 5.0
    battery_low_pct: Annotated[Pct, msgspec.Meta(description="device.battery_low when the battery is below this.")] = 20
    battery_ok_pct: Annotated[
        Pct, msgspec.Meta(description="Re-arms battery_low when the battery is back at or above this (> low).")
    ] = 30

    def check(self) -> list[tuple[str, str]]:
        """Cross-field problems as ``(key, message)``; empty when the options are consistent."""
        problems: list[tuple[str, str]] = []
        if self.battery_ok_pct <= self.battery_low_pct:
            problems.append(
                (
                    "battery_ok_pct",
                    f"must be greater than battery_low_pct ({self.battery_low_pct}), "
                    f"not {self.battery_ok_pct}: it is the level that re-arms the low-battery warning",
                )
            )
        return problems


def load_options(options: Mapping[str, Any] | BedMatOptions | None = None) -> BedMatOptions:
    """Validate options (ranges, unknown keys, cross-field rules); ``ValueError`` lists the problems."""
    if isinstance(options, BedMatOptions):
        # built directly: msgspec does not check Meta constraints on __init__, so round-trip
        options = msgspec.structs.asdict(options)
    try:
        opts = msgspec.convert(dict(options or {}), BedMatOptions)
    except msgspec.ValidationError as exc:
        raise ValueError(f"bedmat options: {exc}") from None
    problems = opts.check()
    if problems:
        raise ValueError("bedmat options: " + "; ".join(f"{k}: {m}" for k, m in problems))
    return opts
