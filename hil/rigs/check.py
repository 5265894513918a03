"""``--dry-run``: check a rig file against the scenarios before anything moves on the bench.

:func:`check_rig` says, per scenario, whether it **runs**, is **skipped** (the rig lacks a
fixture it needs: which) or has **problems** (a device id it uses is not wired, or wired
for something else; a fixture it needs is declared without the wiring that fixture needs;
a step this rig cannot do). Problems of the rig file itself (a pin used twice, a fixture
declared without its wiring, a wire that does not match the hub's config) are listed
once, and again under each scenario that needs the fixture they concern.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from msgspec import Struct, field

from hil.fixtures import RigError, STEP_NEEDS, missing, needed
from hil.model import Background, BleFault, Repeat, Scenario, step_kind
from hil.rigs.hubservice import safe_state_dir
from hil.rigs.rigfile import BleWiring, GpioWiring, RigFile, SerialWiring, load_rig

Verdict = Literal["runs", "skip", "problems"]


class Problem(Struct, frozen=True):
    """One thing wrong; ``fixture`` is the fixture it stops (None: every scenario)."""

    fixture: str | None
    message: str


class ScenarioCheck(Struct, kw_only=True):
    """What a dry run found for one scenario."""

    name: str
    path: str = ""
    verdict: Verdict
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class RigCheck(Struct, kw_only=True):
    """The dry run's report: the rig file's own problems, and each scenario's verdict."""

    rig: str
    path: str
    fixtures: list[str]
    problems: list[Problem] = field(default_factory=list)
    scenarios: list[ScenarioCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem anywhere (skips are fine: the rig says what it lacks)."""
        return not self.problems and all(s.verdict != "problems" for s in self.scenarios)

    def render(self) -> str:
        """The report as a person reads it (``python -m hil run --rig FILE --dry-run ...``)."""
        out = [f"rig {self.rig} ({self.path}): {', '.join(self.fixtures) or 'no fixtures'}"]
        if self.problems:
            out.append("problems of the rig file:")
            out += [f"  {p.fixture or 'rig'}: {p.message}" for p in self.problems]
        width = max([len(s.name) for s in self.scenarios] + [8])
        for s in self.scenarios:
            if s.verdict == "skip":
                detail = "lacks " + ", ".join(s.missing)
            else:
                detail = s.problems[0] if s.problems else ""
            out.append(f"{s.name:<{width}}  {s.verdict:<8}  {detail}".rstrip())
            out += [f"{'':<{width}}  {'':<8}  {p}" for p in s.problems[1:]]
        counts = {v: sum(s.verdict == v for s in self.scenarios) for v in ("runs", "skip", "problems")}
        out.append(f"{counts['runs']} run, {counts['skip']} skipped, {counts['problems']} with problems")
        return "\n".join(out)


# --- the rig file on its own ------------------------------------------------------------------


def _pins(rig: RigFile) -> Iterator[tuple[str, int]]:
    for dev, w in rig.device.items():
        if isinstance(w, GpioWiring):
            for key in ("drive_pin", "hub_pin", "led_sense_pin", "hub_led_pin", "buzzer_sense_pin", "hub_buzzer_pin"):
                if (pin := getattr(w, key)) is not None:
                    yield f"device.{dev}.{key}", pin
    if rig.power is not None:
        yield "power.relay_pin", rig.power.relay_pin


def rig_problems(rig: RigFile, hub_config: dict[str, Any] | None = None) -> list[Problem]:
    """What is wrong with the rig file whatever the scenarios (and against the hub's config, when given)."""
    have = set(rig.rig.fixtures)
    out: list[Problem] = []
    seen: dict[int, str] = {}
    for where, pin in _pins(rig):
        if pin in seen:
            out.append(Problem(None, f"GPIO{pin} used twice: {seen[pin]} and {where}"))
        seen.setdefault(pin, where)
    gpio = {d: w for d, w in rig.device.items() if isinstance(w, GpioWiring)}
    serial = {d: w for d, w in rig.device.items() if isinstance(w, SerialWiring)}
    ble = {d: w for d, w in rig.device.items() if isinstance(w, BleWiring)}

    def need(fixture: str, ok: bool, message: str) -> None:
        if fixture in have and not ok:
            out.append(Problem(fixture, message))

    need("gpio_loopback", bool(gpio), "declared, but no device has gpio wiring")
    for d, w in gpio.items():
        need("gpio_loopback", w.drive_pin is not None, f"device.{d}: no drive_pin (the rig output wired to the hub's input)")
        need("gpio_loopback", w.hub_pin is not None, f"device.{d}: no hub_pin (the hub input its drive_pin is wired to)")
        for out_name in ("led", "buzzer"):
            sense, hub = getattr(w, f"{out_name}_sense_pin"), getattr(w, f"hub_{out_name}_pin")
            need("led_readback", sense is not None or hub is None,
                 f"device.{d}: hub_{out_name}_pin = {hub} but no {out_name}_sense_pin reads it back")
            need("led_readback", hub is not None or sense is None,
                 f"device.{d}: {out_name}_sense_pin = {sense} but no hub_{out_name}_pin says which output it reads")
    need("led_readback", any(w.led_sense_pin is not None or w.buzzer_sense_pin is not None for w in gpio.values()),
         "declared, but no device has a sense pin")
    need("uart_loopback", bool(serial), "declared, but no device has serial wiring")
    ports: dict[str, str] = {}
    for d, w in serial.items():
        need("uart_loopback", w.port is not None, f"device.{d}: no port (the rig's adapter its emulator plays on)")
        need("uart_loopback", w.hub_port is not None, f"device.{d}: no hub_port (the null-modem partner, the hub's port)")
        for key in ("port", "hub_port"):
            p = getattr(w, key)
            if p is not None and p in ports:
                out.append(Problem("uart_loopback", f"{p} used twice: {ports[p]} and device.{d}.{key}"))
            if p is not None:
                ports.setdefault(p, f"device.{d}.{key}")
    need("ble_advertiser", rig.ble is not None, "declared, but no [ble] adapter")
    need("ble_advertiser", bool(ble), "declared, but no device has ble wiring")
    for d, w in ble.items():
        need("ble_advertiser", w.address is not None, f"device.{d}: no address")
        if w.address is not None and int(w.address[:2], 16) & 0xC0 != 0xC0:
            need("ble_advertiser", False, f"device.{d}: {w.address} is no static random address (first byte C0-FF)")
    if rig.ble is not None:
        need("ble_advertiser", rig.ble.adapter != rig.ble.hub_adapter,
             f"ble.adapter = {rig.ble.adapter}: the hub's own adapter; the rig advertises from a second one")
    need("ble_fault", rig.ble is not None and rig.ble.hub_usb is not None,
         "declared, but no [ble] hub_usb (the hub's dongle, which adapter_gone unplugs)")
    need("broker_control", rig.broker.control is not None, "declared, but no [broker.control] unit")
    need("net_impair", rig.network is not None, "declared, but no [network] interface")
    need("power_cut", rig.power is not None, "declared, but no [power] relay_pin")
    need("power_cut", rig.hub.ssh is not None,
         "declared, but [hub] ssh is unset: on the hub's own Pi the relay would cut the rig off too")
    need("disk_fill", rig.disk is not None, "declared, but no [disk] fill_file")
    need("check_config", False, "not on the physical rig (the config check needs no hardware: run it virtual)")
    need("config_push", False, "not on the physical rig yet (the central's push key would have to be installed on "
                               "the hub's local file: run it virtual)")
    try:
        safe_state_dir(rig.hub.state_dir)
    except RigError as exc:
        out.append(Problem("hub_control", str(exc)))
    if hub_config is not None:
        out += hub_config_problems(rig, hub_config)
    return out


def hub_config_problems(rig: RigFile, cfg: dict[str, Any]) -> list[Problem]:
    """Wires that do not match the hub's config: a hub pin, port or address no configured device has."""
    devices = [d for d in cfg.get("device", []) if isinstance(d, dict)]
    out: list[Problem] = []

    def find(section: str, key: str, value: Any) -> dict[str, Any] | None:
        for d in devices:
            sec = d.get(section) or {}
            if str(sec.get(key, "")).upper().removeprefix("GPIO") == str(value).upper().removeprefix("GPIO"):
                return d
        return None

    for dev, w in rig.device.items():
        if isinstance(w, GpioWiring) and w.hub_pin is not None:
            hub = find("gpio", "pin", w.hub_pin)
            if hub is None:
                out.append(Problem("gpio_loopback", f"device.{dev}: no device in the hub config has its input on "
                                                    f"GPIO{w.hub_pin}"))
                continue
            for key in ("led_pin", "buzzer_pin"):
                mine, theirs = getattr(w, f"hub_{key}"), hub["gpio"].get(key)
                if mine is not None and str(theirs) != str(mine):
                    out.append(Problem("led_readback", f"device.{dev}: hub_{key} = {mine}, but the hub config's "
                                                       f"{hub.get('id')} has {key} = {theirs}"))
        elif isinstance(w, SerialWiring) and w.hub_port is not None and find("serial", "port", w.hub_port) is None:
            out.append(Problem("uart_loopback", f"device.{dev}: no device in the hub config reads {w.hub_port}"))
        elif isinstance(w, BleWiring) and w.address is not None:
            hub = find("ble", "address", w.address)
            if hub is None:
                out.append(Problem("ble_advertiser", f"device.{dev}: no device in the hub config has address "
                                                     f"{w.address}"))
            elif (hub["ble"].get("bindkey") or "").lower() != (w.bindkey or "").lower():
                out.append(Problem("ble_advertiser", f"device.{dev}: its bindkey differs from the hub config's "
                                                     f"{hub.get('id')} (one encrypts, the other does not, or the keys differ)"))
    return out


# --- each scenario ------------------------------------------------------------------------------


def _indexed(steps: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for i, s in enumerate(steps, start=1):
        yield f"{prefix}{i}", s
        if isinstance(s, (Repeat, Background)):
            yield from _indexed(s.steps, f"{prefix}{i}.")


def step_problems(rig: RigFile, scenario: Scenario) -> list[str]:
    """What stops this scenario's steps on this rig: unwired or wrongly wired devices, impossible steps."""
    out: list[str] = []
    for index, step in _indexed(scenario.step):
        do = step_kind(step)
        where = f"step {index} ({do})"
        if isinstance(step, BleFault):
            if step.kind == "in_progress":
                out.append(f"{where}: BlueZ's InProgress cannot be provoked on real hardware")
            continue
        device = getattr(step, "device", None)
        if device is None or do not in STEP_NEEDS:
            continue
        w = rig.device.get(device)
        kind = {"press": GpioWiring, "hold": GpioWiring, "release": GpioWiring, "pull": GpioWiring,
                "expect_feedback": GpioWiring, "serial": SerialWiring, "unplug": SerialWiring,
                "replug": SerialWiring, "advertise": BleWiring}.get(do)
        if kind is None:
            continue
        if w is None:
            out.append(f"{where}: device {device!r} is not in the rig file")
        elif not isinstance(w, kind):
            out.append(f"{where}: device {device!r} is wired as {w.__struct_config__.tag}, the step needs "
                       f"{kind.__struct_config__.tag}")
        elif isinstance(w, GpioWiring) and do == "expect_feedback":
            if getattr(w, f"{step.output}_sense_pin") is None:
                out.append(f"{where}: device {device!r} has no {step.output}_sense_pin")
        elif isinstance(w, GpioWiring) and w.drive_pin is None:
            out.append(f"{where}: device {device!r} has no drive_pin")
        elif isinstance(w, SerialWiring) and w.port is None:
            out.append(f"{where}: device {device!r} has no port for its emulator")
        elif isinstance(w, SerialWiring) and do in ("unplug", "replug") and w.hub_usb is None:
            out.append(f"{where}: device {device!r} has no hub_usb: the rig cannot pull the hub's cable")
        elif isinstance(w, BleWiring) and w.address is None:
            out.append(f"{where}: device {device!r} has no address")
    return list(dict.fromkeys(out))


def check_rig(
    rig: RigFile | str | Path, scenarios: Iterable[Scenario], *, hub_config: dict[str, Any] | None = None
) -> RigCheck:
    """The dry run: ``rig`` (a loaded rig file or its path) against already-loaded ``scenarios``.

    ``hub_config``: the hub's config as parsed TOML, to check the wires against it
    (:func:`read_hub_config` reads it when the hub is this machine).
    """
    if not isinstance(rig, RigFile):
        rig = load_rig(rig)
    problems = rig_problems(rig, hub_config)
    report = RigCheck(rig=rig.rig.name, path=rig.path, fixtures=list(rig.rig.fixtures), problems=problems)
    for sc in scenarios:
        name = sc.name or sc.scenario.title
        lacks = missing(sc, rig.rig.fixtures)
        if lacks:
            report.scenarios.append(ScenarioCheck(name=name, path=sc.path, verdict="skip", missing=lacks))
            continue
        needs = needed(sc)
        found = [f"{p.fixture}: {p.message}" if p.fixture else p.message
                 for p in problems if p.fixture is None or p.fixture in needs]
        found += step_problems(rig, sc)
        report.scenarios.append(
            ScenarioCheck(name=name, path=sc.path, verdict="problems" if found else "runs", problems=found)
        )
    return report


def read_hub_config(rig: RigFile) -> dict[str, Any] | None:
    """The hub's config as parsed TOML, when the hub is this machine and the file is readable; else None."""
    if rig.hub.ssh is not None:
        return None
    try:
        return tomllib.loads(Path(rig.hub.config).read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
