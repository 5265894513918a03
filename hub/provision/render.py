"""``hub.toml`` from a template in ``config/examples/`` and the installer's answers, comments kept.

The template's text is edited, not re-encoded, so its comments stay: the
values of ``[hub] id``, ``resident`` and ``[store] dir`` are replaced on their
lines, and the ``[mqtt]`` tables (brokers, TLS, credentials) are written
afresh in place of the template's, its other ``[mqtt]`` keys (prefix,
heartbeat ...) carried over. The result is read back and compared with the
answers before anything is written.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path
from typing import Any

from hub.configshow import toml_value
from hub.provision.answers import Answers
from hub.tomlpos import key_positions

__all__ = ["CA_FILE", "CERT_FILE", "CSR_FILE", "KEY_FILE", "PASSWORD_FILE", "PUSH_KEY_FILE", "find_template", "render"]

#: The files provision names in the config, beside it.
CA_FILE = "central-ca.pem"
CERT_FILE = "client.crt"
KEY_FILE = "client.key"
CSR_FILE = "client.csr"
PASSWORD_FILE = "mqtt.pass"
PUSH_KEY_FILE = "central-push.pub"

_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_-]+)[\s.\]]")
_VALUE = re.compile(r"""^(\s*[^=]+?=\s*)("(?:[^"\\]|\\.)*"|'[^']*'|[^\s#]+)(.*)$""")
#: Keys of the template's [mqtt] that provision writes itself.
_OWN_MQTT = {"broker", "tls", "username", "password_file", "insecure", "client_id"}


def find_template(name: str) -> Path:
    """``config/examples/<name>.toml`` of a checkout, else of an install (``/opt/carehub/examples``)."""
    here = Path(__file__).resolve().parents[2] / "config" / "examples"
    installed = Path(sys.prefix).parent / "examples"
    for folder in (here, installed, Path("/opt/carehub/examples")):
        if (folder / f"{name}.toml").is_file():
            return folder / f"{name}.toml"
    raise FileNotFoundError(f"template {name!r}: no {name}.toml in {here}, {installed} or /opt/carehub/examples")


def render(template: str, answers: Answers, source: str) -> str:
    """The config text for ``answers`` from the ``template`` text (``source`` names it in the header)."""
    data = tomllib.loads(template)
    positions = key_positions(template)
    lines = template.splitlines()
    filled = [(("hub", "id"), answers.hub_id), (("hub", "resident"), answers.resident),
              (("store", "dir"), answers.state_dir)]
    if answers.push_key is not None and ("push", "key") in positions:
        filled.append((("push", "key"), PUSH_KEY_FILE))
    for path, value in filled:
        if path not in positions:
            raise ValueError(f"template {source}: no {'.'.join(path)} to fill in")
        row = positions[path][0] - 1
        m = _VALUE.match(lines[row])
        if m is None:
            raise ValueError(f"template {source}: cannot read the value of {'.'.join(path)} on line {row + 1}")
        lines[row] = m.group(1) + toml_value(value) + m.group(3)
    lines = _push_table(lines, positions, answers)
    start, end = _mqtt_block(lines)
    kept = {k: v for k, v in data.get("mqtt", {}).items() if k not in _OWN_MQTT}
    head = [
        f"# Written by carehub provision for hub {answers.hub_id} from {source}.",
        "# Check it with: carehub check-config <this file>. Relative paths are relative to this file.",
        "",
    ]
    mqtt = _mqtt_tables(answers, kept) + ([""] if end < len(lines) and lines[end].strip() else [])
    text = "\n".join(head + lines[:start] + mqtt + lines[end:]) + "\n"
    _verify(text, answers)
    return text


def _push_table(lines: list[str], positions: dict[Any, tuple[int, int]], a: Answers) -> list[str]:
    """The template's ``[push]`` once its values are filled in: kept when the central's key was given
    (render() pointed its key at the copy), added when the template has none, left out without a key
    (config push stays off until an installer adds it)."""
    if ("push", "key") not in positions:
        if a.push_key is None:
            return lines
        block = ["# Configs pushed by the central (cmd/config): taken only when signed by its key (docs/config-push.md).",
                 "[push]", f"key = {toml_value(PUSH_KEY_FILE)}", ""]
        at = next((i for i, line in enumerate(lines) if (m := _HEADER.match(line)) and m.group(1) == "device"),
                  len(lines))
        return lines[:at] + block + lines[at:]
    if a.push_key is not None:
        return lines  # render() points its key at the copy
    start, end = _table_block(lines, "push")
    while end < len(lines) and not lines[end].strip():
        end += 1
    return lines[:start] + lines[end:]


def _table_block(lines: list[str], name: str) -> tuple[int, int]:
    """The lines of the template's ``[name]`` tables: from its header to the comments and blank
    lines before the next table that is not ``name``'s."""
    tops = [(i, m.group(1)) for i, line in enumerate(lines) if (m := _HEADER.match(line))]
    starts = [i for i, top in tops if top == name]
    if not starts:
        raise ValueError(f"template: no [{name}] table")
    start = starts[0]
    after = [i for i, top in tops if i > start and top != name]
    end = after[0] if after else len(lines)
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
        end -= 1
    return start, end


def _mqtt_block(lines: list[str]) -> tuple[int, int]:
    """The lines of the template's ``[mqtt]`` tables (see :func:`_table_block`)."""
    return _table_block(lines, "mqtt")


def _mqtt_tables(a: Answers, kept: dict[str, Any]) -> list[str]:
    """``[mqtt]``, its credentials, ``[mqtt.tls]`` and one ``[[mqtt.broker]]`` per broker."""
    out = ["[mqtt]"]
    out += [f"{k} = {toml_value(v)}" for k, v in kept.items() if not isinstance(v, dict)]
    if a.auth == "password":
        out += [
            "# The broker's login: the hub id, and a password alone on the first line of password_file",
            "# (owned by the service user, mode 0600; registered on the broker with mosquitto_passwd).",
            f"username = {toml_value(a.hub_id)}",
            f"password_file = {toml_value(PASSWORD_FILE)}",
        ]
    if a.tls:
        out += ["[mqtt.tls]", f"ca = {toml_value(CA_FILE):<18} # the CA of the central's broker"]
        if a.auth == "cert":
            out += [
                f"cert = {toml_value(CERT_FILE):<16} # signed from {CSR_FILE} (CN = the hub id)",
                f"key = {toml_value(KEY_FILE):<17} # owned by the service user, mode 0600",
            ]
    out.append("# The central's brokers, tried in this order: the first is the primary, the others failover.")
    for host, port in a.brokers:
        out += ["[[mqtt.broker]]", f"host = {toml_value(host)}", f"port = {port}"]
    return out


def _verify(text: str, a: Answers) -> None:
    """The rendered text says what the answers say (a template this module misreads is refused)."""
    data = tomllib.loads(text)
    mqtt = data["mqtt"]
    got = (data["hub"]["id"], data["hub"]["resident"], data["store"]["dir"],
           [(b["host"], b["port"]) for b in mqtt["broker"]], mqtt.get("username"), "tls" in mqtt)
    want = (a.hub_id, a.resident, a.state_dir, a.brokers, a.hub_id if a.auth == "password" else None, a.tls)
    if got != want:
        raise ValueError(f"the rendered config does not say what was answered: {got} != {want}")
