"""The rig file of a physical bench: what it has and how it is wired, as data.

A rig file (``hil/rigs/pi-example.toml``) is one :class:`RigFile`:

* ``[rig]``: its name, ``kind = "physical"``, the fixtures it declares (names
  from :data:`hil.fixtures.FIXTURES`), the gpiozero pin factory of the rig's
  own pins;
* ``[broker]``: the broker the hub and the central recorder use, its TLS and
  credential files, and (``[broker.control]``) the systemd unit that stops and
  starts it, for ``broker_control``;
* ``[hub]``: how the hub runs: its systemd unit, config, state directory, the
  ``carehub`` program, its user (``net_cut`` matches its packets by uid) and,
  when the hub is another machine, the ``ssh`` destination its commands go to;
* ``[network]``, ``[ble]``, ``[power]``, ``[disk]``: what ``net_cut`` /
  ``net_impair``, ``ble_advertiser`` / ``ble_fault``, ``power_cut`` and
  ``disk_fill`` act on;
* ``[device.<id>]``: per device id the scenarios use (``button-1``, ``bed``,
  ``ble-button``...), its wiring, a tagged union on ``wiring``:
  :class:`GpioWiring` (drive pin to the hub's input, sense pins from its LED
  and buzzer), :class:`SerialWiring` (the emulator's USB-serial adapter and
  its null-modem partner, the hub's port), :class:`BleWiring` (the address the
  advertiser takes, the BTHome bindkey).

Pins are BCM numbers. Wiring fields are optional in the struct: a rig file
that declares a fixture without the wiring it needs still loads, and
:func:`hil.rigs.check.check_rig` (``--dry-run``) says what is missing.

The structs are msgspec, keyword-only, unknown keys refused; :func:`load_rig`
reads a file with the generic TOML loader, so every mistake is
``FILE:LINE:COL: key.path: what was expected``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, Union

from msgspec import Meta, Struct, field

from hil.fixtures import FIXTURES

#: A fixture name (one of :data:`hil.fixtures.FIXTURES`).
FixtureName = Literal[tuple(FIXTURES)]  # type: ignore[valid-type]
#: A BCM GPIO number of the 40-pin header.
Pin = Annotated[int, Meta(ge=0, le=27)]
MAC = Annotated[str, Meta(pattern=r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")]
Bindkey = Annotated[str, Meta(pattern=r"^[0-9A-Fa-f]{32}$")]
Unit = Annotated[str, Meta(pattern=r"^[A-Za-z0-9@._:-]{1,128}$")]
DeviceId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class _Table(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Base of every rig-file table: keyword-only, frozen, unknown keys refused."""


class RigHead(_Table):
    """``[rig]``: who the bench is and what it can do."""

    name: Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    kind: Literal["physical"]
    fixtures: list[FixtureName] = field(default_factory=list)
    #: gpiozero's factory for the rig's own pins (``lgpio`` on a Pi 4/5 with Raspberry Pi OS bookworm).
    pin_factory: Literal["lgpio", "rpigpio", "pigpio", "native"] = "lgpio"
    description: str = ""


class BrokerControl(_Table):
    """``[broker.control]``: stop and start the broker with ``systemctl stop|start UNIT``."""

    unit: Unit = "mosquitto"
    #: Where systemctl runs: this machine (``local``) or the hub's (``hub``, through ``hub.ssh``).
    on: Literal["local", "hub"] = "local"


class Broker(_Table):
    """``[broker]``: the broker the hub publishes to and the central recorder subscribes on."""

    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535)] = 1883
    #: The prefix the hub's topics start with (as in the hub's ``[mqtt] prefix``).
    prefix: str = "carehub/v1"
    tls: bool = False
    ca: str | None = None
    #: The central recorder's client certificate and key (when the broker asks for one).
    cert: str | None = None
    key: str | None = None
    username: str | None = None
    password_file: str | None = None
    control: BrokerControl | None = None


class Hub(_Table):
    """``[hub]``: the hub under test, a systemd service (``systemd/carehub.service``)."""

    unit: Unit = "carehub"
    #: The bench's residence config; each scenario's ``[hub.config]`` is merged over it.
    config: str = "/etc/carehub/hub.toml"
    #: The state directory the rig gives the hub (emptied before each scenario); must lie under
    #: the unit's StateDirectory (``/var/lib/carehub``), the only place the unit may write.
    state_dir: str = "/var/lib/carehub/hil"
    carehub: str = "/opt/carehub/.venv/bin/carehub"
    #: The user the unit runs as (``User=``): net_cut and net_impair pick the hub's packets by it.
    user: str = "carehub"
    #: ``user@host`` when the hub is another machine than the one running the rig (needed for power_cut).
    ssh: str | None = None
    online_timeout_s: Annotated[float, Meta(gt=0, le=600)] = 60.0


class Network(_Table):
    """``[network]``: where the hub's packets to the broker leave (``lo`` when the broker is on the hub's Pi)."""

    interface: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:-]{1,15}$")] = "eth0"


class Ble(_Table):
    """``[ble]``: the rig's advertising adapter, and the hub's adapter for ``ble_fault``."""

    #: The second adapter, which advertises as the residence's BLE devices.
    adapter: Annotated[str, Meta(pattern=r"^hci[0-9]{1,2}$")] = "hci1"
    #: How long one advert stays on the air (a BTHome button repeats its event for about a second).
    advert_ms: Annotated[float, Meta(ge=50, le=10_000)] = 1000
    #: The hub's adapter, and its USB device path (``1-1.4``, see ``udevadm info``) to unplug it for ble_fault.
    hub_adapter: Annotated[str, Meta(pattern=r"^hci[0-9]{1,2}$")] = "hci0"
    hub_usb: Annotated[str, Meta(pattern=r"^[0-9]+-[0-9.]+$")] | None = None


class Power(_Table):
    """``[power]``: a relay in the hub Pi's 5 V supply, driven by a pin of the rig's machine (power_cut)."""

    relay_pin: Pin
    #: The relay cuts the supply when its pin is high (``false``: when low).
    active_high: bool = True
    off_s: Annotated[float, Meta(gt=0, le=60)] = 3.0
    #: How long the hub's Pi may take to boot and bring the hub online again.
    boot_timeout_s: Annotated[float, Meta(gt=0, le=900)] = 180.0


class Disk(_Table):
    """``[disk]``: a small filesystem mounted on the hub's state directory, which ``disk_fill`` fills."""

    #: The file that eats the space (on the hub's state filesystem, outside the state directory itself).
    fill_file: str


class GpioWiring(_Table, tag="gpio", tag_field="wiring"):
    """A button or pull-cord: the rig's ``drive_pin`` wired to the hub's input ``hub_pin`` (pressed = low,
    the hub's input has its pull-up), the hub's LED and buzzer outputs wired back to sense inputs."""

    drive_pin: Pin | None = None
    hub_pin: Pin | None = None
    led_sense_pin: Pin | None = None
    hub_led_pin: Pin | None = None
    buzzer_sense_pin: Pin | None = None
    hub_buzzer_pin: Pin | None = None


class SerialWiring(_Table, tag="serial", tag_field="wiring"):
    """A serial device: its emulator plays on ``port`` (a USB-serial adapter), whose null-modem partner
    is the hub's ``hub_port``; ``hub_usb`` (the hub-side adapter's USB path) lets unplug really pull it."""

    protocol: Literal["bedmat", "dispenser", "espa444"]
    port: str | None = None
    hub_port: str | None = None
    hub_usb: Annotated[str, Meta(pattern=r"^[0-9]+-[0-9.]+$")] | None = None


class BleWiring(_Table, tag="ble", tag_field="wiring"):
    """A BLE (BTHome) device: the address the rig's adapter takes while advertising as it (a static
    random address: the first byte C0-FF) and its bindkey when it encrypts (as in the hub's config)."""

    address: MAC | None = None
    bindkey: Bindkey | None = None


Wiring = Union[GpioWiring, SerialWiring, BleWiring]


class RigFile(_Table):
    """One rig file. ``path`` is set by :func:`load_rig`."""

    rig: RigHead
    broker: Broker = field(default_factory=Broker)
    hub: Hub = field(default_factory=Hub)
    network: Network | None = None
    ble: Ble | None = None
    power: Power | None = None
    disk: Disk | None = None
    device: dict[DeviceId, Wiring] = field(default_factory=dict)
    path: str = ""


class RigFileError(Exception):
    """A rig file that cannot be used; ``str()`` is one ``FILE:LINE:COL: key: message`` per line."""


def load_rig(path: str | os.PathLike[str]) -> RigFile:
    """Load and validate a rig file.

    Reads it with the generic loader, ``hil.loader.load_toml_struct(path, RigFile)``, which
    raises with a ``FILE:LINE:COL: key.path: expected ...`` line per mistake. Until that
    loader is merged, a stand-in does the same without the positions (``FILE: message``).
    """
    p = Path(path)
    try:
        from hil.loader import load_toml_struct  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        load_toml_struct = _load_without_positions
    rig = load_toml_struct(p, RigFile)
    import msgspec

    return msgspec.structs.replace(rig, path=str(p))


def _load_without_positions(path: Path, struct_type: type[RigFile]) -> RigFile:
    """The stand-in for ``hil.loader.load_toml_struct``: tomllib + msgspec, errors as ``FILE: message``."""
    import tomllib

    import msgspec

    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise RigFileError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RigFileError(f"{path}: {exc}") from None
    try:
        return msgspec.convert(data, struct_type)
    except msgspec.ValidationError as exc:
        raise RigFileError(f"{path}: {exc}") from None
