"""The installer's answers to ``carehub provision``: from flags, or asked with defaults.

Every answer is checked before anything is written (a hub id the config
refuses, a resident id with a space, a broker without a host ...); a wrong
one is asked again in a prompt and refused with exit 2 from flags.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.config.checks import is_loopback
from hub.config.sections import NAME_PATTERN, PATTERN_HELP, RESIDENT_PATTERN

__all__ = ["DEFAULT_OUT", "TEMPLATES", "Answers", "AnswerError", "collect", "new_hub_id", "parse_broker"]

#: The templates provision writes from (config/examples/<name>.toml).
TEMPLATES = ("residence", "ble", "minimal")

#: Default broker port by login: the municipality's broker takes certificates on 8883 and passwords
#: on 8884 (config/broker/mosquitto.conf); a broker on this machine without TLS listens on 1883.
DEFAULT_PORT = {"cert": 8883, "password": 8884, "plain": 1883}


#: Where the service reads its config (``ConfigurationDirectory=carehub``).
DEFAULT_OUT = "/etc/carehub"


class AnswerError(ValueError):
    """An answer the config would refuse (the message says what is expected)."""


@dataclass
class Answers:
    """What provision needs to know; ``brokers`` are (host, port), the first the primary."""

    hub_id: str
    resident: str
    brokers: list[tuple[str, int]]
    auth: str
    template: str
    out: Path
    ca: Path | None = None
    #: the central's Ed25519 public key for configs it pushes (cmd/config); None: no push
    push_key: Path | None = None
    state_dir: str = "/var/lib/carehub"
    generated_id: bool = False

    @property
    def tls(self) -> bool:
        """TLS towards the brokers: always with a client certificate, with a CA given, or off this machine."""
        return self.auth == "cert" or self.ca is not None or not all(is_loopback(h) for h, _ in self.brokers)


def new_hub_id() -> str:
    """``hub-`` and 8 random base32 characters (40 bits): lower-case, as the config's id pattern wants."""
    return "hub-" + base64.b32encode(secrets.token_bytes(5)).decode().lower()


def check_hub_id(value: str) -> str:
    """``value`` if the config takes it as ``[hub] id``, else :class:`AnswerError`."""
    if not re.match(NAME_PATTERN, value):
        raise AnswerError(f"hub id {value!r}: expected {PATTERN_HELP[NAME_PATTERN]}")
    return value


def check_resident(value: str) -> str:
    """``value`` if the config takes it as ``[hub] resident``, else :class:`AnswerError`."""
    if not re.match(RESIDENT_PATTERN, value):
        raise AnswerError(f"resident id {value!r}: expected {PATTERN_HELP[RESIDENT_PATTERN]}")
    return value


def parse_broker(value: str, auth: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address; the port defaults by login."""
    value = value.strip()
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?", value)
    if m:
        host, port = m.group(1), m.group(2)
    elif value.count(":") > 1:  # a bare IPv6 address
        host, port = value, None
    else:
        host, _, port = value.partition(":")
        port = port or None
    if not host or any(c.isspace() for c in host) or "/" in host:
        raise AnswerError(f"broker {value!r}: expected host or host:port, e.g. mqtt1.responssenter.example:8883")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise AnswerError(f"broker {value!r}: {exc}") from exc
    if port is None:
        plain = auth == "password" and is_loopback(host)
        return host, DEFAULT_PORT["plain" if plain else auth]
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise AnswerError(f"broker {value!r}: expected a port from 1 to 65535")
    return host, int(port)


def check_ca(value: str) -> Path | None:
    """The CA file as an absolute path (None for no answer), if it holds PEM certificates."""
    if not value:
        return None
    from hub.tlsfiles import check_tls

    path = Path(value).expanduser()
    if not path.is_file():
        raise AnswerError(f"CA {value!r}: no such file")
    for _, problem in check_tls(path, None, None):
        raise AnswerError(f"CA {value!r}: {problem}")
    return path.resolve()


def check_push_key(value: str) -> Path | None:
    """The central's config-push key as an absolute path (None for no answer), if it is an Ed25519 PEM key."""
    if not value:
        return None
    from hub.configpush.signing import KeyError_, load_public_key

    path = Path(value).expanduser()
    try:
        load_public_key(path)
    except KeyError_ as exc:
        raise AnswerError(f"push key {value!r}: {exc}") from None
    return path.resolve()


#: Asks a question: (prompt, default or None, choices or None) -> the answer as typed.
Ask = Callable[[str, str | None, list[str] | None], str]


def rich_ask(prompt: str, default: str | None, choices: list[str] | None) -> str:
    """A question on the terminal (``rich.prompt``); EOF on stdin raises :class:`EOFError`."""
    from rich.prompt import Prompt

    if default is None:
        return str(Prompt.ask(prompt, choices=choices))
    return str(Prompt.ask(prompt, default=default, choices=choices, show_default=bool(default)))


def _until_valid(ask: Ask, say: Callable[[str], None], prompt: str, default: str | None,
                 check: Callable[[str], Any], choices: list[str] | None = None) -> Any:
    """Ask until ``check`` takes the answer; each refusal is said and asked again."""
    while True:
        try:
            return check(ask(prompt, default, choices).strip())
        except AnswerError as exc:
            say(f"  {exc}")


def collect(args: Any, ask: Ask | None, say: Callable[[str], None]) -> Answers:
    """The answers: flags first; what they leave out is asked (``ask``) or, without ``ask``
    (``--non-interactive``), defaulted where a default is safe and refused where not."""
    auth = args.auth
    proposed = new_hub_id()
    if ask is None:
        missing = [flag for flag, v in (("--resident", args.resident), ("--broker", args.broker)) if not v]
        if missing:
            raise AnswerError(f"--non-interactive needs {' and '.join(missing)} (no safe default)")
        auth = auth or "cert"
        hub_id = check_hub_id(args.hub_id or proposed)
        resident = check_resident(args.resident)
        brokers = [parse_broker(b, auth) for b in args.broker]
        template, out, ca = args.template or "residence", Path(args.out or DEFAULT_OUT), check_ca(args.ca or "")
        push_key = check_push_key(getattr(args, "push_key", None) or "")
    else:
        hub_id = check_hub_id(args.hub_id) if args.hub_id else _until_valid(
            ask, say, "Hub id (in every topic; the MQTT username; the certificate's CN)", proposed, check_hub_id)
        resident = check_resident(args.resident) if args.resident else _until_valid(
            ask, say, "Resident id (pseudonymous, from the care record system; never a name)", None, check_resident)
        template = args.template or ask("Template", "residence", list(TEMPLATES))
        auth = auth or ask("Login to the broker: client certificate or password", "cert", ["cert", "password"])
        if args.broker:
            brokers = [parse_broker(b, auth) for b in args.broker]
        else:
            brokers = [_until_valid(ask, say, "The central's broker (host or host:port)", None,
                                    lambda v: parse_broker(v, auth))]
            while more := ask("Another broker for failover (host:port; empty: no more)", "", None).strip():
                try:
                    brokers.append(parse_broker(more, auth))
                except AnswerError as exc:
                    say(f"  {exc}")
        ca = check_ca(args.ca) if args.ca else _until_valid(
            ask, say, "The central's CA certificate (PEM file; empty: install it later)", "", check_ca)
        push_key = check_push_key(args.push_key) if getattr(args, "push_key", None) else _until_valid(
            ask, say, "The central's key for configs it pushes (Ed25519 public key, PEM; empty: no config push)", "",
            check_push_key)
        out = Path(args.out or ask("Write the config and credentials to", DEFAULT_OUT, None))
    return Answers(hub_id=hub_id, resident=resident, brokers=brokers, auth=auth, template=template,
                   out=out.expanduser().absolute(), ca=ca, push_key=push_key, state_dir=args.state_dir,
                   generated_id=hub_id == proposed)
