"""SQLite writers of one process take turns on an asyncio lock (storage/db.py::begin_write): the
lock is held until the transaction ends however it ends, a writer that waits too long gets a clear
error, and a burst of concurrent writers all get through without "database is locked"."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import text

from storage import db as storage_db
from storage.db import WriteLockTimeout, begin_write, create_engine, create_sessionmaker


@pytest.fixture
async def maker(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'lock.db'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)"))
    yield create_sessionmaker(engine)
    await engine.dispose()


def _lock(maker) -> asyncio.Lock:
    return storage_db._write_lock(maker.kw["bind"].sync_engine)


async def test_the_lock_is_held_until_the_transaction_ends_however_it_ends(maker):
    lock = _lock(maker)
    async with maker() as s:
        await begin_write(s)
        assert lock.locked()
        await begin_write(s)  # the same unit of work again: no second turn needed
        await s.execute(text("INSERT INTO t (who) VALUES ('commit')"))
        await s.commit()
        assert not lock.locked()
        await begin_write(s)
        await s.rollback()
        assert not lock.locked()
        await begin_write(s)
    assert not lock.locked()  # closed mid-transaction
    with pytest.raises(RuntimeError):
        async with maker() as s:
            await begin_write(s)
            raise RuntimeError("a handler failed")
    assert not lock.locked()


async def test_a_writer_waiting_too_long_gets_a_clear_error(maker, monkeypatch):
    monkeypatch.setattr(storage_db, "WRITE_LOCK_TIMEOUT", 0.2)
    async with maker() as holder:
        await begin_write(holder)
        async with maker() as late:
            with pytest.raises(WriteLockTimeout, match="database is locked"):
                await begin_write(late)
            assert "write_lock" not in late.info
        await holder.commit()
    async with maker() as after:  # nothing left locked
        await begin_write(after)
        await after.commit()


async def test_a_burst_of_writers_takes_turns_in_order(maker):
    order: list[int] = []

    async def write(i: int) -> None:
        async with maker() as s:
            await begin_write(s)
            order.append(i)
            await s.execute(text("INSERT INTO t (who) VALUES (:w)"), {"w": f"w{i}"})
            await s.commit()

    # hold the lock while 300 writers queue, then let them go
    async with maker() as first:
        await begin_write(first)
        tasks = [asyncio.create_task(write(i)) for i in range(300)]
        await asyncio.sleep(0.2)
        assert order == []
        await first.commit()
    started = time.perf_counter()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    assert sorted(order) == list(range(300))
    assert order == sorted(order)  # first come, first served
    async with maker() as s:
        assert (await s.execute(text("SELECT count(*) FROM t"))).scalar() == 300
    print(f"300 queued writers committed in {elapsed:.2f} s")


def test_switching_a_new_file_to_wal_is_retried_while_another_process_holds_the_lock():
    """SQLite may refuse the WAL switch at once ("database is locked", no busy handler) while a
    second instance switches the same new file: the connection tries again instead of failing."""
    import sqlite3

    from storage.db import _sqlite_connect

    class Cursor:
        def __init__(self, refusals: int) -> None:
            self.refusals, self.done = refusals, []

        def execute(self, sql: str) -> None:
            if sql == "PRAGMA journal_mode=WAL" and self.refusals:
                self.refusals -= 1
                raise sqlite3.OperationalError("database is locked")
            self.done.append(sql)

        def close(self) -> None:
            pass

    class Connection:
        isolation_level = "DEFERRED"

        def __init__(self, cursor: Cursor) -> None:
            self._cursor = cursor

        def cursor(self) -> Cursor:
            return self._cursor

    cursor = Cursor(refusals=3)
    _sqlite_connect(Connection(cursor), None)
    assert cursor.done == [
        "PRAGMA busy_timeout=15000",
        "PRAGMA journal_mode=WAL",
        "PRAGMA foreign_keys=ON",
        "PRAGMA synchronous=NORMAL",
    ]

    class Broken(Cursor):
        def execute(self, sql: str) -> None:
            if sql == "PRAGMA journal_mode=WAL":
                raise sqlite3.OperationalError("disk I/O error")
            super().execute(sql)

    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):  # anything else is not retried
        _sqlite_connect(Connection(Broken(0)), None)
