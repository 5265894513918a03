"""The live feed as server-sent events: one ``change`` event per :class:`~central.view.Change`.

The stream opens with a ``hello`` event, sent once the subscription to the view's changes is
in place: a page that (re-)reads the snapshot on ``hello`` misses nothing between the two.
A comment line every ``keepalive_s`` keeps proxies from closing an idle stream (and finds a
client that went away). The stream ends when the client goes away (Starlette cancels it) or
when ``stopping`` is set (the server shuts down): the browser's EventSource then reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import msgspec
import structlog

from central.view import CentralView, Change

log = structlog.get_logger("central.web.stream")

#: How long a browser waits before reconnecting after the stream ended (ms).
RETRY_MS = 2000


def sse(event: str, data: bytes) -> bytes:
    """One server-sent event; ``data`` is one line of JSON (msgspec never writes a newline)."""
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


async def _next(changes: AsyncIterator[Change]) -> Change:
    return await anext(changes)


async def change_stream(
    view: CentralView, *, stopping: asyncio.Event, keepalive_s: float, peer: str = "?"
) -> AsyncIterator[bytes]:
    """Bytes of the ``text/event-stream`` body: hello, then every change, keep-alives between."""
    changes = aiter(view.changes())
    pending: asyncio.Task[Change] | None = asyncio.ensure_future(_next(changes))
    stop = asyncio.ensure_future(stopping.wait())
    sent = 0
    log.info("web_stream_open", peer=peer)
    try:
        # let the subscription start before hello promises that nothing is missed from here on
        await asyncio.sleep(0)
        hello = msgspec.json.encode({"at": datetime.now(UTC).isoformat().replace("+00:00", "Z")})
        yield f"retry: {RETRY_MS}\n".encode() + sse("hello", hello)
        while pending is not None:
            done, _ = await asyncio.wait({pending, stop}, timeout=keepalive_s, return_when=asyncio.FIRST_COMPLETED)
            if stop in done:
                break
            if pending not in done:
                yield b": keep-alive\n\n"
                continue
            try:
                change = pending.result()
            except StopAsyncIteration:
                pending = None
                break
            except Exception as exc:  # the engine's feed failed: end this stream, the page reconnects and re-reads
                pending = None
                log.error("web_stream_feed_failed", peer=peer, error=repr(exc))
                break
            pending = asyncio.ensure_future(_next(changes))
            sent += 1
            yield sse("change", msgspec.json.encode(change))
    finally:
        for task in (pending, stop):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        closer = getattr(changes, "aclose", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()
        log.info("web_stream_closed", peer=peer, sent=sent, server_stopping=stopping.is_set())
