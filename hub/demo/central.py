"""The demo's alarm central: the real one (:class:`central.engine.Engine`) on a thread of its own.

The engine runs in the demo's process, on a background thread with its own asyncio loop, and the
demo's main thread talks to it through :class:`DemoCentral` (each call a coroutine handed to that
loop, waited for in short steps so Ctrl-C is felt at once). Why a thread and not a ``carehub
central`` subprocess: Python delivers signals to the main thread only, so the demo's own Ctrl-C
and SIGTERM handling (:mod:`hub.demo.signals`) stays as it is and the engine's thread has none
to handle; a demo killed with kill -9 takes its central with it, leaving nothing for the next run
to stop; and the script reads the engine's view, taps its messages and acks through it directly.

What it is set up with: the store in SQLite at ``state/demo-central.db`` (it survives reruns,
so alarms of an earlier run are still there), instance ``demo`` (MQTT client id
``central-demo``), its log as JSON lines in ``state/demo-central.log``. One choice differs from
``carehub central``'s defaults: no MQTT session is left on the broker when the demo ends
(``session_expiry_s = 0``). A session kept on a shared broker would be given its round-robin
share of the events while no demo runs, and a status queued in it would come back looking live;
what the hub sent meanwhile reaches the next run anyway, from the hub's outbox or by gap filling.

When :mod:`central.web` is there, the operator's web console is served too, on 127.0.0.1:8080,
or on a free port when 8080 is taken (:attr:`DemoCentral.web_url`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib.util
import logging
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hub.demo.common import DemoError
from hub.demo.procs import free_port
from hub.demo.wiretap import Wiretap

if TYPE_CHECKING:
    from central.engine import Engine
    from central.view import AckOutcome, AlarmView, Change, HubView

T = TypeVar("T")

#: The demo central's instance name (its MQTT client id is central-demo) and its operator.
INSTANCE = "demo"
OPERATOR = "operator-demo"
#: The web console's port when it is free.
WEB_PORT = 8080


def log_to(path: Path) -> None:
    """Send this process's structlog lines (the engine's, its MQTT link's) to ``path`` as JSON lines,
    so the demo's screen shows only what the demo prints."""
    import structlog

    out = open(path, "a", buffering=1)  # noqa: SIM115  (open for the process's life: loggers hold it)
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer(default=str)],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


class DemoCentral:
    """The real central for one demo run: :meth:`start`, the script's calls, :meth:`close`."""

    def __init__(self, *, host: str, port: int, prefix: str, hub_id: str, db: Path, launched: float,
                 web: bool = True) -> None:
        self.host, self.port, self.prefix, self.hub_id, self.db = host, port, prefix, hub_id, db
        self.tap = Wiretap(hub_id, launched=launched)
        self.tap.check = self._check
        #: the hub process: waiting stops at once when it exits
        self.hub: subprocess.Popen[bytes] | None = None
        self.web = web and importlib.util.find_spec("central.web") is not None
        self.web_url: str | None = None
        self.web_error: str | None = None
        self.engine: Engine | None = None
        self._runner = asyncio.Runner(loop_factory=asyncio.new_event_loop)  # no loop set on the main thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = asyncio.Event()
        self._ready = False
        self._failed: str | None = None
        self._thread: threading.Thread | None = None

    # --- the thread and its loop ---------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> None:
        """Start the central's thread; return once it is connected and subscribed (and the console listens)."""
        self._loop = self._runner.get_loop()  # made here, run on the thread: close() can reach it from now on
        self._thread = threading.Thread(target=self._thread_main, name="demo-central", daemon=True)
        self._thread.start()
        self.tap.wait(lambda: self._ready, timeout, f"central connected to the broker on {self.host}:{self.port}")

    def _thread_main(self) -> None:
        try:
            self._runner.run(self._main())
        except BaseException as exc:  # noqa: BLE001  (whatever it was, the main thread must hear of it)
            self._fail(f"{type(exc).__name__}: {exc}")
        finally:
            self._runner.close()

    def _check(self, what: str) -> None:
        if self._failed is not None:
            raise DemoError(f"the central failed while waiting for {what}: {self._failed}")
        if self.hub is not None and self.hub.poll() is not None:
            raise DemoError(f"the hub exited with status {self.hub.returncode} while waiting for {what}")

    def _fail(self, why: str) -> None:
        with self.tap.cond:
            self._failed = why
            self.tap.cond.notify_all()

    async def _main(self) -> None:
        from central import config as central_config
        from central.engine import Engine
        from central.mqtt import MqttOptions
        from central.store import StoreError, open_store
        from hub.link import Endpoint

        try:
            store = await open_store(str(self.db), instance=INSTANCE)
        except StoreError as exc:
            self._fail(f"its store {self.db}: {exc}")
            return
        cfg = central_config.parse("[mqtt]\nsession_expiry_s = 0\n")
        engine = Engine(store=store, config=cfg, instance=INSTANCE, mqtt=MqttOptions(
            brokers=(Endpoint(host=self.host, port=self.port),), prefix=self.prefix, client_id=f"central-{INSTANCE}",
            account=f"central-{INSTANCE}", keepalive_s=cfg.mqtt.keepalive_s, session_expiry_s=0,
            share_group="carehub-demo"))  # a group of its own: never splits events with a real central on the broker
        engine.tap(self.tap)
        self.engine = engine
        tasks = [asyncio.create_task(engine.run(), name="engine"), asyncio.create_task(self._up(engine), name="up")]
        stop = asyncio.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
            while stop not in done:
                for task in done:
                    tasks.remove(task)
                    if task.cancelled() or task.exception() is not None:
                        exc = task.exception() if not task.cancelled() else None
                        self._fail(f"{task.get_name()}: {type(exc).__name__}: {exc}")
                done, _ = await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in [*tasks, stop]:
                task.cancel()
            await asyncio.gather(*tasks, stop, return_exceptions=True)
            await store.close()

    async def _up(self, engine: Engine) -> None:
        """Ready once connected and subscribed, with the web console listening when there is one (it then
        serves from here until cancelled)."""
        await engine.ready.wait()
        server = await self._serve(engine) if self.web else None
        self._set_ready()
        if server is not None:
            await server

    async def _serve(self, engine: Engine) -> asyncio.Task[None] | None:
        """The web console listening on 127.0.0.1 (:data:`WEB_PORT`, else a free port); None when it cannot
        (:attr:`web_error` says why: the demo goes on without it)."""
        from central.web import serve

        for port in (WEB_PORT, free_port(), free_port()):
            started = asyncio.Event()
            server = asyncio.create_task(serve(engine, "127.0.0.1", port, started=started), name="web")
            up = asyncio.create_task(started.wait())
            await asyncio.wait([server, up], return_when=asyncio.FIRST_COMPLETED)
            up.cancel()
            if started.is_set():
                self.web_url = f"http://127.0.0.1:{port}/"
                return server
            try:
                await server
            except Exception as exc:  # the port taken meanwhile, or the console broke: the next port
                self.web_error = f"{type(exc).__name__}: {exc}"
        return None

    def _set_ready(self) -> None:
        with self.tap.cond:
            self._ready = True
            self.tap.cond.notify_all()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float, what: str) -> T:
        """Run ``coro`` on the central's loop and wait for it in short steps (a signal is felt at once;
        a failed central or an exited hub ends the wait)."""
        assert self._loop is not None
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        deadline = time.monotonic() + timeout
        try:
            while not fut.done():
                concurrent.futures.wait([fut], timeout=0.25)
                if fut.done():
                    break
                self._check(what)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no {what} within {timeout}s")
            return fut.result()
        finally:
            fut.cancel()

    # --- what the script does through the engine --------------------------------------------------

    def hub_view(self) -> HubView | None:
        """The demo hub as the central supervises it (None: never heard of)."""
        assert self.engine is not None
        snap = self._call(self.engine.snapshot(), 10, "snapshot")
        return next((h for h in snap.hubs if h.hub == self.hub_id), None)

    def wait_online(self, timeout: float = 20.0) -> HubView:
        """The hub's live birth (it is connected and subscribed to its commands), as the engine's hub view shows it."""
        self.tap.wait_status("online", timeout)
        deadline = time.monotonic() + timeout
        while (view := self.hub_view()) is None or view.state != "online":
            if time.monotonic() > deadline:
                raise TimeoutError(f"the central does not see hub {self.hub_id} online within {timeout}s")
            time.sleep(0.05)
        return view

    def open_alarms(self) -> list[AlarmView]:
        """The demo hub's open alarms at the central, most urgent first."""
        assert self.engine is not None
        return [a for a in self._call(self.engine.snapshot(), 10, "snapshot").alarms if a.hub == self.hub_id]

    def changes(self) -> AsyncIterator[Change]:
        """A subscription to the engine's live feed from now on (made on its loop)."""
        async def subscribe() -> AsyncIterator[Change]:
            assert self.engine is not None
            return self.engine.changes()
        return self._call(subscribe(), 10, "feed")

    def wait_alarm(self, feed: AsyncIterator[Change], match: Callable[[AlarmView], bool],
                   timeout: float = 10.0) -> AlarmView:
        """The first alarm on ``feed`` that ``match`` accepts (after a resync, from the snapshot)."""
        async def first() -> AlarmView:
            assert self.engine is not None
            async for change in feed:
                if change.alarm is not None and match(change.alarm):
                    return change.alarm
                if change.kind == "resync":
                    found = [a for a in (await self.engine.snapshot()).alarms if match(a)]
                    if found:
                        return found[0]
            raise DemoError("the central's feed ended")
        return self._call(first(), timeout, "alarm at the central")

    def ack(self, event_id: str, by: str = OPERATOR) -> AckOutcome:
        """The operator's ack through the engine (``cmd/ack``, recorded, the alarm closed at the central)."""
        assert self.engine is not None
        return self._call(self.engine.ack(event_id, by), 30, "ack")

    def command(self, name: str, body: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Another command to the demo hub through the engine's link; the hub's reply."""
        assert self.engine is not None
        return self._call(self.engine.request(self.hub_id, name, body, timeout), timeout + 5, f"reply to {name}")

    def close(self, timeout: float = 10.0) -> None:
        """Stop the central (it leaves the broker cleanly) and its thread; the store is closed."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is gone already
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)
