"""Copy every row of the bot's database into a new PostgreSQL database (``prolita-bot db copy``).

The source (SQLite or PostgreSQL) must be at this code's migration head and is only read, from one
snapshot (a read transaction; ``REPEATABLE READ`` on PostgreSQL), so rows the bot writes meanwhile
are not half-copied: they are simply not in the copy. Stop the bot for the final copy.

The target is migrated to the same head first, then filled in ONE transaction: its tables are
locked, checked to hold nothing but what the migrations themselves seed (master data), emptied of
that seed, filled table by table in foreign-key order in batches, its integer key sequences set past
the copied ids, and every table's row count compared with the source's. Any error or mismatch rolls
the whole transaction back: the target is left as it was.

Column types go through the models (``storage.models``): aware UTC datetimes, big integers,
booleans and decimals arrive as such. JSON columns are read as their stored text so that SQL NULL
and a JSON ``null`` stay distinct.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, Table, Text, cast, func, inspect, null, select, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.db import create_engine
from storage.migrate import SchemaAhead, SchemaState, check_schema, upgrade
from storage.models import Base, Media

BATCH = 2000
SKIPPED = ("alembic_version",)

Progress = Callable[[int, int], None]


class CopyError(Exception):
    """The copy cannot start or failed; nothing was committed to the target. The message says why."""


@dataclass
class TableCount:
    name: str
    source: int
    target: int

    @property
    def ok(self) -> bool:
        return self.source == self.target


@dataclass
class CopyReport:
    tables: list[TableCount]
    seconds: float = 0.0
    sequences: int = 0  # key sequences set past the copied ids
    media_paths: list[str] = field(default_factory=list)  # files the copied media rows name
    committed: bool = False
    target: str = ""  # the target URL as used (asyncpg driver), password hidden

    @property
    def rows(self) -> int:
        return sum(t.source for t in self.tables)

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables)


class CountMismatch(CopyError):
    def __init__(self, report: CopyReport) -> None:
        bad = ", ".join(f"{t.name} {t.source}→{t.target}" for t in report.tables if not t.ok)
        super().__init__(f"row counts differ ({bad}); the copy was rolled back")
        self.report = report


def tables() -> list[Table]:
    """Every table of the models, parents before children."""
    return [t for t in Base.metadata.sorted_tables if t.name not in SKIPPED]


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def normalise_target(url: str) -> str:
    """``postgresql://`` and ``postgres://`` URLs get the asyncpg driver; anything else is refused."""
    url = url.strip()
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql+asyncpg://" + url[len(prefix) :]
    try:
        u = make_url(url)
    except Exception:
        raise CopyError(
            f"--to {url!r} is not a database URL; e.g. postgresql+asyncpg://user@host:5432/prolita"
        ) from None
    if u.drivername != "postgresql+asyncpg" or not u.database:
        raise CopyError(
            f"--to must be a PostgreSQL database, e.g. postgresql+asyncpg://user@host:5432/prolita "
            f"(got {_redacted(url)})"
        )
    return u.render_as_string(hide_password=False)


def _same_database(a: str, b: str) -> bool:
    ua, ub = make_url(a), make_url(b)
    if ua.get_backend_name() != ub.get_backend_name():
        return False
    if ua.get_backend_name() == "sqlite":
        return Path(ua.database or "").resolve() == Path(ub.database or "").resolve()
    where = (ua.host or "localhost", ua.port or 5432, ua.database)
    return where == (ub.host or "localhost", ub.port or 5432, ub.database)


def _require_sqlite_file(url: str) -> None:
    """A SQLite source must exist (connecting would create an empty file)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and (not u.database or not Path(u.database).is_file()):
        raise CopyError(f"no database at {u.database} (check DATABASE_URL or --from)")


def _json_columns(table: Table) -> set[str]:
    return {c.name for c in table.columns if isinstance(c.type, JSON)}


def _select(table: Table) -> Any:
    """All columns, JSON ones as their stored text, in primary-key order."""
    json_cols = _json_columns(table)
    cols = [cast(c, Text).label(c.name) if c.name in json_cols else c for c in table.columns]
    return select(*cols).order_by(*table.primary_key.columns)


def _to_params(table: Table, rows: list[Any]) -> list[dict[str, Any]]:
    json_cols = _json_columns(table)
    out = []
    for row in rows:
        values = dict(row._mapping)
        for name in json_cols:
            raw = values[name]
            try:
                values[name] = null() if raw is None else json.loads(raw)  # JSON "null" stays JSON null
            except ValueError:
                key = {k: values[k] for k in table.primary_key.columns.keys()}
                raise CopyError(f"table {table.name}, row {key}: column {name} is not valid JSON") from None
        out.append(values)
    return out


def _schema_differences(conn: Connection) -> list[str]:
    insp = inspect(conn)
    present = set(insp.get_table_names()) - set(SKIPPED)
    problems = []
    for table in tables():
        if table.name not in present:
            problems.append(f"table {table.name} is missing")
            continue
        have = {c["name"] for c in insp.get_columns(table.name)}
        want = {c.name for c in table.columns}
        if have - want:
            problems.append(f"{table.name} has columns this version does not know: {', '.join(sorted(have - want))}")
        if want - have:
            problems.append(f"{table.name} lacks columns: {', '.join(sorted(want - have))}")
    extra = present - {t.name for t in tables()}
    problems += [f"table {name} is unknown to this version" for name in sorted(extra)]
    return problems


async def _check_source(engine: AsyncEngine, url: str) -> None:
    try:
        status = await check_schema(engine)
    except (OSError, DBAPIError) as exc:
        raise CopyError(f"cannot open the source {_redacted(url)}: {exc}") from None
    if status.state is SchemaState.AHEAD:
        raise CopyError(f"source: {status.describe()}")
    if status.state is SchemaState.BEHIND:
        raise CopyError(
            f"the source is at migration {status.database or '(none)'}, this version's is {status.code}: "
            "run `prolita-bot db upgrade` with DATABASE_URL set to the source first"
        )
    async with engine.connect() as conn:
        problems = await conn.run_sync(_schema_differences)
    if problems:
        raise CopyError("the source's tables do not match this version's models: " + "; ".join(problems))


async def _prepare_target(engine: AsyncEngine, url: str) -> None:
    try:
        await upgrade(engine)
    except SchemaAhead as exc:
        raise CopyError(f"target: {exc}") from None
    except (OSError, DBAPIError) as exc:
        u = make_url(url)
        why = getattr(exc, "orig", None) or exc
        hint = "check its host, port, user and password"
        if "does not exist" in str(why):
            hint = (
                f"create it first, e.g.: createdb -h {u.host or '127.0.0.1'} -p {u.port or 5432} "
                f"-U {u.username or 'postgres'} {u.database}"
            )
        raise CopyError(f"cannot open the target {_redacted(url)}: {why}; {hint}") from None


def _row_key(table: Table, row: Any) -> str:
    """A row as comparable text, leaving out times (a seed may stamp them)."""
    values = {c.name: row._mapping[c.name] for c in table.columns if not isinstance(c.type, DateTime)}
    return json.dumps(values, sort_keys=True, default=str)


async def _seed_rows() -> dict[str, set[str]]:
    """What a freshly migrated database holds (the migrations' own master data), table by table."""
    with tempfile.TemporaryDirectory(prefix="prolita-seed-") as folder:
        engine = create_engine(f"sqlite+aiosqlite:///{Path(folder) / 'seed.db'}")
        try:
            await upgrade(engine)
            seeded: dict[str, set[str]] = {}
            async with engine.connect() as conn:
                for table in tables():
                    rows = (await conn.execute(select(table))).all()
                    if rows:
                        seeded[table.name] = {_row_key(table, r) for r in rows}
            return seeded
        finally:
            await engine.dispose()


async def _counts(conn: AsyncConnection) -> dict[str, int]:
    return {t.name: await conn.scalar(select(func.count()).select_from(t)) or 0 for t in tables()}


async def _refuse_if_used(conn: AsyncConnection) -> None:
    """The target may hold only what the migrations seed; anything else means it is in use."""
    counts = await _counts(conn)
    if not any(counts.values()):
        return
    seeded = await _seed_rows()
    used = []
    for table in tables():
        n = counts[table.name]
        if not n:
            continue
        if table.name in seeded:
            rows = {_row_key(table, r) for r in (await conn.execute(select(table))).all()}
            if rows == seeded[table.name]:
                continue
        used.append(f"{table.name} ({n} rows)")
    if used:
        raise CopyError(
            "the target already holds data: " + ", ".join(used) + ". Copy only into a new, empty database "
            "(dropdb/createdb it, or choose another name); nothing was changed"
        )


async def _reset_sequences(conn: AsyncConnection) -> int:
    done = 0
    for table in tables():
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or not isinstance(pk[0].type, Integer):
            continue
        seq = await conn.scalar(text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": pk[0].name})
        if seq is None:
            continue
        top = await conn.scalar(select(func.max(pk[0])))
        await conn.execute(text("SELECT setval(CAST(:seq AS regclass), :v, false)"), {"seq": seq, "v": (top or 0) + 1})
        done += 1
    return done


async def media_paths(conn: AsyncConnection) -> list[str]:
    table = Media.__table__
    rows = (await conn.execute(select(table.c.path, table.c.thumb_path))).all()
    return sorted({p for row in rows for p in row if p})


async def copy_database(
    source_url: str, target_url: str, *, batch: int = BATCH, on_progress: Progress | None = None
) -> CopyReport:
    """Copy every row from ``source_url`` into the PostgreSQL ``target_url`` (see the module doc)."""
    target_url = normalise_target(target_url)
    if _same_database(source_url, target_url):
        raise CopyError("the source and the target are the same database")
    if batch < 1:
        raise CopyError("the batch size must be at least 1")
    _require_sqlite_file(source_url)
    started = time.monotonic()
    source = create_engine(source_url)
    target = create_engine(target_url, pool_size=2, max_overflow=0)
    try:
        await _check_source(source, source_url)
        await _prepare_target(target, target_url)
        async with source.connect() as sconn:
            if sconn.dialect.name == "postgresql":
                await sconn.execution_options(isolation_level="REPEATABLE READ")
            await sconn.begin()  # one snapshot for the counts and every row
            source_counts = await _counts(sconn)
            total = sum(source_counts.values())
            report = CopyReport(tables=[], media_paths=await media_paths(sconn), target=_redacted(target_url))
            try:
                async with target.begin() as tconn:
                    names = ", ".join(f'"{t.name}"' for t in tables())
                    await tconn.execute(text(f"LOCK TABLE {names} IN EXCLUSIVE MODE"))
                    await _refuse_if_used(tconn)
                    for table in reversed(tables()):  # the migrations' seed, replaced by the source's rows
                        await tconn.execute(table.delete())
                    done = 0
                    if on_progress:
                        on_progress(0, total)
                    for table in tables():
                        result = await sconn.stream(_select(table))
                        async for rows in result.partitions(batch):
                            try:
                                await tconn.execute(table.insert(), _to_params(table, rows))
                            except DBAPIError as exc:
                                first = {k: rows[0]._mapping[k] for k in table.primary_key.columns.keys()}
                                raise CopyError(
                                    f"table {table.name}, batch starting at {first}: {exc.orig or exc}; "
                                    "the copy was rolled back"
                                ) from None
                            done += len(rows)
                            if on_progress:
                                on_progress(done, total)
                    report.sequences = await _reset_sequences(tconn)
                    target_counts = await _counts(tconn)
                    report.tables = [TableCount(n, c, target_counts[n]) for n, c in source_counts.items()]
                    if not report.ok:
                        raise CountMismatch(report)
            except OperationalError as exc:
                raise CopyError(f"the copy failed and was rolled back: {exc.orig or exc}") from None
            await sconn.rollback()
        report.committed = True
        report.seconds = time.monotonic() - started
        return report
    finally:
        await source.dispose()
        await target.dispose()
