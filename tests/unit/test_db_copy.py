"""``prolita-bot db copy``: SQLite → PostgreSQL preserves every row of every table.

The source is the sandbox's demo database (seeded through the services, with photos) plus rows for
every table the demo leaves empty, with awkward values: ids above 2**53, SQL NULL next to JSON
``null``, unicode, microseconds, decimals. The fixture asserts that every table of the models holds
rows, so a new table makes this test fail until it is given rows here (and thereby proven copied).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, func, insert, null, select, text, update
from sqlalchemy.engine import make_url

from bot.__main__ import main
from bot.sandbox import seed as sandbox
from storage import copy as dbcopy
from storage.copy import CopyError, CountMismatch, copy_database, tables
from storage.db import create_engine, create_sessionmaker
from storage.migrate import upgrade
from storage.models import AuditLog, Base
from tests.conftest import TEST_DATABASE_URL, _pg_admin_exec, _pg_unavailable_reason

BIG_USER = 9_007_199_254_740_993  # above 2**53: survives only as a true 64-bit integer
T0 = dt.datetime(2026, 3, 14, 1, 59, 26, 535897, tzinfo=dt.UTC)


@pytest.fixture
async def new_pg() -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Makes fresh, empty PostgreSQL databases on the TEST_DATABASE_URL server; drops them after."""
    reason = await _pg_unavailable_reason()
    if reason:
        pytest.skip(reason)
    names: list[str] = []

    async def make() -> str:
        name = f"prolita_copy_{uuid.uuid4().hex[:12]}"
        await _pg_admin_exec(f'CREATE DATABASE "{name}"')
        names.append(name)
        return make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)

    yield make
    for name in names:
        await _pg_admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _extra_rows(proposal_id: int, user_id: int, rt_id: int) -> dict[str, list[dict[str, Any]]]:
    """Rows for the tables the demo leaves empty, and a few awkward ones for the others."""
    return {
        "users": [
            {
                "id": BIG_USER,
                "first_name": "Zoë 'Ñ' \"quoted\" 🌧️",
                "last_name": None,
                "username": "zoe",
                "language": "en",
                "language_chosen": True,
                "blocked_bot": True,
                "erased_at": T0,
                "created_at": T0,
                "updated_at": T0 + dt.timedelta(microseconds=1),
            },
        ],
        "audit_log": [
            # SQL NULL before, JSON null after: both read as None, only IS NULL tells them apart.
            {
                "at": T0,
                "actor_id": BIG_USER,
                "action": "test.nulls",
                "entity": "user",
                "entity_id": None,
                "before": null(),
                "after": JSON.NULL,
                "reason": None,
            },
            {
                "at": T0,
                "actor_id": None,
                "action": "test.json",
                "entity": "user",
                "entity_id": "x",
                "before": {"nested": {"list": [1, 2.5, True, None, "ü"]}, "big": 2**62},
                "after": [],
                "reason": "line\nbreak\ttab",
            },
        ],
        "rab_lines": [
            {
                "proposal_id": proposal_id,
                "position": 99,
                "description": "Desimal",
                "volume": Decimal("2.125"),
                "unit": "m3",
                "unit_price": 9_999_999_999,
                "total": 21_249_999_998,
            },
        ],
        "broadcasts": [
            {
                "admin_id": BIG_USER,
                "audience": "all",
                "text": "<b>Rapat</b> Minggu",
                "total": 3,
                "skipped_blocked": 1,
                "progress_chat_id": BIG_USER,
                "progress_message_id": 7,
                "created_at": T0,
                "finished_at": None,
            },
        ],
        "fsm_states": [
            {
                "key": "bot:1:chat:2:user:2:default",
                "state": "Usulan:judul",
                "data": {"draft": 3, "ok": False},
                "updated_at": T0,
            },
            {"key": "bot:1:chat:ß:Ä", "state": None, "data": {}, "updated_at": T0},
        ],
        "handled_updates": [{"update_id": 2**40 + 5, "handled_at": T0}, {"update_id": 1, "handled_at": T0}],
        "notification_prefs": [
            {"user_id": user_id, "mode": "mingguan", "quiet_start": 0, "quiet_end": 0, "updated_at": T0}
        ],
        "reminders_sent": [
            {
                "kind": "window",
                "user_id": BIG_USER,
                "subject_id": 1,
                "occurrence": "h-3",
                "local_date": dt.date(2026, 2, 28),
                "created_at": T0,
            },
        ],
        "votes": [
            {
                "id": 41,
                "rt_id": rt_id,
                "created_by": user_id,
                "question": "Prioritas?",
                "options": ["A", "B"],
                "closes_at": T0,
                "status": "ditutup",
                "result": [3, 0],
                "voters": 3,
                "proposal_id": proposal_id,
                "created_at": T0,
                "closed_at": T0,
            },
        ],
        "vote_polls": [
            {"vote_id": 41, "user_id": BIG_USER, "poll_id": "5123456789012345678", "message_id": 12, "created_at": T0}
        ],
        "vote_answers": [{"vote_id": 41, "user_id": BIG_USER, "option_ids": [0], "answered_at": T0}],
        "escalations": [
            {
                "item_type": "proposal",
                "item_id": proposal_id,
                "since": T0,
                "level": 1,
                "scope_level": "kecamatan",
                "age_days": 4,
                "recipients": [user_id, BIG_USER],
                "created_at": T0,
            },
        ],
    }


@pytest.fixture
async def source(tmp_path: Path) -> str:
    """The sandbox's demo database plus rows in every other table; returns its URL."""
    settings = sandbox.settings_for(tmp_path)
    await sandbox.prepare_database(settings.database_url)
    await sandbox.seed(settings)
    engine = create_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            meta = Base.metadata.tables
            proposal_id = await conn.scalar(select(func.min(meta["proposals"].c.id)))
            user_id = await conn.scalar(select(func.min(meta["users"].c.id)))
            rt_id = await conn.scalar(select(func.min(meta["rt"].c.id)))
            for name, rows in _extra_rows(proposal_id, user_id, rt_id).items():
                for row in rows:
                    await conn.execute(insert(meta[name]).values(**row))
        async with engine.connect() as conn:
            empty = [t.name for t in tables() if not await conn.scalar(select(func.count()).select_from(t))]
    finally:
        await engine.dispose()
    assert not empty, f"give these tables rows in _extra_rows so the copy of them is tested: {empty}"
    return settings.database_url


async def _dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table through the models' types, plus for JSON columns whether it is SQL NULL."""
    engine = create_engine(url)
    out: dict[str, list[tuple[Any, ...]]] = {}
    try:
        async with engine.connect() as conn:
            for table in tables():
                nulls = [c.is_(None).label(f"{c.name}__sql_null") for c in table.columns if isinstance(c.type, JSON)]
                rows = (await conn.execute(select(*table.columns, *nulls))).all()
                pk = [list(table.columns).index(c) for c in table.primary_key.columns]
                out[table.name] = sorted((tuple(r) for r in rows), key=lambda r, pk=pk: tuple(r[i] for i in pk))
    finally:
        await engine.dispose()
    return out


@pytest.mark.postgres
async def test_copy_round_trip_preserves_every_row(source: str, new_pg) -> None:
    target = await new_pg()
    calls: list[tuple[int, int]] = []
    report = await copy_database(source, target, batch=50, on_progress=lambda d, t: calls.append((d, t)))

    before, after = await _dump(source), await _dump(target)
    assert set(after) == {t.name for t in tables()}
    for name, rows in before.items():
        assert after[name] == rows, f"table {name} differs after the copy"
    assert report.ok and report.committed
    assert {t.name: t.source for t in report.tables} == {n: len(r) for n, r in before.items()}
    assert report.rows == sum(len(r) for r in before.values()) > 600
    assert calls[-1] == (report.rows, report.rows) and calls == sorted(calls)  # the progress bar's feed
    assert report.media_paths and all(not p.startswith("/") for p in report.media_paths)

    engine = create_engine(target)
    try:
        async with engine.connect() as conn:  # the types PostgreSQL got, not only the values read back
            assert await conn.scalar(text("SELECT count(*) FROM users WHERE id = :i"), {"i": BIG_USER}) == 1
            assert await conn.scalar(text("SELECT count(*) FROM audit_log WHERE before IS NULL AND after IS NOT NULL"
                                          " AND action = 'test.nulls'")) == 1  # fmt: skip
            tz = await conn.scalar(text("SELECT erased_at FROM users WHERE id = :i"), {"i": BIG_USER})
            assert tz == T0

        # The sequences were moved past the copied ids: a new row gets the next id, on every table.
        top = before["audit_log"][-1][0]
        async with create_sessionmaker(engine)() as session:
            row = AuditLog(action="after.copy", entity="test")
            session.add(row)
            await session.commit()
            assert row.id == top + 1
        async with engine.connect() as conn:
            checked = 0
            for table in tables():
                pk = list(table.primary_key.columns)
                if len(pk) != 1:
                    continue
                seq = await conn.scalar(
                    text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": pk[0].name}
                )
                if seq is None:
                    continue
                highest = await conn.scalar(select(func.max(pk[0]))) or 0
                assert await conn.scalar(text("SELECT nextval(CAST(:s AS regclass))"), {"s": seq}) > highest, table.name
                checked += 1
            assert checked == report.sequences >= 20
    finally:
        await engine.dispose()

    # A second copy into the now used target is refused, and changes nothing.
    with pytest.raises(CopyError, match=r"already holds data: .*users"):
        await copy_database(source, target)
    again = await _dump(target)
    assert again["users"] == after["users"] and len(again["audit_log"]) == len(after["audit_log"]) + 1


@pytest.mark.postgres
async def test_a_failed_copy_leaves_the_target_as_it_was_and_can_be_retried(tmp_path: Path, new_pg) -> None:
    src = f"sqlite+aiosqlite:///{tmp_path / 'src.db'}"
    engine = create_engine(src)
    users = Base.metadata.tables["users"]
    try:
        await upgrade(engine)
        async with engine.begin() as conn:  # SQLite does not enforce String(64); PostgreSQL does
            await conn.execute(insert(users), [{"id": i, "first_name": f"U{i}", "created_at": T0, "updated_at": T0}
                                               for i in range(1, 4001)])  # fmt: skip
            await conn.execute(update(users).where(users.c.id == 3999).values(username="x" * 100))
        target = await new_pg()
        with pytest.raises(CopyError, match=r"table users, batch starting at \{'id': 2001\}.*rolled back"):
            await copy_database(src, target, batch=2000)
        seeded = sum(len(rows) for rows in (await dbcopy._seed_rows()).values())
        assert sum(len(rows) for rows in (await _dump(target)).values()) == seeded  # only the migrations' seed
        async with engine.begin() as conn:
            await conn.execute(update(users).where(users.c.id == 3999).values(username="x"))
        report = await copy_database(src, target)
        assert report.ok and {t.name: t.target for t in report.tables}["users"] == 4000
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_count_mismatch_rolls_back_and_says_which_table(tmp_path: Path, new_pg, monkeypatch) -> None:
    src = f"sqlite+aiosqlite:///{tmp_path / 'src.db'}"
    engine = create_engine(src)
    try:
        await upgrade(engine)
        async with engine.begin() as conn:
            await conn.execute(insert(Base.metadata.tables["users"]), [{"id": 7, "created_at": T0, "updated_at": T0}])
    finally:
        await engine.dispose()
    real = dbcopy._reset_sequences

    async def lose_a_row(conn):  # a row vanishing between insert and verification
        await conn.execute(text("DELETE FROM users WHERE id = 7"))
        return await real(conn)

    monkeypatch.setattr(dbcopy, "_reset_sequences", lose_a_row)
    target = await new_pg()
    with pytest.raises(CountMismatch, match="users 1→0") as caught:
        await copy_database(src, target)
    assert [t.name for t in caught.value.report.tables if not t.ok] == ["users"]
    monkeypatch.setattr(dbcopy, "_reset_sequences", real)
    assert (await copy_database(src, target)).ok  # nothing was committed by the failed run


@pytest.mark.postgres
async def test_cli_copy_prints_the_counts_and_refuses_a_used_target(tmp_path: Path, new_pg, monkeypatch, capsys):
    src = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    monkeypatch.chdir(tmp_path)  # no .env from the working copy
    monkeypatch.setenv("DATABASE_URL", src)
    monkeypatch.setenv("MEDIA_DIR", str(tmp_path / "media"))
    assert await _run(main, ["db", "upgrade"]) == 0
    target = await new_pg()
    plain = "postgresql://" + target.split("://", 1)[1]  # the driver is added for the operator
    assert await _run(main, ["db", "copy", "--to", plain]) == 0
    out = capsys.readouterr()
    assert "kelurahan" in out.out and "every count matches" in out.out
    seeded = sum(len(rows) for rows in (await dbcopy._seed_rows()).values())
    assert f"{seeded}/{seeded} rows" in out.err
    assert await _run(main, ["db", "copy", "--to", plain]) == 0  # still only the seed: allowed, same result
    engine = create_engine(target)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(Base.metadata.tables["users"]), [{"id": 1, "created_at": T0, "updated_at": T0}])
    finally:
        await engine.dispose()
    capsys.readouterr()
    assert await _run(main, ["db", "copy", "--to", plain]) == 1
    assert "already holds data: users (1 rows)" in capsys.readouterr().err


async def _run(fn, argv: list[str]) -> int:
    """main() calls asyncio.run, which cannot nest in the test's loop: run it in a thread."""
    import asyncio

    return await asyncio.to_thread(fn, argv)


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("sqlite+aiosqlite:///x.db", "must be a PostgreSQL database"),
        ("mysql://u@h/db", "must be a PostgreSQL database"),
        ("postgresql+asyncpg://u@h:5432/", "must be a PostgreSQL database"),
        ("not a url", "not a database URL"),
    ],
)
async def test_bad_targets_are_refused(to: str, message: str) -> None:
    with pytest.raises(CopyError, match=message):
        await copy_database("sqlite+aiosqlite:///nowhere.db", to)


async def test_a_source_behind_this_version_is_refused_untouched(tmp_path: Path) -> None:
    src = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(src)
    try:
        await upgrade(engine, "0005")
        with pytest.raises(CopyError, match=r"source is at migration 0005.*prolita-bot db upgrade"):
            await copy_database(src, "postgresql+asyncpg://nobody@127.0.0.1:1/never_contacted")
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT version_num FROM alembic_version")) == "0005"
    finally:
        await engine.dispose()


async def test_the_same_database_is_refused() -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:5432/prolita"
    with pytest.raises(CopyError, match="same database"):
        await copy_database(url, url.replace("+asyncpg", ""))


async def test_a_missing_sqlite_source_is_refused_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    with pytest.raises(CopyError, match=f"no database at {missing}"):
        await copy_database(f"sqlite+aiosqlite:///{missing}", "postgresql+asyncpg://u@127.0.0.1:1/never_contacted")
    assert not missing.exists()
