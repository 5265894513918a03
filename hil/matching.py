"""Which events a step is about, and what the central's record says about order: pure functions.

An event is the JSON body the central received (``contract/event.schema.json``):
its device is ``source.device``; events the hub raises *about* a device
(``device.offline`` from supervision, a rule's event) may name it in
``data.device`` instead, so a step's ``device`` matches either.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterable, Sequence
from typing import Any

#: What ``get_path`` returns for a path the event lacks (distinct from a JSON null).
MISSING = object()


def get_path(event: dict[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` (``data.gesture``, ``source.device``), or :data:`MISSING`."""
    node: Any = event
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return MISSING
    return node


def device_of(event: dict[str, Any]) -> set[str]:
    """The device ids an event names: ``source.device`` and ``data.device`` (when present)."""
    out = set()
    for path in ("source.device", "data.device"):
        value = get_path(event, path)
        if isinstance(value, str):
            out.add(value)
    return out


def mismatches(event: dict[str, Any], type_: str, device: str | None, fields: dict[str, Any]) -> list[str]:
    """Why ``event`` is not the one expected (empty: it matches). ``type_`` is an fnmatch pattern,
    ``fields`` dotted paths to equal values."""
    why = []
    etype = str(event.get("type", ""))
    if not fnmatch.fnmatchcase(etype, type_):
        why.append(f"type {etype!r} is not {type_!r}")
    if device is not None and device not in device_of(event):
        why.append(f"device {sorted(device_of(event))} is not {device!r}")
    for path, want in fields.items():
        got = get_path(event, path)
        if got is MISSING:
            why.append(f"{path} missing (wanted {want!r})")
        elif got != want or isinstance(got, bool) != isinstance(want, bool):
            why.append(f"{path}={got!r} (wanted {want!r})")
    return why


def matches(event: dict[str, Any], type_: str, device: str | None, fields: dict[str, Any]) -> bool:
    """True when ``event`` is of ``type_`` (fnmatch), from ``device`` (if given), with every field equal."""
    return not mismatches(event, type_, device, fields)


def is_alarm(event: dict[str, Any]) -> bool:
    """The hub's own rule (``hub.outbox.schema.is_alarm``): every ``alarm.*`` type and everything critical."""
    return str(event.get("type", "")).startswith("alarm.") or event.get("priority") == "critical"


def created_before(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Was ``a`` created before ``b``? By ``seq`` (the hub's commit order) when both have one
    (seq 0 is an alarm the disk refused, published before it had a seq); else by ``ts``
    (RFC 3339 UTC with ms, so the strings sort as times), equal ``ts`` meaning not before."""
    sa, sb = a.get("seq"), b.get("seq")
    if isinstance(sa, int) and isinstance(sb, int) and sa > 0 and sb > 0:
        return sa < sb
    return str(a.get("ts", "")) < str(b.get("ts", ""))


def first_arrivals(arrivals: Iterable[Any]) -> list[Any]:
    """The arrivals with an id not seen before, in arrival order (a redelivered duplicate dropped)."""
    seen: set[str] = set()
    out = []
    for a in arrivals:
        eid = a.event.get("id")
        if eid in seen:
            continue
        seen.add(eid)
        out.append(a)
    return out


def rfc3339(unix_s: float) -> str:
    """``unix_s`` as the hub writes ``ts``: RFC 3339 UTC with milliseconds."""
    ms = int(round(unix_s * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def alarms_overtaken(arrivals: Sequence[Any], after: float, waited_since: str | None = None) -> list[str]:
    """Alarms that older non-alarm events overtook on their way to the central after the instant ``after``.

    Among the first arrivals (redelivered duplicates dropped) received after
    ``after`` (monotonic seconds, the clock of ``Arrival.t``): an alarm ``a``
    is overtaken when a non-alarm event ``n`` arrived before it although ``n``
    was created before ``a`` (:func:`created_before`: by seq, else ts). Both
    waited for the link, and the alarm must go first. A non-alarm created after
    the alarm is not checked (it cannot overtake it on one ordered connection
    unless the alarm was still unsent, which the alarms created before it cover).

    ``waited_since`` (an RFC 3339 ``ts``, the instant ``after`` on the hub's wall
    clock): only alarms created at or before it are checked, i.e. the alarms
    that waited through the outage; an alarm created later (a reminder raised
    while the backlog drains) may rightly follow telemetry already in flight.

    Returns one line per overtaken alarm, naming the first event that overtook it.
    """
    later = [a for a in first_arrivals(arrivals) if a.t > after]
    out = []
    for i, alarm in enumerate(later):
        if not is_alarm(alarm.event):
            continue
        if waited_since is not None and str(alarm.event.get("ts", "")) > waited_since:
            continue
        for earlier in later[:i]:
            if not is_alarm(earlier.event) and created_before(earlier.event, alarm.event):
                out.append(
                    f"{alarm.event.get('type')} seq {alarm.event.get('seq')} id {alarm.event.get('id')} arrived after "
                    f"{earlier.event.get('type')} seq {earlier.event.get('seq')}, older and not an alarm"
                )
                break
    return out
