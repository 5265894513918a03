"""``cmd/config`` and ``cmd/config-status`` on a running hub: check, apply, probation, roll back.

A push is checked in this order, and the first failure is the reply
(``{"ok": false, "result": <reason>, "error", "errors"}``) and a
``config.refused`` event: ``not_enabled`` (no ``[push] key``),
``bad_signature``, ``stale_version`` (not above every version applied),
``busy`` (another is on probation), ``not_found`` (no retained text to
fetch), ``sha256_mismatch``, then check-config's ``invalid``, ``pinned`` and
``needs_restart`` with their ``FILE:LINE:COL`` lines. A good one is saved and
marked on probation in the history (before anything changes), the reply
``applying`` goes out, and it is applied as a reload applies a file
(``config.applied``). It passes its probation once the hub, running it, has
a birth acknowledged by a broker and its command subscription granted
(``config.confirmed``; it is the last good one from then on). Otherwise,
after ``[push] probation_s``, the hub goes back to the config it ran before
(``config.rolled_back``, stored at once and delivered once the link is back).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from hub import commands
from hub.config import LoadedConfig
from hub.configpush.history import Entry, HistoryStore, Probation, Record
from hub.configpush.signing import KeyError_, load_public_key, sha256_text, verify
from hub.configpush.validate import Invalid, check, reply_line
from hub.emitter import HUB_SOURCE
from hub.events import Draft, Priority, rfc3339
from hub.lifecycle import EXIT_GAVE_UP
from hub.reload.reloader import Refused

log = structlog.get_logger("hub.configpush")

#: At most this many error lines in a refusal's reply (each at most 300 characters).
MAX_ERRORS = 50
#: config.refused data.lines: at most this many line numbers.
MAX_LINES = 20
#: How often the probation looks whether the central is reached.
POLL_S = 0.2


class ConfigPush:
    """The pushed configs of one running hub (``hub.configpush``)."""

    def __init__(self, hub: Any, local: LoadedConfig, store: HistoryStore, record: Record) -> None:
        self.hub = hub
        #: the local file, as last read (at start or on a SIGHUP)
        self.local = local
        self.store = store
        self.record = record
        self.key: Any = None
        self.set_local(local)
        self._lock = asyncio.Lock()
        self._probation: asyncio.Task[None] | None = None
        self._deadline = 0.0

    def set_local(self, local: LoadedConfig) -> None:
        """The local file as read now (at start, on a reload): the pins and the central's key come from it."""
        self.local = local
        self.key = None
        if local.config.push.key is not None:
            try:
                self.key = load_public_key(local.resolve(local.config.push.key))
            except KeyError_ as exc:  # check-config refuses this; a file changed since is logged
                log.error("config_push_key_unreadable", key=local.config.push.key, error=str(exc))

    async def _save(self) -> None:
        await asyncio.to_thread(self.store.write, self.record)

    async def _emit(self, type_: str, priority: Priority, data: dict[str, Any]) -> None:
        await self.hub.emitter.emit_logged(Draft(type=type_, priority=priority, source=HUB_SOURCE, data=data))

    async def started(self) -> None:
        """Once the hub has started: store the reports decided at start (a rollback), then forget them."""
        while self.record.unreported:
            type_, data = self.record.unreported[0]
            await self._emit(type_, Priority.HIGH, data)
            self.record.unreported.pop(0)
            await self._save()

    # --- cmd/config ----------------------------------------------------------------------------

    async def push(self, cmd: commands.PushConfig) -> dict[str, Any]:
        """Check a pushed config; the reply, with the apply as its follow-up when it is good. One at a time:
        a second push waits until the first is on probation (and is then refused as busy) or refused."""
        async with self._lock:
            return await self._push(cmd)

    async def _push(self, cmd: commands.PushConfig) -> dict[str, Any]:
        hub_id = self.local.config.hub.id
        if self.key is None:
            return await self._refuse(cmd, "not_enabled", "this hub takes no pushed config: its local file has no "
                                      "[push] key (the central's public key)")
        if not verify(self.key, hub_id, cmd.version, cmd.sha256, cmd.signature):
            return await self._refuse(cmd, "bad_signature", f"the signature is not the central's ([push] key) over "
                                      f"hub {hub_id}, version {cmd.version} and sha256 {cmd.sha256[:12]}...")
        r = self.record
        if cmd.version == r.active and r.entry(r.active) is not None and r.entry(r.active).sha256 == cmd.sha256:
            return {"ok": True, "result": "already_active", "version": cmd.version, "sha256": cmd.sha256,
                    "probation_s": self.local.config.push.probation_s}
        if cmd.version <= r.highest:
            return await self._refuse(cmd, "stale_version", f"version {cmd.version} is not above {r.highest}, the "
                                      f"highest applied here; push it as version {r.highest + 1} or higher")
        if r.probation is not None:
            left = max(0.0, self._deadline - asyncio.get_running_loop().time())
            return await self._refuse(cmd, "busy", f"version {r.probation.version} is on probation ({left:.0f} s "
                                      f"left); push again once it passed or was rolled back")
        text = cmd.toml
        if text is None:
            text = await self.hub.fetch_retained(f"{self.hub.base}/config/{cmd.version}")
            if text is None:
                return await self._refuse(cmd, "not_found", f"no retained config on {self.hub.base}/config/"
                                          f"{cmd.version} (and no toml in the command)")
        if sha256_text(text) != cmd.sha256:
            return await self._refuse(cmd, "sha256_mismatch", "the text's SHA-256 is not the one signed")
        try:
            new = await asyncio.to_thread(check, text, cmd.version, local=self.local, running=self.hub.loaded)
        except Invalid as exc:
            lines = [reply_line(i) for i in exc.issues]
            n = len(lines)
            return await self._refuse(cmd, exc.reason, f"pushed:v{cmd.version}: {n} problem{'s' if n != 1 else ''}; "
                                      f"nothing changed", lines, sorted({i.line for i in exc.issues}))
        previous, before = self.hub.loaded, (r.active, r.highest, r.local_sha256)
        r.entries.append(Entry(version=cmd.version, sha256=cmd.sha256, state="probation", at=rfc3339(), by=cmd.by))
        r.active, r.highest, r.local_sha256 = cmd.version, cmd.version, self.local.sha256
        r.probation = Probation(version=cmd.version, started=rfc3339(),
                                probation_s=self.local.config.push.probation_s)
        await asyncio.to_thread(self.store.save_text, cmd.version, text)
        await self._save()  # on probation before anything changes: a restart from here on rolls back
        log.info("config_push_accepted", version=cmd.version, sha256=cmd.sha256, by=cmd.by)
        reply = {"ok": True, "result": "applying", "version": cmd.version, "sha256": cmd.sha256,
                 "probation_s": self.local.config.push.probation_s}
        return commands.Followup(reply, lambda: self._apply(cmd, new, previous, before))

    async def _refuse(self, cmd: commands.PushConfig, reason: str, error: str, errors: list[str] | None = None,
                      lines: list[int] | None = None) -> dict[str, Any]:
        log.warning("config_push_refused", version=cmd.version, reason=reason, error=error, errors=errors or [])
        data: dict[str, Any] = {"version": cmd.version, "sha256": cmd.sha256, "reason": reason,
                                "running_sha256": self.hub.loaded.sha256}
        if errors:
            data.update(errors=len(errors), lines=(lines or [])[:MAX_LINES])
        if reason not in ("not_enabled", "bad_signature"):  # only what the central signed goes in the history
            self.record.entries.append(Entry(version=cmd.version, sha256=cmd.sha256, state="refused", at=rfc3339(),
                                             by=cmd.by, reason=reason))
            await self._save()
        await self._emit("config.refused", Priority.HIGH, data)
        reply: dict[str, Any] = {"ok": False, "result": reason, "error": error, "version": cmd.version}
        if errors:
            reply["errors"] = errors[:MAX_ERRORS]
        return reply

    async def _apply(self, cmd: commands.PushConfig, new: LoadedConfig, previous: LoadedConfig,
                     before: tuple[int | None, int, str | None]) -> None:
        """After the reply: apply, or undo the probation mark when the apply is refused (nothing changed)."""
        h = self.hub
        async with h.reloader.lock:
            if self.record.probation is None or self.record.probation.version != cmd.version:
                log.warning("config_push_superseded", version=cmd.version)  # the local file won meanwhile
                return
            try:
                changed = await h.reloader.apply(new)
            except Refused as exc:
                r = self.record
                r.active, r.highest, r.local_sha256 = before
                r.probation = None
                entry = r.entry(cmd.version)
                if entry is not None:
                    entry.state, entry.reason = "refused", exc.reason
                await self._save()
                log.error("config_push_refused", version=cmd.version, reason=exc.reason, errors=exc.lines)
                await self._emit("config.refused", Priority.HIGH, {
                    "version": cmd.version, "sha256": cmd.sha256, "reason": exc.reason,
                    "running_sha256": previous.sha256})
                return
            births = h.status.births_acked
            self._deadline = asyncio.get_running_loop().time() + self.local.config.push.probation_s
        log.info("config_applied", version=cmd.version, sha256=new.sha256, changed=changed,
                 probation_s=self.local.config.push.probation_s)
        await self._emit("config.applied", Priority.NORMAL, {
            "version": cmd.version, "sha256": new.sha256, "previous_sha256": previous.sha256, "changed": changed,
            "probation_s": self.local.config.push.probation_s, "by": cmd.by})
        self._probation = h.spawn(self._watch(cmd.version, new, previous, before[0], births), "config-probation")

    # --- probation -------------------------------------------------------------------------------

    def reached(self, births: int) -> bool:
        """Is the central reached on the running config: a birth acknowledged since ``births`` were,
        on a connection whose command subscription the broker granted?"""
        link = self.hub.link
        return self.hub.status.births_acked > births and link.online.is_set() and link.subscribed.is_set()

    async def _watch(self, version: int, new: LoadedConfig, previous: LoadedConfig, back_to: int | None,
                     births: int) -> None:
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        while loop.time() < self._deadline:
            if self.reached(births):
                await self._confirm(version, new, time.monotonic() - t0)
                return
            await asyncio.sleep(POLL_S)
        link = self.hub.link.status()
        brokers = ", ".join(f"{b.host}:{b.port}" for b in new.config.mqtt.broker)
        detail = (f"the central was not reached within probation_s = {self.local.config.push.probation_s:g}: no "
                  f"birth acknowledged by a broker (brokers {brokers}; link {link['state']}, last error "
                  f"{link['last_error']})")[:1000]
        await self._roll_back(version, new, previous, back_to, "unreachable", detail)

    async def _confirm(self, version: int, new: LoadedConfig, took_s: float) -> None:
        r = self.record
        entry = r.entry(version)
        if entry is not None:
            entry.state = "good"
        r.probation, r.last_good = None, version
        await self._save()
        log.info("config_confirmed", version=version, sha256=new.sha256, after_s=round(took_s, 2))
        await self._emit("config.confirmed", Priority.NORMAL,
                         {"version": version, "sha256": new.sha256, "after_s": round(took_s, 3)})

    async def _roll_back(self, version: int, new: LoadedConfig, previous: LoadedConfig, back_to: int | None,
                         reason: str, detail: str) -> None:
        r = self.record
        entry = r.entry(version)
        if entry is not None:
            entry.state, entry.reason = "rolled_back", detail
        r.active, r.probation = back_to, None
        if back_to is None:
            r.local_sha256 = None
        await self._save()  # decided, durably, before the link changes back
        log.warning("config_rolled_back", version=version, reason=reason, detail=detail, to_version=back_to)
        async with self.hub.reloader.lock:
            try:
                await self.hub.reloader.apply(previous)
            except Refused as exc:  # the config it ran before no longer applies: a fresh start runs it
                log.critical("config_rollback_failed", version=version, reason=exc.reason, errors=exc.lines)
                self.hub.lifecycle.exit_code = EXIT_GAVE_UP
                self.hub.lifecycle.request_stop()
        await self._emit("config.rolled_back", Priority.HIGH, {
            "version": version, "sha256": new.sha256, "reason": reason, "detail": detail,
            "to_version": back_to, "to_sha256": previous.sha256, "at": rfc3339()})

    # --- SIGHUP, status ----------------------------------------------------------------------------

    async def local_file_wins(self, new: LoadedConfig) -> bool:
        """A SIGHUP read the local file (valid): does it replace the running config? Yes when no pushed
        version is active, or when the file changed since it was pushed (the installer's edit wins)."""
        r = self.record
        if r.active is None:
            return True
        if new.sha256 == r.local_sha256:
            log.info("config_reload_kept_pushed", version=r.active, reason="the local file is unchanged since the "
                     "active version was pushed")
            return False
        if self._probation is not None:
            self._probation.cancel()
        entry = r.entry(r.active)
        if entry is not None:
            entry.state, entry.reason = "superseded", "the local file changed (reload)"
        log.warning("config_local_file_wins", version=r.active, local_sha256=new.sha256)
        r.active = r.last_good = r.probation = r.local_sha256 = None
        await self._save()
        return True

    def status(self) -> dict[str, Any]:
        """The reply to ``cmd/config-status``."""
        r = self.record

        def ref(version: int | None, sha256: str) -> dict[str, Any]:
            return {"version": version, "source": "local" if version is None else "pushed", "sha256": sha256}

        good = r.entry(r.last_good)
        probation = None
        if r.probation is not None:
            left = max(0.0, self._deadline - asyncio.get_running_loop().time()) if self._deadline else None
            probation = {"version": r.probation.version, "started": r.probation.started,
                         "probation_s": r.probation.probation_s,
                         "remaining_s": round(left, 1) if left is not None else None}
        return {
            "ok": True,
            "enabled": self.key is not None,
            "active": ref(r.active, self.hub.loaded.sha256),
            "last_good": ref(r.last_good, good.sha256 if good is not None else self.local.sha256),
            "probation": probation,
            "highest": r.highest,
            "local_sha256": self.local.sha256,
            "history": [{"version": e.version, "sha256": e.sha256, "state": e.state, "at": e.at, "by": e.by,
                         "reason": e.reason} for e in reversed(r.entries)],
        }
