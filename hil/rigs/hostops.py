"""The commands the physical rig runs on a host, built as data (pure functions, no I/O).

**Network faults, for the hub's packets only.** The rig's own central recorder talks
to the same broker, often over the same interface (``lo`` when the broker is on
the hub's Pi), so a fault must hit the hub's traffic and nothing else. The hub runs
as its own user (``User=carehub`` in the unit); nftables matches its packets by
that uid (``meta skuid``):

* ``net_cut``: the hub's outgoing packets mark their connection (``ct mark``) and
  are dropped; incoming packets of a marked connection are dropped too. Nothing is
  answered, no RST, no FIN: the router unplugged. (An incoming packet that arrives
  before the hub has sent anything since the cut still gets through, once.)
* ``net_impair``: the hub's outgoing packets get a firewall mark (``meta mark``);
  on the interface towards the broker a ``prio`` qdisc sends marked packets to a
  fourth band with ``netem`` (delay, jitter, loss), everything else as before.
  The delay and loss apply to what the hub sends (its publishes and its acks), so a
  round trip grows by ``delay_ms``, not twice that.

Raspberry Pi OS has both (``nft``; ``sch_netem`` is in its kernel). ``net_restore``
deletes the table and the qdisc.

**Unplugging a USB device** (a serial adapter, the BLE dongle) without touching it:
writing 0 to ``/sys/bus/usb/devices/<path>/authorized`` makes the kernel let go of it
(its ``/dev/ttyUSB*`` and ``/dev/serial/by-id`` link vanish), 1 brings it back.
"""

from __future__ import annotations

import json
from typing import Any

#: The rig's nftables table and the marks it uses (arbitrary values, unlikely to clash with a bench's own).
NFT_TABLE = "carehub_hil"
CUT_MARK = 0x4C1
IMPAIR_MARK = 0x4C2
#: The prio band netem hangs under (bands 1-3 keep the default priomap).
NETEM_BAND = 4


def systemctl(action: str, unit: str, *extra: str) -> list[str]:
    """``systemctl ACTION [EXTRA...] UNIT``."""
    return ["systemctl", action, *extra, unit]


def hub_kill(unit: str) -> list[str]:
    """kill -9 of the hub and everything in its cgroup, as systemd delivers it."""
    return ["systemctl", "kill", "-s", "KILL", unit]


def unit_state(unit: str) -> list[str]:
    """The unit's ActiveState and InvocationID, one per line."""
    return ["systemctl", "show", "-p", "ActiveState", "-p", "InvocationID", "--value", unit]


def nft_ruleset(*, user: str, cut: bool, impair: bool) -> str:
    """The rig's whole nftables table for the faults in force, replacing any earlier one (for ``nft -f -``)."""
    out = [f"table inet {NFT_TABLE}", f"delete table inet {NFT_TABLE}"]  # declare, then delete: works if absent
    if not (cut or impair):
        return "\n".join(out) + "\n"
    rules_out: list[str] = []
    rules_in: list[str] = []
    if cut:
        rules_out += [f'meta skuid "{user}" ct mark set {CUT_MARK:#x} drop', f"ct mark {CUT_MARK:#x} drop"]
        rules_in.append(f"ct mark {CUT_MARK:#x} drop")
    if impair:
        rules_out.append(f'meta skuid "{user}" meta mark set {IMPAIR_MARK:#x}')
    out += [
        f"table inet {NFT_TABLE} {{",
        "  chain out {",
        "    type filter hook output priority 0; policy accept;",
        *(f"    {r}" for r in rules_out),
        "  }",
        "  chain in {",
        "    type filter hook input priority 0; policy accept;",
        *(f"    {r}" for r in rules_in),
        "  }",
        "}",
    ]
    return "\n".join(out) + "\n"


def netem_commands(interface: str, delay_ms: float, jitter_ms: float, loss_pct: float) -> list[list[str]]:
    """tc commands that put netem on the packets marked :data:`IMPAIR_MARK` leaving ``interface``."""
    dev = ["dev", interface]
    netem = ["netem", "delay", f"{delay_ms:g}ms"]
    if jitter_ms:
        netem.append(f"{jitter_ms:g}ms")
    netem += ["loss", f"{loss_pct:g}%"]
    return [
        ["tc", "qdisc", "replace", *dev, "root", "handle", "1:", "prio", "bands", str(NETEM_BAND)],
        ["tc", "qdisc", "replace", *dev, "parent", f"1:{NETEM_BAND}", "handle", "40:", *netem],
        ["tc", "filter", "replace", *dev, "parent", "1:", "protocol", "all", "prio", "1",
         "handle", f"{IMPAIR_MARK:#x}", "fw", "flowid", f"1:{NETEM_BAND}"],
    ]


def netem_clear(interface: str) -> list[str]:
    """Remove the rig's root qdisc from ``interface`` (the default one comes back)."""
    return ["tc", "qdisc", "del", "dev", interface, "root"]


def usb_authorized(usb_path: str, on: bool) -> tuple[list[str], str]:
    """The command and stdin that unplug (``on=False``) or replug a USB device by its sysfs path."""
    return ["tee", f"/sys/bus/usb/devices/{usb_path}/authorized"], "1\n" if on else "0\n"


def journal_cursor() -> list[str]:
    """The journal's newest entry, as JSON (its ``__CURSOR`` marks 'from here on')."""
    return ["journalctl", "-n", "1", "-o", "json", "--no-pager", "-q"]


def journal_after(unit: str, cursor: str | None) -> list[str]:
    """The unit's journal entries after ``cursor`` (all of them without one), as JSON lines."""
    argv = ["journalctl", "-u", unit, "-o", "json", "--no-pager", "-q"]
    return argv + (["--after-cursor", cursor] if cursor else [])


def parse_cursor(out: str) -> str | None:
    """The ``__CURSOR`` of the last JSON entry in ``out`` (None: the journal is empty)."""
    for line in reversed(out.splitlines()):
        try:
            cur = json.loads(line).get("__CURSOR")
        except (ValueError, AttributeError):
            continue
        if isinstance(cur, str):
            return cur
    return None


def parse_hub_log(out: str) -> tuple[list[dict[str, Any]], str | None]:
    """The hub's JSON log lines in ``journalctl -o json`` output, and the last entry's cursor.

    The hub logs one JSON object per line on stdout (``[log] format = "json"``);
    journald keeps each as the entry's ``MESSAGE``. Lines that are not JSON
    (Python's own tracebacks) come back as ``{"event": "_raw", "line": ...}``.
    """
    lines: list[dict[str, Any]] = []
    cursor: str | None = None
    for raw in out.splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        cursor = entry.get("__CURSOR", cursor)
        msg = entry.get("MESSAGE")
        if not isinstance(msg, str):  # journald gives non-UTF-8 messages as byte arrays
            continue
        try:
            parsed = json.loads(msg)
        except ValueError:
            parsed = None
        lines.append(parsed if isinstance(parsed, dict) else {"event": "_raw", "line": msg})
    return lines, cursor


def hcitool(adapter: str, ogf: int, ocf: int, params: bytes) -> list[str]:
    """``hcitool -i ADAPTER cmd OGF OCF PARAMS...``: one raw HCI command."""
    return ["hcitool", "-i", adapter, "cmd", f"{ogf:#04x}", f"{ocf:#06x}", *(f"{b:02x}" for b in params)]
