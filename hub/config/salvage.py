"""The cross-key checks on a config the structs refused: every error of a file in one pass.

Why this exists: the checks of :mod:`hub.config.checks` (unique device ids,
a pin or a port used twice, TLS files, the time zone ...) run on converted
structs, and :func:`msgspec.convert` converts only a whole valid config. So a
file with one wrong type used to get its type error alone; its duplicate
device id showed up only once that was fixed, one round trip per phase.

What it does: it prunes. Every key the walker reported is removed from a copy
of the data; each top-level table and each ``[[device]]`` is then converted
on its own, and whatever msgspec still refuses (a required key now missing)
is pruned where msgspec says, up to the whole table or device. The checks run
on what converted: a table that could not be kept is None (its checks are
skipped), a device that could not be kept is left out and the others keep
their index in the file (paths and messages are mapped back).

A pruned key takes its default, and a check could then complain about a value
the file does not have. So an issue is dropped when it is about something
pruned: its key path and a pruned one are on one line of descent (one is a
prefix of the other), or it lies in the table a pruned key belonged to (the
``battery_ok_pct`` against ``battery_low_pct`` kind; a pruned ``[mqtt.tls]``
for the TLS check of the brokers). Items of ``[[device]]`` are independent of
each other, and device ids are checked as written, for every device whose id
is itself valid, so a duplicate id is never lost.

The price of that caution: an error beside a refused key of the same table
(a username without password file in an ``[mqtt]`` whose ``keepalive_s`` is
refused) waits for the next run. Warnings are about values as written and
are not filtered.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path as FsPath
from types import SimpleNamespace
from typing import Any

import msgspec

from drivers.base import Report
from hub.config.checks import check_advice, check_semantics, check_unique_ids
from hub.config.model import Config, Device
from hub.tomlpos import Path

__all__ = ["salvage_checks"]

#: A part is converted again at most this often (each round prunes one more key).
_MAX_ROUNDS = 200
_DEVICE_REF = re.compile(r"device\[(\d+)\]")


def salvage_checks(
    data: dict[str, Any],
    reported: list[Path],
    base: FsPath,
    check_files: bool,
    report: Report,
    warn: Report,
) -> None:
    """Run the cross-key checks and the warnings on what can be kept of ``data``.

    ``reported`` are the key paths the walker already reported (they are pruned first);
    ``report`` takes the errors found, ``warn`` the warnings.
    """
    data = copy.deepcopy(data)
    pruned: list[Path] = []
    device_paths: dict[int, list[Path]] = {}
    section_paths: dict[str, list[Path]] = {}
    for path in reported:
        if not path:
            continue
        if path[0] == "device" and len(path) >= 2 and isinstance(path[1], int):
            device_paths.setdefault(path[1], []).append(path[2:])
        else:
            section_paths.setdefault(str(path[0]), []).append(path[1:])

    parts: dict[str, Any] = {}
    for f in msgspec.structs.fields(Config):
        if f.encode_name == "device":
            continue
        value = data.get(f.encode_name, msgspec.UNSET)
        if value is msgspec.UNSET:
            parts[f.name] = None if f.required else _default(f)
            continue
        parts[f.name] = _keep(value, f.type, (f.encode_name,), section_paths.get(f.encode_name, []), pruned)

    kept: list[Any] = []
    index: list[int] = []
    ids: list[tuple[int, str]] = []
    raw_devices = data.get("device", [])
    if isinstance(raw_devices, list) and ("device",) not in reported:
        for i, item in enumerate(raw_devices):
            bad = device_paths.get(i, [])
            if isinstance(item, dict) and isinstance(item.get("id"), str) and ("id",) not in bad:
                ids.append((i, item["id"]))
            dev = _keep(item, Device, ("device", i), bad, pruned)
            if dev is not None:
                kept.append(dev)
                index.append(i)
    else:
        pruned.append(("device",))
    config = SimpleNamespace(**parts, devices=kept)

    check_unique_ids(ids, report)
    errors = _filtered(_remapped(report, index), pruned)
    check_semantics(config, base, check_files, errors, unique_ids=False)
    if check_files:
        check_advice(config, base, _remapped(warn, index))  # about values as written: not filtered


def _default(f: Any) -> Any:
    return f.default if f.default is not msgspec.NODEFAULT else f.default_factory()


def _keep(value: Any, tp: Any, at: Path, bad: list[Path], pruned: list[Path]) -> Any | None:
    """``value`` as ``tp`` once the ``bad`` keys (relative to ``at``) and whatever msgspec still
    refuses are pruned; None when nothing of it can be kept. Each pruned key goes into ``pruned``."""
    if not isinstance(value, dict):
        pruned.append(at)
        return None
    for rel in bad:
        if not rel:  # the walker refused the whole table
            pruned.append(at)
            return None
        cut = _remove(value, rel)
        if cut is not None:
            pruned.append(at + cut)
    for _ in range(_MAX_ROUNDS):
        try:
            return msgspec.convert(value, tp)
        except msgspec.ValidationError as exc:
            cut = _remove(value, _where(exc))
            if cut is None:
                pruned.append(at)
                return None
            pruned.append(at + cut)
    pruned.append(at)
    return None


def _remove(value: Any, rel: Path) -> Path | None:
    """Remove the key at ``rel`` from the table ``value``; inside an array the whole array goes
    (the indices of its other items must not shift). Returns the path removed, or None when
    nothing below ``value`` can be removed (``rel`` is ``value`` itself, or not there)."""
    ints = [d for d, key in enumerate(rel) if isinstance(key, int)]
    if ints:
        rel = rel[: ints[0]]
    node = value
    for key in rel[:-1]:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    if not rel or not isinstance(node, dict) or rel[-1] not in node:
        return None
    del node[rel[-1]]
    return rel


def _where(exc: msgspec.ValidationError) -> Path:
    """msgspec's ``... - at `$.a.b[0].c``` as ``("a", "b", 0, "c")``."""
    _, _, where = str(exc).partition(" - at ")
    out: list[str | int] = []
    for name, idx in re.findall(r"\.([^.\[`]+)|\[(\d+)\]", where.strip("`").removeprefix("$")):
        out.append(int(idx) if idx else name)
    return tuple(out)


def _remapped(report: Report, index: list[int]) -> Report:
    """``report`` for checks that saw only the kept devices: ``device[j]`` becomes the file's index."""

    def device(j: int) -> int:
        return index[j] if 0 <= j < len(index) else j

    def mapped(path: Path, message: str) -> None:
        if len(path) >= 2 and path[0] == "device" and isinstance(path[1], int):
            path = ("device", device(path[1]), *path[2:])
        report(path, _DEVICE_REF.sub(lambda m: f"device[{device(int(m.group(1)))}]", message))

    return mapped


def _filtered(report: Report, pruned: list[Path]) -> Report:
    """``report`` without the issues about a pruned value (see the module's docstring)."""
    scopes = [_scope(p) for p in pruned]

    def about_pruned(path: Path) -> bool:
        for p, scope in zip(pruned, scopes):
            n = min(len(p), len(path))
            if p[:n] == path[:n] or path[: len(scope)] == scope:
                return True
        return False

    def filtered(path: Path, message: str) -> None:
        if not about_pruned(path):
            report(path, message)

    return filtered


def _scope(pruned: Path) -> Path:
    """The table a pruned key belonged to; for a top-level table or a device, only itself."""
    if len(pruned) <= 1 or (pruned[0] == "device" and len(pruned) == 2):
        return pruned
    return pruned[:-1]
