"""SQLite for SQLAlchemy's asyncio engine without a thread hop per statement.

aiosqlite runs every statement on a worker thread and hands the result back to the event loop.
The statement itself takes tens of microseconds; the hand-back waits for the loop to come round,
which under load is milliseconds. Measured in the deadline-day surge (``bench.surge``, saturation,
N = 25 and 100): 2.8 ms per statement on average, a write transaction of a wizard step holding the
process's write turn for 17-19 ms, so the whole bot could not pass about 30 write transactions a
second however few users there were, with the event loop 30 % idle.

This module gives the aiosqlite dialect (``sqlite+aiosqlite://``) a connection object with
aiosqlite's interface whose coroutines run the statement at once, on the event loop's thread:

* A **read** that is still running after ``INLINE_BUDGET`` seconds (a full-year export, a big
  digest) is stopped by SQLite's progress handler and run again on a worker thread, so a long read
  never holds up the bot by more than that. A read has no effect to undo, so running it again is
  safe.
* A **write** statement is never interrupted: SQLite would roll back the whole transaction
  (``sqlite3_interrupt``). The bot's writes touch a few rows each; bulk writes come from the
  command line, not the event loop.
* **Busy**: inline statements do not wait for another process's lock (``PRAGMA busy_timeout=0``
  on the loop's thread, so a backup or a second process never freezes the loop); a statement
  answered ``SQLITE_BUSY`` is run again on a worker thread with the configured busy timeout, as
  aiosqlite would have run it. Within the process, writers take turns on an asyncio lock first
  (``storage.db.begin_write``), so they never meet each other's lock in SQLite.

Everything else (errors, types, the isolation-level switch SQLAlchemy makes) is the ``sqlite3``
module's own behaviour, as with aiosqlite.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable
from typing import Any

INLINE_BUDGET = 0.02  # seconds a read may run on the event loop's thread before it moves to a thread
PROGRESS_STEPS = 2000  # SQLite virtual-machine steps between two looks at the clock (a few µs each)
DEFAULT_BUSY_TIMEOUT = 15.0  # seconds; what storage.db sets (``PRAGMA busy_timeout=15000``)

_READS = ("SELECT", "WITH", "PRAGMA TABLE_INFO", "PRAGMA INDEX", "EXPLAIN", "VALUES")


def is_read(sql: str) -> bool:
    """Whether ``sql`` only reads (so stopping and running it again changes nothing)."""
    head = sql.lstrip().upper()
    if not head.startswith(_READS):
        return False
    # WITH … INSERT/UPDATE/DELETE and SELECT … RETURNING-free writes: treat any DML keyword as a write
    return not any(word in head for word in ("INSERT ", "UPDATE ", "DELETE ", "REPLACE "))


def _is_busy(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF == sqlite3.SQLITE_BUSY
    return "database is locked" in str(exc)


class _Interrupted(Exception):
    """A read ran past the inline budget (internal: it is run again on a thread)."""


class _Immediate:
    """Stands in for aiosqlite's request queue: SQLAlchemy's isolation-level setter puts
    ``(future, function)`` on ``connection._tx``; the function runs at once."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:  # handed to the awaiting caller, like aiosqlite does
            future.set_exception(exc)
        else:
            future.set_result(result)


class Cursor:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._cursor = connection._conn.cursor()
        self._rows: list[Any] | None = None
        self.arraysize = self._cursor.arraysize

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    async def execute(self, sql: str, parameters: Any = None) -> Cursor:
        args = () if parameters is None else (parameters,)
        read = is_read(sql)

        def run() -> None:
            self._cursor.execute(sql, *args)
            # A read's rows are all fetched here, so a read stopped half-way is simply run again.
            self._rows = self._cursor.fetchall() if read and self._cursor.description else None

        await self._connection._run(run, read=read)
        return self

    async def executemany(self, sql: str, seq_of_parameters: Iterable[Any]) -> Cursor:
        params = list(seq_of_parameters)
        await self._connection._run(lambda: self._cursor.executemany(sql, params), read=False)
        self._rows = None
        return self

    async def fetchall(self) -> list[Any]:
        if self._rows is not None:
            rows, self._rows = self._rows, []
            return rows
        return await self._connection._run(self._cursor.fetchall, read=False)

    async def fetchone(self) -> Any:
        if self._rows is not None:
            return self._rows.pop(0) if self._rows else None
        return await self._connection._run(self._cursor.fetchone, read=False)

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        n = self.arraysize if size is None else size
        if self._rows is not None:
            rows, self._rows = self._rows[:n], self._rows[n:]
            return rows
        return await self._connection._run(lambda: self._cursor.fetchmany(n), read=False)

    async def close(self) -> None:
        self._cursor.close()


class Connection:
    """The part of ``aiosqlite.Connection`` that SQLAlchemy's aiosqlite dialect uses."""

    def __init__(self, conn: sqlite3.Connection, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self._conn = conn
        self._connection: sqlite3.Connection | None = conn  # the dialect checks it before commit/rollback
        self._tx = _Immediate()
        self.busy_timeout = busy_timeout
        self.moved_to_thread = 0  # statements that went to a worker thread (long reads, busy)
        self._deadline = 0.0
        conn.execute("PRAGMA busy_timeout=0")

    # -- what SQLAlchemy calls ----------------------------------------------------------------

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> Cursor:
        return Cursor(self)

    async def execute(self, sql: str, parameters: Any = None) -> Cursor:
        cursor = self.cursor()
        await cursor.execute(sql, parameters)
        return cursor

    async def commit(self) -> None:
        await self._run(self._conn.commit, read=False)

    async def rollback(self) -> None:
        await self._run(self._conn.rollback, read=False)

    async def close(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    def stop(self) -> None:  # terminate (a connection given up by the pool)
        if self._connection is not None:
            self._connection = None
            try:
                self._conn.close()
            except sqlite3.Error:
                pass

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self._conn.create_function(*args, **kw)

    def set_busy_timeout(self, seconds: float) -> None:
        """What a busy statement waits for on its worker thread (inline statements never wait)."""
        self.busy_timeout = seconds

    # -- running a statement ------------------------------------------------------------------

    def _over_budget(self) -> int:
        return 1 if time.perf_counter() > self._deadline else 0

    async def _run(self, work: Callable[[], Any], *, read: bool) -> Any:
        if self._connection is None:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        try:
            if read:
                self._deadline = time.perf_counter() + INLINE_BUDGET
                self._conn.set_progress_handler(self._over_budget, PROGRESS_STEPS)
                try:
                    return work()
                except sqlite3.OperationalError as exc:
                    if "interrupt" in str(exc).lower():
                        raise _Interrupted from exc
                    raise
                finally:
                    self._conn.set_progress_handler(None, 0)
            return work()
        except _Interrupted:
            pass
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
        self.moved_to_thread += 1
        return await asyncio.to_thread(self._waiting, work)

    def _waiting(self, work: Callable[[], Any]) -> Any:
        """On a worker thread: run ``work`` allowing SQLite's busy wait, then back to no wait."""
        self._conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        try:
            return work()
        finally:
            self._conn.execute("PRAGMA busy_timeout=0")


def connector(database: str, **kwargs: Any) -> Callable[[], Any]:
    """An ``async_creator`` for ``create_async_engine``: opens ``database`` as :class:`Connection`."""

    async def connect() -> Connection:
        conn = sqlite3.connect(database, **{**kwargs, "check_same_thread": False})
        return Connection(conn)

    return connect
