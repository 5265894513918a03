"""Is a pushed config one the hub will take? check-config's checks, then what a push may not change.

:func:`check` reads the text with the very loader ``carehub check-config``
uses (:func:`hub.config.load_text`), so a bad push gets the same
``FILE:LINE:COL: key: message`` lines, with ``pushed:v<N>`` as the file.
Then the keys of :data:`PINNED` must be as in the hub's local file, and the
keys only a restart applies (:data:`hub.reload.RESTART_KEYS`) as in the
running config: each difference is one more line at the key's position.
"""

from __future__ import annotations

import re
from typing import Any

from hub.config import ConfigError, LoadedConfig, load_text
from hub.reload.plan import RESTART_KEYS, make_plan
from hub.tomldoc import Issue
from hub.tomlpos import key_positions, locate

__all__ = ["PINNED", "Invalid", "check", "reply_line"]

#: A quoted value as a message quotes it (Python's repr of a str: '...' or "...").
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
#: What a reply shows in place of a quoted value that was found in the pushed text.
REDACTED = "<value>"


def reply_line(issue: Issue, limit: int = 300) -> str:
    """``issue`` as check-config prints it, for the MQTT reply: what was *found* is not quoted back.

    The values a message quotes after "found" are the pushed text's own (a time zone field that holds
    a resident's name, a phone number in the wrong table): the central has the text and the line, and
    the reply crosses the broker again, so they stay out of it. The local journal keeps them whole.
    """
    text = str(issue)
    head, sep, tail = text.partition(" found ")
    if sep:
        text = head + sep + _QUOTED.sub(REDACTED, tail)
    return text[:limit]

#: Keys a pushed config must leave as the hub's local file has them, and why.
PINNED: dict[str, str] = {
    "hub.id": "the hub's identity: in every topic, its client id and the broker's ACL",
    "mqtt.prefix": "in every topic the hub and the broker's ACL use",
    "mqtt.username": "the hub's account on the broker",
    "mqtt.client_id": "the broker's ACL patterns rely on it",
    "mqtt.password_file": "a file on the hub: a push must not make the hub read, or send, another file",
    "mqtt.tls": "the CA the hub trusts and its own certificate and key are the installer's",
    "store.dir": "the outbox and the config history live there",
    "control.socket": "local access to the hub is the installer's",
    "sim.socket": "bound once at start",
    "push": "the central's key and the probation: a push must not replace its own trust anchor",
}


class Invalid(Exception):
    """A pushed config refused: ``reason`` (invalid, pinned, needs_restart) and every ``issues`` line."""

    def __init__(self, reason: str, issues: list[Issue]) -> None:
        super().__init__(f"{reason}: {len(issues)} problem(s)")
        self.reason, self.issues = reason, issues


def _value(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part, None)
    return cfg


def _shown(value: Any, local: LoadedConfig, key: str) -> str:
    if value is None:
        return f"(unset, as in {local.path})"
    if isinstance(value, (str, int, float)):
        return repr(value)
    return f"the [{key}] table of {local.path}"


def check(text: str, version: int, *, local: LoadedConfig, running: LoadedConfig) -> LoadedConfig:
    """The pushed ``text`` as a config, or :class:`Invalid` with every problem at its line.

    Blocking (it reads the TLS and key files the config names, as check-config does): run it in a thread.
    """
    origin = f"pushed:v{version}"
    try:
        new = load_text(text, origin=origin, path=local.path)
    except ConfigError as exc:
        raise Invalid("invalid", list(exc.issues)) from None
    positions = key_positions(text)

    def issue(key: str, message: str) -> Issue:
        line, col = locate(positions, tuple(key.split(".")))
        return Issue(origin, line, col, key, message)

    pinned = [
        issue(key, f"a pushed config may not change {key} ({why}); keep {_shown(_value(local.config, key), local, key)}")
        for key, why in PINNED.items()
        if _value(new.config, key) != _value(local.config, key)
    ]
    if pinned:
        raise Invalid("pinned", pinned)
    plan = make_plan(running, new)
    if plan.restart:
        raise Invalid("needs_restart", [
            issue(key, f"{RESTART_KEYS[key]}; only a restart applies it, so a pushed config may not change it")
            for key in plan.restart
        ])
    return new
