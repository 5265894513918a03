"""The residence config: TOML decoded into msgspec Structs, refused when wrong.

A hub is provisioned from one TOML file. :func:`load` reads it, checks every
key against the structs below (unknown keys are errors: a typo must not pass
silently), then checks what the structs cannot say alone (unique device ids,
files that exist and are private, a real time zone). All errors are reported
at once, each as ``FILE:LINE:COL: key.path: what was expected, what was found``
with the line taken from the TOML source.

Relative paths in the file are relative to the file's own directory.
"""

from __future__ import annotations

import difflib
import enum
import hashlib
import json
import os
import re
import stat
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from drivers.serial.bedmat import BedMatOptions
from drivers.serial.dispenser import DispenserOptions
from drivers.serial.espa444 import EspaOptions
from hub.events import Priority, Route
from hub.rules.config import WINDOW_HELP, WINDOW_PATTERN, RulesConfig
from hub.schematext import clean_descriptions
from hub.tomlpos import format_path, key_positions, locate

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
RESIDENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$"
PREFIX_PATTERN = r"^[^#+/][^#+]*[^#+/]$|^[^#+/]$"

#: What each pattern means, in the words an installer reads in an error message.
MAC_PATTERN = r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$"
BINDKEY_PATTERN = r"^[0-9A-Fa-f]{32}$"
_PATTERN_HELP = {
    NAME_PATTERN: "lower-case letters, digits, '-' and '_' (1 to 63, starting with a letter or digit, no spaces)",
    RESIDENT_PATTERN: "a pseudonymous resident id: 3 to 64 letters, digits, '-' and '_', no spaces (never a name)",
    PREFIX_PATTERN: "a topic prefix without '#' or '+' that neither starts nor ends with '/'",
    WINDOW_PATTERN: WINDOW_HELP,
    MAC_PATTERN: "a Bluetooth address such as 'A4:C1:38:12:34:56'",
    BINDKEY_PATTERN: "the device's 16-byte BTHome bindkey as 32 hex digits",
}

Seconds = Annotated[float, msgspec.Meta(gt=0)]
Name = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)]


class _Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Base of every config table: keyword-only, frozen, unknown keys refused."""


class HubSection(_Section):
    """``[hub]``: who this hub is."""

    id: Annotated[Name, msgspec.Meta(description="Hub id; appears in every topic and event.")]
    resident: Annotated[
        str,
        msgspec.Meta(
            pattern=RESIDENT_PATTERN,
            description="Pseudonymous resident id (letters, digits, - and _): never a name.",
        ),
    ]
    timezone: str = "Europe/Oslo"


class Broker(_Section):
    """``[[mqtt.broker]]``: one broker, tried in the order listed (failover)."""

    host: Annotated[str, msgspec.Meta(min_length=1)]
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 1883


class TlsSection(_Section):
    """``[mqtt.tls]``: TLS towards the broker. ``cert`` and ``key`` for a client certificate."""

    ca: str
    cert: str | None = None
    key: str | None = None


class MqttSection(_Section):
    """``[mqtt]``: the link to the alarm central's broker."""

    broker: Annotated[list[Broker], msgspec.Meta(min_length=1)]
    tls: TlsSection | None = None
    username: str | None = None
    password_file: str | None = None
    prefix: Annotated[str, msgspec.Meta(pattern=PREFIX_PATTERN)] = "carehub/v1"
    client_id: str | None = None
    keepalive_s: Annotated[int, msgspec.Meta(ge=5, le=3600)] = 30
    heartbeat_s: Annotated[float, msgspec.Meta(ge=1, le=3600)] = 60.0
    connect_timeout_s: Seconds = 10.0
    backoff_initial_s: Seconds = 0.5
    backoff_max_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 30.0
    max_inflight: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 50


class StoreSection(_Section):
    """``[store]``: where the durable outbox and rule state live."""

    dir: str
    max_events: Annotated[int, msgspec.Meta(ge=100)] = 200_000
    #: The store's bound in bytes of events (MiB), beside max_events: delivered first, then telemetry go.
    max_mb: Annotated[int, msgspec.Meta(ge=1, le=65536)] = 256
    keep_delivered_s: Annotated[float, msgspec.Meta(ge=0)] = 7 * 24 * 3600.0
    #: Space kept for alarms (KiB): a reserve file given up when the disk is full. 0 turns it off.
    reserve_kb: Annotated[int, msgspec.Meta(ge=0, le=1 << 20)] = 1024


class LogSection(_Section):
    """``[log]``: ``format = "auto"`` writes JSON lines unless stderr is a terminal."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class GpioSection(_Section):
    """``[gpio]``: which gpiozero pin factory drives the pins.

    ``sim`` is gpiozero's MockFactory, driven from outside the process through
    the sim control socket (see ``[sim]``); the others are gpiozero's real ones.
    """

    factory: Literal["sim", "lgpio", "rpigpio", "pigpio", "native"] = "lgpio"


class BleSection(_Section):
    """``[ble]``: the BLE scanner. ``backend = "sim"`` is the simulated advert source
    the demo and the test rig drive through the sim socket."""

    backend: Literal["bleak", "sim"] = "bleak"
    adapter: str | None = None
    silence_s: Annotated[float, msgspec.Meta(gt=0)] = 600.0
    telemetry_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 900.0
    activity_interval_s: Annotated[float, msgspec.Meta(ge=0)] = 60.0
    max_connections: Annotated[int, msgspec.Meta(ge=1, le=7)] = 2


class BleDevice(_Section):
    """``[device.ble]``: a BTHome v2 device by its address, with its bindkey if it encrypts."""

    address: Annotated[str, msgspec.Meta(pattern=MAC_PATTERN)]
    bindkey: Annotated[str, msgspec.Meta(pattern=BINDKEY_PATTERN)] | None = None


class GattNotify(_Section):
    """``[[device.gatt.notify]]``: a characteristic whose notifications become events."""

    uuid: Annotated[str, msgspec.Meta(min_length=4)]
    event: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")]
    priority: Priority = Priority.NORMAL
    decode: Literal["uint8", "uint16le", "int16le", "utf8", "hex"] = "hex"
    scale: float | None = None
    key: Annotated[str, msgspec.Meta(min_length=1)] = "value"


class GattSettings(_Section):
    """``[device.gatt]``: a device the hub connects to (GATT), with its battery read and notifications."""

    address: Annotated[str, msgspec.Meta(pattern=MAC_PATTERN)]
    battery_interval_s: Annotated[float, msgspec.Meta(ge=0)] = 3600.0
    notify: list[GattNotify] = []


class SimSection(_Section):
    """``[sim]``: the control socket through which the demo and the test rig drive simulated devices."""

    socket: str = "sim.sock"


class AlarmSection(_Section):
    """``[alarm]``: the application-level acknowledgement every alarm needs."""

    ack_timeout_s: Seconds = 60.0
    unack_repeat_s: Seconds = 60.0
    steady_s: Seconds = 900.0


class GpioDevice(_Section):
    """``[device.gpio]``: a button or pull-cord on a GPIO pin, with optional feedback outputs."""

    pin: int | str
    pull_up: bool = True
    bounce_s: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.02
    hold_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 3.0
    led_pin: int | str | None = None
    buzzer_pin: int | str | None = None


class SerialSettings(_Section):
    """``[device.serial]``: a sensor on a serial port, and its protocol's options.

    ``port`` may be a ``/dev/serial/by-id/...`` link, so a replugged adapter
    is found again whatever ttyUSB number it gets. The protocol's own options
    go in ``[device.serial.<protocol>]``; defaults apply when it is absent.
    """

    port: Annotated[str, msgspec.Meta(min_length=1)]
    protocol: Literal["bedmat", "dispenser", "espa444"]
    baud: Annotated[int, msgspec.Meta(ge=50, le=4_000_000)] = 9600
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bedmat: BedMatOptions | None = None
    dispenser: DispenserOptions | None = None
    espa444: EspaOptions | None = None

    def options(self) -> Any:
        """The protocol's options struct (its defaults when the table is absent)."""
        opts = getattr(self, self.protocol)
        return opts if opts is not None else _OPTIONS[self.protocol]()


_OPTIONS: dict[str, type] = {"bedmat": BedMatOptions, "dispenser": DispenserOptions, "espa444": EspaOptions}

DeviceKind = Literal[
    "alarm_button", "pull_cord", "bed_mat", "medication_dispenser", "nurse_call", "door", "motion", "sensor"
]

#: Serial protocol each serial device kind speaks.
PROTOCOL_FOR_KIND = {"bed_mat": "bedmat", "medication_dispenser": "dispenser", "nurse_call": "espa444"}

#: Who responds when the device config does not say: medication is for nurses.
DEFAULT_ROUTE: dict[str, Route] = {
    "alarm_button": Route.ANY,
    "pull_cord": Route.ANY,
    "bed_mat": Route.CARE,
    "medication_dispenser": Route.NURSE,
    "nurse_call": Route.ANY,
    "door": Route.CARE,
    "motion": Route.CARE,
    "sensor": Route.ANY,
}


class Device(_Section):
    """``[[device]]``: one device of the residence."""

    id: Name
    kind: DeviceKind
    room: str | None = None
    route: Route | None = None
    expected_interval_s: Annotated[float, msgspec.Meta(gt=0)] | None = None
    gpio: GpioDevice | None = None
    serial: SerialSettings | None = None
    ble: BleDevice | None = None
    gatt: GattSettings | None = None

    @property
    def routing(self) -> Route:
        """The route from the config, or the kind's default."""
        return self.route if self.route is not None else DEFAULT_ROUTE[self.kind]


class Config(_Section):
    """The whole residence config."""

    hub: HubSection
    mqtt: MqttSection
    store: StoreSection
    log: LogSection = LogSection()
    gpio: GpioSection = GpioSection()
    ble: BleSection = BleSection()
    sim: SimSection = SimSection()
    alarm: AlarmSection = AlarmSection()
    rules: RulesConfig = RulesConfig()
    devices: list[Device] = msgspec.field(default_factory=list, name="device")


#: Which driver tables each device kind may use.
DRIVERS_FOR_KIND: dict[str, tuple[str, ...]] = {
    "alarm_button": ("gpio", "ble"),
    "pull_cord": ("gpio",),
    "bed_mat": ("serial",),
    "medication_dispenser": ("serial", "gatt"),
    "nurse_call": ("serial",),
    "door": ("ble",),
    "motion": ("ble",),
    "sensor": ("ble", "gatt"),
}
DRIVER_FIELDS = ("gpio", "serial", "ble", "gatt")


@dataclass(frozen=True)
class ConfigIssue:
    """One thing wrong with a config file."""

    file: str
    line: int
    col: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.key}: {self.message}"


class ConfigError(Exception):
    """The config is invalid; ``issues`` lists every problem found."""

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class ConfigUnreadable(Exception):
    """The config file could not be read at all (missing, no permission, not UTF-8)."""


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with where it came from."""

    config: Config
    path: Path
    sha256: str

    def resolve(self, p: str) -> Path:
        """A path from the config, relative to the config file's directory."""
        return (self.path.parent / p).resolve() if not os.path.isabs(p) else Path(p)

    @property
    def state_dir(self) -> Path:
        return self.resolve(self.config.store.dir)

    @property
    def sim_socket(self) -> Path:
        p = self.config.sim.socket
        return Path(p) if os.path.isabs(p) else self.state_dir / p


def load(path: str | os.PathLike[str], *, check_files: bool = True) -> LoadedConfig:
    """Read, decode and check a config file.

    Raises :class:`ConfigUnreadable` when the file cannot be read and
    :class:`ConfigError` (with every issue) when it is invalid.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigUnreadable(f"{path}: cannot read: {exc}") from exc
    config = parse(text, filename=str(path), base_dir=path.parent, check_files=check_files)
    return LoadedConfig(config=config, path=path.resolve(), sha256=hashlib.sha256(raw).hexdigest())


def parse(text: str, *, filename: str = "<config>", base_dir: Path | None = None, check_files: bool = True) -> Config:
    """Decode and check config text; raises :class:`ConfigError` listing every issue."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, col = _toml_error_position(exc, text)
        msg = _toml_message(str(exc).split(" (at ")[0])
        if _at_end(exc, text):
            msg += " (reached the end of the file)"
        raise ConfigError([ConfigIssue(filename, line, col, "toml", f"not valid TOML: {msg}")]) from None
    positions = key_positions(text)
    issues: list[ConfigIssue] = []

    def report(path: tuple[str | int, ...], message: str) -> None:
        line, col = locate(positions, path)
        issues.append(ConfigIssue(filename, line, col, format_path(path), message))

    _check_value(data, Config, (), report)
    if issues:
        raise ConfigError(_sorted(issues))
    config = msgspec.convert(data, Config)
    _check_semantics(config, data, base_dir or Path("."), check_files, report)
    if issues:
        raise ConfigError(_sorted(issues))
    return config


def _sorted(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    return sorted(issues, key=lambda i: (i.line, i.col, i.key))


def _at_end(exc: Exception, text: str) -> bool:
    pos = getattr(exc, "pos", None)
    return "at end of document" in str(exc) or (isinstance(pos, int) and pos >= len(text))


def _toml_error_position(exc: Exception, text: str) -> tuple[int, int]:
    if _at_end(exc, text):
        # tomllib says "at end of document" (no line): point at the end of the last line with content.
        body = text.rstrip()
        line = body.count("\n") + 1
        return line, len(body) - (body.rfind("\n") + 1) + 1
    lineno = getattr(exc, "lineno", None)
    colno = getattr(exc, "colno", None)
    if lineno:
        return int(lineno), int(colno or 1)
    m = re.search(r"at line (\d+), column (\d+)", str(exc))
    return (int(m.group(1)), int(m.group(2))) if m else (1, 1)


#: tomllib's wording → what an installer should do about it.
_TOML_HINTS: list[tuple[str, str]] = [
    (r"^(Illegal|Found invalid) character '\\n'$", "unclosed string: the closing quote is missing on this line"),
    (r"^Unterminated string$", "unclosed string: the closing quote is missing"),
    (r"^Cannot overwrite a value$", "duplicate key: this key (or a table of that name) is already set above"),
    (r"^Cannot declare \((.*)\) twice$", "duplicate table: this table is already declared above"),
    (r"^Duplicate inline table key '(.*)'$", r"duplicate key '\1' in this inline table"),
    (r"^Expected '=' after a key in a key/value pair$", "expected 'key = value' on this line, found no '='"),
]


def _toml_message(msg: str) -> str:
    for pattern, hint in _TOML_HINTS:
        if re.match(pattern, msg):
            return re.sub(pattern, hint, msg)
    return msg


_TOML_TYPE = {
    dict: "a table",
    list: "an array",
    str: "a string",
    int: "an integer",
    float: "a float",
    bool: "a boolean",
}


def _describe(value: Any) -> str:
    kind = _TOML_TYPE.get(type(value), type(value).__name__)
    if isinstance(value, (dict, list)):
        return kind
    if isinstance(value, bool):
        return f"{kind} {str(value).lower()}"  # as written in TOML
    return f"{kind} {value!r}"


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """Strip ``Annotated`` and ``| None``; return (type, optional)."""
    optional = False
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) < len(typing.get_args(tp)):
                optional = True
            if len(args) == 1:
                tp = args[0]
                continue
        return tp, optional


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def _check_value(value: Any, tp: Any, path: tuple[str | int, ...], report: Any) -> None:
    """Check ``value`` against type ``tp``, reporting every problem (not just the first)."""
    inner, optional = _unwrap(tp)
    if optional and value is None:
        return
    if _is_struct(inner):
        if not isinstance(value, dict):
            report(path, f"expected a table, found {_describe(value)}")
            return
        fields = {f.encode_name: f for f in msgspec.structs.fields(inner)}
        for key in value:
            if key not in fields:
                close = difflib.get_close_matches(key, list(fields), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                report(path + (key,), f"unknown key{hint}; expected one of: {', '.join(fields)}")
        for name, f in fields.items():
            if name in value:
                _check_value(value[name], f.type, path + (name,), report)
            elif f.required:
                report(path, f"missing required key {name!r}{_table_hint(f.type, path + (name,))}")
        return
    if typing.get_origin(inner) is list:
        (item_tp,) = typing.get_args(inner)
        if _is_struct(_unwrap(item_tp)[0]):
            if not isinstance(value, list):
                report(path, f"expected an array of tables, found {_describe(value)}")
                return
            for i, item in enumerate(value):
                _check_value(item, item_tp, path + (i,), report)
            try:  # constraints on the list itself (min_length)
                msgspec.convert([None] * len(value), _with_item(tp, Any))
            except msgspec.ValidationError as exc:
                msg = _leaf_message(exc, value, tp)
                m = re.match(r"expected an array of length >= (\d+)", msg)
                if m:
                    msg = f"expected at least {m.group(1)} [[{format_path(path)}]] table(s), found {len(value)}"
                report(path, msg)
            return
    try:
        msgspec.convert(value, tp)
    except msgspec.ValidationError as exc:
        report(path, _leaf_message(exc, value, tp))


def _table_hint(tp: Any, path: tuple[str | int, ...]) -> str:
    """For a missing table: how to write it (`` (a [store] table)``)."""
    inner, _ = _unwrap(tp)
    if _is_struct(inner):
        return f" (a [{format_path(path)}] table)"
    if typing.get_origin(inner) is list and _is_struct(_unwrap(typing.get_args(inner)[0])[0]):
        return f" (at least one [[{format_path(path)}]] table)"
    return ""


def _with_item(tp: Any, item: Any) -> Any:
    """``Annotated[list[X], meta]`` → ``Annotated[list[item], meta]``."""
    if typing.get_origin(tp) is Annotated:
        base, *meta = typing.get_args(tp)
        return Annotated[tuple([_with_item(base, item)] + meta)]  # type: ignore[misc]
    return list[item]  # type: ignore[valid-type]


_MSGSPEC_WORDS = {"`int`": "an integer", "`float`": "a number", "`str`": "a string", "`bool`": "a boolean",
                  "`array`": "an array", "`object`": "a table", "`int | str`": "a pin number or name",
                  "`str | null`": "a string", "`int | str | null`": "a pin number or name", "`null`": "nothing"}


def _leaf_message(exc: msgspec.ValidationError, value: Any, tp: Any) -> str:
    inner, _ = _unwrap(tp)
    choices: list[Any] | None = None
    if typing.get_origin(inner) is Literal:
        choices = list(typing.get_args(inner))
    elif isinstance(inner, type) and issubclass(inner, enum.Enum):
        choices = [m.value for m in inner]
    if choices is not None:
        return f"expected one of {', '.join(repr(c) for c in choices)}, found {_describe(value)}"
    msg = str(exc).split(" - at ")[0]
    msg = msg.split(", got ")[0]
    m = re.match(r"Expected `str` matching regex '(.*)'$", msg)
    if m and m.group(1) in _PATTERN_HELP:
        return f"expected {_PATTERN_HELP[m.group(1)]}, found {_describe(value)}"
    for raw, word in _MSGSPEC_WORDS.items():
        msg = msg.replace(raw, word)
    msg = msg[0].lower() + msg[1:] if msg else "invalid value"
    if msg.startswith("invalid enum value"):
        msg = "expected a valid value"
    return f"{msg}, found {_describe(value)}"


def _check_semantics(config: Config, data: dict[str, Any], base: Path, check_files: bool, report: Any) -> None:
    """What the structs alone cannot say."""
    for path, message in config.rules.check():
        report(("rules", *path), message)
    try:
        ZoneInfo(config.hub.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        report(("hub", "timezone"), f"expected an IANA time zone such as 'Europe/Oslo', found {config.hub.timezone!r}")

    seen: dict[str, int] = {}
    ports: dict[str, int] = {}
    addresses: dict[str, int] = {}
    pins: dict[str, tuple[int, str, int | str]] = {}
    for i, dev in enumerate(config.devices):
        if dev.id in seen:
            report(("device", i, "id"), f"expected a unique device id, found {dev.id!r} again (first at device[{seen[dev.id]}])")
        seen.setdefault(dev.id, i)
        present = [d for d in DRIVER_FIELDS if getattr(dev, d) is not None]
        allowed = DRIVERS_FOR_KIND.get(dev.kind, ())
        if not present:
            report(("device", i), f"expected a driver table [device.{allowed[0]}] for kind {dev.kind!r}, found none")
        for d in present:
            if d not in allowed:
                report(("device", i, d), f"expected one of {', '.join(allowed)} for kind {dev.kind!r}, found {d!r}")
        if len(present) > 1:
            report(("device", i, present[1]), f"expected exactly one driver table, found {', '.join(present)}")
        if dev.serial is not None:
            want = PROTOCOL_FOR_KIND.get(dev.kind)
            if want is not None and dev.serial.protocol != want:
                report(("device", i, "serial", "protocol"), f"expected {want!r} for kind {dev.kind!r}, found {dev.serial.protocol!r}")
            for other in _OPTIONS:
                if other != dev.serial.protocol and getattr(dev.serial, other) is not None:
                    report(("device", i, "serial", other), f"expected options for protocol {dev.serial.protocol!r} only, found [device.serial.{other}]")
            check = getattr(dev.serial.options(), "check", None)
            for key, message in check() if check else []:
                report(("device", i, "serial", dev.serial.protocol, key), message)
            port = os.path.realpath(dev.serial.port) if os.path.exists(dev.serial.port) else dev.serial.port
            if port in ports:
                report(("device", i, "serial", "port"), f"expected a port no other device uses, found {dev.serial.port!r} (also device[{ports[port]}])")
            ports.setdefault(port, i)
        if dev.ble is not None:
            addr = dev.ble.address.upper()
            if addr in addresses:
                report(("device", i, "ble", "address"), f"expected an address no other device uses, found {dev.ble.address!r} (also device[{addresses[addr]}])")
            addresses.setdefault(addr, i)
        if dev.gpio is not None:
            for key in ("pin", "led_pin", "buzzer_pin"):
                pin = getattr(dev.gpio, key)
                if pin is None:
                    continue
                norm = _normalise_pin(pin)
                if norm in pins:
                    j, other, first = pins[norm]
                    report(
                        ("device", i, "gpio", key),
                        f"expected a pin no other input or output uses, found {pin!r}"
                        f" (the same pin as device[{j}].gpio.{other} = {first!r})",
                    )
                pins.setdefault(norm, (i, key, pin))

    mqtt = config.mqtt
    if (mqtt.username is None) != (mqtt.password_file is None):
        missing = "password_file" if mqtt.password_file is None else "username"
        report(("mqtt",), f"missing required key {missing!r}: username and password_file go together")
    if mqtt.tls is not None and (mqtt.tls.cert is None) != (mqtt.tls.key is None):
        missing = "key" if mqtt.tls.key is None else "cert"
        report(("mqtt", "tls"), f"missing required key {missing!r}: a client certificate needs both cert and key")
    if not check_files:
        return
    files: list[tuple[tuple[str | int, ...], str | None, bool]] = [
        (("mqtt", "password_file"), mqtt.password_file, True),
    ]
    if mqtt.tls is not None:
        files += [
            (("mqtt", "tls", "ca"), mqtt.tls.ca, False),
            (("mqtt", "tls", "cert"), mqtt.tls.cert, False),
            (("mqtt", "tls", "key"), mqtt.tls.key, True),
        ]
    for path, name, secret in files:
        if name is None:
            continue
        p = Path(name) if os.path.isabs(name) else base / name
        try:
            st = p.stat()
        except OSError as exc:
            where = "" if os.path.isabs(name) else f"; looked for {p}"
            report(path, f"expected a readable file, found {name!r} ({exc.strerror}{where})")
            continue
        if not stat.S_ISREG(st.st_mode):
            report(path, f"expected a regular file, found {name!r}")
        elif not os.access(p, os.R_OK):
            report(path, f"expected a file the hub's user ({_user()}) can read, found {name!r} it cannot read")
        elif secret and st.st_mode & 0o077:
            report(
                path,
                f"expected a file only its owner can read (chmod 600), found {name!r} with mode {stat.S_IMODE(st.st_mode):04o}",
            )
        elif secret and st.st_uid != os.geteuid() and os.geteuid() != 0:
            report(path, f"expected a file owned by the hub's user ({_user()}), found {name!r} owned by uid {st.st_uid}")
    if mqtt.tls is not None:
        from hub.tlsfiles import check_tls

        def where(name: str | None) -> Path | None:
            return None if name is None else (Path(name) if os.path.isabs(name) else base / name)

        ca = where(mqtt.tls.ca)
        assert ca is not None
        for key, message in check_tls(ca, where(mqtt.tls.cert), where(mqtt.tls.key)):
            report(("mqtt", "tls", key), message)


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (KeyError, ImportError):
        return f"uid {os.geteuid()}"


def _normalise_pin(pin: int | str) -> str:
    s = str(pin).upper()
    return s[4:] if s.startswith("GPIO") else s


def secret_text(loaded: LoadedConfig, name: str) -> str:
    """Read a password file named in the config (first line, stripped)."""
    return loaded.resolve(name).read_text().splitlines()[0].strip()


#: Where ``python -m hub.config --write-schema`` writes the schema (committed; a test checks it).
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "config" / "schema.json"


def config_schema() -> dict[str, Any]:
    """The JSON Schema of the residence config (as decoded from TOML), for editors and reviewers.

    Descriptions come from the structs' docstrings, cleaned by :func:`hub.schematext.clean_descriptions`
    so that the committed file does not change with how a msgspec release trims them.
    """
    schema = msgspec.json.schema(Config)
    return clean_descriptions({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "carehub residence config",
        "description": (
            "One TOML file per hub, checked with `carehub check-config FILE`. Unknown keys are refused; "
            "relative paths are relative to the config file's directory. "
            "Generated from hub/config.py by `python -m hub.config --write-schema`: do not edit."
        ),
        **schema,
    })


def schema_text() -> str:
    """:func:`config_schema` as written to ``config/schema.json``: pretty, sorted keys, trailing newline."""
    return json.dumps(config_schema(), indent=2, sort_keys=True) + "\n"


def _main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m hub.config", description="Residence config tools.")
    parser.add_argument(
        "--write-schema", nargs="?", const=str(SCHEMA_PATH), metavar="PATH",
        help=f"write the config JSON Schema (default {SCHEMA_PATH})",
    )
    args = parser.parse_args(argv)
    if args.write_schema is None:
        parser.print_help()
        return 2
    out = Path(args.write_schema)
    out.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
