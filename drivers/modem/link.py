"""One modem as the hub sees it: a :class:`~drivers.base.TextPath`, checked on a schedule, its inbox read.

The backend is sync (atlib over pyserial) and may block: every call runs in
the link's one worker thread, one at a time (an :class:`asyncio.Lock` keeps a
send from slipping between a check's commands), bounded by a timeout. A modem
that stops answering costs the hub nothing but that timeout: the port is
closed from the loop's side (the stuck call ends on it), the path is reported
down (``not_answering``), and the next check opens the port again. A port
that is gone (unplugged) is tried again at every check until it is back.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

from drivers.base import HubPort, PathState, TextSendError
from drivers.modem.backend import ModemBackend, ModemGone, ModemReading, NotAnswering, SendRefused

log = structlog.get_logger("drivers.modem")

#: Registration states of +CREG that mean registered: 1 home network, 5 roaming.
REGISTERED = (1, 5)
#: Seconds to wait for a stuck call to end once its port is closed under it.
ABORT_WAIT_S = 5.0


def masked(number: str) -> str:
    """A phone number for the journal: its last three digits only (``*******567``)."""
    return "*" * max(0, len(number) - 3) + number[-3:]


def judge(reading: ModemReading, min_signal: int) -> PathState:
    """The path's state from one reading: up only with a ready SIM, registered, and a signal at ``min_signal``."""
    detail: dict[str, Any] = {"sim": reading.sim, "registration": reading.registration, "signal": reading.signal}
    if reading.sim != "ready":
        return PathState(up=False, reason="no_sim", detail=detail)
    if reading.registration not in REGISTERED:
        return PathState(up=False, reason="not_registered", detail=detail)
    if reading.signal is None or reading.signal == 99 or reading.signal < min_signal:
        return PathState(up=False, reason="weak_signal", detail=detail)
    return PathState(up=True, detail=detail)


class ModemLink:
    """A modem (``[device.modem]`` ``opts``) on ``backend``, reported through ``port`` as device ``device``."""

    def __init__(self, device: str, opts: Any, backend: ModemBackend, port: HubPort) -> None:
        self.device = device
        self.opts = opts
        self.backend = backend
        self.port = port
        self.opened = False
        self.state: PathState | None = None
        self.counters: Counter[str] = Counter()
        self.last_error: str | None = None
        self._lock = asyncio.Lock()
        self._ex = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"modem-{device}")

    # --- the worker thread -------------------------------------------------------------------

    async def _call(self, fn: Any, *args: Any, timeout: float) -> Any:
        """``fn(*args)`` in the worker thread; :class:`NotAnswering` after ``timeout`` (the port closed under it)."""
        fut = asyncio.get_running_loop().run_in_executor(self._ex, fn, *args)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            pass
        self.backend.abort()  # the stuck call fails on the closed port
        self.opened = False
        try:
            await asyncio.wait_for(asyncio.shield(fut), ABORT_WAIT_S)
        except BaseException:  # noqa: BLE001 - whatever it ended with, it is over (or abandoned below)
            pass
        if not fut.done():  # a thread that will not come back: leave it, take a fresh one
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())
            log.error("modem_worker_stuck", device=self.device, waited_s=timeout + ABORT_WAIT_S)
            self._ex.shutdown(wait=False, cancel_futures=True)
            self._ex = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"modem-{self.device}")
        raise NotAnswering(f"no answer within {timeout:g}s")

    async def _ensure_open(self) -> None:
        if not self.opened:
            await self._call(self.backend.open, timeout=4 * self.opts.command_timeout_s)
            self.opened = True
            log.info("modem_opened", device=self.device, port=self.opts.port)

    def _lost(self, reason: str, detail: str) -> None:
        """The modem is gone or silent: the port closed, the path down with ``reason``."""
        self.opened = False
        self.backend.abort()
        self._ex.submit(self.backend.close)
        self._tell(PathState(up=False, reason=reason, detail={"error": detail}))

    def _tell(self, state: PathState) -> None:
        if self.state is None or (state.up, state.reason) != (self.state.up, self.state.reason):
            if state.up:
                log.info("modem_path_up", device=self.device, **state.detail)
            else:
                log.warning("modem_path_down", device=self.device, reason=state.reason, **state.detail)
        self.state = state
        self.port.path_state(self.device, state)

    # --- the schedule --------------------------------------------------------------------------

    async def check(self) -> None:
        """Open the modem if need be and read SIM, registration and signal; tell the hub how the path stands."""
        done, reading = await self._locked(self.backend.read_state, timeout=4 * self.opts.command_timeout_s,
                                           open_first=True, failed="modem_check_failed")
        if done:
            self.port.report(self.device)
            self._tell(judge(reading, self.opts.min_signal))

    async def read_inbox(self) -> None:
        """Hand every message received to the hub."""
        done, messages = await self._locked(self.backend.inbox, timeout=3 * self.opts.command_timeout_s + 2,
                                            open_first=False, failed="modem_inbox_failed")
        for m in messages if done else ():
            self.counters["received"] += 1
            log.info("sms_received", device=self.device, sender=masked(m.number), chars=len(m.text))
            self.port.text_received(self.device, m.number, m.text)

    async def _locked(self, fn: Any, *, timeout: float, open_first: bool, failed: str) -> tuple[bool, Any]:
        """``fn`` on the modem under the lock (opening it first, or only if it is open): (True, its result),
        or (False, None) when the modem is closed, gone or silent (the path is down) or its answer made no
        sense (logged as ``failed``; tried again on the schedule)."""
        try:
            async with self._lock:
                if open_first:
                    await self._ensure_open()
                elif not self.opened:
                    return False, None
                return True, await self._call(fn, timeout=timeout)
        except (ModemGone, NotAnswering) as exc:
            self.last_error = str(exc)
            self._gone(exc)
        except Exception as exc:  # an answer atlib could not make sense of: try again at the next check
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning(failed, device=self.device, error=self.last_error)
        return False, None

    def _gone(self, exc: ModemGone | NotAnswering) -> None:
        """The modem is unplugged or stopped answering: the path is down until a check opens it again."""
        if isinstance(exc, ModemGone):
            self._lost(exc.reason, exc.detail)
        else:
            self._lost("not_answering", str(exc))

    async def run(self) -> None:
        """The supervised task: a check every ``check_s``, the inbox every ``inbox_s`` while the modem answers."""
        next_check = next_inbox = 0.0
        while True:
            now = time.monotonic()
            if now >= next_check:
                await self.check()
                next_check = time.monotonic() + self.opts.check_s
            if self.opened and time.monotonic() >= next_inbox:
                await self.read_inbox()
                next_inbox = time.monotonic() + self.opts.inbox_s
            due = min(next_check, next_inbox) if self.opened else next_check
            await asyncio.sleep(max(0.05, due - time.monotonic()))

    # --- the hub sends -------------------------------------------------------------------------

    async def send_text(self, number: str, text: str) -> str | None:
        """One SMS (see :class:`drivers.base.TextPath`); waits for a check or a read in progress."""
        t = self.opts.command_timeout_s
        try:
            async with self._lock:
                await self._ensure_open()
                ref = await self._call(self.backend.send, number, text, self.opts.send_timeout_s,
                                       timeout=self.opts.send_timeout_s + 4 * t)
        except SendRefused as exc:
            self._failed(exc.detail)
            raise TextSendError("cms_error" if exc.code is not None else "error", exc.detail) from exc
        except (NotAnswering, ModemGone) as exc:
            self._failed(str(exc))
            self._gone(exc)
            raise TextSendError("timeout" if isinstance(exc, NotAnswering) else "unavailable", str(exc)) from exc
        self.counters["sent"] += 1
        log.info("sms_sent", device=self.device, to=masked(number), reference=ref, chars=len(text))
        return ref

    def _failed(self, why: str) -> None:
        self.counters["send_failed"] += 1
        self.last_error = why
        log.warning("sms_send_failed", device=self.device, error=why)

    # --- views ---------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """For ``status``: the path, what the last check read, the counters."""
        s = self.state
        return {
            "kind": "modem",
            "driver": "modem",
            "state": "unknown" if s is None else ("ok" if s.up else "offline"),
            "port": self.opts.port,
            "path": None if s is None else ("up" if s.up else "down"),
            "reason": None if s is None else s.reason,
            **({k: v for k, v in s.detail.items() if k in ("sim", "registration", "signal")} if s else {}),
            "sent": self.counters["sent"],
            "send_failed": self.counters["send_failed"],
            "received": self.counters["received"],
            "last_error": self.last_error,
        }

    def close(self) -> None:
        """The hub is stopping: close the port, let the worker go."""
        self.backend.abort()
        self._ex.shutdown(wait=False, cancel_futures=True)
        try:
            self.backend.close()
        except Exception:
            log.exception("modem_close_failed", device=self.device)
