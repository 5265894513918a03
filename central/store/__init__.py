"""Where the central keeps everything: SQLite by default, PostgreSQL by URL, one schema.

:func:`open_store` takes ``--db``: a file path or ``sqlite:///path`` (SQLite, WAL: several
central processes on one machine may share the file), or ``postgresql://user@host/db``
(psycopg 3; several instances on several machines share it). It opens the database and runs
the migrations (:mod:`central.store.migrations`), so a store it returns is ready.

The tables: ``events`` (each id once: de-duplication), ``hubs`` (seq tracking, counters, the
last status and heartbeat, the supervision level), ``gaps`` (open, requested, filled, lost),
``lost`` (seq ranges a hub no longer has), ``alarms`` (state, ack by and at, reminders, cause),
``closures`` (alarm ids an ack or cancel closed), ``acks`` (each cmd/ack sent and its reply),
``problems`` (device offline, battery low ...), ``journal`` (what changed, for the live feeds
of every instance) and ``schema_migrations``.

The parts: :mod:`~central.store.db` (the seam between the SQL and the two databases),
:mod:`~central.store.sqlite`, :mod:`~central.store.postgres`, :mod:`~central.store.migrations`,
:mod:`~central.store.ingest` (de-duplication, seq tracking), :mod:`~central.store.apply`
(alarms, problems), :mod:`~central.store.gaps`, :mod:`~central.store.reads` and
:mod:`~central.store.store` (:class:`Store`, the one interface the engine uses).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from central.store.db import Db, StoreError, TransientStoreError
from central.store.ingest import Outcome
from central.store.store import Store

__all__ = ["Outcome", "Store", "StoreError", "TransientStoreError", "open_store", "describe_url"]


def describe_url(url: str) -> tuple[str, str]:
    """``(dialect, target)``: ``("postgresql", url)`` or ``("sqlite", path)``; :class:`ValueError` if neither."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql", url
    if url.startswith("sqlite:///"):
        return "sqlite", url[len("sqlite:///"):]  # sqlite:///relative.db, sqlite:////absolute.db
    if "://" in url:
        raise ValueError(f"expected a file path, sqlite:///PATH or postgresql://..., found {url.split('://')[0]}://")
    return "sqlite", url


async def open_store(url: str, *, instance: str, clock: Callable[[], float] = time.time) -> Store:
    """Open the database at ``url``, migrate it, and return the store (:class:`StoreError` if it cannot)."""
    try:
        dialect, target = describe_url(url)
    except ValueError as exc:
        raise StoreError(str(exc)) from None
    db: Db
    if dialect == "postgresql":
        from central.store.postgres import PostgresDb

        pg = PostgresDb(target, instance=instance, clock=clock)
        await pg.open()
        db = pg
    else:
        from central.store.sqlite import SqliteDb

        lite = SqliteDb(target, instance=instance, clock=clock)
        await lite.open()
        db = lite
    store = Store(db, instance=instance)
    try:
        await store.migrate()
    except BaseException:
        await store.close()
        raise
    return store
