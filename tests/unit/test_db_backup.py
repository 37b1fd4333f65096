"""``prolita-bot db backup``: a consistent SQLite copy while another connection writes, restorable to
identical rows with its media files; never overwriting by accident; pg_dump without leaking passwords."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from bot.__main__ import main
from bot.services import media
from fakeapi import make_jpeg, make_pdf
from storage import backup
from storage.copy import tables
from storage.db import create_engine, create_sessionmaker
from storage.migrate import check_schema, code_head, upgrade
from tests.conftest import TEST_DATABASE_URL, _pg_admin_exec, _pg_unavailable_reason


async def _migrated(path: Path) -> str:
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    return url


def _rows(db: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(db)
    try:
        return {t.name: conn.execute(f'SELECT * FROM "{t.name}" ORDER BY 1, 2').fetchall() for t in tables()}
    finally:
        conn.close()


def _exists(path: str) -> bool:
    return Path(path).exists()


def _glob(folder: Path, pattern: str) -> list[Path]:
    return list(folder.glob(pattern))


async def test_backup_while_another_connection_writes_is_one_consistent_snapshot(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    await _migrated(db)
    stop, warmed_up = threading.Event(), threading.Event()
    written = [0]  # committed rows

    def writer() -> None:
        # Each transaction adds one audit row and one outbox row: a torn copy would hold unequal counts.
        conn = sqlite3.connect(db, timeout=30, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 30000")
        try:
            while not stop.is_set() or written[0] < 400:
                conn.execute("BEGIN IMMEDIATE")
                for i in range(1, 51):
                    n = written[0] + i
                    conn.execute(
                        "INSERT INTO audit_log (at, action, entity, before) VALUES ('2026-01-01 00:00:00', ?, 'x', ?)",
                        (f"write {n}", f'{{"n": {n}}}'),
                    )
                    conn.execute(
                        "INSERT INTO outbox (chat_id, kind, payload, status, attempts, next_attempt_at, created_at) "
                        "VALUES (?, 'k', '{}', 'pending', 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
                        (n,),
                    )
                conn.execute("COMMIT")
                written[0] += 50
                if written[0] >= 200:
                    warmed_up.set()
        finally:
            conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert await asyncio.to_thread(warmed_up.wait, 30)
        reports = []
        for i in range(3):  # several backups during the writes
            reports.append(await asyncio.to_thread(backup.backup_sqlite, db, tmp_path / f"b{i}.db"))
    finally:
        stop.set()
        await asyncio.to_thread(thread.join)

    live = _rows(db)
    counts = []
    for report in reports:
        assert report.integrity == "ok" and report.revision == code_head()
        copy = _rows(report.path)
        n = len(copy["audit_log"])
        assert n == len(copy["outbox"]) and n % 50 == 0  # whole transactions only
        assert copy["audit_log"] == live["audit_log"][:n]  # exactly the first n rows, byte for byte
        assert dict(report.tables)["audit_log"] == n
        counts.append(n)
        assert not _exists(f"{report.path}-wal")  # one self-contained file
    assert counts == sorted(counts) and 200 <= counts[0] and counts[-1] < len(live["audit_log"])


async def test_restore_gives_identical_rows_and_media(tmp_path: Path, monkeypatch, capsys) -> None:
    live = tmp_path / "bot.db"
    media_dir = tmp_path / "media"
    url = await _migrated(live)
    engine = create_engine(url)
    store = media.LocalMediaStore(media_dir)
    try:
        async with create_sessionmaker(engine)() as session:
            await media.save_media(session, store, make_jpeg(640, 480, text="foto"), "image/jpeg")
            await media.save_media(session, store, make_pdf("berita acara"), media.PDF_MIME, kind=media.KIND_DOCUMENT)
            await session.commit()
    finally:
        await engine.dispose()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("MEDIA_DIR", str(media_dir))
    out_dir = tmp_path / "backups"
    out_dir.mkdir()

    assert await asyncio.to_thread(main, ["db", "backup", str(out_dir / "b.db"), "--with-media"]) == 0
    printed = capsys.readouterr().out
    assert "integrity_check : ok" in printed and "media: 3 files referenced" in printed  # 2 files + 1 thumbnail
    assert "copied 3, 0 already there" in printed

    # Restore: the backup file in place of the database, the media folder in place of MEDIA_DIR.
    restored, restored_media = tmp_path / "restored.db", tmp_path / "restored-media"
    shutil.copy(out_dir / "b.db", restored)
    shutil.copytree(out_dir / "b-media", restored_media)
    assert _rows(restored) == _rows(live)
    engine = create_engine(f"sqlite+aiosqlite:///{restored}")
    try:
        assert (await check_schema(engine)).ok
        async with engine.connect() as conn:
            rows = (await conn.execute(select(tables()[0].metadata.tables["media"]))).all()
    finally:
        await engine.dispose()
    assert len(rows) == 2
    for row in rows:
        for rel in filter(None, (row.path, row.thumb_path)):
            assert (restored_media / rel).read_bytes() == (media_dir / rel).read_bytes()

    # Again with --force: the same files are found already there.
    assert await asyncio.to_thread(main, ["db", "backup", str(out_dir / "b.db"), "--with-media", "--force"]) == 0
    assert "copied 0, 3 already there" in capsys.readouterr().out


async def test_an_existing_file_is_never_overwritten_without_force(tmp_path: Path, monkeypatch, capsys) -> None:
    db = tmp_path / "bot.db"
    url = await _migrated(db)
    target = tmp_path / "backup.db"
    target.write_bytes(b"an older backup")
    with pytest.raises(backup.BackupError, match="already exists; give another name, or --force"):
        backup.backup_sqlite(db, target)
    assert target.read_bytes() == b"an older backup"
    assert not _glob(tmp_path, ".*.part*")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    assert await asyncio.to_thread(main, ["db", "backup", str(target)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert target.read_bytes() == b"an older backup"
    assert await asyncio.to_thread(main, ["db", "backup", str(target), "--force"]) == 0
    assert _rows(target) == _rows(db)
    assert "not copied" not in capsys.readouterr().out

    # A folder gets a time-stamped file; the database itself, a missing folder or database are refused.
    assert await asyncio.to_thread(main, ["db", "backup", str(tmp_path)]) == 0
    assert len(_glob(tmp_path, "prolita-*.db")) == 1
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["db", "backup", str(db), "--force"]) == 1
    assert "is the database itself" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["db", "backup", str(tmp_path / "no" / "b.db")]) == 1
    assert "does not exist" in capsys.readouterr().err
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'missing.db'}")
    assert await asyncio.to_thread(main, ["db", "backup", str(tmp_path / "x.db")]) == 1
    assert "no database at" in capsys.readouterr().err
    assert not (tmp_path / "missing.db").exists()


async def test_postgresql_backup_prints_pg_dump_commands_without_the_password(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://prolita:s3cr%40t@db.example:6543/prolita?ssl=require")
    assert await asyncio.to_thread(main, ["db", "backup", str(tmp_path / "p.dump")]) == 0
    out = capsys.readouterr().out
    assert "s3cr" not in out
    assert (
        f"pg_dump --format=custom --no-owner --no-privileges --host db.example --port 6543 --username prolita "
        f"--file {tmp_path / 'p.dump'} prolita"
    ) in out
    assert "export PGPASSWORD=..." in out and "export PGSSLMODE=require" in out
    assert f"--dbname prolita_restored {tmp_path / 'p.dump'}" in out
    cmds = backup.pg_commands("postgresql+asyncpg://prolita:s3cr%40t@db.example/prolita", Path("p.dump"))
    assert cmds.env["PGPASSWORD"] == "s3cr@t" and not any("s3cr" in a for a in cmds.dump + cmds.restore)


@pytest.mark.postgres
async def test_postgresql_backup_run_writes_a_restorable_dump(tmp_path: Path, monkeypatch, capsys) -> None:
    reason = await _pg_unavailable_reason()
    if reason:
        pytest.skip(reason)
    if shutil.which("pg_dump") is None:
        pytest.skip("pg_dump is not installed")
    names = [f"prolita_bk_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    for name in names:
        await _pg_admin_exec(f'CREATE DATABASE "{name}"')
    try:
        urls = [make_url(TEST_DATABASE_URL).set(database=n).render_as_string(hide_password=False) for n in names]
        engine = create_engine(urls[0])
        await upgrade(engine)
        await engine.dispose()
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("DATABASE_URL", urls[0])
        dump = tmp_path / "p.dump"
        assert await asyncio.to_thread(main, ["db", "backup", str(dump), "--run"]) == 0
        assert "pg_restore --list reads it" in capsys.readouterr().out
        assert await asyncio.to_thread(main, ["db", "backup", str(dump), "--run"]) == 1  # no overwrite
        u = make_url(urls[1])
        restore = [
            "pg_restore",
            "--no-owner",
            "-h",
            u.host,
            "-p",
            str(u.port or 5432),
            "-U",
            u.username,
            "-d",
            names[1],
        ]
        await asyncio.to_thread(subprocess.run, [*restore, str(dump)], check=True, capture_output=True)
        engine = create_engine(urls[1])
        try:
            assert (await check_schema(engine)).ok
        finally:
            await engine.dispose()
    finally:
        for name in names:
            await _pg_admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
