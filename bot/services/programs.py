"""The programme table per fiscal year, seeded from the environment's defaults the first time a
year is needed. Later edits by admins change only that year's row, never past years."""

from __future__ import annotations

import datetime as dt
import time

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.services import audit
from storage.db import begin_write
from storage.models import Program, ProgramCategory

# Bontang's Prolita categories; another programme edits them per year (admins, or the CLI).
DEFAULT_CATEGORIES: tuple[tuple[str, str, bool, int | None, int | None], ...] = (
    ("infrastruktur", "Infrastruktur fisik", True, None, None),
    ("sosbud", "Sosial budaya", False, None, None),
    ("ekonomi", "Ekonomi", False, None, None),
    ("kespen", "Kesehatan & pendidikan", False, None, None),
)


# A programme changes a few times a year (``program set``), and nearly every wizard step reads it
# (name, ceiling, categories): it is kept in memory this long. A change made in this process applies
# at once; one made by another process (the CLI, another instance) within this many seconds.
CACHE_SECONDS = 30.0
_cache: dict[tuple[str, str, int], tuple[float, Program]] = {}


def _db(session: AsyncSession) -> str:
    return str(session.bind.url) if session.bind is not None else ""


async def _from_cache(session: AsyncSession, key: tuple[str, int]) -> Program | None:
    hit = _cache.get((_db(session), *key))
    if hit is None or hit[0] < time.monotonic():
        return None
    # A copy in this session (with its categories), made without a query.
    return await session.merge(hit[1], load=False)


def _remember(session: AsyncSession, program: Program) -> None:
    expires = time.monotonic() + CACHE_SECONDS
    db = _db(session)
    _cache[(db, "id", program.id)] = _cache[(db, "year", program.fiscal_year)] = (expires, program)


def forget() -> None:
    """Drop the cached programmes (after a change, and in tests)."""
    _cache.clear()


async def get(session: AsyncSession, year: int) -> Program | None:
    return await session.scalar(select(Program).where(Program.fiscal_year == year))


async def by_id(session: AsyncSession, program_id: int) -> Program | None:
    """The programme with its categories, for showing and for the rules of a step (cached briefly)."""
    program = await _from_cache(session, ("id", program_id))
    if program is None:
        program = await session.get(Program, program_id)
        if program is not None and "categories" in program.__dict__:
            _remember(session, program)
    return program


async def ensure(session: AsyncSession, settings: Settings, year: int) -> Program:
    program = await _from_cache(session, ("year", year))
    if program is not None:
        return program
    program = await get(session, year)
    if program is not None:
        if "categories" in program.__dict__:
            _remember(session, program)
        return program
    await begin_write(session)
    program = await get(session, year)
    if program is None:
        program = Program(
            fiscal_year=year,
            name=settings.program_name,
            budget_per_rt=settings.budget_per_rt,
            code_prefix=settings.proposal_code_prefix,
            submission_opens=dt.date(year, 1, 1),
            submission_closes=dt.date(year, 12, 31),
        )
        program.categories = [
            ProgramCategory(code=c, name=n, position=i, is_physical=p, min_share_pct=lo, max_share_pct=hi)
            for i, (c, n, p, lo, hi) in enumerate(DEFAULT_CATEGORIES)
        ]
        try:
            # A savepoint: if another update or instance seeds the year at the same moment, only this
            # insert is rolled back, not the caller's transaction (which would expire what it loaded).
            async with session.begin_nested():
                session.add(program)
        except IntegrityError:  # another instance seeded it first
            program = await get(session, year)
            if program is None:
                raise
            return program
        await session.commit()
    return program


EDITABLE = ("name", "budget_per_rt", "code_prefix", "submission_opens", "submission_closes", "reminder_settings")


def _snapshot(program: Program) -> dict[str, object]:
    return {f: (v.isoformat() if isinstance(v := getattr(program, f), dt.date) else v) for f in EDITABLE}


async def update(
    session: AsyncSession, settings: Settings, year: int, actor_id: int | None, **changes: object
) -> Program:
    """Edit one fiscal year's programme (other years are untouched); audited with before/after."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValueError(f"cannot change {', '.join(sorted(unknown))}")
    program = await ensure(session, settings, year)
    await begin_write(session)
    program = await session.get(Program, program.id, populate_existing=True)
    before = _snapshot(program)
    if "reminder_settings" in changes:
        from bot.services.reminders import ReminderConfig

        ReminderConfig.from_json(changes["reminder_settings"])  # type: ignore[arg-type]  # ReminderConfigError
    for field, value in changes.items():
        setattr(program, field, value)
    if program.submission_opens > program.submission_closes:
        await session.rollback()
        raise ValueError("the submission window opens after it closes")
    audit.record(session, actor_id, "program.update", "program", program.id, before=before, after=_snapshot(program))
    await session.commit()
    forget()
    return program
