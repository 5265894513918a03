"""The control socket's server, one supervised task of the daemon.

A Unix stream socket (:mod:`hub.control.paths` says where) made mode 0660;
under systemd the daemon's primary group is ``carehub``, so an operator in
that group may connect (the service cannot chown: ``@chown`` is filtered).
JSON lines (:mod:`hub.control.protocol`), one request at a time per client,
at most :data:`~hub.control.protocol.MAX_CLIENTS` clients and
:data:`~hub.control.protocol.MAX_LINE` bytes a line. A bad request gets an
error reply and a (rate-limited) log line; nothing a client sends or fails
to read can stop the hub or make it wait: every reply is written with a
timeout, a tail client has a bounded queue (:mod:`hub.control.tail`).

The socket never needs the broker. If it cannot be made (a running hub
holds the path, a read-only directory), :meth:`ControlServer.run` logs
``control_socket_failed`` and tries again with backoff: the alarms go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import grp
import os
import pwd
import socket
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from drivers.helpers import backoff_delays
from drivers.simctl import answers
from hub.control import protocol
from hub.control.legs import LegWatch
from hub.control.protocol import MAX_CLIENTS, MAX_LINE, RequestError, encode
from hub.control.tail import Subscription, TailHub

log = structlog.get_logger("hub.control")

#: The group whose members may use the socket (mode 0660).
GROUP = "carehub"
#: A client silent this long between requests is closed (a tail client is never asked to speak).
IDLE_S = 300.0
#: A reply the client does not take within this long ends its connection.
WRITE_TIMEOUT_S = 10.0
#: One ``control_request_refused`` line per reason every this many seconds, with a count.
LOG_EVERY_S = 5.0

Run = Callable[[Any], Awaitable[dict[str, Any]]]
StatusDoc = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlServer:
    """Serves the control socket at ``path`` for the daemon's lifetime (:meth:`run`, supervised)."""

    def __init__(self, path: Path, *, run: Run, status: StatusDoc, tail: TailHub | None = None,
                 legs: LegWatch | None = None, max_clients: int = MAX_CLIENTS, max_line: int = MAX_LINE) -> None:
        self.path = path
        self.run_command = run
        self.status_doc = status
        self.tail = tail or TailHub()
        self.tail.on_drop = self._drop_tail
        self.legs = legs or LegWatch()
        self.max_clients = max_clients
        self.max_line = max_line
        self.refused: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self._server: asyncio.base_events.Server | None = None
        self._clients: dict[asyncio.StreamWriter, str] = {}
        self._tails: dict[Subscription, asyncio.StreamWriter] = {}
        self._logged: dict[str, tuple[float, int]] = {}

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """Listen (retrying with backoff while the socket cannot be made), serve until cancelled."""
        delays = backoff_delays(1.0, 60.0)
        try:
            while self._server is None:
                try:
                    await self.start()
                except OSError as exc:
                    log.error("control_socket_failed", socket=str(self.path), error=str(exc))
                    await asyncio.sleep(next(delays))
            await asyncio.Event().wait()
        finally:
            await self.close()

    async def start(self) -> None:
        """Make the socket, mode 0660; a stale file is replaced, a running hub's is not (``EADDRINUSE``)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if answers(self.path):
                raise OSError(errno.EADDRINUSE, f"in use by a running process: {self.path}")
            self.path.unlink()
        old = os.umask(0o177)  # never reachable by others, not even between bind and chmod
        try:
            server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=self.max_line)
        finally:
            os.umask(old)
        try:
            os.chmod(self.path, 0o660)
            st = self.path.stat()
        except OSError:
            server.close()
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise
        self._server = server
        group = _group_name(st.st_gid)
        log.info("control_listening", socket=str(self.path), mode=oct(st.st_mode & 0o777), group=group)
        if group != GROUP and _group_exists(GROUP):
            log.warning("control_socket_group", socket=str(self.path), group=group,
                        hint=f"members of {GROUP} cannot connect; run the hub with group {GROUP} (the unit does)")

    async def close(self) -> None:
        for writer in list(self._clients):
            writer.close()
        if self._server is None:
            return
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2.0)
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def status(self) -> dict[str, Any]:
        """The socket's own counters, for the status document."""
        return {
            "socket": str(self.path),
            "clients": len(self._clients),
            "max_clients": self.max_clients,
            "requests": dict(self.requests),
            "refused": dict(self.refused),
            "tail": self.tail.status(),
        }

    # --- one client -----------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer(writer)
        if len(self._clients) >= self.max_clients:
            self._refuse("busy", f"{len(self._clients)} clients already", peer)
            with contextlib.suppress(Exception):
                writer.write(encode({"ok": False, "error": f"busy: at most {self.max_clients} clients at once"}))
                await asyncio.wait_for(writer.drain(), 1.0)
            writer.close()
            return
        self._clients[writer] = peer
        try:
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), IDLE_S)
                except ValueError:  # the line went past the reader's limit
                    self._refuse("too_long", f"line over {self.max_line} bytes", peer)
                    await self._reply(writer, {"ok": False, "error": f"line too long: at most {self.max_line} bytes"})
                    break
                except TimeoutError:
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                if not await self._request(line, reader, writer, peer):
                    break
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            self._clients.pop(writer, None)
            writer.close()

    async def _request(self, line: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       peer: str) -> bool:
        """Answer one request; False when the connection ends with it (a tail)."""
        op = "?"
        try:
            op, fields = protocol.parse(line)
            self.requests[op] += 1
            if op == "status":
                await self._reply(writer, {"ok": True, **await self.status_doc(self.status())})
            elif op == "tail":
                await self._tail(protocol.tail_request(fields), reader, writer, peer)
                return False
            elif op == "test-alarm":
                cmd, timeout_s = protocol.test_alarm_command(fields)
                log.info("control_command", op=op, peer=peer, device=cmd.device)
                async with contextlib.aclosing(self.legs.legs(self.run_command, cmd, timeout_s)) as legs:
                    async for leg in legs:
                        await self._reply(writer, {"ok": leg.get("ok", True), **leg})
            else:
                cmd = protocol.command(op, fields, user=peer.partition(":")[2].split("/")[0] or None)
                reply = await self.run_command(cmd)
                log.info("control_command", op=op, peer=peer, ok=reply.get("ok"), error=reply.get("error"))
                await self._reply(writer, reply)
        except RequestError as exc:
            self._refuse(exc.reason, str(exc), peer)
            await self._reply(writer, {"ok": False, "error": str(exc)})
        except (ConnectionError, TimeoutError):
            raise
        except Exception as exc:  # a bug in one request must not cost the socket, let alone the hub
            log.exception("control_request_failed", op=op, peer=peer)
            await self._reply(writer, {"ok": False, "error": f"internal error: {type(exc).__name__}"})
        return True

    async def _reply(self, writer: asyncio.StreamWriter, obj: dict[str, Any]) -> None:
        writer.write(encode(obj))
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)

    def _refuse(self, reason: str, detail: str, peer: str) -> None:
        """Count a refused request; log it, at most once per reason every few seconds."""
        self.refused[reason] += 1
        now = time.monotonic()
        at, unlogged = self._logged.get(reason, (float("-inf"), 0))
        if now - at >= LOG_EVERY_S:
            log.warning("control_request_refused", reason=reason, error=detail[:200], peer=peer,
                        refused=unlogged + 1)
            self._logged[reason] = (now, 0)
        else:
            self._logged[reason] = (at, unlogged + 1)

    # --- tail -------------------------------------------------------------------------------

    async def _tail(self, req: protocol.TailRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    peer: str) -> None:
        sub = self.tail.subscribe(req.types, req.devices, peer=peer)
        self._tails[sub] = writer
        gone = asyncio.ensure_future(_until_eof(reader))
        try:
            await self._reply(writer, {"ok": True, "tail": sub.describe()})
            while sub.dropped is None:
                get = asyncio.ensure_future(sub.queue.get())
                done, _ = await asyncio.wait({get, gone}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    break
                event = get.result()
                writer.write(b'{"event":' + event.to_json() + b"}\n")
                await writer.drain()  # only this client waits; the hub's tap never does
                sub.sent += 1
        except (ConnectionError, TimeoutError):
            pass
        finally:
            gone.cancel()
            self._tails.pop(sub, None)
            self.tail.unsubscribe(sub)

    def _drop_tail(self, sub: Subscription) -> None:
        """The tail hub gave up on a slow client: tell it if the socket takes it, close, abort soon."""
        writer = self._tails.pop(sub, None)
        if writer is None:
            return
        transport = writer.transport
        with contextlib.suppress(Exception):
            transport.write(encode({"ok": False, "error": f"dropped: {sub.dropped}"}))
        transport.close()
        asyncio.get_running_loop().call_later(2.0, transport.abort)  # a peer that never reads frees it all the same


async def _until_eof(reader: asyncio.StreamReader) -> None:
    """Read and discard until the client goes (a tail client has nothing to say)."""
    while await reader.read(4096):
        pass


def _peer(writer: asyncio.StreamWriter) -> str:
    """``pid:user/uid`` from the socket's peer credentials (``?`` when the system does not say)."""
    sock = writer.get_extra_info("socket")
    try:
        pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                              struct.calcsize("3i")))
    except (OSError, AttributeError, struct.error):
        return "?"
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    return f"{pid}:{user}/{uid}"


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True
