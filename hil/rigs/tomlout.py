"""Write a parsed TOML document (``tomllib``'s dicts and lists) back as TOML text.

The rig merges a scenario's ``[hub.config]`` over its residence and sets
dotted keys for ``check_config``, so it needs TOML out as well as in. Only
what ``tomllib`` gives back is written: tables, arrays of tables, arrays,
strings, integers, floats, booleans and dates. Scalars and arrays come
first in a table, then sub-tables, then arrays of tables, so the output
parses back to the same document (checked by the tests).

(msgspec.toml.encode would do this, but it needs ``tomli_w``, which is not
among the project's dependencies.)
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from typing import Any

__all__ = ["dumps"]

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
        # a JSON string is a TOML basic string (\uXXXX escapes and all)
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }" if v else "{}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML: {v!r}")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _table(out: list[str], path: list[str], table: dict[str, Any], header: str | None) -> None:
    plain = [(k, v) for k, v in table.items() if not isinstance(v, dict) and not _is_table_array(v)]
    subs = [(k, v) for k, v in table.items() if isinstance(v, dict)]
    arrays = [(k, v) for k, v in table.items() if _is_table_array(v)]
    if header is not None and (plain or not (subs or arrays)):
        out.append(header)
    out.extend(f"{_key(k)} = {_value(v)}" for k, v in plain)
    for k, v in subs:
        sub = [*path, _key(k)]
        _table(out, sub, v, "\n[" + ".".join(sub) + "]")
    for k, items in arrays:
        sub = [*path, _key(k)]
        for item in items:
            out.append("\n[[" + ".".join(sub) + "]]")
            _table(out, sub, item, None)


def dumps(doc: dict[str, Any]) -> str:
    """``doc`` as TOML text (``tomllib.loads(dumps(doc)) == doc``)."""
    out: list[str] = []
    _table(out, [], doc, None)
    return "\n".join(out).lstrip("\n") + "\n"
