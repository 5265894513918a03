"""Configs the rigs write: TOML out (tomli-w, which ``tomllib`` lacks) and the merge of a scenario's changes.

Arrays of tables come out inline, one element per line (``device = [ { id = ... }, ]``);
the hub's config loader locates keys there element by element, so a check-config error
on a rig's config still names its line and key.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import tomli_w


def dumps(data: Mapping[str, Any]) -> str:
    """``data`` (as ``tomllib`` gives it) as a TOML document."""
    return tomli_w.dumps(dict(data))


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` laid over ``base`` (neither is changed): tables merge, scalars and arrays replace,
    ``device`` entries merge by ``id``."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        elif key == "device" and isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = _merge_devices(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _merge_devices(base: list[Any], over: list[Any]) -> list[Any]:
    out = list(base)
    index = {d.get("id"): i for i, d in enumerate(out) if isinstance(d, dict)}
    for dev in over:
        i = index.get(dev.get("id")) if isinstance(dev, dict) else None
        if i is None:
            out.append(copy.deepcopy(dev))
        else:
            out[i] = merge(out[i], dev)
    return out
