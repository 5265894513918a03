"""The command gate on its own: what it refuses, what it answers, and that nothing piles up.

The gate is the hub's own logic between the link and the commands; these tests
drive it with real :class:`~hub.link.Incoming` messages and record what it runs
and replies (the end-to-end flood is in test_command_flood_e2e.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hub import commands
from hub.commandgate import MAX_PAYLOAD, CommandGate
from hub.link import Incoming

PREFIX = "carehub/v1/h/cmd/"


class Recorder:
    def __init__(self, *, fail: bool = False, slow: float = 0.0) -> None:
        self.ran: list[Any] = []
        self.replies: list[tuple[str | None, dict[str, Any]]] = []
        self.fail, self.slow = fail, slow

    async def run(self, cmd: Any) -> dict[str, Any]:
        self.ran.append(cmd)
        if self.slow:
            await asyncio.sleep(self.slow)
        if self.fail:
            raise RuntimeError("boom")
        return {"ok": True}

    async def reply(self, msg: Incoming, body: dict[str, Any]) -> None:
        self.replies.append((msg.response_topic, body))

    def reply_nowait(self, msg: Incoming, body: dict[str, Any]) -> bool:
        self.replies.append((msg.response_topic, body))
        return True


def msg(name: str, payload: bytes = b"{}", response_topic: str | None = "central/reply/1") -> Incoming:
    return Incoming(topic=PREFIX + name, payload=payload, properties=None, response_topic=response_topic,
                    correlation_data=b"c1")


def gate(rec: Recorder, **kw: Any) -> CommandGate:
    return CommandGate(PREFIX, rec.run, rec.reply, rec.reply_nowait, **kw)


async def serve_briefly(g: CommandGate, seconds: float = 0.05) -> None:
    task = asyncio.create_task(g.serve())
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_replay_seqs_past_int64_get_a_clean_error_reply() -> None:
    rec = Recorder()
    g = gate(rec)
    g.offer(msg("replay", b'{"from_seq": 1, "to_seq": 9223372036854775808}'))
    g.offer(msg("replay", b'{"from_seq": 0, "to_seq": 5}'))
    await serve_briefly(g)
    assert rec.ran == []
    assert [b["refused"] for _, b in rec.replies] == ["invalid", "invalid"]
    assert "9223372036854775807" in rec.replies[0][1]["error"] and "to_seq" in rec.replies[0][1]["error"]
    assert g.status()["refused"] == {"invalid": 2}


@pytest.mark.parametrize(
    ("topic", "why"),
    [("central/+/reply", "+ or #"), ("central/#", "+ or #"), (PREFIX + "status", "own command topics"), ("", "+ or #")],
)
async def test_response_topics_it_cannot_answer_on_get_no_reply(topic: str, why: str) -> None:
    rec = Recorder()
    g = gate(rec)
    g.offer(msg("status", response_topic=topic))
    await serve_briefly(g)
    assert rec.ran == [] and rec.replies == []
    assert g.status()["refused"] == {"response_topic": 1}


async def test_oversized_payloads_are_refused_unread() -> None:
    rec = Recorder()
    g = gate(rec)
    g.offer(msg("ack", b"{" + b" " * MAX_PAYLOAD + b"}"))
    await serve_briefly(g)
    (topic, body), = rec.replies
    assert body["refused"] == "too_large" and rec.ran == []


async def test_each_command_has_its_own_rate() -> None:
    rec = Recorder()
    g = gate(rec, rates={"status": (1.0, 5.0), "ack": (1.0, 5.0)}, max_queued=1000)
    for _ in range(50):
        g.offer(msg("status"))
    g.offer(msg("ack", b'{"event_id": "0190a1b2-0000-7000-8000-000000000000"}'))
    await serve_briefly(g)
    assert sum(isinstance(c, commands.Status) for c in rec.ran) == 5
    assert sum(isinstance(c, commands.Ack) for c in rec.ran) == 1, "a status flood must not starve ack"
    assert g.status()["refused"] == {"rate_limited": 45}


async def test_a_full_queue_says_busy_and_refusal_replies_are_capped() -> None:
    rec = Recorder(slow=1.0)
    g = gate(rec, max_queued=4, workers=1, rates={})
    task = asyncio.create_task(g.serve())
    await asyncio.sleep(0)
    for _ in range(500):
        g.offer(msg("status"))
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert g.status()["refused"]["busy"] >= 490
    busy_replies = [b for _, b in rec.replies if b.get("refused") == "busy"]
    assert 0 < len(busy_replies) <= 25, "refusals under a flood are answered, but only so many a second"
    assert g.queue.qsize() <= 4


async def test_a_command_that_raises_gets_an_error_reply_and_the_runner_goes_on() -> None:
    rec = Recorder(fail=True)
    g = gate(rec)
    g.offer(msg("status"))
    g.offer(msg("status"))
    await serve_briefly(g)
    assert len(rec.ran) == 2
    assert [b for _, b in rec.replies] == [{"ok": False, "error": "internal error: RuntimeError"}] * 2
