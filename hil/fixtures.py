"""What a rig has (its fixtures) and what the runner asks of it (:class:`Rig`).

As Zephyr's twister tags a test with the fixture it needs (``gpio_loopback``)
and runs it only on boards that declare it, a scenario needs the fixtures its
steps use (:func:`needed`) plus any it names in ``needs``; a rig that lacks
one skips the scenario and says which (:func:`missing`).

Two rigs implement :class:`Rig`: the virtual one (:mod:`hil.rigs.virtual`:
its own Mosquitto, the hub as a subprocess on the simulated pin factory, pty
serial emulators, the simulated BLE source) and the physical one
(:mod:`hil.rigs.physical`: a Raspberry Pi with loopback wiring, described by a
rig file). The runner never knows which it drives.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, Protocol

from hil.model import Scenario, step_kind, walk_steps

#: Every fixture a rig may declare, and what it lets a scenario do.
FIXTURES: dict[str, str] = {
    "gpio_loopback": "an output wired to each button or cord input: press, hold, release, pull",
    "led_readback": "each LED and buzzer output wired back to an input: expect_feedback",
    "uart_loopback": "a serial device's emulator on the far end of the hub's port: serial, unplug, replug",
    "ble_advertiser": "a second adapter advertising as the residence's BLE devices: advertise",
    "ble_fault": "faults of the hub's BLE adapter (InProgress, gone, silent): ble_fault",
    "broker_control": "the central's broker can be stopped and started: broker_stop, broker_start",
    "net_cut": "the hub's network can be cut silently: net_cut, net_restore",
    "net_impair": "delay and loss on the hub's network: net_impair",
    "hub_control": "the hub can be killed (-9) and started: hub_kill, hub_start",
    "power_cut": "the hub's power can be cut, unsynced writes lost: power_cut",
    "disk_fill": "the state directory's filesystem can be filled: disk_fill, disk_free",
    "wall_clock": "the hub's wall clock can be stepped: clock_step",
    "check_config": "carehub check-config can be run on changed configs: check_config",
    "config_push": "the central can push a signed config to the hub (cmd/config): push_config",
    "gsm_modem": "a GSM modem on the hub's modem port whose SMS can be read and which can receive one "
                 "(the modem emulator): expect_sms, and serial steps to device modem (sms, fault)",
}

#: The fixture each kind of step needs (steps not listed need only a hub and a central).
STEP_NEEDS: dict[str, str] = {
    "press": "gpio_loopback",
    "hold": "gpio_loopback",
    "release": "gpio_loopback",
    "pull": "gpio_loopback",
    "expect_feedback": "led_readback",
    "serial": "uart_loopback",
    "unplug": "uart_loopback",
    "replug": "uart_loopback",
    "advertise": "ble_advertiser",
    "ble_fault": "ble_fault",
    "broker_stop": "broker_control",
    "broker_start": "broker_control",
    "net_cut": "net_cut",
    "net_restore": "net_cut",
    "net_impair": "net_impair",
    "hub_kill": "hub_control",
    "hub_start": "hub_control",
    "power_cut": "power_cut",
    "disk_fill": "disk_fill",
    "disk_free": "disk_fill",
    "clock_step": "wall_clock",
    "check_config": "check_config",
    "push_config": "config_push",
    "expect_sms": "gsm_modem",
}

RigKind = Literal["virtual", "physical"]


def needed(scenario: Scenario) -> set[str]:
    """The fixtures a scenario needs: those its steps use and those it names."""
    out = set(scenario.scenario.needs)
    for step in walk_steps(scenario.step):
        if (fx := STEP_NEEDS.get(step_kind(step))) is not None:
            out.add(fx)
    return out


def missing(scenario: Scenario, have: Iterable[str]) -> list[str]:
    """The fixtures ``scenario`` needs that a rig with ``have`` lacks, sorted (empty: it can run)."""
    return sorted(needed(scenario) - set(have))


class Central(Protocol):
    """The alarm central as the rig sees it: a recorder on the broker (:mod:`hil.central`)."""

    def arrivals(self) -> list[Arrival]:
        """Every event received so far, in arrival order (duplicates included)."""

    def wait(self, start: int, timeout_s: float) -> bool:
        """Block until an event beyond index ``start`` arrives or ``timeout_s`` passes; True if one did."""

    def ack(self, event_id: str, by: str) -> dict[str, Any]:
        """Send ``cmd/ack`` for ``event_id`` as an operator would; the hub's reply."""

    def status(self) -> str | None:
        """The hub's retained status (``online`` / ``offline``), None before any."""

    def problems(self) -> list[str]:
        """What the recorder found wrong: seq gaps, an id seen with different bodies, bad priorities."""

    def summary(self) -> dict[str, Any]:
        """Counts for the record: received, unique, duplicates, gaps, by type."""


class Arrival(Protocol):
    """One event as the central received it."""

    #: CLOCK_MONOTONIC seconds at receipt (the rig's clock; edges are on the same clock).
    t: float
    #: The event's JSON body.
    event: dict[str, Any]
    duplicate: bool


class Rig(Protocol):
    """A place where scenarios run. Methods block; each returns when its action has taken effect.

    Instants (``float``) are CLOCK_MONOTONIC seconds on the machine that runs the runner:
    an edge's instant is when the rig drove the pin, an arrival's when the central got it.
    """

    kind: RigKind
    name: str
    fixtures: frozenset[str]
    central: Central

    def setup(self, scenario: Scenario, workdir: Path) -> None:
        """Ready the rig for one scenario: the residence config with ``scenario.hub.config`` merged in,
        broker, emulators, central; the hub started when ``scenario.hub.start``."""

    def teardown(self) -> None:
        """Undo everything ``setup`` and the steps did (broker, network, disk, processes)."""

    def info(self) -> dict[str, Any]:
        """For the record: the hub's version, the config's hash (sha256), the rig's own facts."""

    def taken(self) -> list[str]:
        """Ids of the alarms the hub took (committed or held) since setup, across restarts."""

    def log_tail(self, lines: int = 60) -> str:
        """The end of the hub's log, for a failed scenario's record."""

    # the resident
    def press(self, device: str, hold_s: float) -> float: ...
    def hold(self, device: str) -> float: ...
    def release(self, device: str) -> float: ...
    def feedback(self, device: str, output: str) -> str:
        """The LED's (or buzzer's) current pattern: off, fast_blink, slow_blink, steady, fault, checkin."""

    # the devices
    def serial(self, device: str, send: str, args: dict[str, Any]) -> float: ...
    def unplug(self, device: str) -> None: ...
    def replug(self, device: str) -> None: ...
    def advertise(self, device: str, values: dict[str, Any], replay: bool) -> float: ...
    def ble_fault(self, kind: str, times: int, running: bool) -> None: ...
    def sms(self, device: str) -> dict[str, Any]:
        """The modem's record: ``cmgs`` (the number of every AT+CMGS asked), ``sent`` (to, text, ref)."""

    # the world
    def clock_step(self, seconds: float) -> None: ...
    def broker_stop(self) -> None: ...
    def broker_start(self) -> None: ...
    def net_cut(self) -> None: ...
    def net_impair(self, delay_ms: float, jitter_ms: float, loss_pct: float) -> None: ...
    def net_restore(self) -> None: ...
    def hub_kill(self, restart: bool) -> None: ...
    def hub_start(self) -> None: ...
    def power_cut(self, restart: bool) -> None: ...
    def disk_fill(self) -> None: ...
    def disk_free(self) -> None: ...
    def check_config(self, set_: dict[str, Any], text: str) -> tuple[int, str]:
        """Run check-config on the rig's config so changed; (exit code, output)."""

    def push_config(self, version: int, set_: dict[str, Any], unreachable: bool) -> dict[str, Any]:
        """Push the rig's config so changed as ``version`` (cmd/config, signed); the hub's reply."""


class RigError(Exception):
    """The rig could not do what a step asked (a fixture broke, not the hub): the scenario errors."""
