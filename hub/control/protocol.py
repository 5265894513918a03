"""The control socket's JSON lines: limits, request parsing, and the commands it shares with MQTT.

Each request is one line: a JSON object with a string ``op``, at most
:data:`MAX_LINE` bytes. Replies are JSON objects, one a line, each with
``ok`` (``"error"`` when false); ``tail`` and ``test-alarm`` stream more
lines after the first (:mod:`hub.control.server`).

=============  =====================================================  ==========================================
op             fields                                                 replies
=============  =====================================================  ==========================================
``status``     none                                                   one: the status document
``tail``       ``types`` (globs), ``devices`` (ids): lists, optional  ``{"ok": true, "tail": ...}``, then one
                                                                      ``{"event": {...}}`` per committed event
``test-alarm`` ``device``, ``note``, ``timeout_s`` (default 30)       one ``{"leg": ...}`` per leg, then ``done``
``ack``        ``event_id``, ``by``                                   one: the ``cmd/ack`` reply
``ble-forget`` ``device``, ``by``                                     one: the ``cmd/ble-forget`` reply
``replay``     ``from_seq``, ``to_seq``                               one: the ``cmd/replay`` reply
=============  =====================================================  ==========================================

``ack``, ``ble-forget``, ``replay`` and ``test-alarm`` are decoded into the
same structs, with the same checks, as the central's ``cmd/<op>``
(:func:`hub.commands.parse`), and run by the same
:class:`~hub.command_runner.CommandRunner`. ``by`` left out is
``local:<user>``, the user the socket's peer credentials name.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import msgspec

from hub import commands

#: A request line longer than this is refused and the connection closed.
MAX_LINE = 8192
#: At most this many clients at once; one more gets an error reply and is closed.
MAX_CLIENTS = 16
#: A tail client this many events behind is dropped.
TAIL_QUEUE = 1000
#: The ops, in the order ``--help`` lists them.
OPS = ("status", "tail", "test-alarm", "ack", "ble-forget", "replay")
#: A test alarm waits at most this long for its legs.
MAX_TEST_TIMEOUT_S = 600.0

Glob = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]


class RequestError(Exception):
    """A request the socket refuses: the message goes back to the client, a line to the log."""

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        #: the counter it is refused under: invalid, unknown_op, too_long, busy
        self.reason = reason


class TailRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """``tail``: every committed event whose type matches one of ``types`` (globs; none: all) and whose
    device is one of ``devices`` (none: all)."""

    types: Annotated[list[Glob], msgspec.Meta(max_length=32)] = []
    devices: Annotated[list[commands.DeviceId], msgspec.Meta(max_length=64)] = []


class TestAlarmRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """``test-alarm``: how long to wait for the legs; the rest is ``cmd/test-alarm``'s."""

    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=MAX_TEST_TIMEOUT_S)] = 30.0


def parse(line: bytes) -> tuple[str, dict[str, Any]]:
    """A request line as ``(op, its other fields)``; raises :class:`RequestError`."""
    try:
        req = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise RequestError("not JSON: expected one JSON object a line, e.g. {\"op\": \"status\"}") from None
    if not isinstance(req, dict) or not isinstance(req.get("op"), str):
        raise RequestError("expected a JSON object with a string 'op'")
    op = req.pop("op")
    if op not in OPS:
        raise RequestError(f"unknown op {op[:64]!r}; expected one of {', '.join(OPS)}", "unknown_op")
    return op, req


def tail_request(fields: dict[str, Any]) -> TailRequest:
    """The fields of a ``tail`` request, checked."""
    return _convert(fields, TailRequest, "tail")


def test_alarm_command(fields: dict[str, Any]) -> tuple[Any, float]:
    """``(cmd/test-alarm struct, timeout_s)`` from a ``test-alarm`` request."""
    fields = dict(fields)
    timeout = _convert({"timeout_s": fields.pop("timeout_s")} if "timeout_s" in fields else {},
                       TestAlarmRequest, "test-alarm")
    return command("test-alarm", fields, user=None), timeout.timeout_s


def command(op: str, fields: dict[str, Any], *, user: str | None) -> Any:
    """The ``cmd/<op>`` struct for a request, exactly as the central's payload is decoded.

    ``by`` left out (ack, ble-forget) is ``local:<user>`` when the peer is known.
    """
    if user is not None and op in ("ack", "ble-forget") and "by" not in fields:
        fields = {**fields, "by": f"local:{user}"[:128]}
    try:
        return commands.parse(op, json.dumps(fields).encode())
    except commands.CommandError as exc:
        raise RequestError(str(exc)) from None


def _convert(fields: dict[str, Any], cls: type[Any], op: str) -> Any:
    try:
        return msgspec.convert(fields, cls)
    except msgspec.ValidationError as exc:
        raise RequestError(f"bad {op} request: {exc}") from None


def encode(obj: dict[str, Any]) -> bytes:
    """One reply line."""
    return json.dumps(obj, default=str, separators=(",", ":")).encode() + b"\n"
