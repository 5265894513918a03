"""``carehub config show [--config FILE] [--json]``: the config as the hub reads it, secrets masked.

Every key with its value after loading: defaults filled in, the drivers'
tables included, relative paths made absolute the way the hub resolves them
(against the config file's directory; ``[sim] socket`` against ``[store] dir``).
Printed as TOML (``[[device]]`` tables, for a person) or as one JSON document.

Secrets never appear: a BTHome bindkey is shown as ``****`` and its last four
hex digits (enough to tell two keys apart); a password file is shown by its
path and never opened; a key file's path is shown (a path is not a secret).
Unset optional keys are left out of the TOML (TOML has no null) and are
``null`` in the JSON. Masked output is not a config to install as is: a
masked bindkey does not pass check-config.

Exit codes: 0 shown, 1 invalid config (its errors as check-config prints
them), 2 unreadable.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import Any

import msgspec
import tomli_w

from hub.config import ConfigError, ConfigUnreadable, LoadedConfig, load

__all__ = ["PATHS", "SECRETS", "mask_bindkey", "render_toml", "resolved", "run_config_show", "toml_value"]

#: Default config location (the service's, ``ConfigurationDirectory=carehub``).
DEFAULT_CONFIG = "/etc/carehub/hub.toml"

#: Keys whose value is a path, resolved as the hub resolves it; ``*`` is any list index.
PATHS: dict[tuple[str, ...], str] = {
    ("store", "dir"): "config",
    ("sim", "socket"): "state",
    ("mqtt", "password_file"): "config",
    ("mqtt", "tls", "ca"): "config",
    ("mqtt", "tls", "cert"): "config",
    ("mqtt", "tls", "key"): "config",
    ("device", "*", "serial", "port"): "config",
}


def mask_bindkey(key: str) -> str:
    """``****`` and the last four hex digits of a key."""
    return "****" + key[-4:]


#: Keys whose value is a secret, and how each is shown.
SECRETS: dict[tuple[str, ...], Callable[[str], str]] = {
    ("device", "*", "ble", "bindkey"): mask_bindkey,
}


def resolved(loaded: LoadedConfig) -> dict[str, Any]:
    """The config as plain data (``None`` for unset keys), paths absolute, secrets masked."""
    data = msgspec.to_builtins(loaded.config)

    def path(kind: str) -> Callable[[str], str]:
        if kind == "state":
            return lambda p: str(loaded.sim_socket)
        return lambda p: str(loaded.resolve(p))

    for pattern, kind in PATHS.items():
        _apply(data, pattern, path(kind))
    for pattern, masker in SECRETS.items():
        _apply(data, pattern, masker)
    return data


def _apply(node: Any, pattern: tuple[str, ...], fn: Callable[[str], str]) -> None:
    """Replace every string value at ``pattern`` in ``node`` by ``fn(value)``."""
    head, rest = pattern[0], pattern[1:]
    if head == "*":
        if isinstance(node, list) and rest:
            for item in node:
                _apply(item, rest, fn)
        return
    if not isinstance(node, dict) or node.get(head) is None:
        return
    if rest:
        _apply(node[head], rest, fn)
    elif isinstance(node[head], str):
        node[head] = fn(node[head])


_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: str) -> str:
    return k if _BARE.match(k) else json.dumps(k)


def toml_value(v: Any) -> str:
    """A value as TOML writes it on the right of ``=`` (an empty table as ``{}``)."""
    if isinstance(v, dict) and not v:
        return "{}"
    return tomli_w.dumps({"v": v}).split("=", 1)[1].strip()


def _is_tables(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def render_toml(data: dict[str, Any]) -> str:
    """``data`` as TOML a person reads: ``[table]`` and ``[[device]]`` headers, unset keys left out."""
    lines: list[str] = []
    _table(data, (), lines, array=False)
    return "\n".join(lines).strip() + "\n"


def _table(data: dict[str, Any], at: tuple[str, ...], lines: list[str], *, array: bool) -> None:
    plain = {k: v for k, v in data.items() if v is not None and not (isinstance(v, dict) and v) and not _is_tables(v)}
    if at:
        lines += ["", f"[[{'.'.join(map(_key, at))}]]" if array else f"[{'.'.join(map(_key, at))}]"]
    lines += [f"{_key(k)} = {toml_value(v)}" for k, v in plain.items()]
    for k, v in data.items():
        if isinstance(v, dict) and v:
            _table(v, at + (k,), lines, array=False)
        elif _is_tables(v):
            for item in v:
                _table(item, at + (k,), lines, array=True)


def run_config_show(config: str, as_json: bool) -> int:
    """The command: print the resolved config; the exit code."""
    try:
        loaded = load(config, check_files=False)  # the files' own checks are check-config's
    except ConfigUnreadable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        n = len(exc.issues)
        print(f"{config}: {n} error{'s' if n != 1 else ''}; nothing to show (carehub check-config {config})",
              file=sys.stderr)
        return 1
    data = resolved(loaded)
    if as_json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"# {loaded.path}, as the hub reads it (sha256 {loaded.sha256[:12]}): defaults filled in,\n"
          "# paths absolute, secrets masked (bindkeys as ****+last 4; password files never read).")
    print(render_toml(data), end="")
    return 0
