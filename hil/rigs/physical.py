"""The physical rig: a Raspberry Pi bench with loopback wiring, described by a rig file.

:class:`PhysicalRig` implements :class:`hil.fixtures.Rig` over small fixtures, one per
kind of wiring (:mod:`hil.rigs.pi_fixtures`, :mod:`hil.rigs.pi_ble`), the hub's systemd
unit (:mod:`hil.rigs.hubservice`) and the host commands (:mod:`hil.rigs.hostops`), every
program run through a :class:`~hil.rigs.commands.CommandRunner`. So its logic runs in
the tests on gpiozero's MockFactory and a fake runner; on a bench, on the real pin
factory and :class:`~hil.rigs.commands.LocalRunner` (``SshRunner`` towards the hub
when ``[hub] ssh`` is set).

What each step does on the bench:

==========================  ===========================================================
press / hold / release      the rig's drive pin low / high (the hub's input has its pull-up)
expect_feedback             the sense pin sampled for 3 s, the pattern classified
serial                      the device's emulator on the rig's USB-serial adapter sends
unplug / replug             the hub's adapter deauthorized / authorized (sysfs)
advertise                   hci1 advertises the BTHome service data (raw HCI, hcitool)
ble_fault                   adapter_gone / adapter_back: the hub's dongle deauthorized /
                            authorized; silent: ``systemctl restart bluetooth``;
                            in_progress cannot be provoked on real hardware (error)
clock_step                  NTP off (``timedatectl set-ntp false``), ``date -s @T``
broker_stop / broker_start  ``systemctl stop|start mosquitto`` (here or on the hub)
net_cut / net_impair        nftables by the hub's uid; prio + netem (hil/rigs/hostops.py)
hub_kill / hub_start        ``systemctl kill -s KILL carehub`` / ``systemctl start carehub``
power_cut                   the relay in the hub Pi's supply opens for ``off_s``
disk_fill / disk_free       ``fallocate`` + ``dd`` of ``[disk] fill_file`` / ``rm`` it
check_config                not on this rig (the config check needs no hardware)
push_config                 not on this rig yet (the push key is the installer's to install)
==========================  ===========================================================

The central recorder is made by ``central_factory`` from the rig file's ``[broker]``
(the runner passes :mod:`hil.central`'s), a new one per scenario.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from gpiozero import Factory

from hil.fixtures import Central, RigError
from hil.model import Replug, Scenario, Serial, Unplug, walk_steps
from hil.rigs import hostops
from hil.rigs.commands import CommandRunner, LocalRunner, SshRunner
from hil.rigs.hubservice import HubService
from hil.rigs.pi_ble import BleAdvertiser
from hil.rigs.pi_fixtures import LedSense, LoopbackButton, Relay, UartEmulator
from hil.rigs.rigfile import BleWiring, Broker, GpioWiring, RigFile, SerialWiring

log = structlog.get_logger("hil.rigs.physical")

CentralFactory = Callable[[Broker], Central]


class PhysicalRig:
    """A Raspberry Pi bench (see the module doc); the runner drives it through :class:`hil.fixtures.Rig`."""

    kind = "physical"

    def __init__(
        self, rig: RigFile, *, factory: Factory | None = None, runner: CommandRunner | None = None,
        hub_runner: CommandRunner | None = None, central_factory: CentralFactory | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rig = rig
        self.name = rig.rig.name
        self.fixtures = frozenset(rig.rig.fixtures)
        self.runner = runner or LocalRunner()
        self.hub_runner = hub_runner or (SshRunner(rig.hub.ssh, self.runner) if rig.hub.ssh else self.runner)
        self.broker_runner = self.hub_runner if rig.broker.control and rig.broker.control.on == "hub" else self.runner
        self.sleep = sleep
        self.central_factory = central_factory
        self.central: Central = _NoCentral()
        self.service = HubService(rig.hub, self.hub_runner, persistent_dropin=rig.power is not None, sleep=sleep)
        if factory is None:
            from drivers.gpio.factory import make_pin_factory

            factory = make_pin_factory(rig.rig.pin_factory)
        self.factory = factory
        self.buttons: dict[str, LoopbackButton] = {}
        self.senses: dict[tuple[str, str], LedSense] = {}
        for dev, w in rig.device.items():
            if not isinstance(w, GpioWiring):
                continue
            if "gpio_loopback" in self.fixtures and w.drive_pin is not None:
                self.buttons[dev] = LoopbackButton(w.drive_pin, factory=factory, sleep=sleep)
            if "led_readback" in self.fixtures:
                for output, pin in (("led", w.led_sense_pin), ("buzzer", w.buzzer_sense_pin)):
                    if pin is not None:
                        self.senses[(dev, output)] = LedSense(pin, factory=factory)
        self.relay = (Relay(rig.power.relay_pin, factory=factory, active_high=rig.power.active_high)
                      if rig.power is not None and "power_cut" in self.fixtures else None)
        self.advertiser = (BleAdvertiser(self.runner, adapter=rig.ble.adapter, advert_s=rig.ble.advert_ms / 1000)
                           if rig.ble is not None and "ble_advertiser" in self.fixtures else None)
        self.emulators: dict[str, UartEmulator] = {}
        self._faults = {"cut": False, "impair": False}
        self._ntp_off = False
        self._disk_filled = False
        self._broker_stopped = False
        self._was_active: bool | None = None
        self._cut_cursor: str | None = None

    # --- lookups ----------------------------------------------------------------------------

    def _wiring(self, device: str, kind: type[Any]) -> Any:
        w = self.rig.device.get(device)
        if not isinstance(w, kind):
            what = {GpioWiring: "gpio", SerialWiring: "serial", BleWiring: "ble"}[kind]
            raise RigError(f"{device}: no {what} wiring in rig file {self.rig.path or self.name}")
        return w

    def _button(self, device: str) -> LoopbackButton:
        self._wiring(device, GpioWiring)
        if device not in self.buttons:
            raise RigError(f"{device}: no drive_pin (or gpio_loopback not declared) in {self.rig.path or self.name}")
        return self.buttons[device]

    def _usb(self, usb: str | None, what: str) -> str:
        if usb is None:
            raise RigError(f"{what}: no hub_usb in {self.rig.path or self.name}: the rig cannot pull that cable")
        return usb

    # --- the scenario's frame -------------------------------------------------------------------

    def setup(self, scenario: Scenario, workdir: Path) -> None:
        """Write the scenario's config, empty the state directory, start the emulators it uses,
        make a central recorder, and start the hub unless the scenario starts it itself."""
        if self._was_active is None:
            self._was_active = self.service.state()[0] == "active"
        workdir.mkdir(parents=True, exist_ok=True)
        if self.central_factory is None:
            raise RigError("PhysicalRig needs a central_factory (the runner passes hil.central's recorder)")
        self.service.prepare(dict(scenario.hub.config))
        for dev in sorted({s.device for s in walk_steps(scenario.step) if isinstance(s, (Serial, Unplug, Replug))}):
            w = self._wiring(dev, SerialWiring)
            if w.port is None:
                raise RigError(f"{dev}: no port for its emulator in {self.rig.path or self.name}")
            self.emulators[dev] = UartEmulator(w.port, w.protocol, workdir=workdir, name=dev).start()
        self.central = self.central_factory(self.rig.broker)
        if scenario.hub.start:
            self.service.start()
        log.info("rig_setup", rig=self.name, scenario=scenario.name, emulators=sorted(self.emulators))

    def teardown(self) -> None:
        """Undo what the steps did (network, disk, clock, broker, power, cables), stop the hub and
        give the unit back its own config; start it again if it was running before the rig."""
        undo: list[tuple[str, Callable[[], None]]] = [
            ("net", self.net_restore if any(self._faults.values()) else _nothing),
            ("disk", self.disk_free if self._disk_filled else _nothing),
            ("clock", self._ntp_on if self._ntp_off else _nothing),
            ("broker", self.broker_start if self._broker_stopped else _nothing),
            ("power", self.relay.restore if self.relay is not None and self.relay.cutting else _nothing),
            ("buttons", self._release_buttons),
            ("ble", self.advertiser.stop if self.advertiser is not None else _nothing),
            ("emulators", self._stop_emulators),
            ("cables", self._replug_all),
            ("hub", self.service.stop),
            ("config", self.service.restore),
            ("central", self._close_central),
        ]
        errors = []
        for what, fn in undo:
            try:
                fn()
            except Exception as exc:  # every undo runs; the first failure is reported after
                log.error("rig_teardown_failed", part=what, error=str(exc))
                errors.append(f"{what}: {exc}")
        if self._was_active:
            self.service.start()
        if errors:
            raise RigError("teardown: " + "; ".join(errors))

    def _release_buttons(self) -> None:
        for button in self.buttons.values():
            button.release()

    def _close_central(self) -> None:
        close = getattr(self.central, "close", None) if not isinstance(self.central, _NoCentral) else None
        if close is not None:
            close()
        self.central = _NoCentral()

    def _stop_emulators(self) -> None:
        for emu in self.emulators.values():
            emu.stop()
        self.emulators.clear()

    def _replug_all(self) -> None:
        for w in self.rig.device.values():
            if isinstance(w, SerialWiring) and w.hub_usb is not None and "uart_loopback" in self.fixtures:
                argv, data = hostops.usb_authorized(w.hub_usb, True)
                self.hub_runner.run(argv, input=data, check=False)

    def info(self) -> dict[str, Any]:
        return {
            "hub_version": self.service.version(),
            "config_hash": self.service.config_sha256,
            "rig_file": self.rig.path,
            "fixtures": sorted(self.fixtures),
            "hub_unit": self.rig.hub.unit,
            "hub_host": self.rig.hub.ssh or "local",
            "broker": f"{self.rig.broker.host}:{self.rig.broker.port}",
        }

    def taken(self) -> list[str]:
        return self.service.taken()

    def log_tail(self, lines: int = 60) -> str:
        return self.service.log_tail(lines)

    # --- the resident ------------------------------------------------------------------------

    def press(self, device: str, hold_s: float) -> float:
        return self._button(device).press(hold_s)

    def hold(self, device: str) -> float:
        return self._button(device).hold()

    def release(self, device: str) -> float:
        return self._button(device).release()

    def feedback(self, device: str, output: str) -> str:
        self._wiring(device, GpioWiring)
        sense = self.senses.get((device, output))
        if sense is None:
            raise RigError(f"{device}: no {output}_sense_pin (or led_readback not declared) in {self.rig.path}")
        return sense.read()

    # --- the devices ---------------------------------------------------------------------------

    def serial(self, device: str, send: str, args: dict[str, Any]) -> float:
        emu = self.emulators.get(device)
        if emu is None:
            raise RigError(f"{device}: no emulator running (not wired as serial, or not set up)")
        return emu.send(send, args)

    def unplug(self, device: str) -> None:
        argv, data = hostops.usb_authorized(self._usb(self._wiring(device, SerialWiring).hub_usb, device), False)
        self.hub_runner.run(argv, input=data)

    def replug(self, device: str) -> None:
        argv, data = hostops.usb_authorized(self._usb(self._wiring(device, SerialWiring).hub_usb, device), True)
        self.hub_runner.run(argv, input=data)

    def advertise(self, device: str, values: dict[str, Any], replay: bool) -> float:
        w = self._wiring(device, BleWiring)
        if self.advertiser is None or w.address is None:
            raise RigError(f"{device}: no advertiser ([ble] and ble_advertiser) or no address in {self.rig.path}")
        return self.advertiser.advertise(device, values, address=w.address, bindkey=w.bindkey, replay=replay)

    def sms(self, device: str) -> dict[str, Any]:
        raise RigError("this rig has no modem to read SMS from (fixture gsm_modem)")

    def ble_fault(self, kind: str, times: int, running: bool) -> None:
        ble = self.rig.ble
        if kind == "silent":
            self.hub_runner.run(hostops.systemctl("restart", "bluetooth"))
        elif kind in ("adapter_gone", "adapter_back"):
            argv, data = hostops.usb_authorized(self._usb(ble.hub_usb if ble else None, "ble_fault"),
                                                kind == "adapter_back")
            self.hub_runner.run(argv, input=data)
        else:
            raise RigError(f"ble_fault {kind}: BlueZ's InProgress cannot be provoked on real hardware")

    # --- the world ----------------------------------------------------------------------------

    def clock_step(self, seconds: float) -> None:
        if not self._ntp_off:
            self.hub_runner.run(["timedatectl", "set-ntp", "false"])
            self._ntp_off = True
        now = float(self.hub_runner.run(["date", "+%s.%N"]).out.strip())
        self.hub_runner.run(["date", "-s", f"@{now + seconds:.3f}"])

    def _ntp_on(self) -> None:
        self.hub_runner.run(["timedatectl", "set-ntp", "true"])
        self._ntp_off = False

    def _broker(self, action: str) -> None:
        control = self.rig.broker.control
        if control is None:
            raise RigError(f"broker_{action}: no [broker.control] in {self.rig.path}")
        self.broker_runner.run(hostops.systemctl(action, control.unit), timeout=60)

    def broker_stop(self) -> None:
        self._broker("stop")
        self._broker_stopped = True

    def broker_start(self) -> None:
        self._broker("start")
        self._broker_stopped = False

    def _apply_net(self) -> None:
        ruleset = hostops.nft_ruleset(user=self.rig.hub.user, **self._faults)
        self.hub_runner.run(["nft", "-f", "-"], input=ruleset)

    def net_cut(self) -> None:
        self._faults["cut"] = True
        self._apply_net()

    def net_impair(self, delay_ms: float, jitter_ms: float, loss_pct: float) -> None:
        if self.rig.network is None:
            raise RigError(f"net_impair: no [network] interface in {self.rig.path}")
        iface = self.rig.network.interface
        if not (delay_ms or jitter_ms or loss_pct):
            self.hub_runner.run(hostops.netem_clear(iface), check=False)
            self._faults["impair"] = False
            self._apply_net()
            return
        self._faults["impair"] = True
        self._apply_net()
        for argv in hostops.netem_commands(iface, delay_ms, jitter_ms, loss_pct):
            self.hub_runner.run(argv)

    def net_restore(self) -> None:
        self._faults = {"cut": False, "impair": False}
        self._apply_net()
        if self.rig.network is not None:
            self.hub_runner.run(hostops.netem_clear(self.rig.network.interface), check=False)

    def hub_kill(self, restart: bool) -> None:
        self.service.kill()
        if restart:
            self.service.start()

    def hub_start(self) -> None:
        if self.relay is not None and self.relay.cutting:
            self.relay.restore()
            self.service.wait_online(self._cut_cursor, self.rig.power.boot_timeout_s if self.rig.power else 180)
            return
        self.service.start()

    def power_cut(self, restart: bool) -> None:
        if self.relay is None or self.rig.power is None:
            raise RigError(f"power_cut: no [power] relay in {self.rig.path}")
        if self.rig.hub.ssh is None:
            raise RigError("power_cut: the rig runs on the hub's own Pi ([hub] ssh unset); it would cut itself off")
        self._cut_cursor = hostops.parse_cursor(self.hub_runner.run(hostops.journal_cursor()).out)
        self.relay.cut()
        self.sleep(self.rig.power.off_s)
        if restart:
            self.hub_start()

    def disk_fill(self) -> None:
        if self.rig.disk is None:
            raise RigError(f"disk_fill: no [disk] in {self.rig.path}")
        f = self.rig.disk.fill_file
        folder = f.rsplit("/", 1)[0] or "/"
        avail = self.hub_runner.run(["df", "--output=avail", "-B1", folder]).out.split()[-1]
        self._disk_filled = True
        self.hub_runner.run(["fallocate", "-l", str(max(0, int(avail) - (1 << 20))), f], check=False)
        # the last MiB and whatever fallocate left: written until ENOSPC (dd then exits 1, as expected)
        self.hub_runner.run(["dd", "if=/dev/zero", f"of={f}", "bs=4096", "oflag=append", "conv=notrunc"],
                            timeout=120, check=False)

    def disk_free(self) -> None:
        if self.rig.disk is not None:
            self.hub_runner.run(["rm", "-f", self.rig.disk.fill_file])
        self._disk_filled = False

    def check_config(self, set_: dict[str, Any], text: str) -> tuple[int, str]:
        raise RigError("check_config: not on the physical rig (the config check needs no hardware: run it virtual)")

    def push_config(self, version: int, set_: dict[str, Any], unreachable: bool) -> dict[str, Any]:
        raise RigError("push_config: not on the physical rig yet (run it virtual)")

    def close(self) -> None:
        """Let go of the pins (the hub's pull-ups hold its inputs released)."""
        for dev in [*self.buttons.values(), *self.senses.values(), *([self.relay] if self.relay else [])]:
            dev.close()


def _nothing() -> None:
    return None


class _NoCentral:
    """Stands for the central before :meth:`PhysicalRig.setup` made one: every use is a rig error."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise RigError("no central recorder before setup")
