"""The BLE driver's way in: BTHome adverts from a scanner, and GATT devices the hub connects to.

``[device.ble]`` devices are heard through one self-healing
:class:`~drivers.ble.scanner.BleScanner`; each advert from a configured
address goes through its :class:`~drivers.ble.devices.BtHomeDevice` (decrypt,
replay guard, readings to events). A button's events (press, double press, long
press ...) go to the hub's gestures; every accepted advert tells supervision the device was heard,
with its battery. ``[device.gatt]`` devices are kept connected by a
:class:`~drivers.ble.gatt.GattManager`. ``[ble] backend = "sim"`` puts both on
the simulated radio the sim socket drives.

The driver owns one command: ``ble-forget`` (forget a device's encryption
counter after it restarted at a random value).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog

from drivers.base import Emit, HubPort, Priority, Task
from hub.events import rfc3339

log = structlog.get_logger("drivers.ble")


class BleDriver:
    """Advertising BTHome devices and connected GATT devices, on one radio."""

    name = "ble"

    def __init__(self, port: HubPort, devices: Sequence[Any], settings: Any) -> None:
        self.port = port
        self.settings = settings
        self._kinds = {dev.id: dev.kind for dev in devices}
        #: per advertising device heard: last_seen (wall clock), rssi, battery of its last accepted advert
        self._heard: dict[str, dict[str, Any]] = {}
        self.decoders: dict[str, Any] = {}
        self.scanner: Any = None
        self.gatt: Any = None
        adverts = [d for d in devices if d.ble is not None]
        connected = [d for d in devices if d.gatt is not None]
        if adverts:
            self._start_adverts(adverts)
        if connected:
            self._start_gatt(connected)

    # --- adverts ------------------------------------------------------------------------

    def _start_adverts(self, devices: Sequence[Any]) -> None:
        from drivers.ble.devices import BUTTON_KINDS, BtHomeDevice
        from drivers.ble.scanner import BleScanner

        port, b = self.port, self.settings
        by_address: dict[str, tuple[Any, Any, Any]] = {}
        for dev in devices:
            decoder = BtHomeDevice(
                device_id=dev.id,
                kind=dev.kind,
                address=dev.ble.address,
                bindkey=bytes.fromhex(dev.ble.bindkey) if dev.ble.bindkey else None,
                telemetry_interval_s=b.telemetry_interval_s,
                activity_interval_s=b.activity_interval_s,
            )
            gestures = port.button(dev.id, input_name="ble") if dev.kind in BUTTON_KINDS else None
            by_address[decoder.address] = (dev, decoder, gestures)
            self.decoders[dev.id] = decoder
        self._check_crypto([dev for dev in devices if dev.ble.bindkey])

        def on_advert(advert: Any) -> None:
            entry = by_address.get(advert.address)
            if entry is None:
                return
            dev, decoder, gestures = entry
            now = port.now()
            result = decoder.feed(advert.service_data, now)
            if not result.accepted:
                return
            if result.counter_restart is not None:  # a new battery, or a replay of an early advert: say so
                log.warning(
                    "ble_counter_restarted", device=dev.id, previous=result.counter_restart[0],
                    counter=result.counter_restart[1],
                )
            before = self._heard.get(dev.id, {})
            battery = result.battery if result.battery is not None else before.get("battery")
            self._heard[dev.id] = {"last_seen": rfc3339(now), "rssi": advert.rssi, "battery": battery}
            port.report(dev.id, battery=result.battery)
            for g in result.gestures:
                if gestures is not None:
                    gestures.gesture(g, now)  # the hub says what it means: an alarm at once, a cancel, a check-in
            for e in result.emits:
                port.post(dev.id, e)

        async def emit_hub(e: Emit) -> None:
            await port.emit(None, e)

        if b.backend == "sim":
            from drivers.ble.sim import SimBackend, register_sim_ops

            sim_backend = SimBackend(adapter=b.adapter or "hci0")
            factory: Any = lambda: sim_backend  # noqa: E731  (one simulated radio, driven through the socket)
        else:
            from drivers.ble.backend import make_backend

            factory = lambda: make_backend("bleak", adapter=b.adapter)  # noqa: E731
        self.scanner = BleScanner(factory, list(by_address), on_advert, emit=emit_hub, silence_s=b.silence_s)
        if b.backend == "sim":
            register_sim_ops(port.sim, sim_backend, scanner=self.scanner)
        log.info("ble_started", backend=b.backend, devices=[d.id for d in devices])

    def _check_crypto(self, encrypted: Sequence[Any]) -> None:
        """With encrypted devices: AES-CCM's known-answer test now, not the first advert's failure later.

        If it fails (a broken crypto install) the hub runs on, for its other
        devices, and each encrypted device reports ``device.fault``
        (``decryption_unavailable``): its adverts cannot be read until the
        install is mended."""
        if not encrypted:
            return
        from drivers.ble.bthome.crypto import self_test

        error = self_test()
        if error is None:
            return
        log.error("ble_crypto_self_test_failed", error=error, devices=[d.id for d in encrypted],
                  action="reinstall the cryptography package; these devices' adverts cannot be read")
        for dev in encrypted:
            self.port.post(dev.id, Emit("device.fault", Priority.HIGH, {"fault": "decryption_unavailable", "code": None}))

    # --- GATT ---------------------------------------------------------------------------

    def _start_gatt(self, devices: Sequence[Any]) -> None:
        from drivers.ble.gatt import GattDevice, GattManager, NotifyMapping, make_client

        port, b = self.port, self.settings
        specs = []
        for dev in devices:
            g = dev.gatt
            mappings = [
                NotifyMapping(n.uuid, n.event, priority=n.priority, decode=n.decode, scale=n.scale, key=n.key)
                for n in g.notify
            ]
            specs.append(GattDevice(dev.id, g.address, mappings, battery_interval_s=g.battery_interval_s or None))

        async def emit(device_id: str, e: Emit) -> None:
            await port.emit(device_id, e)

        def on_battery(device_id: str, pct: int) -> None:
            port.report(device_id, battery=pct)

        if b.backend == "sim":
            from drivers.ble.gatt_sim import SimGattRegistry, register_gatt_sim_ops

            registry = SimGattRegistry()
            for spec in specs:  # simulated peripherals with the configured characteristics
                registry.add(spec.address, {m.uuid: b"" for m in spec.mappings})
            factory: Any = registry.client
        else:
            factory = lambda address: make_client("bleak", address, adapter=b.adapter)  # noqa: E731
        self.gatt = GattManager(
            specs, factory, emit, on_battery=on_battery, on_heard=port.report, max_connections=b.max_connections
        )
        if b.backend == "sim":
            register_gatt_sim_ops(port.sim, registry, manager=self.gatt)
        log.info("gatt_started", backend=b.backend, devices=[d.id for d in devices])

    # --- the driver as the hub sees it -----------------------------------------------------

    def tasks(self) -> Sequence[Task]:
        out: list[Task] = []
        if self.scanner is not None:
            out.append(("ble", self.scanner.run))
        if self.gatt is not None:
            out.append(("gatt", self.gatt.run))
        return out

    def health(self) -> dict[str, dict[str, Any]]:
        """Every configured device, heard or not: an advertising one never heard is ``"never heard"``;
        once heard, the time (``last_seen``), RSSI and battery of its last accepted advert."""
        health: dict[str, dict[str, Any]] = {}
        for dev_id, decoder in self.decoders.items():
            heard = self._heard.get(dev_id)
            state = "ok" if heard else "never heard"
            health[dev_id] = {"kind": self._kinds[dev_id], "state": state, **decoder.health(),
                              **(heard or {"last_seen": None, "rssi": None, "battery": None})}
        if self.scanner is not None:
            health["ble"] = self.scanner.health()
        if self.gatt is not None:
            for dev_id, h in self.gatt.health().items():
                health[dev_id] = {"kind": self._kinds[dev_id], "driver": "gatt", **h}
        return health

    def command(self, name: str, args: dict[str, Any]) -> dict[str, Any] | None:
        if name != "ble-forget":
            return None
        device = args.get("device")
        decoder = self.decoders.get(device)  # type: ignore[arg-type]
        if decoder is None:
            have = ", ".join(sorted(self.decoders)) or "none"
            return {"ok": False, "error": f"no BLE device {device!r}; have: {have}"}
        previous = decoder.guard.last_counter(decoder.address)
        decoder.guard.forget(decoder.address)
        log.warning("ble_counter_forgotten", device=device, previous=previous, by=args.get("by"))
        return {"ok": True, "device": device, "previous_counter": previous}

    def close(self) -> None:
        if self.scanner is not None:
            self.scanner.stop()
        if self.gatt is not None:
            self.gatt.stop()


def attach(port: HubPort, devices: Sequence[Any], settings: Any) -> BleDriver:
    """The BLE driver for ``devices`` (each with a ``[device.ble]`` or ``[device.gatt]`` table), on ``[ble]``."""
    return BleDriver(port, devices, settings)
