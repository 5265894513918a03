"""The central's TOML config (``carehub central --config central.toml``): timings, supervision levels, hubs.

Every key is optional; without a file the defaults below hold::

    [central]
    reorder_timeout_s = 5      # a seq gap still open this long is asked for with cmd/replay
    replay_timeout_s = 15      # a replay that brought nothing in this long is asked for again
    ack_timeout_s = 10         # how long an ack waits for the hub's reply
    poll_s = 0.25              # how often the shared database is read for other instances' changes

    [mqtt]
    keepalive_s = 30
    session_expiry_s = 86400   # the broker keeps this instance's session (and its events) this long

    [supervision]
    default = "high"           # the level of a hub not named under [hubs]
    [supervision.levels]       # seconds without a heartbeat before a hub is silent (after SOS Access)
    high = 180
    medium = 18000
    low = 90000

    [hubs.hub-0042]
    level = "medium"

Levels given are added to (or replace) the three defaults. A wrong file is refused before
anything starts, every mistake at once, each ``FILE:LINE:COL: key: what was expected, found``
(the hub's config reader, :mod:`hub.tomldoc`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec

from hub.tomldoc import Issue, TomlDocument

#: The supervision levels after SOS Access: a heartbeat at least every 180 s, 5 h or 25 h.
DEFAULT_LEVELS: dict[str, float] = {"high": 180.0, "medium": 18000.0, "low": 90000.0}

Seconds = Annotated[float, msgspec.Meta(gt=0, le=86400 * 30)]


class _Table(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Base of every table: unknown keys refused."""


class CentralTable(_Table):
    """``[central]``: the engine's timings."""

    reorder_timeout_s: Seconds = 5.0
    replay_timeout_s: Seconds = 15.0
    ack_timeout_s: Seconds = 10.0
    poll_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 0.25
    #: changes a live-feed subscriber may fall behind before it is told to resync.
    feed_queue: Annotated[int, msgspec.Meta(ge=8, le=100_000)] = 256
    #: events taken into one transaction at most.
    batch: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 200


class MqttTable(_Table):
    """``[mqtt]``: the connection's keepalive and how long the broker keeps the session."""

    keepalive_s: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 30
    session_expiry_s: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)] = 86400


class SupervisionTable(_Table):
    """``[supervision]``: the levels (seconds without a heartbeat) and the default one."""

    default: str = "high"
    levels: dict[str, Seconds] = {}


class HubTable(_Table):
    """``[hubs.<id>]``: one hub's supervision level."""

    level: str


class CentralConfig(_Table):
    """The whole file."""

    central: CentralTable = CentralTable()
    mqtt: MqttTable = MqttTable()
    supervision: SupervisionTable = SupervisionTable()
    hubs: dict[str, HubTable] = {}

    @property
    def levels(self) -> dict[str, float]:
        """Every level by name: the defaults with the file's over them."""
        return {**DEFAULT_LEVELS, **self.supervision.levels}

    def level_of(self, hub: str) -> tuple[str, float]:
        """A hub's level: its name and seconds."""
        entry = self.hubs.get(hub)
        name = entry.level if entry is not None else self.supervision.default
        return name, self.levels[name]


class ConfigError(Exception):
    """The file is wrong; ``issues`` says where and how (or it could not be read)."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


def _check(doc: TomlDocument) -> None:
    """The level names: checked on the parsed TOML, so they are reported with the struct's mistakes."""
    data = doc.data or {}
    sup = data.get("supervision") if isinstance(data.get("supervision"), dict) else {}
    given = sup.get("levels") if isinstance(sup.get("levels"), dict) else {}
    known = sorted({*DEFAULT_LEVELS, *given})
    expected = f"expected one of the levels ({', '.join(known)})"
    default = sup.get("default", "high")
    if isinstance(default, str) and default not in known:
        doc.report(("supervision", "default"), f"{expected}, found {default!r}")
    hubs = data.get("hubs") if isinstance(data.get("hubs"), dict) else {}
    for hub, entry in hubs.items():
        level = entry.get("level") if isinstance(entry, dict) else None
        if isinstance(level, str) and level not in known:
            doc.report(("hubs", hub, "level"), f"{expected}, found {level!r}")


def parse(text: str, filename: str = "<config>") -> CentralConfig:
    """Decode and check config text; :class:`ConfigError` with every issue."""
    doc = TomlDocument.parse(text, filename)
    cfg = doc.decode(CentralConfig)
    if doc.data is not None:
        _check(doc)
    if doc.issues or cfg is None:
        raise ConfigError(doc.sorted_issues())
    return cfg


def load(path: str | Path | None) -> CentralConfig:
    """Read the file (None: the defaults); :class:`ConfigError` when it cannot be read or is wrong."""
    if path is None:
        return CentralConfig()
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Issue(str(path), 0, 0, "", f"cannot read: {exc}")]) from None
    return parse(text, str(path))
