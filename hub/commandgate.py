"""Back-pressure on commands from the central: a flood costs a counter, not memory or an alarm's latency.

Every message on ``{prefix}/{hub}/cmd/{name}`` passes :meth:`CommandGate.offer`,
a plain callback on the loop, before anything is allocated for it:

1. the payload size (``max_payload`` bytes) and the response topic (a topic
   name to publish to: no wildcards, not the hub's own command topics, so a
   reply can never loop back as a command) are checked;
2. the payload is parsed and every field checked (:mod:`hub.commands`);
3. each command name has its own rate (a token bucket), so a flood of
   ``status`` requests does not starve ``ack``;
4. at most ``max_queued`` commands wait for ``workers`` runners.

What is refused at any step gets an error reply where one is possible (its
own token bucket caps those, so refusing stays cheap), a counter in
``status`` and a rate-limited ``command_refused`` log line. Nothing is queued
for it, so memory stays where it was, whatever the rate.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from hub import commands
from hub.link import Incoming, check_topic, BadTopic
from drivers.helpers import TaskSet

log = structlog.get_logger("hub.commandgate")

#: A command payload larger than this is refused unread.
MAX_PAYLOAD = 4096
#: Correlation data longer than this is not echoed (it is the central's, and small).
MAX_CORRELATION = 256
#: Per command: (tokens per second, burst).
DEFAULT_RATES: dict[str, tuple[float, float]] = {
    "ack": (20.0, 100.0),
    "test-alarm": (2.0, 30.0),
    "status": (5.0, 20.0),
    "replay": (1.0, 3.0),
    "ble-forget": (1.0, 5.0),
    "away": (1.0, 10.0),
    "config": (1.0, 5.0),
    "config-status": (2.0, 10.0),
}
#: Commands allowed a larger payload than ``max_payload``: a pushed config carries a whole TOML file.
LARGE_PAYLOADS: dict[str, int] = {"config": 64 * 1024}
#: Error replies to refused commands: at most this many per second (burst 20).
REFUSAL_REPLIES_PER_S = 10.0
#: One ``command_refused`` log line per reason every this many seconds.
LOG_EVERY_S = 5.0


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.at = time.monotonic()

    def take(self, now: float | None = None) -> bool:
        """Take one token if there is one."""
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(frozen=True)
class Request:
    """A command that passed the gate, waiting for a runner."""

    name: str
    command: Any
    message: Incoming


Run = Callable[[Any], Awaitable[dict[str, Any]]]
Reply = Callable[[Incoming, dict[str, Any]], Awaitable[None]]
ReplyNowait = Callable[[Incoming, dict[str, Any]], bool]


class CommandGate:
    """Checks, rate-limits and queues the central's commands; runs them with bounded concurrency."""

    def __init__(
        self,
        prefix: str,
        run: Run,
        reply: Reply,
        reply_nowait: ReplyNowait,
        *,
        max_payload: int = MAX_PAYLOAD,
        max_queued: int = 32,
        workers: int = 2,
        rates: dict[str, tuple[float, float]] | None = None,
    ) -> None:
        self.prefix = prefix
        self.run = run
        self.reply = reply
        self.reply_nowait = reply_nowait
        self.max_payload = max_payload
        self.workers = workers
        self.queue: asyncio.Queue[Request] = asyncio.Queue(max_queued)
        rates = DEFAULT_RATES if rates is None else rates
        self.buckets = {name: TokenBucket(*rate) for name, rate in rates.items()}
        self.refusal_replies = TokenBucket(REFUSAL_REPLIES_PER_S, 20.0)
        self.refused: Counter[str] = Counter()
        self.handled = 0
        self._logged: dict[str, float] = {}
        self._tasks = TaskSet()

    # --- the gate (synchronous, on the loop) ----------------------------------------------

    def offer(self, msg: Incoming) -> None:
        """A message arrived on a subscribed topic: refuse it, or queue it for a runner."""
        if not msg.topic.startswith(self.prefix):
            return
        name = msg.topic[len(self.prefix):]
        if msg.correlation_data is not None and len(msg.correlation_data) > MAX_CORRELATION:
            msg.correlation_data = None
            self._refuse(msg, name, "correlation_data", f"correlation data over {MAX_CORRELATION} bytes", reply=False)
            return
        if msg.response_topic is not None:
            problem = self._bad_response_topic(msg.response_topic)
            if problem:
                msg.response_topic = None  # nowhere safe to answer
                self._refuse(msg, name, "response_topic", problem, reply=False)
                return
        limit = LARGE_PAYLOADS.get(name, self.max_payload)
        if len(msg.payload) > limit:
            self._refuse(msg, name, "too_large", f"payload of {len(msg.payload)} bytes; at most {limit}")
            return
        try:
            command = commands.parse(name, msg.payload)
        except commands.CommandError as exc:
            self._refuse(msg, name, "invalid", str(exc))
            return
        bucket = self.buckets.get(name)
        if bucket is not None and not bucket.take():
            self._refuse(msg, name, "rate_limited", f"too many {name} commands; try again in a second")
            return
        try:
            self.queue.put_nowait(Request(name, command, msg))
        except asyncio.QueueFull:
            self._refuse(msg, name, "busy", "the hub is busy with other commands; try again")

    def _bad_response_topic(self, topic: str) -> str | None:
        try:
            check_topic(topic)
        except BadTopic:
            return f"response topic {topic[:80]!r} is not a topic name to publish to (no + or #)"
        if topic.startswith(self.prefix):
            return "response topic is one of the hub's own command topics"
        if len(topic) > 512:
            return "response topic over 512 characters"
        return None

    def _refuse(self, msg: Incoming, name: str, why: str, error: str, *, reply: bool = True) -> None:
        self.refused[why] += 1
        now = time.monotonic()
        if now - self._logged.get(why, float("-inf")) >= LOG_EVERY_S:
            self._logged[why] = now
            log.warning("command_refused", command=name[:64], reason=why, error=error[:300], refused_total=self.refused[why])
        if reply and msg.response_topic and self.refusal_replies.take(now):
            self.reply_nowait(msg, {"ok": False, "error": error, "refused": why})

    # --- the runners ------------------------------------------------------------------------

    async def serve(self) -> None:
        """Run queued commands, ``workers`` at a time, until cancelled."""
        runners = [asyncio.create_task(self._runner()) for _ in range(self.workers)]
        try:
            await asyncio.gather(*runners)
        finally:
            for r in runners:
                r.cancel()

    async def _runner(self) -> None:
        while True:
            req = await self.queue.get()
            try:
                try:
                    reply = await self.run(req.command)
                except commands.CommandError as exc:
                    reply = {"ok": False, "error": str(exc)}
                except Exception as exc:  # a bug in one command must not stop the others
                    log.exception("command_failed", command=req.name)
                    reply = {"ok": False, "error": f"internal error: {type(exc).__name__}"}
                self.handled += 1
                log.info("command_handled", command=req.name, ok=reply.get("ok"))
                await self.reply(req.message, dict(reply))
                if isinstance(reply, commands.Followup):  # e.g. a pushed config, applied once its reply is out
                    try:
                        await reply.then()
                    except Exception:
                        log.exception("command_followup_failed", command=req.name)
            finally:
                self.queue.task_done()

    def status(self) -> dict[str, Any]:
        """Counters for ``status``: handled, refused by reason, queued now."""
        return {"handled": self.handled, "refused": dict(self.refused), "queued": self.queue.qsize()}
