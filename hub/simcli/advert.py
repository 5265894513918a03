"""``carehub sim advert DEVICE name=value ...``: a BTHome advert as the configured device would send it.

The device's ``[device.ble]`` address and bindkey come from the config. The
values are BTHome objects by name (``button=press``, ``opening=1``,
``battery=80``, ``temperature=21.5``; or by id, ``0x2e=45``), encoded with
the hub's own encoder (:mod:`drivers.ble.bthome`). An encrypted advert needs
a counter above the last one the hub took, and a plain one a packet id other
than the last: both are kept in a small file beside the sim socket
(``<socket>.counters.json``), so successive invocations rise. The counter is
never below the clock's seconds either, so a lost file does not make the
hub take the next advert for a replay.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from drivers.ble.bthome import EncodeError, encode
from drivers.ble.bthome.objects import OBJECTS
from hub.simcli.target import SimCliError

#: BTHome's service UUID (0xFCD2), as the sim's ``ble_advert`` takes it.
SERVICE = "fcd2"

#: Object ids by name: the first (lowest) id of each name, as the spec lists them.
BY_NAME: dict[str, int] = {}
for _oid, _spec in sorted(OBJECTS.items()):
    BY_NAME.setdefault(_spec.name, _oid)


def objects(values: dict[str, Any]) -> tuple[list[tuple[int, Any]], list[Any]]:
    """(object id, value) pairs and button events from ``name=value``s."""
    pairs: list[tuple[int, Any]] = []
    buttons: list[Any] = []
    for name, v in values.items():
        if name == "button":
            buttons.append(v)
            continue
        if name == "packet_id":
            raise SimCliError("packet_id is counted by carehub sim itself")
        oid = BY_NAME.get(name)
        if oid is None and name.lower().startswith("0x"):
            with contextlib.suppress(ValueError):
                oid = int(name, 16) if int(name, 16) in OBJECTS else None
        if oid is None:
            known = ", ".join(sorted(n for n in BY_NAME if n != "packet_id"))
            raise SimCliError(f"unknown BTHome object {name!r}; known: {known} (or an id like 0x2e)")
        if isinstance(v, int) and not isinstance(v, bool) and OBJECTS[oid].kind == "binary" and v in (0, 1):
            v = bool(v)
        pairs.append((oid, v))
    return pairs, buttons


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[dict[str, Any]]:
    """The counters file's contents, locked, written back (atomically) when the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                data = {}
        except (OSError, ValueError):
            data = {}
        yield data
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.chmod(tmp, 0o600)
        tmp.replace(path)


def next_numbers(counters: Path, address: str, *, encrypted: bool, counter: int | None) -> tuple[int, int]:
    """(encryption counter, packet id) for the next advert of ``address``, recorded in ``counters``."""
    try:
        with _locked(counters) as data:
            seen = data.get(address) or {}
            if counter is None:
                counter = max(int(seen.get("counter", 0)) + 1, int(time.time()))
            packet_id = (int(seen.get("packet_id", -1)) + 1) % 256
            data[address] = {"counter": counter if encrypted else seen.get("counter", 0), "packet_id": packet_id}
    except OSError as exc:  # a state directory this user may not write: say so, send all the same
        print(f"warning: cannot keep advert counters in {counters}: {exc}", file=sys.stderr)
        counter = counter if counter is not None else int(time.time())
        packet_id = int(time.time()) % 256
    return counter, packet_id


def advert_request(dev: Any, values: dict[str, Any], *, socket: Path, rssi: int,
                   counter: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``ble_advert`` request for configured device ``dev``, and what went into it (for the summary)."""
    ble = dev.ble
    pairs, buttons = objects(values)
    if not pairs and not buttons:
        raise SimCliError("give at least one value, e.g. button=press or opening=1")
    encrypted = ble.bindkey is not None
    counters = socket.with_name(socket.name + ".counters.json")
    n, packet_id = next_numbers(counters, ble.address.upper(), encrypted=encrypted, counter=counter)
    try:
        if encrypted:
            data = encode(pairs, buttons=buttons, bindkey=ble.bindkey, mac=ble.address, counter=n)
        else:
            data = encode(pairs, buttons=buttons, packet_id=packet_id)
    except EncodeError as exc:
        raise SimCliError(f"cannot encode that advert: {exc}") from None
    request = {"op": "ble_advert", "address": ble.address.upper(), "rssi": rssi,
               "service_data_hex": {SERVICE: data.hex()}}
    sent = {"encrypted": encrypted, "counter": n if encrypted else None,
            "packet_id": None if encrypted else packet_id, "bytes": len(data)}
    return request, sent
