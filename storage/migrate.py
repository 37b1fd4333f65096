"""Apply Alembic migrations programmatically (idempotent: at head, nothing happens).

Several instances may start at once, at different code versions:

* a database *behind* this code is upgraded by whichever instance gets there first; on PostgreSQL
  the read of the current revision and the upgrade happen under one transaction-level advisory lock
  (the same key ``migrations/env.py`` takes), so a second instance waits, then finds it current; on
  SQLite the transaction starts with ``BEGIN IMMEDIATE``, with the same effect on one file;
* a database *ahead* of this code (its revision is unknown here: a newer instance migrated it)
  is never touched: :func:`upgrade` raises :class:`SchemaAhead`, whose message says what to do.

:func:`check_schema` reports the state without changing anything (for a readiness probe).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage import db as _db

MIGRATIONS = Path(__file__).with_name("migrations")
# pg_advisory_xact_lock key of every migration run (also taken in migrations/env.py).
MIGRATION_LOCK = 715200001


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


class SchemaState(enum.StrEnum):
    CURRENT = "current"  # at this code's head
    BEHIND = "behind"  # empty, or an older revision this code knows: upgrade() brings it to head
    AHEAD = "ahead"  # a revision this code does not know: a newer version migrated it


@dataclass(frozen=True)
class SchemaStatus:
    state: SchemaState
    database: str | None  # the revision(s) in alembic_version, comma-separated; None: never migrated
    code: str  # this code's head revision

    @property
    def ok(self) -> bool:
        return self.state is SchemaState.CURRENT

    def describe(self) -> str:
        if self.state is SchemaState.AHEAD:
            return (
                f"database is at migration {self.database}, newer than this version's {self.code}: "
                "upgrade this instance"
            )
        if self.state is SchemaState.BEHIND:
            at = self.database or "no migration (empty database)"
            return f"database is at {at}, behind this version's {self.code}: it is upgraded at start"
        return f"database is at migration {self.code}, current"


class SchemaAhead(Exception):
    """The database was migrated by a newer version of the bot; this one must not use it."""

    def __init__(self, status: SchemaStatus) -> None:
        super().__init__(status.describe())
        self.status = status


@lru_cache(maxsize=1)
def _script() -> tuple[tuple[str, ...], frozenset[str]]:
    """(head revisions, every known revision) of this code's migrations."""
    script = ScriptDirectory.from_config(alembic_config())
    known = frozenset(rev.revision for rev in script.walk_revisions())
    return tuple(sorted(script.get_heads())), known


def code_head() -> str:
    return ",".join(_script()[0])


def _db_revisions(connection: Connection) -> tuple[str, ...]:
    from alembic.runtime.migration import MigrationContext

    return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))


def _status(connection: Connection) -> SchemaStatus:
    heads, known = _script()
    at = _db_revisions(connection)
    database = ",".join(at) or None
    if any(rev not in known for rev in at):
        state = SchemaState.AHEAD
    elif at == heads:
        state = SchemaState.CURRENT
    else:
        state = SchemaState.BEHIND
    return SchemaStatus(state, database, ",".join(heads))


async def check_schema(engine: AsyncEngine) -> SchemaStatus:
    """Where the database stands against this code (one read of ``alembic_version``; changes nothing)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_status)


def _upgrade(connection: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


async def _begin_migration(conn: AsyncConnection) -> None:
    """Start the migration transaction holding the migration lock (released at commit or rollback)."""
    if conn.dialect.name == "sqlite":
        token = _db._WRITE_INTENT.set(True)  # BEGIN IMMEDIATE: the write lock first, then the read
        try:
            await conn.begin()
        finally:
            _db._WRITE_INTENT.reset(token)
    else:
        await conn.begin()
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})


async def upgrade(engine: AsyncEngine, revision: str = "head") -> SchemaStatus:
    """Migrate to ``revision`` (default: this code's head) in one locked transaction.

    Returns the status found before, under the lock: ``BEHIND`` means this call applied
    migrations, ``CURRENT`` that another instance (or an earlier start) already had.
    Raises :class:`SchemaAhead` (nothing changed) if a newer version migrated the database.
    """
    async with engine.connect() as conn:
        await _begin_migration(conn)
        before = await conn.run_sync(_status)
        if before.state is SchemaState.AHEAD:
            await conn.rollback()
            raise SchemaAhead(before)
        if before.state is SchemaState.BEHIND or revision != "head":
            try:
                await conn.run_sync(_upgrade, revision)
            except CommandError:
                await conn.rollback()
                raise
        await conn.commit()
    return before


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)
