"""``carehub scan``: what BLE devices does the hub hear, and can it read them?

For installers: scan for a few seconds with the backend of the config's
``[ble]`` section and show, per device heard, its address, name, signal
strength, whether it speaks BTHome, whether it encrypts, whether the
configured bindkey decrypts it, which configured device it is, and what it
said last. ``--json`` prints the same as one JSON document for scripts.

By default only BTHome devices and configured devices are shown (a flat
lists dozens of phones and TVs); ``--all`` shows everything heard.

With ``backend = "sim"`` there is no radio: the scan opens a sim control
socket of its own (in a private temporary directory, or ``--sim-socket``)
with the ``ble_advert`` / ``ble_fault`` / ``ble_state`` ops, announces it on
stderr as ``sim socket: PATH`` and hears whatever is injected there. It never
touches the config's ``[sim] socket``: that one belongs to the hub, which may
be running; a ``--sim-socket`` a running process answers on is refused.

Decoding never stops the scan: an advert the BTHome decoder refuses is
shown as ``undecodable`` with the reason. Exit status: 0 after a scan
(also when stopped early with Ctrl-C / SIGTERM), 2 when the config is
invalid or unreadable, or the backend cannot start or fails while scanning.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from drivers.ble import bthome
from drivers.ble.backend import Advert, BackendError

#: BTHome's service data UUID in the form :class:`Advert` keys it.
BTHOME_UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"

KEY_OK = "yes"
KEY_WRONG = "no: wrong key"
KEY_MISSING = "no key configured"
KEY_PLAIN = "-"


@dataclass
class Configured:
    """A ``[[device]]`` with a ``[device.ble]`` table."""

    id: str
    kind: str
    bindkey: str | None


@dataclass
class Heard:
    """What the scan knows about one address."""

    address: str
    name: str | None = None
    rssi_last: int | None = None
    rssi_best: int | None = None
    adverts: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0
    bthome: bool = False
    encrypted: bool | None = None
    key: str = "-"
    device: str | None = None
    #: the latest decoded advert's contents (kept when a later advert is undecodable)
    values: dict[str, Any] = field(default_factory=dict)
    states: dict[str, Any] = field(default_factory=dict)
    buttons: list[str | None] = field(default_factory=list)
    summary: str = ""
    packet_id: int | None = None
    counter: int | None = None
    #: why the latest BTHome advert could not be decoded (None: it could)
    error: str | None = None
    note: str | None = None
    service_uuids: set[str] = field(default_factory=set)
    manufacturer_ids: set[int] = field(default_factory=set)

    def as_json(self, t0: float) -> dict[str, Any]:
        return {
            "address": self.address,
            "name": self.name,
            "rssi_last": self.rssi_last,
            "rssi_best": self.rssi_best,
            "adverts": self.adverts,
            "first_seen_s": round(self.first_seen - t0, 3),
            "last_seen_s": round(self.last_seen - t0, 3),
            "bthome": self.bthome,
            "encrypted": self.encrypted,
            "key": self.key,
            "device": self.device,
            "decoded": self.error is None if self.bthome else None,
            "error": self.error,
            "note": self.note,
            "values": self.values,
            "states": self.states,
            "buttons": self.buttons,
            "packet_id": self.packet_id,
            "counter": self.counter,
            "summary": self.summary_text(),
            "service_uuids": sorted(self.service_uuids),
            "manufacturer_ids": sorted(self.manufacturer_ids),
        }

    def summary_text(self) -> str:
        if not self.bthome:
            return ""
        if self.key == KEY_MISSING:
            return "encrypted: configure its bindkey to read it"
        if self.error is not None:
            return f"undecodable: {self.error}" + (f" (last good: {self.summary})" if self.summary else "")
        return self.summary


def _jsonable(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, datetime):
        return v.isoformat()
    return v


def _short(decoded: bthome.Advert) -> str:
    parts = [str(m) for m in decoded.values] + [str(m) for m in decoded.states]
    if decoded.buttons:
        parts.append("buttons=" + ",".join(b or "-" for b in decoded.buttons))
    parts += [f"dimmer={d.event or '-'}({d.steps})" for d in decoded.dimmers]
    parts += [f"command={c.command}" for c in decoded.commands]
    if decoded.unknown_object_id is not None:
        parts.append(f"(stopped at unknown object 0x{decoded.unknown_object_id:02x})")
    return ", ".join(parts) or "no objects"


class ScanTable:
    """Folds adverts into one :class:`Heard` per address; never raises on bad data."""

    def __init__(self, configured: dict[str, Configured]) -> None:
        self.configured = configured
        self.heard: dict[str, Heard] = {}

    def feed(self, advert: Advert) -> None:
        now = advert.t
        h = self.heard.get(advert.address)
        if h is None:
            h = self.heard[advert.address] = Heard(address=advert.address, first_seen=now)
            conf = self.configured.get(advert.address)
            h.device = conf.id if conf else None
        h.adverts += 1
        h.last_seen = now
        if advert.name:
            h.name = advert.name
        if advert.rssi is not None:
            h.rssi_last = advert.rssi
            h.rssi_best = advert.rssi if h.rssi_best is None else max(h.rssi_best, advert.rssi)
        h.service_uuids.update(advert.service_data)
        h.manufacturer_ids.update(advert.manufacturer_data)
        data = advert.service_data.get(BTHOME_UUID)
        if data is not None:
            h.bthome = True
            try:
                self._decode(h, data)
            except Exception as exc:  # never let one advert stop the scan
                h.error = f"{type(exc).__name__}: {exc}"

    def _decode(self, h: Heard, data: bytes) -> None:
        conf = self.configured.get(h.address)
        bindkey = conf.bindkey if conf else None
        h.note = None
        try:
            info = bthome.device_info(data)
        except bthome.BTHomeError as exc:  # keep what earlier adverts told about encryption and key
            h.error = str(exc)
            return
        h.encrypted = info.encrypted
        if info.encrypted:
            if bindkey is None:
                h.key, h.error = KEY_MISSING, "encrypted, no bindkey configured"
                return
            try:
                decoded = bthome.decode(data, mac=h.address, bindkey=bindkey)
            except bthome.DecryptionError:
                h.key, h.error = KEY_WRONG, "does not decrypt with the configured bindkey"
                return
            except bthome.BTHomeError as exc:
                # too broken to check the MIC: the key column keeps what earlier adverts showed
                h.error = str(exc)
                return
            h.key = KEY_OK
        else:
            h.key = KEY_PLAIN
            if bindkey is not None:
                h.note = "plain advert but a bindkey is configured: the hub refuses it"
            try:
                decoded = bthome.decode(data, mac=h.address)
            except bthome.BTHomeError as exc:
                h.error = str(exc)
                return
        h.error = None
        h.values = {m.name: _jsonable(m.value) for m in decoded.values}
        h.states = {m.name: m.value for m in decoded.states}
        h.buttons = list(decoded.buttons)
        h.packet_id = decoded.packet_id
        h.counter = decoded.counter
        h.summary = _short(decoded)

    def rows(self, *, show_all: bool) -> list[Heard]:
        rows = [h for h in self.heard.values() if show_all or h.bthome or h.device is not None]
        return sorted(rows, key=lambda h: (h.device is None, not h.bthome, -(h.rssi_best or -999), h.address))

    def not_heard(self) -> list[tuple[str, Configured]]:
        return [(a, c) for a, c in self.configured.items() if a not in self.heard]


def _configured(cfg: Any) -> dict[str, Configured]:
    out: dict[str, Configured] = {}
    for dev in cfg.devices:
        if dev.ble is not None:
            out[dev.ble.address.upper()] = Configured(id=dev.id, kind=dev.kind, bindkey=dev.ble.bindkey)
    return out


def _fmt_rssi(h: Heard) -> str:
    if h.rssi_last is None:
        return "-"
    return f"{h.rssi_last}/{h.rssi_best}"


def _print_table(table: ScanTable, rows: list[Heard], seconds: float, show_all: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    t = Table(title=f"BLE devices heard in {seconds:g} s" + ("" if show_all else " (BTHome and configured; --all for all)"))
    for col in ("address", "name", "RSSI last/best", "adverts", "BTHome", "encrypted", "key decrypts", "device", "latest"):
        t.add_column(col, overflow="fold")
    for h in rows:
        enc = "-" if h.encrypted is None else ("yes" if h.encrypted else "no")
        latest = h.summary_text()
        if h.note:
            latest = f"{latest} [{h.note}]" if latest else h.note
        t.add_row(
            h.address,
            h.name or "-",
            _fmt_rssi(h),
            str(h.adverts),
            "yes" if h.bthome else "no",
            enc,
            h.key,
            h.device or "-",
            latest or "-",
            style=None if h.error is None else "yellow",
        )
    console.print(t)
    hidden = len(table.heard) - len(rows)
    if hidden:
        console.print(f"{hidden} other device(s) heard (not BTHome, not configured); --all shows them")
    for address, conf in table.not_heard():
        console.print(f"configured but not heard: {conf.id} ({address})", style="red")


async def _scan(loaded: Any, args: argparse.Namespace) -> int:
    from drivers.ble.backend import make_backend

    cfg = loaded.config
    table = ScanTable(_configured(cfg))
    stop = asyncio.Event()
    failure: list[BackendError] = []

    def on_error(err: BackendError) -> None:
        failure.append(err)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on Unix
            pass

    b = cfg.ble
    ctl = None
    private_dir: Path | None = None
    if b.backend == "sim":
        from drivers.ble.sim import SimBackend, register_sim_ops
        from drivers.simctl import SimControl

        backend: Any = SimBackend(adapter=b.adapter or "hci0")
        # never the hub's [sim] socket by default: a running hub would lose it (the path is set at start)
        ctl = SimControl(Path(args.sim_socket) if args.sim_socket else Path())
        register_sim_ops(ctl, backend)
    else:
        try:
            # --all: active scanning, which hears every advertiser; else passive on BTHome where BlueZ can
            backend = make_backend(b.backend, adapter=b.adapter, passive=not args.all)
        except Exception as exc:  # bleak missing or broken
            print(f"error: cannot use BLE backend {b.backend!r}: {exc}", file=sys.stderr)
            return 2

    try:
        await backend.start(table.feed, on_error)
    except BackendError as exc:
        print(f"error: cannot start BLE scan on {backend.adapter} ({exc.reason}): {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # e.g. no D-Bus / bluetoothd: bleak raises its own or OS errors
        print(f"error: cannot start BLE scan on {backend.adapter}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    try:
        if ctl is not None:
            if not args.sim_socket:
                private_dir = Path(tempfile.mkdtemp(prefix="carehub-scan-"))
                ctl.path = private_dir / "sim.sock"
            try:
                await ctl.start()
            except OSError as exc:
                print(f"error: cannot open sim socket {ctl.path}: {exc}", file=sys.stderr)
                return 2
            print(f"sim socket: {ctl.path}", file=sys.stderr, flush=True)
        print(f"scanning for {args.seconds:g} s on {backend.adapter} ({b.backend})...", file=sys.stderr, flush=True)
        try:
            await asyncio.wait_for(stop.wait(), timeout=args.seconds)
        except TimeoutError:
            pass
    finally:
        try:
            await backend.stop()
        except Exception as exc:  # stop must not hide the results
            print(f"warning: stopping the scan: {exc}", file=sys.stderr)
        if ctl is not None:
            await ctl.close()
        if private_dir is not None:
            shutil.rmtree(private_dir, ignore_errors=True)
    elapsed = time.monotonic() - t0

    rows = table.rows(show_all=args.all)
    if args.json:
        json.dump([h.as_json(t0) for h in rows], sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        for address, conf in table.not_heard():
            print(f"configured but not heard: {conf.id} ({address})", file=sys.stderr)
    else:
        _print_table(table, rows, round(elapsed, 1), args.all)
    sys.stdout.flush()
    if failure:
        err = failure[0]
        print(f"error: the BLE scan failed after {elapsed:.1f} s ({err.reason}): {err}", file=sys.stderr)
        return 2
    return 0


def run_scan(args: argparse.Namespace) -> int:
    """The ``carehub scan`` sub-command."""
    from hub import logs
    from hub.cli import _load

    if not args.seconds > 0:
        print("error: --seconds must be greater than 0", file=sys.stderr)
        return 2
    loaded, _code = _load(args.config, "cannot scan")
    if loaded is None:
        return 2
    # logs on stderr only, warnings and up: stdout is the table or the JSON document
    logs.configure("warning", "console")
    try:
        return asyncio.run(_scan(loaded, args))
    except KeyboardInterrupt:  # pragma: no cover - the signal handler normally catches it
        return 0
