"""Shared fixtures: a fresh database per test on SQLite and, where reachable, PostgreSQL.

PostgreSQL tests use ``TEST_DATABASE_URL`` (``.ci/run`` sets it to the local server). Each test
gets its own freshly created database, so nothing depends on what ``test`` already holds; where
the server is absent the PostgreSQL variant is skipped with the reason shown by ``pytest -ra``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from storage.db import create_engine, create_sessionmaker
from storage.migrate import upgrade

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "").strip()
_pg_status: dict[str, str | None] = {}


async def _pg_admin_exec(sql: str) -> None:
    import asyncpg

    url = make_url(TEST_DATABASE_URL)
    conn = await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        database=url.database or "postgres",
        timeout=5,
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _pg_unavailable_reason() -> str | None:
    if "reason" in _pg_status:
        return _pg_status["reason"]
    if not TEST_DATABASE_URL:
        reason = "PostgreSQL tests skipped: TEST_DATABASE_URL is not set (.ci/run sets it)"
    else:
        try:
            await _pg_admin_exec("SELECT 1")
            reason = None
        except Exception as exc:
            reason = f"PostgreSQL tests skipped: server at TEST_DATABASE_URL not reachable ({exc!r})"
    _pg_status["reason"] = reason
    return reason


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    """URL of a fresh, empty (unmigrated) database: SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'prolita-test.db'}"
        return
    reason = await _pg_unavailable_reason()
    if reason:
        pytest.skip(reason)
    name = f"prolita_t_{uuid.uuid4().hex[:12]}"
    await _pg_admin_exec(f'CREATE DATABASE "{name}"')
    url = make_url(TEST_DATABASE_URL).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        for _ in range(3):
            try:
                await _pg_admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except Exception:
                await asyncio.sleep(0.5)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated database (schema + seeded master data)."""
    eng = create_engine(db_url)
    await upgrade(eng)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine):
    return create_sessionmaker(engine)


@pytest.fixture
async def session(sessionmaker) -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as s:
        yield s
