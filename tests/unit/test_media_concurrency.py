"""Two updates storing the same file at the same moment (SQLite and PostgreSQL): both get the same
media row, and neither update's transaction is rolled back, so objects it loaded earlier (the user
the middleware gave the handler) stay usable without I/O (touching an expired one raises
MissingGreenlet in a handler).

On PostgreSQL the race is forced: both sessions run each existence check before either goes on,
so both decide to insert, and one INSERT meets the other's row on the unique ``sha256``. On SQLite
the write lock (``begin_write``) queues the second writer, so only the first check is synchronised
there (holding the second one would wait on the lock the other session holds).
"""

from __future__ import annotations

import asyncio
import io

from PIL import Image
from sqlalchemy import func, inspect, select

from bot.services import media
from storage.models import Media, User
from storage.repositories import proposals as repo


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 9), (10, 120, 30)).save(buf, format="PNG")
    return buf.getvalue()


async def test_same_bytes_saved_at_once_keeps_both_transactions(sessionmaker, tmp_path, monkeypatch):
    async with sessionmaker() as s:
        s.add_all([User(id=501, first_name="Ani"), User(id=502, first_name="Budi")])
        await s.commit()

    postgres = sessionmaker.kw["bind"].dialect.name == "postgresql"
    checks_in_step = 2 if postgres else 1  # how many existence checks each session makes before the other goes on
    barrier = asyncio.Barrier(2)
    lookups: dict[int, int] = {}
    real_lookup = repo.media_by_sha256

    async def lookup_in_step(session, sha256):
        row = await real_lookup(session, sha256)
        lookups[id(session)] = lookups.get(id(session), 0) + 1
        if lookups[id(session)] <= checks_in_step:
            await asyncio.wait_for(barrier.wait(), timeout=20)
        return row

    monkeypatch.setattr(repo, "media_by_sha256", lookup_in_step)
    store = media.LocalMediaStore(tmp_path / "m")
    data = _png()

    async def one_update(user_id: int) -> tuple[int, str]:
        async with sessionmaker() as s:
            await s.begin()
            user = await s.get(User, user_id)  # what the middleware loads before the handler runs
            row = await media.save_media(s, store, data, "image/png")
            assert not inspect(user).expired_attributes, "the user was expired by a rollback"
            name = user.first_name  # a handler reads it next (actor_id=user.id); must need no I/O
            return row.id, f"{user.id}:{name}"

    results = await asyncio.gather(one_update(501), one_update(502))

    assert results[0][0] == results[1][0]
    assert sorted(r[1] for r in results) == ["501:Ani", "502:Budi"]
    assert all(n >= checks_in_step for n in lookups.values()) and len(lookups) == 2
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Media)) == 1
        row = await s.scalar(select(Media))
        assert row.id == results[0][0] and store.open(row.path) == data
