"""The hub's link to the broker, which the bench can cut and restore: a TCP relay in a process of its own.

The hub connects to :attr:`LinkRelay.port`; the relay passes the bytes both
ways to the broker. :meth:`LinkRelay.down` is an outage of the residence's
line: every relayed connection is reset and new ones are refused (the port
stops listening), as when the router loses its uplink and the hub's
reconnects fail. :meth:`LinkRelay.up` listens again on the same port. The
broker, and every other client of it (the bench's subscriber, standing in for
the central), stay up and connected throughout, so "the link's return" is a
moment the bench knows exactly, and nothing the central receives is delayed
by a reconnect of its own.

The relay runs in a child process (``spawn``), one thread per direction per
connection with blocking sockets, so its work never competes with the bench
process's subscriber for the GIL; the same relay carries the raw paho
baseline, so both pay its cost.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import signal
import socket
import threading
from typing import Any

from hil.harness.mosquitto import LOCALHOST, free_port


class _Relay:
    """The child's side: a listener thread and two pump threads per connection."""

    def __init__(self, port: int, target: int) -> None:
        self.port, self.target = port, target
        self.listener: socket.socket | None = None
        self.conns: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.accepted = 0

    def up(self) -> None:
        if self.listener is not None:
            return
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((LOCALHOST, self.port))
        ls.listen(64)
        self.listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def down(self) -> None:
        ls, self.listener = self.listener, None
        if ls is not None:
            try:
                ls.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            ls.close()
        with self.lock:
            conns, self.conns = self.conns, set()
        for s in conns:
            try:  # RST, as a line that drops does to the hub's socket sooner or later
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.close()
            except OSError:
                pass

    def _accept(self, ls: socket.socket) -> None:
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return
            try:
                server = socket.create_connection((LOCALHOST, self.target), timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                if self.listener is not ls:  # cut while connecting
                    client.close()
                    server.close()
                    return
                self.conns |= {client, server}
                self.accepted += 1
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(262144):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self.lock:
            self.conns.discard(src)
            self.conns.discard(dst)


def _serve(port: int, target: int, conn: multiprocessing.connection.Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's
    relay = _Relay(port, target)
    try:
        relay.up()
    except OSError as exc:
        conn.send({"ok": False, "error": repr(exc)})
        return
    conn.send({"ok": True})
    while True:
        try:
            cmd = conn.recv()
        except EOFError:
            break
        if cmd == "quit":
            relay.down()
            conn.send({"ok": True})
            break
        try:
            relay.up() if cmd == "up" else relay.down()
            conn.send({"ok": True, "accepted": relay.accepted})
        except OSError as exc:
            conn.send({"ok": False, "error": repr(exc)})


class LinkRelay:
    """A relay from a free port on 127.0.0.1 to ``target`` (the broker's port), up from the start."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(self.port, target, child), name="bench-link-relay", daemon=True)
        self.proc.start()
        child.close()
        self._reply(30)

    def _reply(self, timeout: float) -> dict[str, Any]:
        if not self._conn.poll(timeout):
            raise TimeoutError("link relay: no answer")
        out = self._conn.recv()
        if not out.pop("ok"):
            raise RuntimeError(f"link relay: {out.get('error')}")
        return out

    def up(self) -> None:
        """The line is back: listen again."""
        self._conn.send("up")
        self._reply(10)

    def down(self) -> None:
        """An outage: reset every relayed connection, refuse new ones."""
        self._conn.send("down")
        self._reply(10)

    def close(self) -> None:
        try:
            if self.proc.is_alive():
                self._conn.send("quit")
                self._reply(5)
        except (OSError, EOFError, TimeoutError, RuntimeError):
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self._conn.close()
