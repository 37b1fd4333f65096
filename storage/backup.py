"""Backups: a consistent online copy of a SQLite database, its media files, and pg_dump for PostgreSQL.

SQLite: :func:`backup_sqlite` uses SQLite's online backup API in one step, which in WAL mode is a
read transaction: the bot keeps writing meanwhile, and the copy is the database as of one instant.
It is written next to the destination under a temporary name, switched to a single-file journal,
checked with ``PRAGMA integrity_check``, and only then given its final name (never overwriting an
existing file unless asked to).

Media: rows of ``media`` hold paths relative to ``MEDIA_DIR``; the files themselves are not in the
database. Files are content-addressed and never change once written, so copying the files a backup
references (:func:`copy_media`) after the backup gives exactly the set it needs.

PostgreSQL: :func:`pg_commands` builds the ``pg_dump``/``pg_restore`` command lines for a URL (the
password goes in ``PGPASSWORD``, never on a command line); :func:`run_pg_dump` runs the dump.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shlex
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from storage.models import Media


class BackupError(Exception):
    """The backup cannot be made; the message says why and what to do."""


@dataclass
class BackupReport:
    source: Path
    path: Path
    size: int
    seconds: float
    integrity: str
    revision: str | None
    tables: list[tuple[str, int]]


@dataclass
class MediaReport:
    referenced: int  # distinct files the backup's media rows name (originals and thumbnails)
    size: int  # bytes of those that exist
    missing: list[str] = field(default_factory=list)  # named by a row, absent from MEDIA_DIR
    copied: int = 0
    already: int = 0  # present in the destination with the same size (content-addressed: same file)
    dest: Path | None = None


def sqlite_file(url: str) -> Path:
    """The database file of a ``sqlite+aiosqlite:///`` URL."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        raise BackupError(f"not a SQLite database file: {u.render_as_string(hide_password=True)}")
    return Path(u.database).resolve()


def default_name(now: dt.datetime | None = None) -> str:
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d-%H%M%S")
    return f"prolita-{stamp}.db"


def resolve_destination(path: Path, source: Path | None = None) -> Path:
    """``path`` itself, or a time-stamped file inside it if it is an existing folder."""
    dest = (path / default_name()) if path.is_dir() else path
    dest = dest.resolve()
    if not dest.parent.is_dir():
        raise BackupError(f"folder {dest.parent} does not exist")
    if source is not None and dest == source:
        raise BackupError(f"{dest} is the database itself; give another file name")
    return dest


def media_dir_for(backup: Path) -> Path:
    """Where ``--with-media`` puts the files of ``backup``: ``<name>-media`` next to it."""
    return backup.with_name(backup.stem + "-media")


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform or filesystem allows it
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _publish(tmp: Path, dest: Path, force: bool) -> None:
    """Give the finished ``tmp`` its final name; without ``force`` an existing ``dest`` is never replaced."""
    if force:
        os.replace(tmp, dest)
    else:
        try:
            os.link(tmp, dest)  # atomic, and fails if dest appeared meanwhile
        except FileExistsError:
            raise BackupError(f"{dest} already exists; give another name, or --force to replace it") from None
        except OSError:  # a filesystem without hard links
            if dest.exists():
                raise BackupError(f"{dest} already exists; give another name, or --force to replace it") from None
            os.replace(tmp, dest)
        else:
            tmp.unlink()
    _fsync_dir(dest.parent)


def _table_counts(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    return [(n, conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]) for n in names]


def _revision(conn: sqlite3.Connection) -> str | None:
    try:
        rows = conn.execute("SELECT version_num FROM alembic_version ORDER BY version_num").fetchall()
    except sqlite3.OperationalError:
        return None
    return ",".join(r[0] for r in rows) or None


def backup_sqlite(source: Path, dest: Path, *, force: bool = False) -> BackupReport:
    """Copy the live database ``source`` to ``dest`` (blocking; run it in a thread from async code)."""
    if not source.is_file():
        raise BackupError(f"no database at {source} (check DATABASE_URL)")
    if dest.exists() and not force:
        raise BackupError(f"{dest} already exists; give another name, or --force to replace it")
    started = time.monotonic()
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        src = sqlite3.connect(source, timeout=30)
        try:
            dst = sqlite3.connect(tmp)
            try:
                src.backup(dst)  # pages=-1: one step, one consistent snapshot of the source
            finally:
                dst.close()
        finally:
            src.close()
        check = sqlite3.connect(tmp, isolation_level=None)
        try:
            check.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal beside it
            result = [r[0] for r in check.execute("PRAGMA integrity_check")]
            integrity = "ok" if result == ["ok"] else "; ".join(result[:5])
            if integrity != "ok":
                raise BackupError(f"the copy failed PRAGMA integrity_check: {integrity}")
            tables = _table_counts(check)
            revision = _revision(check)
        finally:
            check.close()
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        _publish(tmp, dest, force)
    except sqlite3.Error as exc:
        raise BackupError(f"backup of {source} to {dest} failed: {exc}") from None
    except OSError as exc:
        raise BackupError(f"cannot write {dest}: {exc.strerror or exc}") from None
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
            leftover.unlink(missing_ok=True)
    return BackupReport(
        source=source,
        path=dest,
        size=dest.stat().st_size,
        seconds=time.monotonic() - started,
        integrity=integrity,
        revision=revision,
        tables=tables,
    )


def referenced_media(db_file: Path) -> list[str]:
    """Relative paths of every file the ``media`` rows of a SQLite file name (originals and thumbnails)."""
    table = Media.__table__
    conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    try:
        rows = conn.execute(f'SELECT "{table.c.path.name}", "{table.c.thumb_path.name}" FROM "{table.name}"')
        paths = {p for row in rows for p in row if p}
    except sqlite3.OperationalError:  # no media table: not migrated that far
        return []
    finally:
        conn.close()
    return sorted(paths)


def _inside(root: Path, rel: str) -> Path:
    full = (root / rel).resolve()
    if not full.is_relative_to(root):
        raise BackupError(f"a media row names a path outside MEDIA_DIR: {rel!r}")
    return full


def media_summary(media_dir: Path, paths: list[str]) -> MediaReport:
    root = media_dir.resolve()
    report = MediaReport(referenced=len(paths), size=0)
    for rel in paths:
        full = _inside(root, rel)
        if full.is_file():
            report.size += full.stat().st_size
        else:
            report.missing.append(rel)
    return report


def copy_media(media_dir: Path, paths: list[str], dest: Path) -> MediaReport:
    """Copy the named files from ``media_dir`` to ``dest`` (same layout); files already there are kept."""
    root = media_dir.resolve()
    report = MediaReport(referenced=len(paths), size=0, dest=dest)
    try:
        for rel in paths:
            src = _inside(root, rel)
            if not src.is_file():
                report.missing.append(rel)
                continue
            size = src.stat().st_size
            report.size += size
            target = _inside(dest.resolve(), rel)
            if target.is_file() and target.stat().st_size == size:
                report.already += 1
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_name(f".{target.name}.part")
            shutil.copy2(src, part)
            os.replace(part, target)
            report.copied += 1
    except OSError as exc:
        raise BackupError(f"cannot copy media to {dest}: {exc.strerror or exc}") from None
    return report


# --------------------------------------------------------------------------------- PostgreSQL


@dataclass
class PgCommands:
    dump: list[str]
    create: list[str]
    restore: list[str]
    env: dict[str, str]  # what the commands need in the environment (PGPASSWORD, PGSSLMODE)
    has_password: bool

    def shell(self, argv: list[str]) -> str:
        return shlex.join(argv)


def _conn_args(u: URL) -> list[str]:
    args = ["--host", u.host or "127.0.0.1", "--port", str(u.port or 5432)]
    if u.username:
        args += ["--username", u.username]
    return args


def pg_commands(url: str, path: Path, restore_db: str | None = None) -> PgCommands:
    """pg_dump (custom format, restorable with pg_restore) and restore commands for ``url``."""
    u = make_url(url)
    if u.get_backend_name() != "postgresql" or not u.database:
        raise BackupError(f"not a PostgreSQL database URL: {u.render_as_string(hide_password=True)}")
    env: dict[str, str] = {}
    if u.password:
        env["PGPASSWORD"] = u.password
    ssl = u.query.get("sslmode") or u.query.get("ssl")
    if isinstance(ssl, str) and ssl:
        env["PGSSLMODE"] = {"true": "require", "false": "disable"}.get(ssl.lower(), ssl)
    conn = _conn_args(u)
    target = restore_db or f"{u.database}_restored"
    return PgCommands(
        dump=["pg_dump", "--format=custom", "--no-owner", "--no-privileges", *conn, "--file", str(path), u.database],
        create=["createdb", *conn, target],
        restore=[
            "pg_restore",
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            *conn,
            "--dbname",
            target,
            str(path),
        ],
        env=env,
        has_password=bool(u.password),
    )


@dataclass
class PgDumpReport:
    path: Path
    size: int
    seconds: float
    tables: int  # "TABLE DATA" entries pg_restore --list finds in the archive


def run_pg_dump(url: str, dest: Path, *, force: bool = False) -> PgDumpReport:
    """Run pg_dump to ``dest`` (atomically, verified with ``pg_restore --list``); blocking."""
    for tool in ("pg_dump", "pg_restore"):
        if shutil.which(tool) is None:
            raise BackupError(f"{tool} is not installed here (e.g. apt-get install postgresql-client)")
    if dest.exists() and not force:
        raise BackupError(f"{dest} already exists; give another name, or --force to replace it")
    started = time.monotonic()
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    cmds = pg_commands(url, tmp)
    env = {**os.environ, **cmds.env}
    try:
        dumped = subprocess.run(cmds.dump, env=env, capture_output=True, text=True, check=False)
        if dumped.returncode != 0:
            raise BackupError(f"pg_dump failed (exit {dumped.returncode}): {dumped.stderr.strip()}")
        listed = subprocess.run(["pg_restore", "--list", str(tmp)], capture_output=True, text=True, check=False)
        if listed.returncode != 0:
            raise BackupError(f"pg_restore cannot read the dump: {listed.stderr.strip()}")
        tables = sum(1 for line in listed.stdout.splitlines() if " TABLE DATA " in line)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        _publish(tmp, dest, force)
    except OSError as exc:
        raise BackupError(f"cannot write {dest}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return PgDumpReport(path=dest, size=dest.stat().st_size, seconds=time.monotonic() - started, tables=tables)
