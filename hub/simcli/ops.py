"""Each ``carehub sim`` operation: the request it sends, and the short line a person reads back."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hub.simcli.parser import pairs
from hub.simcli.target import SimCliError, Target, call

Result = tuple[dict[str, Any], dict[str, Any], str]

_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")


def _gpio(t: Target, name: str) -> None:
    """With a config, the device must be one of its simulated GPIO devices (with only --socket, the hub says so)."""
    if not t.has_config:
        return
    t.device(name, "gpio", what="GPIO")
    factory = t.loaded.config.gpio.factory
    if factory != "sim":
        raise SimCliError(f"{name} is on real GPIO pins ([gpio] factory = {factory!r}): nothing to simulate")


def gpio(t: Target, a: Any) -> Result:
    """press, release, click, hold, state: a GPIO button by device id."""
    _gpio(t, a.device)
    req: dict[str, Any] = {"op": a.op, "device": a.device}
    if getattr(a, "seconds", None) is not None:
        req["seconds"] = a.seconds
    r = t.call(req)
    if a.op == "state":
        pressed = "pressed" if r.get("pressed") else "not pressed"
        led = f", LED {r['feedback']}" if r.get("feedback") else ", no LED"
        return req, r, f"{a.device}: {pressed}{led}"
    verb = {"press": "pressed", "release": "released", "click": "clicked", "hold": f"held {r.get('held_s', 0):g} s"}
    return req, r, f"{a.device}: {verb[a.op]}"


def devices(t: Target, a: Any) -> Result:
    req = {"op": "devices"}
    r = t.call(req)
    return req, r, "GPIO: " + (", ".join(r.get("gpio", [])) or "none")


def advert(t: Target, a: Any) -> Result:
    from hub.simcli.advert import advert_request

    dev = t.device(a.device, "ble", what="BLE")
    backend = t.loaded.config.ble.backend
    if backend != "sim":
        raise SimCliError(f"{a.device} is heard on a real radio ([ble] backend = {backend!r}): nothing to simulate")
    req, sent = advert_request(dev, pairs(a.values), socket=t.socket, rssi=a.rssi, counter=a.counter)
    r = t.call(req)
    how = f"encrypted, counter {sent['counter']}" if sent["encrypted"] else f"plain, packet id {sent['packet_id']}"
    heard = "heard" if r.get("delivered") else "NOT heard (the scanner is stopped, silent or has no adapter)"
    return req, {**r, **sent}, f"{a.device}: advert {' '.join(a.values)} ({how}) {heard}"


def ble_fault(t: Target, a: Any) -> Result:
    req: dict[str, Any] = {"op": "ble_fault", "kind": a.kind}
    if a.times is not None:
        req["times"] = a.times
    if a.running:
        req["running"] = True
    if a.adapter is not None:
        req["adapter"] = a.adapter
    r = t.call(req)
    return req, r, f"BLE fault {a.kind}: {_radio(r)}"


def ble_state(t: Target, a: Any) -> Result:
    req = {"op": "ble_state"}
    r = t.call(req)
    return req, r, f"BLE: {_radio(r)}"


def _radio(r: dict[str, Any]) -> str:
    present = "present" if r.get("adapter_present") else "gone"
    running = "scanning" if r.get("running") and not r.get("silent") else ("silent" if r.get("silent") else "stopped")
    failing = len(r.get("pending_start_failures") or [])
    tail = f", the next {failing} start(s) fail" if failing else ""
    return f"adapter {r.get('adapter')} {present}, {running}, {r.get('delivered', 0)} adverts heard{tail}"


def gatt(t: Target, a: Any) -> Result:
    """notify|set DEVICE UUID HEX, link DEVICE up|down, drop DEVICE, state: by device id (or address)."""
    need = {"notify": 3, "set": 3, "link": 2, "drop": 1, "state": 0}[a.action]
    if len(a.args) != need:
        usage = {"notify": "DEVICE UUID HEX", "set": "DEVICE UUID HEX", "link": "DEVICE up|down", "drop": "DEVICE",
                 "state": ""}[a.action]
        raise SimCliError(f"usage: carehub sim gatt {a.action} {usage}".rstrip())
    req: dict[str, Any] = {"op": f"gatt_{a.action}"}
    name = a.args[0] if need else None
    if name is not None:
        req["address"] = name.upper() if _MAC.match(name) else t.device(name, "gatt", what="GATT").gatt.address.upper()
    if a.action in ("notify", "set"):
        req["uuid"], req["hex"] = a.args[1], a.args[2]
    if a.action == "link":
        if a.args[1] not in ("up", "down"):
            raise SimCliError(f"link takes up or down, not {a.args[1]!r}")
        req["up"] = a.args[1] == "up"
    r = t.call(req)
    line = {
        "notify": lambda: f"{name}: notified {req.get('uuid')} ({r.get('delivered', 0)} connection(s) subscribed)",
        "set": lambda: f"{name}: {req.get('uuid')} set to {req.get('hex')}",
        "link": lambda: f"{name}: {'in range' if req.get('up') else 'out of range'}",
        "drop": lambda: f"{name}: {r.get('dropped', 0)} connection(s) dropped",
        "state": lambda: f"GATT: {len(r.get('peripherals', {}))} peripheral(s), {r.get('busy', 0)} connection(s)",
    }[a.action]()
    return req, r, line


def serial(t: Target, a: Any) -> Result:
    """An emulator's control socket: a frame (``what`` and fields), or unplug / replug / state."""
    path = Path(a.control)
    if a.what in ("unplug", "replug", "state"):
        if a.values:
            raise SimCliError(f"{a.what} takes no values")
        req: dict[str, Any] = {"op": a.what}
    else:
        req = {"op": "send", "what": a.what, "args": pairs(a.values)}
    r = call(path, req, t.timeout, who="emulator")
    if a.what == "unplug":
        line = "unplugged"
    elif a.what == "replug":
        line = f"plugged in again ({r.get('tty') or 'same port'})"
    elif a.what == "state":
        plugged = "plugged" if r.get("plugged") else "unplugged"
        line = f"{plugged}, {r.get('sent_bytes', 0)} bytes sent; emulator {json.dumps(r.get('emulator'))}"
    else:
        line = f"{a.what} sent ({r.get('bytes', 0)} bytes: {r.get('hex', '')})"
    return req, r, line


def crash(t: Target, a: Any) -> Result:
    req = {"op": "crash", "task": a.task, "times": a.times}
    r = t.call(req)
    return req, r, f"task {a.task}: failed on purpose ({a.times} time(s)); the supervisor restarts it"


def raw(t: Target, a: Any) -> Result:
    try:
        req = json.loads(a.request)
    except ValueError as exc:
        raise SimCliError(f"not JSON: {exc}") from None
    if not isinstance(req, dict) or not isinstance(req.get("op"), str):
        raise SimCliError('expected a JSON object with an "op", e.g. {"op": "ble_state"}')
    r = t.call(req)
    return req, r, json.dumps(r)


OPS = {"press": gpio, "release": gpio, "click": gpio, "hold": gpio, "state": gpio, "devices": devices,
       "advert": advert, "ble-fault": ble_fault, "ble-state": ble_state, "gatt": gatt, "serial": serial,
       "crash": crash, "raw": raw}
