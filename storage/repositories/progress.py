"""Queries over progress reports, their evidence media and proposal completions (rules: bot/services)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from storage.models import (
    PHASH_BAND_BITS,
    PHASH_BANDS,
    RT,
    Kelurahan,
    ProgressMedia,
    ProgressReport,
    Proposal,
    ProposalCompletion,
    phash_bands,
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


MAX_BAND_RADIUS = 2  # bands searched within 2 bits (a distance up to 11); beyond that every row is read


def band_neighbourhood(value: int, radius: int) -> list[int]:
    """Every band value within ``radius`` bits of ``value`` (itself first): 17 for radius 1."""
    out = [value]
    for r in range(1, radius + 1):
        for bits in itertools.combinations(range(PHASH_BAND_BITS), r):
            flipped = value
            for bit in bits:
                flipped ^= 1 << bit
            out.append(flipped)
    return out


def _near_filter(near: Iterable[str], distance: int) -> ColumnElement[bool] | None:
    """A WHERE clause for the rows that may lie within ``distance`` bits of one of ``near``, or None
    when that cannot be narrowed (read every row).

    Pigeonhole: two 64-bit hashes at most ``distance`` bits apart differ, in at least one of their
    four 16-bit bands, by at most ``distance // 4`` bits. So a row can be near only if one of its
    bands lies within that radius of the same band of a new hash; those band values are few (17 at
    the default distance 6), and each band column is indexed."""
    radius = distance // PHASH_BANDS
    if radius > MAX_BAND_RADIUS:
        return None
    wanted: list[set[int]] = [set() for _ in range(PHASH_BANDS)]
    for phash in near:
        bands = phash_bands(phash)
        if bands is None:
            return None
        for i, band in enumerate(bands):
            wanted[i].update(band_neighbourhood(band, radius))
    columns = (ProgressMedia.phash_b0, ProgressMedia.phash_b1, ProgressMedia.phash_b2, ProgressMedia.phash_b3)
    terms = [column.in_(sorted(values)) for column, values in zip(columns, wanted, strict=True)]
    return or_(*terms, ProgressMedia.phash_b0.is_(None))  # rows without bands: always compared


async def photo_hashes(
    session: AsyncSession, kind: str, *, near: Sequence[str] | None = None, distance: int | None = None
) -> list[StoredHash]:
    """Perceptual hashes of stored files of ``kind``, of any proposal, oldest first.

    With ``near`` and ``distance``: only the rows that may lie within ``distance`` bits of one of
    the ``near`` hashes (a superset of them, read through the band indexes; see :func:`_near_filter`)."""
    query = (
        select(ProgressMedia.phash, ProgressMedia.report_id, ProgressReport.proposal_id, ProgressMedia.media_id)
        .join(ProgressReport, ProgressMedia.report_id == ProgressReport.id)
        .where(ProgressMedia.kind == kind, ProgressMedia.phash.is_not(None))
        .order_by(ProgressMedia.id)
    )
    if near is not None and distance is not None:
        if not near:
            return []
        narrowed = _near_filter(near, distance)
        if narrowed is not None:
            query = query.where(narrowed)
    rows = await session.execute(query)
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
