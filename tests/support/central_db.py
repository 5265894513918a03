"""Databases for the central's tests: a SQLite file, or a PostgreSQL database of its own per test.

PostgreSQL is the one at 127.0.0.1:5432 (trust auth, user postgres); a test that wants it is
skipped, saying why, when it does not answer. Each test gets a fresh database with a random
name, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BASE = "postgresql://postgres@127.0.0.1:5432/"


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database's URL (skips when the server does not answer); dropped afterwards."""
    name = f"central_test_{secrets.token_hex(6)}"
    try:
        _admin(f"CREATE DATABASE {name}")
    except Exception as exc:  # psycopg.OperationalError and friends: no server here
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432 ({type(exc).__name__}: {str(exc).strip()[:120]})")
    try:
        yield PG_BASE + name
    finally:
        _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The central's store in each database: a SQLite file, then PostgreSQL where one answers."""
    if request.param == "sqlite":
        yield str(tmp_path / "central.db")
    else:
        yield from pg_database()


def rows(url: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Run one query on the central's database (a SQLite path or a PostgreSQL URL), ``?`` placeholders."""
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            return list(conn.execute(sql.replace("?", "%s"), params).fetchall())  # type: ignore[arg-type]
    import sqlite3

    with contextlib.closing(sqlite3.connect(url, timeout=10)) as db:
        return db.execute(sql, params).fetchall()


def until(check: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
    """Poll ``check`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {result!r})")
        time.sleep(0.05)
