"""Commands from the alarm central on ``{prefix}/{hub}/cmd/{name}``.

Each payload is a JSON object decoded into a struct below; the reply goes to
the request's MQTT 5 response topic with its correlation data, as
``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``. A malformed
command gets an error reply and a log line, nothing else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec


#: A seq as stored: SQLite's INTEGER, a signed 64-bit number.
MAX_SEQ = 2**63 - 1

#: Who did it (an operator's id, "central"): printable, no control characters.
Who = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
#: An event id as the hub makes them (UUIDv7, lower case).
EventIdField = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", max_length=36)
]
#: A device id from the config.
DeviceId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
#: A seq in a request: 1 up to the largest a hub can store.
Seq = Annotated[int, msgspec.Meta(ge=1, le=MAX_SEQ)]


class _Command(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    pass


class Ack(_Command):
    """``cmd/ack``: the central acknowledges an alarm (or one of its reminders).

    Any alarm of a device's open episode (the first press, a repeat) or any
    of its reminders ends the whole episode. The reply's ``alarm_id`` is the
    alarm acked (for a reminder, the episode's first); ``closes`` lists the
    episode's alarm ids.
    """

    event_id: EventIdField
    by: Who = "central"


class TestAlarm(_Command):
    """``cmd/test-alarm``: raise an ``alarm.test`` end to end (optionally on a device's feedback)."""

    device: DeviceId | None = None
    note: Annotated[str, msgspec.Meta(max_length=256)] | None = None


class Status(_Command):
    """``cmd/status``: reply with the hub's status document."""


class Replay(_Command):
    """``cmd/replay``: publish stored events ``from_seq..to_seq`` again, same ids and seqs."""

    from_seq: Seq
    to_seq: Seq


class BleForget(_Command):
    """``cmd/ble-forget``: forget a BLE device's last encryption counter, so its next genuine advert is taken.

    For a device whose counter started again at a random value (a reflash, or
    firmware that seeds its counter at random on a new battery): the hub
    refuses its adverts as replays until told. A restart from zero needs no
    command; the hub takes it by itself.
    """

    device: DeviceId
    by: Who = "central"


#: An instant from the central: RFC 3339 with its offset ("Z" or "+01:00").
Instant = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:\d{2})$",
        description="RFC 3339 time with its offset, e.g. 2026-12-20T08:00:00+01:00 or 2026-12-20T07:00:00Z.",
    ),
]


class Away(_Command, rename={"from_": "from"}):
    """``cmd/away``: the resident is away (a holiday, a hospital stay): a missed daily check-in is no call.

    ``from`` (default now) and ``until`` bound the absence; a new ``cmd/away``
    replaces the one before; an ``until`` not after now, or ``cancel: true``,
    ends it (the resident is home). Kept across restarts. A missed check-in
    being re-alerted stops when the absence covers now.
    """

    from_: Instant | None = None
    until: Instant | None = None
    cancel: bool = False
    reason: Annotated[str, msgspec.Meta(max_length=128, pattern=r"^[^\x00-\x1f\x7f]*$")] | None = None
    by: Who = "central"


#: The most a pushed config's text may be (a residence's config is a few KiB).
MAX_CONFIG_TEXT = 60_000


class PushConfig(_Command):
    """``cmd/config``: the central pushes a whole config, as TOML text, as ``version``.

    ``signature`` is the central's Ed25519 signature (base64) over
    ``carehub-config-push/1\n<hub id>\n<version>\n<sha256>``, checked against
    ``[push] key`` of the hub's local file. Without ``toml`` the hub fetches
    the text from the retained message on ``{prefix}/{hub}/config/<version>``.
    The hub checks it as check-config does, applies it as a reload does, and
    holds it on probation (docs/config-push.md).
    """

    version: Annotated[int, msgspec.Meta(ge=1, le=2**53, description="Higher than every version applied before.")]
    sha256: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the TOML text (UTF-8).")]
    signature: Annotated[str, msgspec.Meta(min_length=1, max_length=256, description="Ed25519, base64.")]
    toml: Annotated[
        str, msgspec.Meta(max_length=MAX_CONFIG_TEXT, description="The whole config. Absent: fetch the retained "
                                                                  "{prefix}/{hub}/config/<version>.")
    ] | None = None
    by: Who = "central"


class ConfigStatus(_Command):
    """``cmd/config-status``: which config is active, which is the last good one, probation, history."""


class Followup(dict):  # type: ignore[type-arg]
    """A reply with work to do once it is sent (:mod:`hub.commandgate` awaits ``then`` after replying):
    a pushed config is applied after its reply, which a new broker would never carry."""

    def __init__(self, body: dict[str, Any], then: Callable[[], Awaitable[None]]) -> None:
        super().__init__(body)
        self.then = then


COMMANDS: dict[str, type[_Command]] = {
    "ack": Ack,
    "test-alarm": TestAlarm,
    "status": Status,
    "replay": Replay,
    "ble-forget": BleForget,
    "away": Away,
    "config": PushConfig,
    "config-status": ConfigStatus,
}

#: At most this many events per replay request.
MAX_REPLAY = 10_000


class CommandError(Exception):
    """The command cannot be parsed or carried out; the message goes back to the central."""


def parse(name: str, payload: bytes) -> _Command:
    """Decode a command payload (empty means ``{}``)."""
    cls = COMMANDS.get(name)
    if cls is None:
        raise CommandError(f"unknown command {name[:64]!r}; expected one of {', '.join(COMMANDS)}")
    try:
        return msgspec.json.decode(payload or b"{}", type=cls)
    except msgspec.DecodeError as exc:
        raise CommandError(f"bad {name} payload: {exc}") from None


def command_schemas() -> dict[str, Any]:
    """JSON Schemas of the command payloads, for the AsyncAPI document."""
    (schemas,), components = msgspec.json.schema_components(list(COMMANDS.values()), ref_template="#/components/schemas/{name}")
    return components
