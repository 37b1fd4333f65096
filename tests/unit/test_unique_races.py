"""Per-update inserts that can meet the same unique key from another update at the same moment
(SQLite and PostgreSQL): a brand-new user's first two updates (``users.ensure_user``) and a double
tap on "follow" (``follows.follow_rt``). The losing update must succeed with the winner's row, and
its transaction must not be rolled back: objects it loaded before stay usable without I/O.

The race is forced: session A inserts the row and keeps its transaction open; session B runs the
service and, on PostgreSQL, is seen waiting on A's row lock (its INSERT of the same key) before A
commits, so B's INSERT then fails on the unique key. On SQLite B waits for A's write lock instead.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import func, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services import follows, users
from storage.db import begin_write
from storage.models import Follow, User, utcnow
from tests.unit.test_proposals_service import setup_world

ANA, BAYU = 601, 602


async def _waiting_on_lock(observer: AsyncSession, task: asyncio.Task) -> None:
    """Until ``task`` is blocked on a row lock (PostgreSQL) or has had time to queue (SQLite)."""
    if observer.bind.dialect.name != "postgresql":
        await asyncio.sleep(0.3)
        return
    for _ in range(200):
        assert not task.done(), task.result()
        waiting = await observer.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query ILIKE 'INSERT%'"
            )
        )
        await observer.commit()
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("session B never waited on session A's insert")


async def _race(sessionmaker, insert_in_a, service_in_b, preload_in_b):
    """A inserts and holds; B (having loaded ``preload_in_b``) runs the service; A commits."""
    async with sessionmaker() as a, sessionmaker() as b, sessionmaker() as observer:
        await begin_write(a)
        await insert_in_a(a)
        await a.flush()
        await b.begin()
        loaded = await preload_in_b(b)
        task = asyncio.create_task(service_in_b(b))
        await _waiting_on_lock(observer, task)
        await a.commit()
        result = await asyncio.wait_for(task, timeout=30)
        assert not inspect(loaded).expired_attributes, "B's transaction was rolled back"
        return result, loaded


async def test_new_user_two_first_updates_at_once(sessionmaker):
    async with sessionmaker() as s:
        s.add(User(id=BAYU, first_name="Bayu"))
        await s.commit()

    async def insert_in_a(a):
        a.add(User(id=ANA, first_name="Ana", last_name=None, username="ana"))

    async def service_in_b(b):
        # The user's other update, with a new username: it still applies
        return await users.ensure_user(b, ANA, "Ana", None, "ana_baru")

    user, other = await _race(sessionmaker, insert_in_a, service_in_b, lambda b: b.get(User, BAYU))

    assert (user.id, user.first_name, user.username) == (ANA, "Ana", "ana_baru")
    assert other.first_name == "Bayu"
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(User).where(User.id == ANA)) == 1
        assert (await s.get(User, ANA)).username == "ana_baru"


async def test_follow_double_tap_at_once(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    rt_id = w.rt_ids[0]
    async with sessionmaker() as s:
        await users.ensure_user(s, ANA, "Ana", None, None)

    async def insert_in_a(a):
        a.add(Follow(user_id=ANA, rt_id=rt_id, created_at=utcnow()))

    async def service_in_b(b):
        return await follows.follow_rt(b, ANA, rt_id)

    (row, created), user = await _race(sessionmaker, insert_in_a, service_in_b, lambda b: b.get(User, ANA))

    assert not created and row.rt_id == rt_id
    assert user.first_name == "Ana"
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Follow).where(Follow.user_id == ANA)) == 1
