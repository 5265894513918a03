"""The struct walker: checks decoded TOML against a config struct and reports every problem.

:func:`msgspec.convert` stops at the first error; :func:`check_value` walks the
value and the struct together so that an installer sees every mistake at once,
each with its key path and a message in an installer's words (what was
expected, what was found).
"""

from __future__ import annotations

import difflib
import enum
import re
import types
import typing
from typing import Annotated, Any, Literal, Union

import msgspec

from drivers.base import Report
from hub.config.sections import PATTERN_HELP
from hub.tomlpos import format_path

__all__ = ["check_value", "describe"]

_TOML_TYPE = {
    dict: "a table",
    list: "an array",
    str: "a string",
    int: "an integer",
    float: "a float",
    bool: "a boolean",
}


def describe(value: Any) -> str:
    """A TOML value as an error message names it: ``a string 'x'``, ``a boolean true``, ``a table``."""
    kind = _TOML_TYPE.get(type(value), type(value).__name__)
    if isinstance(value, (dict, list)):
        return kind
    if isinstance(value, bool):
        return f"{kind} {str(value).lower()}"  # as written in TOML
    return f"{kind} {value!r}"


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """Strip ``Annotated`` and ``| None``; return (type, optional)."""
    optional = False
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) < len(typing.get_args(tp)):
                optional = True
            if len(args) == 1:
                tp = args[0]
                continue
        return tp, optional


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def check_value(value: Any, tp: Any, path: tuple[str | int, ...], report: Report) -> None:
    """Check ``value`` against type ``tp``, reporting every problem (not just the first)."""
    inner, optional = _unwrap(tp)
    if optional and value is None:
        return
    if _is_struct(inner):
        if not isinstance(value, dict):
            report(path, f"expected a table, found {describe(value)}")
            return
        fields = {f.encode_name: f for f in msgspec.structs.fields(inner)}
        for key in value:
            if key not in fields:
                close = difflib.get_close_matches(key, list(fields), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                report(path + (key,), f"unknown key{hint}; expected one of: {', '.join(fields)}")
        for name, f in fields.items():
            if name in value:
                check_value(value[name], f.type, path + (name,), report)
            elif f.required:
                report(path, f"missing required key {name!r}{_table_hint(f.type, path + (name,))}")
        return
    if typing.get_origin(inner) is list:
        (item_tp,) = typing.get_args(inner)
        if _is_struct(_unwrap(item_tp)[0]):
            if not isinstance(value, list):
                report(path, f"expected an array of tables, found {describe(value)}")
                return
            for i, item in enumerate(value):
                check_value(item, item_tp, path + (i,), report)
            try:  # constraints on the list itself (min_length)
                msgspec.convert([None] * len(value), _with_item(tp, Any))
            except msgspec.ValidationError as exc:
                msg = _leaf_message(exc, value, tp)
                m = re.match(r"expected an array of length >= (\d+)", msg)
                if m:
                    msg = f"expected at least {m.group(1)} [[{format_path(path)}]] table(s), found {len(value)}"
                report(path, msg)
            return
    try:
        msgspec.convert(value, tp)
    except msgspec.ValidationError as exc:
        report(path, _leaf_message(exc, value, tp))


def _table_hint(tp: Any, path: tuple[str | int, ...]) -> str:
    """For a missing table: how to write it (`` (a [store] table)``)."""
    inner, _ = _unwrap(tp)
    if _is_struct(inner):
        return f" (a [{format_path(path)}] table)"
    if typing.get_origin(inner) is list and _is_struct(_unwrap(typing.get_args(inner)[0])[0]):
        return f" (at least one [[{format_path(path)}]] table)"
    return ""


def _with_item(tp: Any, item: Any) -> Any:
    """``Annotated[list[X], meta]`` → ``Annotated[list[item], meta]``."""
    if typing.get_origin(tp) is Annotated:
        base, *meta = typing.get_args(tp)
        return Annotated[tuple([_with_item(base, item)] + meta)]  # type: ignore[misc]
    return list[item]  # type: ignore[valid-type]


_MSGSPEC_WORDS = {"`int`": "an integer", "`float`": "a number", "`str`": "a string", "`bool`": "a boolean",
                  "`array`": "an array", "`object`": "a table", "`int | str`": "a pin number or name",
                  "`str | null`": "a string", "`int | str | null`": "a pin number or name", "`null`": "nothing"}


def _leaf_message(exc: msgspec.ValidationError, value: Any, tp: Any) -> str:
    inner, _ = _unwrap(tp)
    choices: list[Any] | None = None
    if typing.get_origin(inner) is Literal:
        choices = list(typing.get_args(inner))
    elif isinstance(inner, type) and issubclass(inner, enum.Enum):
        choices = [m.value for m in inner]
    if choices is not None:
        return f"expected one of {', '.join(repr(c) for c in choices)}, found {describe(value)}"
    msg = str(exc).split(" - at ")[0]
    msg = msg.split(", got ")[0]
    m = re.match(r"Expected `str` matching regex '(.*)'$", msg)
    words = (PATTERN_HELP.get(m.group(1)) or _pattern_help(tp, m.group(1))) if m else None
    if words:
        return f"expected {words}, found {describe(value)}"
    for raw, word in _MSGSPEC_WORDS.items():
        msg = msg.replace(raw, word)
    msg = msg[0].lower() + msg[1:] if msg else "invalid value"
    if msg.startswith("invalid enum value"):
        msg = "expected a valid value"
    return f"{msg}, found {describe(value)}"


def _pattern_help(tp: Any, pattern: str) -> str | None:
    """What a pattern means, from the ``extra={"help": ...}`` of the ``msgspec.Meta`` that sets it."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *metas = typing.get_args(tp)
        for meta in metas:
            if isinstance(meta, msgspec.Meta) and meta.pattern == pattern and meta.extra and "help" in meta.extra:
                return str(meta.extra["help"])
        return _pattern_help(base, pattern)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            words = _pattern_help(arg, pattern)
            if words:
                return words
    return None
