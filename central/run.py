"""The running central: the store opened, the engine and the faces asked for, until a signal stops them."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog

from central.config import CentralConfig
from central.engine import Engine
from central.mqtt import MqttOptions
from central.store import StoreError, open_store
from central.view import CentralView
from hub.link import Endpoint, TlsSettings

log = structlog.get_logger("central")

Face = Callable[[CentralView], Awaitable[None]]


def options(args: argparse.Namespace, cfg: CentralConfig, password: str | None) -> MqttOptions:
    """The MQTT options from the command line and the config."""
    client_id = f"central-{args.instance}"
    tls = TlsSettings(ca=args.tls_ca, cert=args.tls_cert, key=args.tls_key) if args.tls_ca else None
    return MqttOptions(brokers=tuple(Endpoint(host=h, port=p) for h, p in args.broker), prefix=args.prefix,
                       client_id=client_id, account=args.username or client_id, tls=tls, username=args.username,
                       password=password, keepalive_s=cfg.mqtt.keepalive_s, session_expiry_s=cfg.mqtt.session_expiry_s)


def faces(args: argparse.Namespace) -> list[tuple[str, Face]]:
    """The faces asked for, imported now (a missing one is an ImportError before anything starts)."""
    out: list[tuple[str, Face]] = []
    if args.json:
        out.append(("json", _print_changes))
    if args.web:
        from central.web import serve

        host, port = args.web
        out.append(("web", lambda view: serve(view, host, port)))
    if args.console:
        from central.console import run_console

        out.append(("console", run_console))
    return out


def print_change(change: Any) -> None:
    """One change as one JSON line on stdout (``--json``)."""
    sys.stdout.write(msgspec.json.encode(change).decode() + "\n")
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.flush()


def install_stop(loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
    """SIGTERM and SIGINT cancel ``task`` (the central stops cleanly)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)


async def _print_changes(view: CentralView) -> None:
    async for change in view.changes():
        print_change(change)


def run_central(args: argparse.Namespace, cfg: CentralConfig, *, password: str | None) -> int:
    """Run until SIGTERM or SIGINT (0), a failure (1) or a store that cannot be opened (3)."""
    try:
        chosen = faces(args)
    except ImportError as exc:
        print(f"error: this build has no such face: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_main(args, cfg, password, chosen))
    except KeyboardInterrupt:
        return 0


async def _main(args: argparse.Namespace, cfg: CentralConfig, password: str | None,
                chosen: list[tuple[str, Face]]) -> int:
    main = asyncio.current_task()
    assert main is not None
    install_stop(asyncio.get_running_loop(), main)
    try:
        store = await open_store(args.db, instance=args.instance)
    except StoreError as exc:
        log.error("store_failed", error=str(exc))
        return 3
    except asyncio.CancelledError:
        return 0
    engine = Engine(store=store, mqtt=options(args, cfg, password), config=cfg, instance=args.instance,
                    auto_ack=args.auto_ack)
    log.info("central_starting", instance=args.instance, store=store.where, brokers=[f"{h}:{p}" for h, p in args.broker],
             faces=[name for name, _ in chosen], auto_ack=args.auto_ack)
    tasks: dict[asyncio.Task[Any], str] = {asyncio.create_task(engine.run()): "engine"}
    for name, face in chosen:
        tasks[asyncio.create_task(face(engine))] = name
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in done if not t.cancelled() and t.exception() is not None]
        for task in failed:
            exc = task.exception()
            log.error("central_failed", part=tasks[task], error=f"{type(exc).__name__}: {exc}")
        return 1 if failed else 0
    except asyncio.CancelledError:
        return 0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await store.close()
