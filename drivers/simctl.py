"""The sim control socket: how the demo and the test rig drive simulated devices.

A Unix stream socket speaking JSON lines: each request is one object with an
``op`` (and the op's fields), each reply one object with ``ok`` and either the
op's result or an ``error``. Drivers with a simulated backend register their
ops here (``press``, ``state``, later ``advert``...). A bad request gets an
error reply; it never disturbs the daemon.

The socket only exists when a simulated backend is configured; it is created
mode 0600 in the state directory.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from drivers.base import SimCommandError

log = structlog.get_logger("drivers.simctl")

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class SimControl:
    """The server side, run inside the daemon."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handlers: dict[str, Handler] = {}
        self._server: asyncio.base_events.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    def register(self, op: str, handler: Handler) -> None:
        """Make ``op`` callable through the socket."""
        self.handlers[op] = handler

    def unregister(self, op: str, handler: Handler) -> None:
        """Take ``op`` away, if it is still ``handler`` (a driver detached by a config reload)."""
        if self.handlers.get(op) is handler:
            del self.handlers[op]

    @property
    def listening(self) -> bool:
        """True between :meth:`start` and :meth:`close`."""
        return self._server is not None

    async def start(self) -> None:
        """Listen on :attr:`path`.

        A socket file left by a process that died (kill -9, power cut) is
        replaced; one that a running process still answers on is not: that
        raises :class:`OSError` (``EADDRINUSE``), so a second hub, a scan or an
        emulator never takes a running hub's socket away from it.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if answers(self.path):
                raise OSError(errno.EADDRINUSE, f"in use by a running process: {self.path}")
            self.path.unlink()
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old)
        log.info("sim_control_listening", socket=str(self.path), ops=sorted(self.handlers))

    async def close(self) -> None:
        for writer in list(self._clients):  # end open sessions, so their handlers finish on EOF
            writer.close()
        if self._server is None:
            return  # never listened: the file at path (if any) is someone else's
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while line := await reader.readline():
                reply = await self._dispatch(line)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    async def _dispatch(self, line: bytes) -> dict[str, Any]:
        try:
            req = json.loads(line)
            if not isinstance(req, dict) or not isinstance(req.get("op"), str):
                raise SimCommandError("expected a JSON object with a string 'op'")
            handler = self.handlers.get(req["op"])
            if handler is None:
                raise SimCommandError(f"unknown op {req['op']!r}; have: {', '.join(sorted(self.handlers))}")
            return {"ok": True, **await handler(req)}
        except (SimCommandError, ValueError, TypeError, KeyError) as exc:
            log.warning("sim_request_refused", error=str(exc))
            return {"ok": False, "error": str(exc)}
        except Exception as exc:
            log.exception("sim_request_failed")
            return {"ok": False, "error": f"internal error: {exc}"}


def answers(path: str | os.PathLike[str]) -> bool:
    """True if a process accepts connections on the Unix socket at ``path`` (False: none there, or a stale file)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(str(path))
        except OSError:  # refused (stale file), not a socket, or gone
            return False
        return True


class SimClient:
    """A blocking client for tests, benchmarks and the rig: one connection, many requests."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self._file = self.sock.makefile("rb")

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one request; return the reply, raising :class:`SimCommandError` on ``ok: false``."""
        self.send(request)
        return self.reply()

    def send(self, request: dict[str, Any]) -> None:
        """Send one request without waiting; read its answer later with :meth:`reply` (replies come in order).

        A benchmark sends a press, waits for the alarm at its subscriber, and
        only then reads the reply, so no thread of its own wakes for the reply
        while the alarm is on its way.
        """
        self.sock.sendall(json.dumps(request).encode() + b"\n")

    def reply(self) -> dict[str, Any]:
        """The reply to the oldest request sent and not yet answered."""
        line = self._file.readline()
        if not line:
            raise ConnectionError("sim control socket closed")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise SimCommandError(reply.get("error", "unknown error"))
        return reply

    def close(self) -> None:
        self._file.close()
        self.sock.close()

    def __enter__(self) -> SimClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def call(path: str | os.PathLike[str], request: dict[str, Any], *, timeout: float = 10.0) -> dict[str, Any]:
    """One request on a fresh connection."""
    with SimClient(path, timeout=timeout) as client:
        return client.call(request)
