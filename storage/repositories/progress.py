"""Queries over progress reports, their evidence media and proposal completions (rules: bot/services)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    RT,
    Kelurahan,
    ProgressMedia,
    ProgressReport,
    Proposal,
    ProposalCompletion,
)
from storage.repositories.wilayah import scope_filter

if TYPE_CHECKING:
    from bot.domain.permissions import Scope


class StoredHash(NamedTuple):
    phash: str
    report_id: int
    proposal_id: int
    media_id: int


async def get(session: AsyncSession, report_id: int, *, fresh: bool = False) -> ProgressReport | None:
    stmt = select(ProgressReport).where(ProgressReport.id == report_id)
    if fresh:
        stmt = stmt.execution_options(populate_existing=True)
    return await session.scalar(stmt)


async def get_for_update(session: AsyncSession, report_id: int) -> ProgressReport | None:
    """The report re-read from the database, row-locked on PostgreSQL until the transaction ends."""
    return await session.scalar(
        select(ProgressReport)
        .where(ProgressReport.id == report_id)
        .with_for_update(of=ProgressReport)
        .execution_options(populate_existing=True)
    )


async def latest_for_proposal(session: AsyncSession, proposal_id: int) -> ProgressReport | None:
    return await session.scalar(
        select(ProgressReport)
        .where(ProgressReport.proposal_id == proposal_id)
        .order_by(ProgressReport.created_at.desc(), ProgressReport.id.desc())
        .limit(1)
    )


async def for_proposal(session: AsyncSession, proposal_id: int) -> Sequence[ProgressReport]:
    """The proposal's reports, oldest first."""
    return (
        await session.scalars(
            select(ProgressReport)
            .where(ProgressReport.proposal_id == proposal_id)
            .order_by(ProgressReport.created_at, ProgressReport.id)
        )
    ).all()


async def photo_hashes(session: AsyncSession, kind: str) -> list[StoredHash]:
    """Perceptual hashes of every stored file of ``kind``, of any proposal, oldest first."""
    rows = await session.execute(
        select(ProgressMedia.phash, ProgressMedia.report_id, ProgressReport.proposal_id, ProgressMedia.media_id)
        .join(ProgressReport, ProgressMedia.report_id == ProgressReport.id)
        .where(ProgressMedia.kind == kind, ProgressMedia.phash.is_not(None))
        .order_by(ProgressMedia.id)
    )
    return [StoredHash(*row) for row in rows.all()]


async def in_status_for_scope(
    session: AsyncSession, status: str, scope: Scope, *, limit: int, offset: int
) -> tuple[Sequence[ProgressReport], int]:
    """Reports in ``status`` whose proposal's RT lies in the scope, oldest first, and their count."""
    base = (
        select(ProgressReport)
        .join(Proposal, ProgressReport.proposal_id == Proposal.id)
        .join(RT, Proposal.rt_id == RT.id)
        .join(Kelurahan, RT.kelurahan_id == Kelurahan.id)
        .where(ProgressReport.status == status, scope_filter(scope))
    )
    total = await session.scalar(select(func.count()).select_from(base.subquery()))
    rows = (
        await session.scalars(base.order_by(ProgressReport.created_at, ProgressReport.id).limit(limit).offset(offset))
    ).all()
    return rows, total or 0


async def completion(session: AsyncSession, proposal_id: int) -> ProposalCompletion | None:
    return await session.get(ProposalCompletion, proposal_id)
