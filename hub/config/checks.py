"""What the config structs alone cannot say: checks across keys, devices and files.

The hub's own checks (rules, time zone, unique device ids, the right driver
table for each kind, MQTT credentials and TLS files) are here; each driver's
``check`` (a pin, a port or an address used twice ...) runs with the same
``report``, so its problems carry FILE:LINE:COL and the key path too.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from drivers.base import Report
from hub.config.model import DRIVER_CONFIGS, DRIVER_FIELDS, DRIVERS_FOR_KIND, Config
from hub.rules.checkin_config import check_in_devices

__all__ = ["SERVICE_USER", "check_advice", "check_semantics", "check_unique_ids", "insecure_brokers", "is_loopback"]

#: The user the service runs as (systemd/carehub.service); its secrets may be owned by it or by root.
SERVICE_USER = "carehub"


def check_semantics(config: Any, base: Path, check_files: bool, report: Report, *, unique_ids: bool = True) -> None:
    """Every check of a decoded :class:`~hub.config.Config`; ``base`` is where relative paths start.

    ``config`` may also be what :mod:`hub.config.salvage` kept of a config the structs refused:
    a table it could not keep is None (its checks are skipped), ``devices`` only the devices it
    kept, and ``unique_ids`` False when it checks the ids itself (:func:`check_unique_ids`).
    """
    if config.rules is not None:
        for path, message in config.rules.check():
            report(("rules", *path), message)
        buttons = {d.id: (d.kind, getattr(d, "ble", None) is not None) for d in config.devices}
        for path, message in check_in_devices(config.rules.check_in, buttons):
            report(("rules", "check_in", *path), message)
    if config.hub is not None:
        try:
            ZoneInfo(config.hub.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            report(("hub", "timezone"), f"expected an IANA time zone such as 'Europe/Oslo', found {config.hub.timezone!r}")
    if unique_ids:
        check_unique_ids([(i, dev.id) for i, dev in enumerate(config.devices)], report)
    _check_devices(config.devices, report)
    for driver in DRIVER_CONFIGS:
        settings = getattr(config, driver.settings[0]) if driver.settings else None
        if driver.check is not None and not (driver.settings and settings is None):
            driver.check(config.devices, settings, report)
    if getattr(config, "fallback", None) is not None:
        _check_fallback(config.fallback, config.devices, report)
    if config.mqtt is not None:
        _check_mqtt(config.mqtt, report)
        if check_files:
            _check_files(config.mqtt, base, report)
    push = getattr(config, "push", None)
    if check_files and push is not None and push.key is not None:
        from hub.configpush.signing import KeyError_, load_public_key

        p = Path(push.key) if os.path.isabs(push.key) else base / push.key
        try:
            load_public_key(p)
        except KeyError_ as exc:
            report(("push", "key"), f"expected the central's Ed25519 public key (PEM), found {push.key!r}: {exc}")


def check_advice(config: Any, base: Path, report: Report) -> None:
    """The warnings (not errors): each driver's ``advise``, e.g. a serial port not on this machine now."""
    for driver in DRIVER_CONFIGS:
        settings = getattr(config, driver.settings[0]) if driver.settings else None
        if driver.advise is not None and not (driver.settings and settings is None):
            driver.advise(config.devices, settings, base, report)


def check_unique_ids(ids: list[tuple[int, str]], report: Report) -> None:
    """Each device id once: ``ids`` are (index in the ``[[device]]`` list, id)."""
    seen: dict[str, int] = {}
    for i, dev_id in ids:
        if dev_id in seen:
            report(("device", i, "id"), f"expected a unique device id, found {dev_id!r} again (first at device[{seen[dev_id]}])")
        seen.setdefault(dev_id, i)


def _check_devices(devices: list[Any], report: Report) -> None:
    """Exactly one driver table per device, one its kind may use."""
    for i, dev in enumerate(devices):
        present = [d for d in DRIVER_FIELDS if getattr(dev, d) is not None]
        allowed = DRIVERS_FOR_KIND.get(dev.kind, ())
        if not allowed:
            report(("device", i, "kind"), f"expected a kind a driver reads, found {dev.kind!r} (no driver reads it)")
            continue
        if not present:
            report(("device", i), f"expected a driver table [device.{allowed[0]}] for kind {dev.kind!r}, found none")
        for d in present:
            if d not in allowed:
                report(("device", i, d), f"expected one of {', '.join(allowed)} for kind {dev.kind!r}, found {d!r}")
        if len(present) > 1:
            report(("device", i, present[1]), f"expected exactly one driver table, found {', '.join(present)}")


def _check_fallback(fallback: Any, devices: list[Any], report: Report) -> None:
    """On-call numbers need a modem to send from; a number once per list."""
    if (fallback.nurse or fallback.care) and not any(d.kind == "modem" for d in devices):
        key = "nurse" if fallback.nurse else "care"
        report(("fallback", key), "expected a [[device]] of kind 'modem' to send the SMS from, found none "
                                  "(add the modem, or remove the numbers)")
    for key in ("nurse", "care"):
        seen: set[str] = set()
        for i, number in enumerate(getattr(fallback, key)):
            if number in seen:
                report(("fallback", key, i), f"expected each number once, found {number!r} again")
            seen.add(number)


def is_loopback(host: str) -> bool:
    """True for a broker on this machine: ``localhost`` (``*.localhost``), 127.0.0.0/8, ``::1``.

    No name is looked up: check-config runs before the network is up.
    """
    name = host.strip().rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def insecure_brokers(mqtt: Any) -> list[tuple[int, str]]:
    """(index, host) of every broker reached without TLS that is not on this machine."""
    if mqtt.tls is not None:
        return []
    return [(i, b.host) for i, b in enumerate(mqtt.broker) if not is_loopback(b.host)]


def _check_mqtt(mqtt: Any, report: Report) -> None:
    """TLS off this machine unless ``insecure = true``; keys that go together (username and
    password_file, a client cert and its key)."""
    if not mqtt.insecure:
        for i, host in insecure_brokers(mqtt):
            report(
                ("mqtt", "broker", i, "host"),
                f"expected a broker on this machine (localhost, 127.0.0.1, ::1) when [mqtt.tls] is not set, "
                f"found {host!r}: add [mqtt.tls] with the central's CA (ca = ...), or, on a network you trust, "
                "insecure = true in [mqtt]",
            )
    if (mqtt.username is None) != (mqtt.password_file is None):
        missing = "password_file" if mqtt.password_file is None else "username"
        report(("mqtt",), f"missing required key {missing!r}: username and password_file go together")
    if mqtt.tls is not None and (mqtt.tls.cert is None) != (mqtt.tls.key is None):
        missing = "key" if mqtt.tls.key is None else "cert"
        report(("mqtt", "tls"), f"missing required key {missing!r}: a client certificate needs both cert and key")


def _check_files(mqtt: Any, base: Path, report: Report) -> None:
    """The files the config names exist, are readable, secrets private; the TLS files fit together."""
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
            continue
        if not os.access(p, os.R_OK):
            report(path, f"expected a file the hub's user ({_user()}) can read, found {name!r} it cannot read")
            continue
        if not secret:
            continue
        if st.st_mode & 0o077:
            report(
                path,
                f"expected a file only its owner can read (chmod 600), found {name!r} with mode {stat.S_IMODE(st.st_mode):04o}",
            )
        owners = _secret_owners()
        if st.st_uid not in owners:
            allowed = " or ".join(sorted({_name(uid) for uid in owners}))
            report(path, f"expected a file owned by {allowed}, found {name!r} owned by {_name(st.st_uid)}")
    if mqtt.tls is not None:
        from hub.tlsfiles import check_tls

        def where(name: str | None) -> Path | None:
            return None if name is None else (Path(name) if os.path.isabs(name) else base / name)

        ca = where(mqtt.tls.ca)
        assert ca is not None
        for key, message in check_tls(ca, where(mqtt.tls.cert), where(mqtt.tls.key)):
            report(("mqtt", "tls", key), message)


def _secret_owners() -> set[int]:
    """Who may own a key or password file: root, the user checking or running, the service user."""
    owners = {0, os.geteuid()}
    try:
        import pwd

        owners.add(pwd.getpwnam(SERVICE_USER).pw_uid)
    except (KeyError, ImportError):
        pass
    return owners


def _name(uid: int) -> str:
    """``carehub (uid 998)``, or ``uid 12345`` for a uid without a name."""
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (KeyError, ImportError):
        return f"uid {uid}"


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (KeyError, ImportError):
        return f"uid {os.geteuid()}"
