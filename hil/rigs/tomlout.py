"""Write parsed TOML back out: the physical rig writes the bench's config with a scenario's changes merged in.

``tomllib`` only reads. This writes what it reads (tables, arrays of tables, strings,
numbers, booleans, dates, arrays) and nothing else; ``tomllib.loads(dumps(d)) == d``
for any such ``d`` (the tests check it on the example configs). Comments and layout
are not kept. (The well-kept library for this is ``tomli-w``; it is not among the
project's allowed dependencies, so this stays small instead.)
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from typing import Any

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: str) -> str:
    return k if _BARE.match(k) else json.dumps(k, ensure_ascii=False)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{_key(str(k))} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, Mapping) for x in v)


def _table(path: list[str], table: Mapping[str, Any], out: list[str]) -> None:
    plain = [(k, v) for k, v in table.items() if not isinstance(v, Mapping) and not _is_table_array(v)]
    for k, v in plain:
        out.append(f"{_key(k)} = {_value(v)}")
    for k, v in table.items():
        sub = [*path, _key(k)]
        if isinstance(v, Mapping):
            out += ["", f"[{'.'.join(sub)}]"]
            _table(sub, v, out)
        elif _is_table_array(v):
            for item in v:
                out += ["", f"[[{'.'.join(sub)}]]"]
                _table(sub, item, out)


def dumps(data: Mapping[str, Any]) -> str:
    """``data`` (as ``tomllib`` gives it) as a TOML document."""
    out: list[str] = []
    _table([], data, out)
    return "\n".join(out).lstrip("\n") + "\n"


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` merged in: tables merge key by key, anything else is replaced."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out
