"""The struct walker: checks decoded TOML against msgspec structs and reports every problem.

:func:`msgspec.convert` stops at the first error; :func:`check_value` walks the
value and the type together so that whoever wrote the file sees every mistake
at once, each with its key path and a message in their words (what was
expected, what was found). It knows structs (unknown keys refused, with a
guess), tagged unions of structs (an unknown tag lists the known ones), arrays
and tables of structs, ``Literal`` and enum choices, and patterns; what a
pattern or a type means in a particular file's words comes from a
:class:`Vocabulary` (the residence config has its own: :mod:`hub.config.walk`).

Any file made of msgspec structs uses it: the residence config
(:mod:`hub.config`), the test rig's scenarios and rig files (:mod:`hil.loader`).
"""

from __future__ import annotations

import difflib
import enum
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union

import msgspec

from hub.tomlpos import Path, format_path

__all__ = ["Report", "Vocabulary", "check_value", "describe", "tagged_members"]

#: Where a problem is (a key path) and what it is.
Report = Callable[[Path, str], None]

_TOML_TYPE = {dict: "a table", list: "an array", str: "a string", int: "an integer", float: "a float",
              bool: "a boolean"}

_MSGSPEC_WORDS = {"`int`": "an integer", "`float`": "a number", "`str`": "a string", "`bool`": "a boolean",
                  "`array`": "an array", "`object`": "a table", "`int | str`": "an integer or a string",
                  "`null`": "nothing"}


@dataclass(frozen=True)
class Vocabulary:
    """A file's own words: what its patterns mean (``patterns``: regex → words) and msgspec's type
    names in its readers' terms (``types``: ```int | str``` → ``a pin number or name``), over the defaults."""

    patterns: Mapping[str, str] = field(default_factory=dict)
    types: Mapping[str, str] = field(default_factory=dict)


PLAIN = Vocabulary()


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


def tagged_members(tp: Any) -> tuple[str, dict[Any, type[msgspec.Struct]]] | None:
    """For a union of tagged structs (msgspec's ``tag_field``): the tag field and each tag's struct."""
    inner, _ = _unwrap(tp)
    if typing.get_origin(inner) not in (Union, types.UnionType):
        return None
    members = [a for a in typing.get_args(inner) if a is not type(None)]
    if not members or not all(_is_struct(m) and m.__struct_config__.tag_field for m in members):
        return None
    return members[0].__struct_config__.tag_field, {m.__struct_config__.tag: m for m in members}


def _is_table_type(tp: Any) -> bool:
    """A struct, or a tagged union of structs: written as a TOML table."""
    inner, _ = _unwrap(tp)
    return _is_struct(inner) or tagged_members(inner) is not None


def check_value(value: Any, tp: Any, path: Path, report: Report, words: Vocabulary = PLAIN) -> None:
    """Check ``value`` against type ``tp``, reporting every problem (not just the first)."""
    inner, optional = _unwrap(tp)
    if optional and value is None:
        return
    if (tagged := tagged_members(inner)) is not None:
        _check_tagged(value, tagged, path, report, words)
        return
    if _is_struct(inner):
        _check_struct(value, inner, path, report, words)
        return
    origin = typing.get_origin(inner)
    if origin is list and _is_table_type(typing.get_args(inner)[0]):
        _check_list(value, tp, path, report, words)
        return
    if origin is list and isinstance(value, list) and typing.get_args(inner):
        _check_items(value, tp, path, report, words)
        return
    if origin is dict and _is_table_type(typing.get_args(inner)[1]):
        _check_dict(value, inner, path, report, words)
        return
    try:
        msgspec.convert(value, tp)
    except msgspec.ValidationError as exc:
        report(path, _leaf_message(exc, value, tp, words))


def _unknown_key(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key{hint}; expected one of: {', '.join(known)}"


def _check_struct(value: Any, struct: Any, path: Path, report: Report, words: Vocabulary) -> None:
    if not isinstance(value, dict):
        report(path, f"expected a table, found {describe(value)}")
        return
    tag_field = struct.__struct_config__.tag_field
    fields = {f.encode_name: f for f in msgspec.structs.fields(struct)}
    for key in value:
        if key not in fields and key != tag_field:
            report(path + (key,), _unknown_key(key, list(fields)))
    for name, f in fields.items():
        if name in value:
            check_value(value[name], f.type, path + (name,), report, words)
        elif f.required:
            report(path, f"missing required key {name!r}{_table_hint(f.type, path + (name,))}")


def _check_tagged(value: Any, tagged: tuple[str, dict[Any, Any]], path: Path, report: Report,
                  words: Vocabulary) -> None:
    tag_field, by_tag = tagged
    if not isinstance(value, dict):
        report(path, f"expected a table, found {describe(value)}")
        return
    known = ", ".join(repr(t) for t in by_tag)
    if tag_field not in value:
        report(path, f"missing required key {tag_field!r}, one of {known}")
        return
    tag = value[tag_field]
    if tag not in by_tag:
        close = difflib.get_close_matches(str(tag), [str(t) for t in by_tag], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        report(path + (tag_field,), f"expected one of {known}, found {describe(tag)}{hint}")
        return
    _check_struct(value, by_tag[tag], path, report, words)


def _check_list(value: Any, tp: Any, path: Path, report: Report, words: Vocabulary) -> None:
    item_tp = typing.get_args(_unwrap(tp)[0])[0]
    if not isinstance(value, list):
        report(path, f"expected an array of tables, found {describe(value)}")
        return
    for i, item in enumerate(value):
        check_value(item, item_tp, path + (i,), report, words)
    try:  # constraints on the list itself (min_length)
        msgspec.convert([None] * len(value), _with_item(tp, Any))
    except msgspec.ValidationError as exc:
        msg = _leaf_message(exc, value, tp, words)
        m = re.match(r"expected an array of length >= (\d+)", msg)
        if m:
            msg = f"expected at least {m.group(1)} [[{format_path(path)}]] table(s), found {len(value)}"
        report(path, msg)


def _check_items(value: list[Any], tp: Any, path: Path, report: Report, words: Vocabulary) -> None:
    """An array of values: each item at its own index (``fallback.care[1]``), then the array's own constraints."""
    item_tp = typing.get_args(_unwrap(tp)[0])[0]
    for i, item in enumerate(value):
        check_value(item, item_tp, path + (i,), report, words)
    try:
        msgspec.convert([None] * len(value), _with_item(tp, Any))
    except msgspec.ValidationError as exc:
        report(path, _leaf_message(exc, value, tp, words))


def _check_dict(value: Any, tp: Any, path: Path, report: Report, words: Vocabulary) -> None:
    key_tp, item_tp = typing.get_args(tp)
    if not isinstance(value, dict):
        report(path, f"expected a table, found {describe(value)}")
        return
    key_inner, _ = _unwrap(key_tp)
    for key, item in value.items():
        if typing.get_origin(key_inner) is Literal and key not in typing.get_args(key_inner):
            report(path + (key,), _unknown_key(key, [str(k) for k in typing.get_args(key_inner)]))
            continue
        try:
            msgspec.convert(key, key_tp)
        except msgspec.ValidationError as exc:
            report(path + (key,), "this key: " + _leaf_message(exc, key, key_tp, words))
            continue
        check_value(item, item_tp, path + (key,), report, words)


def _table_hint(tp: Any, path: Path) -> str:
    """For a missing table: how to write it (`` (a [store] table)``)."""
    inner, _ = _unwrap(tp)
    if _is_struct(inner):
        return f" (a [{format_path(path)}] table)"
    if typing.get_origin(inner) is list and _is_table_type(typing.get_args(inner)[0]):
        return f" (at least one [[{format_path(path)}]] table)"
    return ""


def _with_item(tp: Any, item: Any) -> Any:
    """``Annotated[list[X], meta]`` → ``Annotated[list[item], meta]``."""
    if typing.get_origin(tp) is Annotated:
        base, *meta = typing.get_args(tp)
        return Annotated[tuple([_with_item(base, item)] + meta)]  # type: ignore[misc]
    return list[item]  # type: ignore[valid-type]


def _leaf_message(exc: msgspec.ValidationError, value: Any, tp: Any, words: Vocabulary) -> str:
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
    meaning = (words.patterns.get(m.group(1)) or _pattern_help(tp, m.group(1))) if m else None
    if meaning:
        return f"expected {meaning}, found {describe(value)}"
    msg = re.sub(r"`([^`]*?) \| null`", r"`\1`", msg)  # an optional value: what it is when it is there
    for raw, word in {**_MSGSPEC_WORDS, **words.types}.items():
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
