"""Engine and session factory from DATABASE_URL (SQLite with WAL and foreign keys, or PostgreSQL).

Write transactions go through :func:`begin_write`. On SQLite it ends any read snapshot the session
holds and opens the next transaction with ``BEGIN IMMEDIATE``: the write lock is taken up front, so
a read snapshot never fails with "database is locked" trying to become a write. Writers of this
process first queue, in order, on an asyncio lock per engine (held until the transaction ends), so
they hand SQLite's one write lock over at once instead of polling for it in SQLite's busy handler,
which sleeps up to 100 ms between tries and, under a surge of hundreds of writers, left the lock
idle most of the time. Other processes (the CLI, a second tool) still wait on the busy timeout.
Reads stay ``BEGIN`` (deferred) and never block anyone in WAL mode. On PostgreSQL it only begins
the transaction: row locks and unique constraints do the work there.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from storage import sqlite_inline

_WRITE_INTENT: contextvars.ContextVar[bool] = contextvars.ContextVar("prolita_write_intent", default=False)
WRITE_LOCK_TIMEOUT = 15.0  # seconds, like SQLite's busy timeout: then "database is locked"
# One write lock per SQLite engine and event loop (tests run several loops in one process).
_WRITE_LOCKS: weakref.WeakKeyDictionary[Any, dict[asyncio.AbstractEventLoop, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


class WriteLockTimeout(TimeoutError):
    """Another unit of work of this process held the SQLite write lock for too long."""


def _write_lock(engine: Any) -> asyncio.Lock:
    per_loop = _WRITE_LOCKS.setdefault(engine, {})
    loop = asyncio.get_running_loop()
    lock = per_loop.get(loop)
    if lock is None:
        for old in [k for k in per_loop if k.is_closed()]:
            del per_loop[old]
        lock = per_loop[loop] = asyncio.Lock()
    return lock


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event below emit BEGIN itself (the documented pysqlite/aiosqlite
    # recipe), so that a transaction can be DEFERRED or IMMEDIATE as needed.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # Switching a new file to WAL needs an exclusive lock that another process (a second instance
    # starting at the same moment) may hold. The busy timeout covers most of that wait, but SQLite
    # may also answer "database is locked" at once without calling the busy handler, so the switch
    # is tried again for as long as the timeout would have waited. (A connection blocks the event
    # loop for these few sleeps only when two processes open the same new file together.)
    inline = getattr(dbapi_conn, "_connection", None)
    if isinstance(inline, sqlite_inline.Connection):  # waits only on a worker thread, never on the loop
        inline.set_busy_timeout(15.0)
    else:
        cur.execute("PRAGMA busy_timeout=15000")
    deadline = time.monotonic() + 15
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            break
        except Exception as exc:
            if "database is locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if _WRITE_INTENT.get() else "BEGIN")


class QueryCount:
    """Statements sent to the database by one unit of work (an update), for the log and the tests."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


_QUERIES: contextvars.ContextVar[QueryCount | None] = contextvars.ContextVar("prolita_queries", default=None)


def count_queries() -> QueryCount:
    """Count the statements this task (and what it awaits) sends from now on: ``counter.n``."""
    counter = QueryCount()
    _QUERIES.set(counter)
    return counter


def _count_statement(*_args: Any) -> None:
    counter = _QUERIES.get()
    if counter is not None:
        counter.n += 1


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    engine = _create_engine(url, **kwargs)
    event.listen(engine.sync_engine, "before_cursor_execute", _count_statement)
    return engine


def _create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if is_sqlite(url):
        db = make_url(url).database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("pool_size", 8)
        kwargs.setdefault("max_overflow", 24)
        if "async_creator" not in kwargs:  # statements on the loop's thread (storage/sqlite_inline.py)
            args, params = SQLiteDialect_aiosqlite().create_connect_args(make_url(url))
            params["check_same_thread"] = False  # a long read or a busy statement moves to a thread
            kwargs["async_creator"] = sqlite_inline.connector(*args, **params)
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def begin_write(session: AsyncSession) -> None:
    """Start the write transaction of a unit of work (call before the reads that decide the write).

    Anything already pending in the session is committed first; services call this at their
    start, so that is at most a read snapshot.
    """
    if session.bind is None or session.bind.dialect.name != "sqlite":
        if not session.in_transaction():
            await session.connection()  # begin, so that what is written next is committed with it
        return
    if session.in_transaction():
        if session.info.get("write_tx"):
            return
        await session.commit()
    lock = _write_lock(session.bind.sync_engine)
    try:
        await asyncio.wait_for(lock.acquire(), WRITE_LOCK_TIMEOUT)
    except TimeoutError:
        raise WriteLockTimeout(f"database is locked: no write turn within {WRITE_LOCK_TIMEOUT:.0f}s") from None
    session.info["write_lock"] = lock  # released when the transaction ends (below)
    token = _WRITE_INTENT.set(True)
    try:
        await session.connection()
    except BaseException:
        if session.info.pop("write_lock", None) is lock:
            lock.release()
        raise
    finally:
        _WRITE_INTENT.reset(token)
    session.info["write_tx"] = True


@event.listens_for(AsyncSession.sync_session_class, "after_transaction_end")
def _clear_write_flag(session: Any, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop("write_tx", None)
        lock = session.info.pop("write_lock", None)
        if lock is not None:
            lock.release()  # the next writer of this process goes at once


async def release(session: AsyncSession) -> None:
    """End the current transaction when nothing was changed, keeping loaded objects usable.

    (A rollback would expire every loaded object, and touching one afterwards would need I/O.)
    """
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("release() with pending changes; commit or roll back instead")
    if session.in_transaction():
        await session.commit()
