"""uvicorn's Server inside the caller's asyncio loop, stopped by cancelling :func:`serve`."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import structlog
import uvicorn

from central.view import CentralView
from central.web.app import make_app

log = structlog.get_logger("central.web")

#: How long open requests get to finish when the server stops (live streams end at once).
GRACE_S = 3.0


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handlers: the central's CLI owns Ctrl-C and SIGTERM."""

    def __init__(self, config: uvicorn.Config, started: asyncio.Event | None) -> None:
        super().__init__(config)
        self._started_event = started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._started_event is not None:
            self._started_event.set()


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a port in use is a clear ``OSError``, not an exit."""
    try:
        return socket.create_server((host, port), reuse_port=False, backlog=128)
    except OSError as exc:
        raise OSError(exc.errno, f"the web console cannot listen on {host}:{port}: {exc.strerror}") from exc


async def serve(
    view: CentralView,
    host: str,
    port: int,
    *,
    started: asyncio.Event | None = None,
    keepalive_s: float = 15.0,
) -> None:
    """Serve the operator's console for ``view`` on ``host:port`` until cancelled.

    Sets ``started`` once listening. Cancelling ends the live streams, lets open requests
    finish (at most :data:`GRACE_S`), closes the socket, then re-raises the cancellation.
    """
    sock = listen(host, port)
    stopping = asyncio.Event()
    app = make_app(view, keepalive_s=keepalive_s, stopping=stopping)
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=GRACE_S,
        server_header=False, proxy_headers=False,
    )
    server = _Server(config, started)
    bound = sock.getsockname()
    log.info("web_listening", host=bound[0], port=bound[1], url=f"http://{bound[0]}:{bound[1]}/")
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        stopping.set()
        server.should_exit = True
        with contextlib.suppress(Exception):
            await task
        log.info("web_stopped", host=bound[0], port=bound[1])
        raise
    finally:
        sock.close()
    if not server.started:
        raise RuntimeError(f"the web console did not start on {host}:{port} (see the log)")
