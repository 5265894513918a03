"""What comes off the broker, read the way a central must: leniently, but never trusting it.

:func:`parse_topic` says which hub a message is from and what it is (an event, the retained
status, a heartbeat, a command reply). :func:`parse_event` checks an event's payload against
the contract's shape (:class:`WireEvent`; fields a newer hub adds are let through) and against
its topic: the hub in the body must be the topic's (the broker's ACL lets a hub publish under
its own prefix only, so the topic is what can be trusted) and the type the topic's. Anything
else is a :class:`Malformed` with the reason, for a log line; it never reaches the store.
:func:`parse_batch` does the same for each event of a batch (``events``, contract 1.5).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import msgspec

from hub import eventbatch

#: What a topic under the prefix carries.
TopicKind = Literal["event", "events", "status", "heartbeat", "reply", "cmd", "other"]


class Topic(msgspec.Struct, frozen=True, kw_only=True):
    """A topic taken apart: ``{prefix}/{hub}/{kind}[/{rest}]`` (``events``: a batch of events, contract 1.5)."""

    hub: str
    kind: TopicKind
    #: The event type (``event/{type}``) or the account a reply is for (``reply/{account}``).
    rest: str | None = None


class Malformed(Exception):
    """A message the central cannot take; the text says why."""


class WireSource(msgspec.Struct, frozen=True, kw_only=True):
    """An event's ``source``."""

    device: str
    kind: str
    room: str | None = None


class WireEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event as the contract describes it (``contract/event.schema.json``), its fields typed."""

    v: Annotated[int, msgspec.Meta(ge=1)]
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    hub: str
    seq: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    ts: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    priority: str
    source: WireSource
    resident: str
    route: str
    data: dict[str, Any] = {}
    cause: str | None = None


class Received(msgspec.Struct, frozen=True, kw_only=True):
    """One event that passed :func:`parse_event`: its typed fields, and its body as it came (for de-duplication)."""

    event: WireEvent
    body: dict[str, Any]
    #: The body as JSON text, as the store keeps it.
    text: str


def parse_topic(topic: str, prefix: str) -> Topic | None:
    """``topic`` taken apart, or None when it is not under ``prefix``."""
    if not topic.startswith(prefix + "/"):
        return None
    parts = topic[len(prefix) + 1:].split("/")
    if len(parts) < 2 or not parts[0]:
        return None
    hub, kind = parts[0], parts[1]
    rest = "/".join(parts[2:]) or None
    if kind == "event" and rest is not None and len(parts) == 3:
        return Topic(hub=hub, kind="event", rest=rest)
    if kind in ("status", "heartbeat", "events") and rest is None:
        return Topic(hub=hub, kind=kind)  # type: ignore[arg-type]
    if kind in ("reply", "cmd") and rest is not None:
        return Topic(hub=hub, kind=kind, rest=rest)  # type: ignore[arg-type]
    return Topic(hub=hub, kind="other", rest="/".join(parts[1:]))


def json_object(payload: bytes) -> dict[str, Any]:
    """A payload that must be one JSON object; :class:`Malformed` otherwise."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed(f"not JSON: {str(exc)[:120]}") from None
    if not isinstance(doc, dict):
        raise Malformed(f"not a JSON object but {type(doc).__name__}")
    return doc


def parse_event(topic: Topic, payload: bytes) -> Received:
    """An event from ``topic``'s hub, checked; :class:`Malformed` with the reason otherwise."""
    return check_event(topic, json_object(payload))


def parse_batch(topic: Topic, payload: bytes) -> list[Received | Malformed]:
    """The events of a batch (``{prefix}/{hub}/events``, :mod:`hub.eventbatch`), each checked as
    :func:`parse_event` checks one (but for its type: the topic names none), or the reason it is not;
    :class:`Malformed` when the payload is no batch at all."""
    try:
        items = eventbatch.unpack(payload)
    except ValueError as exc:
        raise Malformed(f"not an event batch: {str(exc)[:120]}") from None
    out: list[Received | Malformed] = []
    for item in items:
        try:
            out.append(check_event(topic, item.event))
        except Malformed as exc:
            out.append(exc)
    return out


def check_event(topic: Topic, body: dict[str, Any]) -> Received:
    """An event's decoded body from ``topic``'s hub, checked; :class:`Malformed` with the reason otherwise."""
    try:
        event = msgspec.convert(body, WireEvent)
    except msgspec.ValidationError as exc:
        raise Malformed(f"not an event of the contract: {str(exc)[:200]}") from None
    if event.hub != topic.hub:
        raise Malformed(f"hub {event.hub[:64]!r} in the body, on hub {topic.hub!r}'s topic")
    if topic.kind == "event" and event.type != topic.rest:
        raise Malformed(f"type {event.type!r} in the body, on the topic of {topic.rest!r}")
    return Received(event=event, body=body, text=json.dumps(body, separators=(",", ":"), sort_keys=True))
