"""What residents may see of the programme: a proposal's public card by its code, the closest
existing code when one is mistyped, and the browse totals (kecamatan → kelurahan → RT).

Pure reads. Only proposals that have a code (sent at least once) and are not drafts are public;
a withdrawn one shows as withdrawn. Nothing here returns a person: no RT head, no officer, no
phone number, no Telegram id, no free-text note — the public timeline is statuses and dates only.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.codes import find_code, format_code, looks_like_code, parse_code
from bot.domain.workflow import (
    AJUKAN,
    DIAJUKAN,
    DISETUJUI,
    DRAF,
    LAPOR_SELESAI,
    MENUNGGU_VERIFIKASI_SELESAI,
    MINTA_REVISI,
    PELAKSANAAN,
    PERLU_REVISI,
    SELESAI,
    SETUJUI,
    TARIK,
    TOLAK,
    TOLAK_SELESAI,
    VERIFIKASI_SELESAI,
)
from bot.services import progress
from bot.services import proposals as proposals_svc
from storage.models import (
    MEDIA_FOTO_AWAL,
    MEDIA_FOTO_PROGRES,
    RT,
    Kecamatan,
    Kelurahan,
    Program,
    ProgressMedia,
    ProgressReport,
    Proposal,
    ProposalCompletion,
    ProposalEvent,
    ProposalMedia,
)
from storage.repositories import progress as progress_repo
from storage.repositories import proposals as proposals_repo
from storage.repositories import wilayah as wilayah_repo

APPROVED = frozenset({DISETUJUI, PELAKSANAAN, MENUNGGU_VERIFIKASI_SELESAI, SELESAI})
WAITING = frozenset({DIAJUKAN, PERLU_REVISI})
# Timeline steps residents see (progress reports have their own lines; "draft started" is private).
PUBLIC_ACTIONS = frozenset(
    {AJUKAN, SETUJUI, TOLAK, MINTA_REVISI, TARIK, LAPOR_SELESAI, VERIFIKASI_SELESAI, TOLAK_SELESAI}
)
PHOTOS_SHOWN = 3
PHOTOS_PROGRESS = "progress"
PHOTOS_INITIAL = "initial"


def is_public(proposal: Proposal | None) -> bool:
    return proposal is not None and proposal.code is not None and proposal.status != DRAF


def _public_filter():  # a SQL expression
    return (Proposal.code.is_not(None)) & (Proposal.status != DRAF)


# --- the card --------------------------------------------------------------------------------------


class PublicEvent(NamedTuple):
    at: dt.datetime
    action: str


@dataclass
class PublicCard:
    proposal: Proposal
    category: str | None
    events: list[PublicEvent]
    progress: list[progress.TimelineEntry]
    completion: ProposalCompletion | None
    photos: list[ProgressMedia | ProposalMedia] = field(default_factory=list)
    photos_kind: str | None = None
    photos_at: dt.datetime | None = None

    @property
    def approved(self) -> bool:
        return self.proposal.status in APPROVED


class LatestPhotos(NamedTuple):
    kind: str | None  # PHOTOS_PROGRESS | PHOTOS_INITIAL | None
    links: list[ProgressMedia | ProposalMedia]  # with telegram_file_id and file.path
    at: dt.datetime | None
    total: int  # how many site photos that report (or the proposal) has


async def latest_photos(
    session: AsyncSession, proposal: Proposal, *, limit: int = PHOTOS_SHOWN, initial: bool = True
) -> LatestPhotos:
    """Up to ``limit`` site photos of the latest progress report that has any; before any report
    (and if ``initial``), the proposal's photos of the site before the work."""
    reports: Sequence[ProgressReport] = await progress_repo.for_proposal(session, proposal.id)
    for report in reversed(reports):
        site = report.media_of(MEDIA_FOTO_PROGRES)
        if site:
            return LatestPhotos(PHOTOS_PROGRESS, site[:limit], report.created_at, len(site))
    if initial:
        before = proposal.media_of(MEDIA_FOTO_AWAL)
        if before:
            return LatestPhotos(PHOTOS_INITIAL, before[:limit], proposal.submitted_at, len(before))
    return LatestPhotos(None, [], None, 0)


async def _category(session: AsyncSession, proposal: Proposal) -> str | None:
    program = await session.get(Program, proposal.program_id)
    if program is None:
        return proposal.category_code
    return next((c.name for c in program.categories if c.code == proposal.category_code), proposal.category_code)


async def card(session: AsyncSession, proposal_id: int) -> PublicCard | None:
    """The public card of a proposal, or None if it does not exist or is not public."""
    proposal = await proposals_repo.get(session, proposal_id)
    if not is_public(proposal):
        return None
    events: Sequence[ProposalEvent] = await proposals_repo.events(session, proposal.id)
    entries = await progress.timeline(session, proposal.id) if proposal.status in APPROVED else []
    completion = await progress.completion_of(session, proposal.id) if proposal.status == SELESAI else None
    photos = await latest_photos(session, proposal)
    return PublicCard(
        proposal=proposal,
        category=await _category(session, proposal),
        events=[PublicEvent(e.at, e.action) for e in events if e.action in PUBLIC_ACTIONS],
        progress=entries,
        completion=completion,
        photos=photos.links,
        photos_kind=photos.kind,
        photos_at=photos.at,
    )


# --- codes -----------------------------------------------------------------------------------------

FOUND = "found"
NOT_FOUND = "not_found"
MALFORMED = "malformed"  # looks like a code (prefix, digits) but is not a complete one
NOT_A_CODE = "not_a_code"


@dataclass
class Lookup:
    outcome: str
    example: str  # a well-formed code to show as an example
    proposal: Proposal | None = None
    code: str | None = None  # the canonical form of what was typed (FOUND / NOT_FOUND)
    year: int | None = None
    year_known: bool = True  # some programme exists for that year
    suggestion: Proposal | None = None


async def prefixes(session: AsyncSession, current: str) -> list[str]:
    """Code prefixes of every fiscal year's programme, ``current`` first (it may change per year)."""
    found = (await session.scalars(select(Program.code_prefix).distinct())).all()
    result = [current.upper()]
    result += sorted({p.upper() for p in found if p} - {current.upper()})
    return result


def parse_any(text: str, prefixes: Iterable[str]) -> tuple[str, int, int] | None:
    """``(prefix, year, seq)`` of the whole text as a code, else of a code inside the text."""
    candidates = list(prefixes)
    for prefix in candidates:
        parsed = parse_code(text, prefix)
        if parsed is not None:
            return prefix, *parsed
    for prefix in candidates:
        parsed = find_code(text, prefix)
        if parsed is not None:
            return prefix, *parsed
    return None


def looks_like_any(text: str | None, prefixes: Iterable[str]) -> bool:
    return any(looks_like_code(text, p) for p in prefixes)


async def lookup(session: AsyncSession, text: str, current_prefix: str, current_year: int) -> Lookup:
    """Resolve a code as people type it (``prl 2026 1``, ``PRL20260001``, ``cek PRL-2026-0001``)."""
    known = await prefixes(session, current_prefix)
    example = format_code(current_prefix, current_year, 1)
    parsed = parse_any(text or "", known)
    if parsed is None:
        return Lookup(MALFORMED if looks_like_any(text, known) else NOT_A_CODE, example)
    prefix, year, seq = parsed
    code = format_code(prefix, year, seq)
    found = await proposals_repo.by_code(session, prefix, year, seq)
    if is_public(found):
        return Lookup(FOUND, example, proposal=found, code=found.code, year=year)
    year_known = await session.scalar(select(Program.id).where(Program.fiscal_year == year)) is not None
    suggestion = await closest(session, prefix, year, seq)
    return Lookup(NOT_FOUND, example, code=code, year=year, year_known=year_known, suggestion=suggestion)


async def closest(session: AsyncSession, prefix: str, year: int, seq: int) -> Proposal | None:
    """The public proposal whose code is nearest: same year, nearest number (the lower one on a
    tie); else the same number in the nearest other year."""
    same_prefix = Proposal.code.like(f"{prefix.upper()}-%")
    same_year = await session.scalar(
        select(Proposal)
        .where(_public_filter(), same_prefix, Proposal.fiscal_year == year, Proposal.seq != seq)
        .order_by(func.abs(Proposal.seq - seq), Proposal.seq)
        .limit(1)
    )
    if same_year is not None:
        return same_year
    return await session.scalar(
        select(Proposal)
        .where(_public_filter(), same_prefix, Proposal.seq == seq, Proposal.fiscal_year != year)
        .order_by(func.abs(Proposal.fiscal_year - year), Proposal.fiscal_year.desc())
        .limit(1)
    )


# --- browsing --------------------------------------------------------------------------------------


class KelurahanTotals(NamedTuple):
    kelurahan: Kelurahan
    rts: int
    proposals: int  # public proposals of the year
    approved: int  # of which approved (or further)
    approved_total: int
    realised_total: int


class RtEntry(NamedTuple):
    rt: RT
    proposals: int


@dataclass
class RtSummary:
    rt: RT
    year: int
    ceiling: int
    approved_total: int
    waiting_total: int
    remaining: int
    realised_total: int
    proposals: list[Proposal]


async def kecamatan_list(session: AsyncSession) -> Sequence[Kecamatan]:
    return await wilayah_repo.list_kecamatan(session)


async def get_kecamatan(session: AsyncSession, kecamatan_id: int) -> Kecamatan | None:
    return await wilayah_repo.get_kecamatan(session, kecamatan_id)


async def get_kelurahan(session: AsyncSession, kelurahan_id: int) -> Kelurahan | None:
    return await wilayah_repo.get_kelurahan(session, kelurahan_id)


async def get_rt(session: AsyncSession, rt_id: int) -> RT | None:
    return await wilayah_repo.get_rt(session, rt_id)


async def _realised(session: AsyncSession, proposal_ids: Sequence[int]) -> dict[int, int]:
    """Per proposal: the realised amount once completed, else the latest report's spending so far."""
    if not proposal_ids:
        return {}
    result: dict[int, int] = {}
    ids = list(proposal_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = await session.execute(
            select(ProgressReport.proposal_id, ProgressReport.spent_total)
            .where(ProgressReport.proposal_id.in_(chunk))
            .order_by(ProgressReport.created_at, ProgressReport.id)
        )
        for proposal_id, spent in rows.all():
            result[proposal_id] = int(spent or 0)  # the latest wins
        done = await session.execute(
            select(ProposalCompletion.proposal_id, ProposalCompletion.realised_amount).where(
                ProposalCompletion.proposal_id.in_(chunk)
            )
        )
        for proposal_id, realised in done.all():
            result[proposal_id] = int(realised or 0)
    return result


async def _year_rows(session: AsyncSession, year: int, *where) -> list[tuple[int, int, int, str, int]]:
    """``(proposal id, rt id, kelurahan id, status, amount)`` of public proposals of the year."""
    rows = await session.execute(
        select(Proposal.id, Proposal.rt_id, RT.kelurahan_id, Proposal.status, Proposal.total_amount)
        .join(RT, Proposal.rt_id == RT.id)
        .where(_public_filter(), Proposal.fiscal_year == year, *where)
    )
    return [(pid, rt_id, kel_id, status, int(amount or 0)) for pid, rt_id, kel_id, status, amount in rows.all()]


async def kelurahan_totals(session: AsyncSession, kecamatan_id: int, year: int) -> list[KelurahanTotals]:
    """Each kelurahan of the kecamatan with its number of RTs and the year's public totals."""
    kelurahan = await wilayah_repo.list_kelurahan(session, kecamatan_id)
    return await _totals(session, kelurahan, year)


async def kelurahan_total(session: AsyncSession, kelurahan_id: int, year: int) -> KelurahanTotals | None:
    kel = await wilayah_repo.get_kelurahan(session, kelurahan_id)
    if kel is None:
        return None
    return (await _totals(session, [kel], year))[0]


async def _totals(session: AsyncSession, kelurahan: Sequence[Kelurahan], year: int) -> list[KelurahanTotals]:
    ids = [k.id for k in kelurahan]
    if not ids:
        return []
    rt_counts = dict(
        (
            await session.execute(
                select(RT.kelurahan_id, func.count(RT.id)).where(RT.kelurahan_id.in_(ids)).group_by(RT.kelurahan_id)
            )
        ).all()
    )
    rows = await _year_rows(session, year, RT.kelurahan_id.in_(ids))
    realised = await _realised(session, [pid for pid, _, _, status, _ in rows if status in APPROVED])
    count: dict[int, int] = defaultdict(int)
    approved: dict[int, int] = defaultdict(int)
    approved_total: dict[int, int] = defaultdict(int)
    realised_total: dict[int, int] = defaultdict(int)
    for pid, _rt, kel_id, status, amount in rows:
        count[kel_id] += 1
        if status in APPROVED:
            approved[kel_id] += 1
            approved_total[kel_id] += amount
            realised_total[kel_id] += realised.get(pid, 0)
    return [
        KelurahanTotals(
            k, int(rt_counts.get(k.id, 0)), count[k.id], approved[k.id], approved_total[k.id], realised_total[k.id]
        )
        for k in kelurahan
    ]


async def rts_of(session: AsyncSession, kelurahan_id: int, year: int) -> list[RtEntry]:
    """The kelurahan's RTs by number, each with its number of public proposals this year."""
    rts = await wilayah_repo.list_rts(session, kelurahan_id)
    counts: dict[int, int] = defaultdict(int)
    for _pid, rt_id, _kel, _status, _amount in await _year_rows(session, year, RT.kelurahan_id == kelurahan_id):
        counts[rt_id] += 1
    return [RtEntry(rt, counts[rt.id]) for rt in rts]


async def rt_summary(session: AsyncSession, rt_id: int, program: Program) -> RtSummary | None:
    """The RT's public proposals of the programme's year (oldest code first) with its ceiling,
    approved total, amount waiting for review and the remaining ceiling."""
    rt = await wilayah_repo.get_rt(session, rt_id)
    if rt is None:
        return None
    rows = [p for p in await proposals_repo.list_for_rt(session, rt_id, program.fiscal_year) if is_public(p)]
    rows.sort(key=lambda p: (p.seq or 0, p.id))
    position = await proposals_svc.budget_position(session, rt_id, program)
    approved = [p for p in rows if p.status in APPROVED]
    realised = await _realised(session, [p.id for p in approved])
    return RtSummary(
        rt=rt,
        year=program.fiscal_year,
        ceiling=position.ceiling,
        approved_total=sum(p.total_amount for p in approved),
        waiting_total=sum(p.total_amount for p in rows if p.status in WAITING),
        remaining=position.remaining,
        realised_total=sum(realised.values()),
        proposals=rows,
    )
