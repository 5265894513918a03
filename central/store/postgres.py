"""PostgreSQL for a municipality: psycopg 3, async, one connection per central instance.

Transactions run one at a time on the connection (an asyncio lock); a lost connection is
opened again on the next transaction, and the failed one is reported as
:class:`~central.store.db.TransientStoreError` so the store tries it again. Deadlocks and
serialisation failures between instances are transient too.

The journal is written last in each transaction under ``LOCK TABLE journal IN EXCLUSIVE
MODE``: two transactions take their journal numbers in the order they commit, so an instance
reading the journal in number order never skips a number that commits later.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import structlog
from psycopg import errors as pgerrors

from central.store.db import JOURNAL_INSERT, Dialect, JournalEntry, Row, StoreError, TransientStoreError

log = structlog.get_logger("central.store")

#: Key of the advisory lock migrations run under (any constant; "carehub" in ASCII).
MIGRATION_LOCK = 0x63617265687562

_TRANSIENT = (pgerrors.DeadlockDetected, pgerrors.SerializationFailure, pgerrors.LockNotAvailable,
              psycopg.OperationalError, psycopg.InterfaceError)

_PLACEHOLDER = re.compile(r"\?")


def _pg(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (the store's SQL has no ``%`` and no ``?`` in literals)."""
    return _PLACEHOLDER.sub("%s", sql)


def redact(url: str) -> str:
    """The URL without its password, for log lines."""
    return re.sub(r"(//[^:/@]+):[^@]*@", r"\1:***@", url)


class _PgTx:
    def __init__(self, cur: psycopg.AsyncCursor[Any]) -> None:
        self._cur = cur
        self.entries: list[JournalEntry] = []

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        await self._cur.execute(_pg(sql), params)
        return self._cur.rowcount

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        await self._cur.execute(_pg(sql), params)
        return await self._cur.fetchall()

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        await self._cur.execute(_pg(sql), params)
        return await self._cur.fetchone()

    def journal(self, entry: JournalEntry) -> None:
        self.entries.append(entry)


class PostgresDb:
    """A PostgreSQL database by URL (``postgresql://user@host:5432/name``)."""

    dialect: Dialect = "postgresql"
    for_update = " FOR UPDATE"

    def __init__(self, url: str, *, instance: str, clock: Callable[[], float]) -> None:
        self.url = url
        self.where = redact(url)
        self.instance = instance
        self.clock = clock
        self._lock = asyncio.Lock()
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def open(self) -> None:
        """Connect (a failure is a :class:`StoreError` saying where)."""
        try:
            self._conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"postgresql: cannot connect to {self.where}: {str(exc).strip()}") from exc

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                log.warning("store_reconnecting", where=self.where)
            await self.open()
        assert self._conn is not None
        return self._conn

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[_PgTx]:
        async with self._lock:
            try:
                conn = await self._connection()
                async with conn.transaction(), conn.cursor() as cur:
                    tx = _PgTx(cur)
                    yield tx
                    if tx.entries:
                        await cur.execute("LOCK TABLE journal IN EXCLUSIVE MODE")
                        at, instance = self.clock(), self.instance
                        await cur.executemany(_pg(JOURNAL_INSERT), [e.params(at, instance) for e in tx.entries])
            except _TRANSIENT as exc:
                raise TransientStoreError(f"postgresql: {type(exc).__name__}: {str(exc).strip()[:300]}") from exc
            except psycopg.Error as exc:
                raise StoreError(f"postgresql: {type(exc).__name__}: {str(exc).strip()[:300]}") from exc

    async def lock_migrations(self, tx: Any) -> None:
        """An advisory lock held to the end of the transaction: a second instance waits, then finds it done."""
        await tx.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()
