"""``carehub provision``: answers in, files out, check-config on them, the next steps said.

Exit codes:

* 0: written, and the config passes check-config;
* 3: written, and the config passes check-config except for the files the
  installer still has to put in place: the certificate signed from the CSR
  (``mqtt.tls.cert``) and, when it was not given, the central's CA
  (``mqtt.tls.ca``). check-config itself keeps refusing a missing file (the
  hub could not log in); provision tells the two apart, and says what to do;
* 1: written, but check-config finds other errors (listed);
* 2: nothing written: an answer or flag refused, a file already there
  (without ``--force``), no template, the input ended.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.checkconfig import check_file, issue_dict, warning_line
from hub.config.checks import SERVICE_USER
from hub.provision.answers import TEMPLATES, AnswerError, Answers, collect, rich_ask
from hub.provision.files import Owner, key_pem, make_csr, make_key, make_password, owner_for, write_file
from hub.provision.render import (CA_FILE, CERT_FILE, CSR_FILE, KEY_FILE, PASSWORD_FILE, PUSH_KEY_FILE, find_template,
                                  render)

__all__ = ["run_provision"]


@dataclass
class _Plan:
    """The files to write: name -> (content, mode, secret)."""

    files: dict[str, tuple[bytes, int, bool]] = field(default_factory=dict)


def _plan(a: Answers) -> _Plan:
    template = find_template(a.template)
    source = f"config/examples/{template.name}"
    plan = _Plan()
    if a.auth == "cert":
        key = make_key()
        plan.files[KEY_FILE] = (key_pem(key), 0o600, True)
        plan.files[CSR_FILE] = (make_csr(key, a.hub_id), 0o644, False)
    else:
        plan.files[PASSWORD_FILE] = (make_password(), 0o600, True)
    if a.ca is not None:
        plan.files[CA_FILE] = (a.ca.read_bytes(), 0o644, False)
    if a.push_key is not None:
        plan.files[PUSH_KEY_FILE] = (a.push_key.read_bytes(), 0o644, False)
    plan.files["hub.toml"] = (render(template.read_text(), a, source).encode(), 0o640, False)
    return plan


def _shipped_copy(path: Path) -> str | None:
    """The example a file is an unedited copy of (install.sh puts residence.toml in place)."""
    try:
        data = path.read_bytes()
        for name in TEMPLATES:
            if find_template(name).read_bytes() == data:
                return f"config/examples/{name}.toml"
    except OSError:
        return None
    return None


def _write(a: Answers, plan: _Plan, owner: Owner, force: bool) -> list[str]:
    """Write the plan into ``a.out``; what was done, a line each."""
    done: list[str] = []
    if not a.out.exists():
        a.out.mkdir(mode=0o750, parents=True)
        os.chmod(a.out, 0o750)
        if owner.gid is not None:
            os.chown(a.out, -1, owner.gid)
        done.append(f"made {a.out} (0750)")
    cert = a.out / CERT_FILE
    if force and a.auth == "cert" and cert.exists():
        os.replace(cert, cert.with_name(CERT_FILE + ".old"))
        done.append(f"moved {cert} to {CERT_FILE}.old: it was signed for the key now replaced")
    for name, (data, mode, secret) in plan.files.items():
        uid, gid = (owner.uid, owner.gid) if secret else (None, owner.gid if name == "hub.toml" else None)
        write_file(a.out / name, data, mode=mode, uid=uid, gid=gid, force=force)
        who = f", owned by {SERVICE_USER}" if secret and owner.uid is not None else ""
        done.append(f"wrote {a.out / name} ({mode:04o}{who})")
    return done


def _pending(a: Answers) -> dict[str, str]:
    """Config keys whose file the installer must still put in place, and what to do."""
    out: dict[str, str] = {}
    if a.tls and not (a.out / CA_FILE).exists():
        out["mqtt.tls.ca"] = (f"put the central's CA certificate (PEM) at {a.out / CA_FILE} "
                              f"(or run provision again with --ca FILE)")
    if a.auth == "cert" and not (a.out / CERT_FILE).exists():
        out["mqtt.tls.cert"] = (f"send {a.out / CSR_FILE} (CN = {a.hub_id}) to the municipality to be signed by the "
                                f"CA of the broker's certificate listener (8883); install the signed certificate "
                                f"as {a.out / CERT_FILE}: install -m 0644 {a.hub_id}.crt {a.out / CERT_FILE}")
    return out


def _next_steps(a: Answers, pending: dict[str, str], owner: Owner) -> list[str]:
    steps = list(pending.values())
    if a.auth == "password":
        steps.append(f"register the hub on the broker (config/broker/README.md): mosquitto_passwd "
                     f"/etc/mosquitto/carehub/passwd {a.hub_id} with the password in {a.out / PASSWORD_FILE} "
                     "(first line; copy it safely, never by e-mail), then systemctl reload mosquitto")
    if owner.uid is None and owner.note:
        secret = KEY_FILE if a.auth == "cert" else PASSWORD_FILE
        steps.append(f"once the user {SERVICE_USER} exists: chown {SERVICE_USER}: {a.out / secret}")
    steps.append(f"edit the [[device]] tables of {a.out / 'hub.toml'} for this residence (they are the template's; "
                 "carehub scan lists the BLE devices heard)")
    data = tomllib.loads(a.out.joinpath("hub.toml").read_text())
    for table, key in (("gpio", "factory"), ("ble", "backend")):
        if data.get(table, {}).get(key) == "sim":
            steps.append(f"[{table}] {key} = \"sim\" simulates the devices (the template is a demo's): "
                         f"set the real one for this hub (see config/schema.json)")
    steps.append(f"carehub check-config {a.out / 'hub.toml'} (0: valid), then systemctl start carehub")
    return steps


def run_provision(args: Any) -> int:
    """The command; the exit code (see the module's docstring)."""
    as_json = bool(getattr(args, "json", False))
    out = sys.stderr if as_json else sys.stdout

    def say(text: str) -> None:
        print(text, file=out)

    try:
        answers = collect(args, None if args.non_interactive else rich_ask, say)
        plan = _plan(answers)
    except AnswerError as exc:
        print(f"error: {exc}; nothing written", file=sys.stderr)
        return 2
    except EOFError:
        print("error: the input ended before every answer was given; nothing written", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}; nothing written", file=sys.stderr)
        return 2
    names = [*plan.files, *([CERT_FILE] if answers.auth == "cert" else [])]  # a certificate of another key too
    there = [answers.out / n for n in names if (answers.out / n).exists() or (answers.out / n).is_symlink()]
    if there and not args.force:
        for p in there:
            copy = _shipped_copy(p)
            print(f"error: {p} exists" + (f" (an unedited copy of {copy})" if copy else ""), file=sys.stderr)
        print("nothing written; --force replaces them", file=sys.stderr)
        return 2
    owner = owner_for()
    try:
        done = _write(answers, plan, owner, args.force)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = check_file(str(answers.out / "hub.toml"))
    pending = _pending(answers)
    errors = [e for e in result.errors if e.key not in pending]
    waiting = [e for e in result.errors if e.key in pending]
    code = 0 if result.valid else (3 if not errors else 1)
    steps = _next_steps(answers, pending, owner)
    if as_json:
        print(json.dumps({
            "hub_id": answers.hub_id, "dir": str(answers.out), "config": str(answers.out / "hub.toml"),
            "template": answers.template, "auth": answers.auth,
            "files": {n: str(answers.out / n) for n in plan.files},
            "valid": result.valid, "pending": [{**issue_dict(e), "todo": pending[e.key]} for e in waiting],
            "errors": [issue_dict(e) for e in errors], "warnings": [issue_dict(w) for w in result.warnings],
            "notes": [owner.note] if owner.note else [], "next_steps": steps,
        }, indent=2))
        return code
    say(f"hub {answers.hub_id}" + (" (a new id)" if answers.generated_id else ""))
    for line in done:
        say(f"  {line}")
    if owner.note:
        say(f"note: {owner.note}")
    verdict = {0: "valid", 3: "valid except the files still to install", 1: "INVALID"}[code]
    say(f"check-config {answers.out / 'hub.toml'}: {verdict}")
    for issue in waiting:
        say(f"  to install: {issue}")
    for issue in errors:
        say(f"  {issue}")
    for issue in result.warnings:
        say(f"  {warning_line(issue)}")
    say("next steps:")
    for i, step in enumerate(steps, 1):
        say(f"  {i}. {step}")
    return code
