"""The options of a ``protocol = "dispenser"`` device (parser and logic take the same set).

Imported by the config loader, so it imports nothing but msgspec.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

Percent = Annotated[int, msgspec.Meta(ge=0, le=100)]


class DispenserOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """``[devices.options]`` of a ``protocol = "dispenser"`` device."""

    grace_s: Annotated[
        float,
        msgspec.Meta(gt=0, description="A due dose not taken within this many seconds is reported missed by the hub."),
    ] = 1800.0
    battery_low_pct: Annotated[
        Percent, msgspec.Meta(description="device.battery_low once the battery is below this.")
    ] = 20
    battery_ok_pct: Annotated[
        Percent,
        msgspec.Meta(description="A new battery_low only after the battery was back at or above this (hysteresis)."),
    ] = 30
    dedup_window_s: Annotated[
        float,
        msgspec.Meta(
            gt=0,
            description="A re-sent frame (same sequence and content) seen again within this many seconds is a duplicate.",
        ),
    ] = 60.0

    def __post_init__(self) -> None:
        if self.battery_ok_pct <= self.battery_low_pct:
            raise ValueError(
                f"battery_ok_pct ({self.battery_ok_pct}) must be above battery_low_pct ({self.battery_low_pct})"
            )


def options_from(options: dict[str, Any]) -> DispenserOptions:
    """The options of a parser or logic built with ``**options``: the keys, or ``options=`` a struct."""
    given = options.get("options")
    if len(options) == 1 and isinstance(given, DispenserOptions):
        return given
    return msgspec.convert(options, DispenserOptions)
