"""SQLite statements run on the event loop's thread (storage/sqlite_inline.py), except a long read,
which moves to a worker thread so the loop keeps going, and a statement that meets another
process's lock, which waits for it on a worker thread instead of freezing the loop. A write is
never stopped half-way (SQLite would roll back the whole transaction)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from storage import sqlite_inline
from storage.db import begin_write, create_engine, create_sessionmaker

# A read that takes well over the inline budget (20 ms) on any machine: ~0.3-1 s.
LONG_READ = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT sum(x) FROM c"
LONG_READ_SUM = 3000000 * 3000001 // 2


@pytest.fixture
async def engine(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'inline.db'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT UNIQUE)"))
    yield engine
    await engine.dispose()


def _inline(conn) -> sqlite_inline.Connection:
    return conn.sync_connection.connection.dbapi_connection._connection


class Ticker:
    """Counts how often the event loop got to run something else, and the longest gap between."""

    def __init__(self) -> None:
        self.ticks = 0
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now
            self.ticks += 1

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0.01)
        self.ticks, self.longest = 0, 0.0
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def test_short_statements_run_on_the_loop_and_behave_like_sqlite(engine):
    async with engine.connect() as conn:
        inline = _inline(conn)
        assert isinstance(inline, sqlite_inline.Connection)
        await conn.execute(text("INSERT INTO t (who) VALUES ('a'), ('b')"))
        rows = (await conn.execute(text("SELECT who FROM t ORDER BY who"))).scalars().all()
        assert rows == ["a", "b"]
        with pytest.raises(IntegrityError):  # the driver's errors reach SQLAlchemy as always
            await conn.execute(text("INSERT INTO t (who) VALUES ('a')"))
        await conn.rollback()
        with pytest.raises(OperationalError, match="no such table"):
            await conn.execute(text("SELECT * FROM missing"))
        assert inline.moved_to_thread == 0


async def test_a_long_read_moves_to_a_thread_and_the_loop_keeps_answering(engine):
    async with engine.connect() as conn, Ticker() as ticker:
        inline = _inline(conn)
        started = time.perf_counter()
        total = await conn.scalar(text(LONG_READ))
        took = time.perf_counter() - started
    assert total == LONG_READ_SUM
    assert inline.moved_to_thread == 1
    # The loop was held for the inline budget only, not for the whole read.
    assert took > 0.1, took
    assert ticker.ticks >= 5, (ticker.ticks, took)
    assert ticker.longest < took / 2, (ticker.longest, took)


async def test_a_long_read_inside_a_write_transaction_keeps_what_was_written(engine):
    maker = create_sessionmaker(engine)
    async with maker() as s:
        await begin_write(s)
        await s.execute(text("INSERT INTO t (who) VALUES ('kept')"))
        assert await s.scalar(text(LONG_READ)) == LONG_READ_SUM
        await s.commit()
    async with maker() as s:
        assert (await s.scalars(text("SELECT who FROM t"))).all() == ["kept"]


async def test_a_long_write_is_never_stopped_half_way(engine):
    async with engine.begin() as conn:
        inline = _inline(conn)
        await conn.execute(
            text(
                "INSERT INTO t (who) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) "
                "SELECT 'w' || x FROM c"
            )
        )
        assert inline.moved_to_thread == 0
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM t")) == 200000


async def test_another_process_holding_the_write_lock_does_not_freeze_the_loop(engine, tmp_path):
    """Like a backup or a second process: the bot's write waits for it on a thread."""
    path = tmp_path / "inline.db"
    held = threading.Event()
    release = threading.Event()

    def other_writer() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO t (who) VALUES ('other')")
        held.set()
        release.wait(5)
        other.execute("COMMIT")
        other.close()

    thread = threading.Thread(target=other_writer)
    thread.start()
    assert held.wait(5)
    maker = create_sessionmaker(engine)
    try:
        async with Ticker() as ticker:
            asyncio.get_running_loop().call_later(0.4, release.set)
            started = time.perf_counter()
            async with maker() as s:
                await begin_write(s)  # BEGIN IMMEDIATE meets the other's lock
                waited = time.perf_counter() - started
                inline = _inline(await s.connection())
                await s.execute(text("INSERT INTO t (who) VALUES ('bot')"))
                await s.commit()
    finally:
        release.set()
        thread.join(5)
    assert waited >= 0.3, waited
    assert inline.moved_to_thread >= 1
    assert ticker.ticks >= 20, ticker.ticks
    assert ticker.longest < 0.2, ticker.longest
    async with maker() as s:
        assert sorted((await s.scalars(text("SELECT who FROM t"))).all()) == ["bot", "other"]


async def test_many_writers_of_the_process_take_turns(engine):
    maker = create_sessionmaker(engine)

    async def write(i: int) -> None:
        async with maker() as s:
            await begin_write(s)
            await s.execute(text("INSERT INTO t (who) VALUES (:w)"), {"w": f"w{i}"})
            await asyncio.sleep(0)  # others run meanwhile; they wait for the turn, not in SQLite
            await s.commit()

    await asyncio.gather(*(write(i) for i in range(50)))
    async with maker() as s:
        assert await s.scalar(text("SELECT count(*) FROM t")) == 50


@pytest.mark.parametrize(
    ("sql", "read"),
    [
        ("SELECT 1", True),
        ("  select * from t", True),
        ("WITH x AS (SELECT 1) SELECT * FROM x", True),
        ("SELECT updated_at FROM proposals", True),
        ("PRAGMA table_info(t)", True),
        ("INSERT INTO t VALUES (1)", False),
        ("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", False),
        ("UPDATE t SET who = 'x'", False),
        ("DELETE FROM t", False),
        ("BEGIN IMMEDIATE", False),
        ("PRAGMA journal_mode=WAL", False),
        ("SAVEPOINT sa_1", False),
    ],
)
def test_what_counts_as_a_read(sql, read):
    assert sqlite_inline.is_read(sql) is read
