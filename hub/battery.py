"""Battery hysteresis, shared by the drivers' own watch and the supervision rule."""

from __future__ import annotations


def battery_step(low: bool, pct: float, low_pct: float, ok_pct: float) -> tuple[bool, bool]:
    """One battery reading through the hysteresis: returns ``(low, warn)``.

    ``warn`` is True only on the reading that crosses below ``low_pct``; after
    it the warning is armed again only by a reading at or above ``ok_pct``, so
    a level hovering around the threshold warns once, not on every reading.

    >>> battery_step(False, 19, 20, 30), battery_step(True, 25, 20, 30), battery_step(True, 30, 20, 30)
    ((True, True), (True, False), (False, False))
    """
    if low:
        return pct < ok_pct, False
    if pct < low_pct:
        return True, True
    return False, False
