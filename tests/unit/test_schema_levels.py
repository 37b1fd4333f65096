"""Instances at different migration levels: a database ahead of the code is refused untouched, one
behind is upgraded, and two instances upgrading at once apply the migrations once."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from bot.__main__ import main
from bot.config import Settings
from storage.db import create_engine
from storage.migrate import SchemaAhead, SchemaState, check_schema, code_head, upgrade

FUTURE = "9999_from_a_newer_version"


async def _versions(engine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())


async def test_an_empty_database_is_behind_and_upgraded(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        status = await check_schema(engine)
        assert (status.state, status.database, status.code) == (SchemaState.BEHIND, None, code_head())
        before = await upgrade(engine)
        assert before.state is SchemaState.BEHIND  # this call applied the migrations
        after = await check_schema(engine)
        assert after.ok and after.database == code_head()
        assert (await upgrade(engine)).state is SchemaState.CURRENT  # nothing left to do
    finally:
        await engine.dispose()


async def test_an_older_revision_is_upgraded(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await upgrade(engine, "0005")
        status = await check_schema(engine)
        assert (status.state, status.database) == (SchemaState.BEHIND, "0005")
        assert "0005" in status.describe() and "behind" in status.describe()
        assert (await upgrade(engine)).database == "0005"
        assert await _versions(engine) == [code_head()]
    finally:
        await engine.dispose()


async def test_a_database_ahead_of_this_version_is_refused_and_left_alone(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await upgrade(engine)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": FUTURE})
        status = await check_schema(engine)
        assert status.state is SchemaState.AHEAD and not status.ok
        with pytest.raises(SchemaAhead) as caught:
            await upgrade(engine)
        assert str(caught.value) == (
            f"database is at migration {FUTURE}, newer than this version's {code_head()}: upgrade this instance"
        )
        assert await _versions(engine) == [FUTURE]
    finally:
        await engine.dispose()


async def test_the_bot_refuses_to_start_on_a_newer_database(db_url: str, tmp_path, monkeypatch, capsys) -> None:
    from bot.app import prepare_database

    engine = create_engine(db_url)
    try:
        await upgrade(engine)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": FUTURE})
    finally:
        await engine.dispose()
    settings = Settings(_env_file=None, database_url=db_url, media_dir=tmp_path / "media")  # type: ignore[call-arg]
    with pytest.raises(Exception, match=f"database is at migration {FUTURE}, newer than this version's"):
        await prepare_database(settings)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert await asyncio.to_thread(main, ["db", "upgrade"]) == 2
    assert "newer than this version's" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["db", "current"]) == 1
    assert f"database is at migration {FUTURE}" in capsys.readouterr().out


@pytest.mark.parametrize("start", [None, "0005"])
async def test_two_instances_upgrading_at_once_apply_the_migrations_once(db_url: str, start: str | None) -> None:
    """On PostgreSQL the advisory lock serialises them; on SQLite, BEGIN IMMEDIATE does."""
    if start:
        setup = create_engine(db_url)
        await upgrade(setup, start)
        await setup.dispose()
    first, second = create_engine(db_url), create_engine(db_url)
    try:
        results = await asyncio.gather(upgrade(first), upgrade(second))
        assert sorted(r.state for r in results) == [SchemaState.BEHIND, SchemaState.CURRENT]
        assert [r.database for r in results if r.state is SchemaState.BEHIND] == [start]
        assert await _versions(first) == [code_head()]
        assert (await check_schema(second)).ok
    finally:
        await first.dispose()
        await second.dispose()
