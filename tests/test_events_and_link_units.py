"""Small pure pieces: ids, timestamps, backoff, commands."""

from __future__ import annotations

import os
import random
import re
import time
import uuid
from datetime import datetime, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hub import commands
from hub.events import rfc3339, uuid7
from drivers.helpers import backoff_delays


def test_uuid7_is_version_7_and_sorts_by_creation():
    uuid7(time.time() + 3600)  # an id made for another time leaves the process's sequence alone
    ids = [uuid7() for _ in range(5000)]
    assert all(uuid.UUID(i).version == 7 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
    assert ids == sorted(ids), "ids made in the same millisecond keep their order"
    assert len(set(ids)) == len(ids)
    ms = int(ids[0].replace("-", "")[:12], 16)
    assert abs(ms / 1000 - time.time()) < 5


def test_rfc3339_utc_milliseconds():
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1795642238.3449) == "2026-11-25T21:30:38.344Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rfc3339())


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))  # up to 2100
@example(281474976.85599947)  # t * 1e6 rounds up in floating point; the fraction alone does not
def test_rfc3339_agrees_with_datetime_for_any_instant(t: float) -> None:
    dt = datetime.fromtimestamp(t, tz=timezone.utc)
    assert rfc3339(t) == dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def test_uuid7_in_a_forked_child_never_repeats_its_parents_random_bits():
    """Random bits are read ahead for many ids; a forked child must not hand out the ones its parent will."""
    uuid7()  # the parent has bits read ahead now
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(w, " ".join(uuid7() for _ in range(100)).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        child = f.read().decode().split()
    os.waitpid(pid, 0)
    parent = [uuid7() for _ in range(100)]
    assert len(child) == 100
    assert not {i[19:] for i in child} & {i[19:] for i in parent}, "the same random bits in parent and child"


def test_uuid7_for_a_given_instant_carries_its_milliseconds():
    t = time.time() + 3600.3449  # later than anything made so far in this process
    i = uuid7(t)
    assert uuid.UUID(i).version == 7 and uuid.UUID(i).variant == uuid.RFC_4122
    assert int(i.replace("-", "")[:12], 16) == int(t * 1000)
    assert str(uuid.UUID(i)) == i  # canonical lower-case 8-4-4-4-12


def test_backoff_grows_with_jitter_and_is_capped():
    d = backoff_delays(0.5, 30.0, rng=random.Random(1))
    delays = [next(d) for _ in range(40)]
    assert 0.25 <= delays[0] <= 0.5
    assert max(delays) <= 30.0
    assert min(delays[15:]) >= 15.0, "capped at 30 s with jitter in its upper half"
    assert len(set(round(x, 6) for x in delays[15:])) > 10, "jitter: hubs don't reconnect in lockstep"


@pytest.mark.parametrize(
    ("name", "payload", "fragment"),
    [
        ("ack", b"", "event_id"),
        ("ack", b"[]", "object"),
        ("replay", b'{"from_seq": 0, "to_seq": 3}', ">= 1"),
        ("nope", b"{}", "unknown command"),
        ("status", b"\xff\xfe", "bad status payload"),
    ],
)
def test_bad_command_payloads_are_refused_with_a_reason(name, payload, fragment):
    with pytest.raises(commands.CommandError, match=re.escape(fragment)):
        commands.parse(name, payload)


async def test_the_link_turns_nagle_off_so_an_alarm_never_waits_for_the_previous_ack(broker) -> None:
    """paho leaves Nagle's algorithm on: a small publish right after another one can wait
    up to 40 ms for the broker's delayed ACK. The hub's socket must have TCP_NODELAY."""
    import asyncio
    import socket

    from hub.link import Endpoint, LinkSettings, MqttLink, Will

    settings = LinkSettings(
        brokers=(Endpoint(host="127.0.0.1", port=broker.port),),
        client_id="nagle-test",
        will=Will(topic="t/status", payload=b'{"state":"offline"}'),
    )
    async with MqttLink(settings) as link:
        await asyncio.wait_for(link.online.wait(), 10)
        sock = link._conn.sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


async def test_paho_raising_in_publish_is_a_lost_link_that_comes_back(broker):
    """A socket gone under paho (ValueError: Invalid file descriptor: -1, seen when the broker died
    mid-publish) is LinkDown to the caller; the link drops that connection and connects again."""
    import asyncio

    import pytest

    from hub.link import BadTopic, Endpoint, LinkDown, LinkSettings, MqttLink, Will

    settings = LinkSettings(
        brokers=(Endpoint(host="127.0.0.1", port=broker.port),),
        client_id="fd-test",
        will=Will(topic="t/status", payload=b'{"state":"offline"}'),
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
    )
    async with MqttLink(settings) as link:
        await asyncio.wait_for(link.online.wait(), 10)
        conn = link._conn

        def dead_socket(*args, **kwargs):
            raise ValueError("Invalid file descriptor: -1")

        conn.client.publish = dead_socket
        with pytest.raises(LinkDown, match="Invalid file descriptor"):
            link.publish_nowait("t/x", b"1", qos=1)
        for _ in range(200):
            if link.online.is_set() and link._conn is not conn:
                break
            await asyncio.sleep(0.02)
        assert link._conn is not conn and link.connects == 2
        await link.publish("t/x", b"2", qos=1, timeout=5)  # the new connection works
        with pytest.raises(BadTopic):  # a bad topic is refused before paho, and the connection stays up
            await link.publish("t/+", b"3", qos=1, timeout=5)
        assert link.online.is_set() and link.connects == 2


async def test_commands_are_handled_outside_pahos_callbacks(broker):
    """paho holds a non-reentrant lock while it runs on_message; a reply published from there that meets
    a dead socket makes paho call on_disconnect under the same lock: the loop deadlocks (seen once when
    the broker stopped in the middle of a command flood). The link hands messages on after the callback."""
    import asyncio

    import paho.mqtt.client as mqtt

    from hub.link import Endpoint, LinkSettings, MqttLink, Will

    inside: list[bool] = []
    link: MqttLink

    def on_message(msg):
        inside.append(link._conn.client._in_callback_mutex.locked())
        link.reply_nowait(msg, {"ok": True})

    settings = LinkSettings(
        brokers=(Endpoint(host="127.0.0.1", port=broker.port),),
        client_id="callback-test",
        will=Will(topic="t/status", payload=b"{}"),
        subscriptions=("t/cmd/+",),
    )
    link = MqttLink(settings, on_message=on_message)
    async with link:
        await asyncio.wait_for(link.online.wait(), 10)
        await asyncio.sleep(0.2)  # the SUBACK
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        try:
            for i in range(5):
                pub.publish("t/cmd/status", b"{}", qos=1).wait_for_publish(5)
            for _ in range(100):
                if len(inside) == 5:
                    break
                await asyncio.sleep(0.02)
        finally:
            pub.loop_stop()
            pub.disconnect()
    assert inside == [False] * 5
