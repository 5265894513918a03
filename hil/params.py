"""A scenario's sizes as parameters, so CI can run a trimmed set without changing any check.

``[params]`` names numbers the steps and limits use as ``"$name"``
(``times = "$kills"``); ``[params.quick]`` gives smaller values for the
``quick`` profile (the suite's acceptance run), so a heavy scenario runs shorter
with the same expectations. The profile in effect is in the run's record.
"""

from __future__ import annotations

import re
from typing import Any

_REF = re.compile(r"^\$([a-z][a-z0-9_]*)$")

#: The profiles a scenario may give values for (beside the full one, ``[params]`` itself).
PROFILES = ("quick",)


class ParamError(Exception):
    """A ``$name`` with no parameter, or a bad ``[params]`` table; ``path`` is the (first) key path.

    ``problems`` has every one found, as (key path, message)."""

    def __init__(self, path: tuple[str | int, ...], message: str,
                 problems: list[tuple[tuple[str | int, ...], str]] | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.problems = problems or [(path, message)]


def values(params: dict[str, Any], profile: str | None) -> dict[str, Any]:
    """The parameters in effect: ``[params]`` with the profile's table laid over it."""
    base = {k: v for k, v in params.items() if k not in PROFILES}
    for name, v in base.items():
        if not isinstance(v, (int, float, str, bool)) or isinstance(v, dict):
            raise ParamError(("params", name), f"expected a number, string or boolean, found {type(v).__name__}")
    if profile is None:
        return base
    over = params.get(profile, {})
    if not isinstance(over, dict):
        raise ParamError(("params", profile), "expected a table")
    for name in over:
        if name not in base:
            raise ParamError(("params", profile, name), f"unknown parameter (have: {', '.join(sorted(base)) or 'none'})")
    return {**base, **over}


def substitute(data: dict[str, Any], profile: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``data`` (a parsed scenario, without its ``params``) with every ``"$name"`` replaced; and the values used.

    Raises :class:`ParamError` naming the key path of the first unknown reference or bad table.
    """
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise ParamError(("params",), "expected a table")
    if profile is not None and profile not in PROFILES:
        raise ParamError(("params",), f"unknown profile {profile!r} (have: {', '.join(PROFILES)})")
    used = values(params, profile)
    problems: list[tuple[tuple[str | int, ...], str]] = []

    def walk(v: Any, path: tuple[str | int, ...]) -> Any:
        if isinstance(v, str) and (m := _REF.match(v)):
            if m.group(1) not in used:
                have = ", ".join(sorted(used)) or "none"
                problems.append((path, f"no parameter {m.group(1)!r} in [params] (have: {have})"))
                return v
            return used[m.group(1)]
        if isinstance(v, dict):
            return {k: walk(x, (*path, k)) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x, (*path, i)) for i, x in enumerate(v)]
        return v

    out = {k: walk(v, (k,)) for k, v in data.items() if k != "params"}
    if problems:
        raise ParamError(*problems[0], problems=problems)
    return out, used
