"""Queries over proposals, their timeline and the code sequences (no rules here: see bot/services)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.util import identity_key

from storage.models import (
    RT,
    CodeSequence,
    Kelurahan,
    Media,
    Proposal,
    ProposalEvent,
)
from storage.repositories.wilayah import scope_filter

if TYPE_CHECKING:
    from bot.domain.permissions import Scope


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else ""


async def get(session: AsyncSession, proposal_id: int, *, fresh: bool = False) -> Proposal | None:
    stmt = select(Proposal).where(Proposal.id == proposal_id)
    if fresh:
        stmt = stmt.execution_options(populate_existing=True)
    return await session.scalar(stmt)


_FINGERPRINT = ("version", "status", "updated_at", "lines", "media", "rt")


def _instant(value: dt.datetime | None) -> dt.datetime | None:
    """The same instant whether the driver gave it with a time zone (PostgreSQL) or without (SQLite)."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)


async def get_for_update(session: AsyncSession, proposal_id: int) -> Proposal | None:
    """The proposal as it is in the database now, row-locked on PostgreSQL until the transaction ends.

    (On SQLite the caller already holds the write lock through ``begin_write``.) When this session
    already holds the proposal with its lines and media (the handler loaded it a moment ago to check
    the request), one small locking query compares its version, status and last change with the
    row's; only if the row changed since is it read again in full (the proposal, its RAB lines and
    its media: three queries). Every change of a proposal, its lines or its media bumps its version
    or its ``updated_at`` (``services.proposals._commit_edit``, the column's ``onupdate``).
    """
    loaded = session.sync_session.identity_map.get(identity_key(Proposal, proposal_id))
    if loaded is not None and all(name in loaded.__dict__ for name in _FINGERPRINT):
        row = (
            await session.execute(
                select(Proposal.version, Proposal.status, Proposal.updated_at)
                .where(Proposal.id == proposal_id)
                .with_for_update(of=Proposal)
            )
        ).first()
        if row is None:
            return None
        if (row.version, row.status, _instant(row.updated_at)) == (
            loaded.version, loaded.status, _instant(loaded.updated_at),
        ):  # fmt: skip
            return loaded
    return await session.scalar(
        select(Proposal)
        .where(Proposal.id == proposal_id)
        .with_for_update(of=Proposal)
        .execution_options(populate_existing=True)
    )


async def lock_rt(session: AsyncSession, rt_id: int) -> None:
    """Serialise budget checks of one RT on PostgreSQL (two proposals submitted at once)."""
    if _dialect(session) == "postgresql":
        await session.execute(select(RT.id).where(RT.id == rt_id).with_for_update())


async def counted_amounts(
    session: AsyncSession, rt_id: int, year: int, statuses: Iterable[str], exclude_id: int | None = None
) -> list[tuple[str, int]]:
    """``(category_code, total_amount)`` of the RT's proposals in ``statuses`` for the fiscal year."""
    stmt = select(Proposal.category_code, Proposal.total_amount).where(
        Proposal.rt_id == rt_id, Proposal.fiscal_year == year, Proposal.status.in_(tuple(statuses))
    )
    if exclude_id is not None:
        stmt = stmt.where(Proposal.id != exclude_id)
    return [(code or "", int(amount or 0)) for code, amount in (await session.execute(stmt)).all()]


async def list_for_rt(
    session: AsyncSession, rt_id: int, year: int, statuses: Iterable[str] | None = None
) -> Sequence[Proposal]:
    """The RT's proposals of the fiscal year, most recently changed first."""
    stmt = select(Proposal).where(Proposal.rt_id == rt_id, Proposal.fiscal_year == year)
    if statuses is not None:
        stmt = stmt.where(Proposal.status.in_(tuple(statuses)))
    return (await session.scalars(stmt.order_by(Proposal.updated_at.desc(), Proposal.id.desc()))).all()


async def in_status_for_scope(
    session: AsyncSession, status: str, scope: Scope, *, limit: int, offset: int
) -> tuple[Sequence[Proposal], int]:
    """Proposals in ``status`` whose RT lies in the scope, oldest submission first, and their count."""
    base = (
        select(Proposal)
        .join(RT, Proposal.rt_id == RT.id)
        .join(Kelurahan, RT.kelurahan_id == Kelurahan.id)
        .where(Proposal.status == status, scope_filter(scope))
    )
    total = await session.scalar(select(func.count()).select_from(base.subquery()))
    rows = (await session.scalars(base.order_by(Proposal.submitted_at, Proposal.id).limit(limit).offset(offset))).all()
    return rows, total or 0


async def next_seq(session: AsyncSession, prefix: str, year: int) -> int:
    """The next sequence number for ``prefix``/``year``, inside the caller's write transaction.

    The row update holds its lock until commit, so concurrent submissions queue on it and never
    share a number; a rolled-back transaction may leave a gap, which is tolerated.
    """
    insert = pg_insert if _dialect(session) == "postgresql" else sqlite_insert
    await session.execute(insert(CodeSequence).values(prefix=prefix, fiscal_year=year, last=0).on_conflict_do_nothing())
    result = await session.execute(
        update(CodeSequence)
        .where(CodeSequence.prefix == prefix, CodeSequence.fiscal_year == year)
        .values(last=CodeSequence.last + 1)
        .returning(CodeSequence.last)
        .execution_options(synchronize_session=False)
    )
    return int(result.scalar_one())


async def events(session: AsyncSession, proposal_id: int) -> Sequence[ProposalEvent]:
    """The proposal's timeline, oldest first."""
    return (
        await session.scalars(
            select(ProposalEvent)
            .where(ProposalEvent.proposal_id == proposal_id)
            .order_by(ProposalEvent.at, ProposalEvent.id)
        )
    ).all()


async def last_event(session: AsyncSession, proposal_id: int, action: str) -> ProposalEvent | None:
    return await session.scalar(
        select(ProposalEvent)
        .where(ProposalEvent.proposal_id == proposal_id, ProposalEvent.action == action)
        .order_by(ProposalEvent.id.desc())
        .limit(1)
    )


async def media_by_sha256(session: AsyncSession, sha256: str) -> Media | None:
    return await session.scalar(select(Media).where(Media.sha256 == sha256))


async def by_code(session: AsyncSession, prefix: str, year: int, seq: int) -> Proposal | None:
    return await session.scalar(
        select(Proposal).where(Proposal.fiscal_year == year, Proposal.seq == seq, Proposal.code.like(f"{prefix}-%"))
    )
