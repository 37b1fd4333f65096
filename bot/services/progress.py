"""Implementation progress of approved proposals: the Ketua RT's reports with photo evidence and
spending, the officer's verification, and the close of a proposal (selesai).

``report`` and ``verify`` are each one write transaction (``begin_write`` first, then the reads that
decide the write): the proposal row is re-read under a row lock (PostgreSQL) or the database write
lock (SQLite), so concurrent reports queue and of two officers verifying at once exactly one wins.
Status changes go through ``bot.domain.workflow`` and are recorded with their timeline event and
audit row (``proposals.record_transition``); notices are written to the outbox in the same
transaction.

Evidence checks (``bot.domain.evidence``) never refuse a report: they are stored with it as flags
(``ProgressReport.flags``, a JSON list of ``{"kind", "detail", "media_id", "file", "position"}``)
and shown to officers. What *is* refused, with a typed exception carrying the numbers: a report by
someone who is not the verified Ketua RT of the proposal's RT (Forbidden, audited), a proposal whose
status does not allow it (TransitionError), a percentage going backwards without a reason or 100 %
without a site photo (PercentRefused), spending above the approved amount without a note
(OverBudgetNeedsNote).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import evidence
from bot.domain.evidence import ExifInfo, Flag, PercentRefused, percent_change
from bot.domain.money import DEFAULT_MAX_VALUE
from bot.domain.permissions import Forbidden, Scope
from bot.domain.workflow import (
    DISETUJUI,
    LAPOR_PROGRES,
    LAPOR_SELESAI,
    MENUNGGU_VERIFIKASI_SELESAI,
    PELAKSANAAN,
    SETUJUI,
    TOLAK_SELESAI,
    VERIFIKASI_SELESAI,
    TransitionError,
    next_status,
)
from bot.services import audit, follows, outbox, registration
from bot.services.proposals import InvalidField, ProposalNotFound, TooManyPhotos, record_transition
from bot.services.review import DecisionIncomplete, in_scope
from bot.services.users import Roles
from storage.db import begin_write, release
from storage.models import (
    MEDIA_FOTO_PROGRES,
    MEDIA_NOTA,
    REG_VERIFIED,
    REPORT_NEEDS_EVIDENCE,
    REPORT_PENDING,
    REPORT_VERIFIED,
    Media,
    ProgressMedia,
    ProgressReport,
    Proposal,
    ProposalCompletion,
    RTHead,
    utcnow,
)
from storage.repositories import progress as repo
from storage.repositories import proposals as proposals_repo

__all__ = [
    "ACTION_MINTA_BUKTI",
    "ACTION_TERVERIFIKASI",
    "REPORTABLE",
    "AlreadyVerified",
    "DecisionIncomplete",
    "EvidenceFile",
    "OverBudgetNeedsNote",
    "PercentRefused",
    "ReportNotFound",
    "TimelineEntry",
    "analyse_photo",
    "approved_proposals_of",
    "completion_of",
    "get_report",
    "pending_in_scope",
    "report",
    "timeline",
    "verify",
]

# --- limits and names -------------------------------------------------------------------------------
MAX_PHOTOS = 10
MAX_RECEIPTS = 10
NOTE_MAX = 1000
REPORTABLE = (DISETUJUI, PELAKSANAAN)
ACTION_TERVERIFIKASI = "terverifikasi"
ACTION_MINTA_BUKTI = "minta_bukti"
VERIFY_ACTIONS = (ACTION_TERVERIFIKASI, ACTION_MINTA_BUKTI)

NOTICE_REPORTED = "progress.reported"  # to officers covering the RT
NOTICE_MORE_EVIDENCE = "progress.more_evidence"  # to the RT head, with the officer's note
NOTICE_VERIFIED = "progress.verified"  # to the RT head; payload "completed" is True when it closed the proposal


# --- exceptions --------------------------------------------------------------------------------------


class ReportNotFound(LookupError):
    def __init__(self, report_id: int) -> None:
        super().__init__(report_id)
        self.report_id = report_id


class OverBudgetNeedsNote(ValueError):
    """Spending above the approved amount is accepted only with an explanation."""

    def __init__(self, spent: int, approved: int) -> None:
        super().__init__(f"{spent} > {approved}")
        self.spent = spent
        self.approved = approved
        self.over = spent - approved


class AlreadyVerified(Exception):
    """Someone else decided on the report first; ``status`` is its current status."""

    def __init__(self, report: ProgressReport) -> None:
        super().__init__(report.status)
        self.report = report
        self.status = report.status


class EvidenceFile(NamedTuple):
    """A stored file with its Telegram ids and what the evidence checks need (see :func:`analyse_photo`)."""

    media: Media
    file_id: str | None = None
    unique_id: str | None = None
    exif: ExifInfo | None = None
    phash: str | None = None


class TimelineEntry(NamedTuple):
    """One report on the proposal card; nothing personal (no reporter, no notes), safe for residents."""

    report_id: int
    at: dt.datetime
    percent: int
    photos: int
    receipts: int
    spent_total: int
    status: str
    flags: int


# --- helpers -----------------------------------------------------------------------------------------


async def analyse_photo(data: bytes, tz: dt.tzinfo = evidence.WITA) -> tuple[ExifInfo, str | None]:
    """EXIF (capture time, GPS) and perceptual hash of an image, computed off the event loop."""

    def work() -> tuple[ExifInfo, str | None]:
        return evidence.read_exif(data, tz), evidence.perceptual_hash(data)

    return await asyncio.to_thread(work)


def _clean_note(field: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidField(field, "invalid")
    text = "\n".join(" ".join(line.split()) for line in value.strip().splitlines()).strip()
    if len(text) > NOTE_MAX:
        raise InvalidField(field, "too_long", maximum=NOTE_MAX)
    return text or None


def _files(items: Iterable[Any], kind: str, limit: int) -> list[EvidenceFile]:
    files = [item if isinstance(item, EvidenceFile) else EvidenceFile(*item) for item in items]
    if len(files) > limit:
        raise TooManyPhotos(limit, 0, len(files), kind)
    return files


def _flag_row(
    flag: Flag, file: str | None = None, media_id: int | None = None, position: int | None = None
) -> dict[str, Any]:
    return {"kind": flag.kind, "detail": dict(flag.detail), "file": file, "media_id": media_id, "position": position}


async def _verified_rt_of(session: AsyncSession, user_id: int) -> int | None:
    return await session.scalar(select(RTHead.rt_id).where(RTHead.user_id == user_id, RTHead.status == REG_VERIFIED))


async def _head_of(session: AsyncSession, proposal: Proposal, fallback: int) -> int:
    head = await registration.current_head(session, proposal.rt_id)
    return head.user_id if head is not None else fallback


# --- reading -------------------------------------------------------------------------------------------


async def approved_proposals_of(session: AsyncSession, rt_id: int, year: int) -> Sequence[Proposal]:
    """The RT's proposals of the fiscal year that can take a progress report, most recently changed first."""
    return await proposals_repo.list_for_rt(session, rt_id, year, REPORTABLE)


async def get_report(session: AsyncSession, report_id: int) -> ProgressReport:
    row = await repo.get(session, report_id, fresh=True)
    if row is None:
        raise ReportNotFound(report_id)
    return row


async def pending_in_scope(
    session: AsyncSession, scope: Scope, *, limit: int = 5, offset: int = 0
) -> tuple[Sequence[ProgressReport], int]:
    """Reports waiting for an officer, of RTs in the scope, oldest first, and their total."""
    return await repo.in_status_for_scope(session, REPORT_PENDING, scope, limit=limit, offset=offset)


async def timeline(session: AsyncSession, proposal_id: int) -> list[TimelineEntry]:
    """The proposal's reports for its card, oldest first."""
    return [
        TimelineEntry(
            report_id=r.id,
            at=r.created_at,
            percent=r.percent,
            photos=len(r.media_of(MEDIA_FOTO_PROGRES)),
            receipts=len(r.media_of(MEDIA_NOTA)),
            spent_total=r.spent_total,
            status=r.status,
            flags=len(r.flags or ()),
        )
        for r in await repo.for_proposal(session, proposal_id)
    ]


async def completion_of(session: AsyncSession, proposal_id: int) -> ProposalCompletion | None:
    """Realised amount, unspent remainder, who verified and when, once the proposal is selesai."""
    return await repo.completion(session, proposal_id)


# --- the Ketua RT's report ---------------------------------------------------------------------------------


async def report(
    session: AsyncSession,
    user_id: int,
    proposal_id: int,
    *,
    percent: int,
    spent_total: int,
    note: str | None = None,
    location: tuple[float, float] | None = None,
    over_budget_note: str | None = None,
    photos: Iterable[EvidenceFile | tuple[Any, ...]] = (),
    receipts: Iterable[EvidenceFile | tuple[Any, ...]] = (),
    backwards_reason: str | None = None,
    admin_ids: tuple[int, ...] = (),
    max_distance_m: float = evidence.MAX_DISTANCE_M,
    hash_distance: int = evidence.HASH_DISTANCE,
) -> ProgressReport:
    """Record a progress report in one write transaction; returns it with its flags.

    ``photos``/``receipts``: :class:`EvidenceFile` (or 5-tuples ``(media, file_id, unique_id, exif,
    phash)``) of files already stored with ``media.save_media``. ``spent_total`` is the cumulative
    realisation so far. The first report moves the proposal disetujui → pelaksanaan; a 100 % report
    moves it to menunggu_verifikasi_selesai. Officers covering the RT get "progress.reported".

    Raises InvalidField (note/reason too long, spending or location invalid), TooManyPhotos,
    ProposalNotFound, Forbidden("not_your_rt") (audited as "denied.progress.lapor"), TransitionError,
    PercentRefused(kind, previous, new), OverBudgetNeedsNote(spent, approved).
    """
    note = _clean_note("note", note)
    over_budget_note = _clean_note("over_budget_note", over_budget_note)
    backwards_reason = _clean_note("backwards_reason", backwards_reason)
    if isinstance(spent_total, bool) or not isinstance(spent_total, int):
        raise InvalidField("spent_total", "invalid")
    if not 0 <= spent_total <= DEFAULT_MAX_VALUE:
        raise InvalidField("spent_total", "out_of_range", minimum=0, maximum=DEFAULT_MAX_VALUE)
    if location is not None:
        lat, lon = location
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise InvalidField("location", "out_of_range")
    photo_files = _files(photos, MEDIA_FOTO_PROGRES, MAX_PHOTOS)
    receipt_files = _files(receipts, MEDIA_NOTA, MAX_RECEIPTS)
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise PercentRefused(evidence.PERCENT_OUT_OF_RANGE, None, percent)

    await begin_write(session)
    proposal = await proposals_repo.get_for_update(session, proposal_id)
    if proposal is None:
        await release(session)
        raise ProposalNotFound(proposal_id)
    if await _verified_rt_of(session, user_id) != proposal.rt_id:
        await release(session)
        await registration.deny(session, user_id, "progress.lapor", "proposal", proposal_id, "not_your_rt")
        raise Forbidden("not_your_rt")
    from_status = proposal.status
    action = LAPOR_SELESAI if percent == 100 else LAPOR_PROGRES
    try:
        to_status = next_status(from_status, action)
    except TransitionError:
        await release(session)
        raise
    previous = await repo.latest_for_proposal(session, proposal.id)
    try:
        change = percent_change(
            previous.percent if previous is not None else None,
            percent,
            reason=backwards_reason,
            photos=len(photo_files),
        )
    except PercentRefused:
        await release(session)
        raise
    approved = proposal.total_amount
    if spent_total > approved and over_budget_note is None:
        await release(session)
        raise OverBudgetNeedsNote(spent_total, approved)

    # evidence checks
    site = (
        (proposal.latitude, proposal.longitude)
        if proposal.latitude is not None and proposal.longitude is not None
        else None
    )
    approval = await proposals_repo.last_event(session, proposal.id, SETUJUI)
    approved_at = approval.at if approval is not None else proposal.decided_at
    flags: list[dict[str, Any]] = [_flag_row(f) for f in evidence.spending_flags(spent_total, approved)]
    if location is not None:
        flags += [
            _flag_row(f)
            for f in evidence.location_flags(
                location[0], location[1], site, max_distance_m=max_distance_m, source="pin"
            )
        ]
    for kind, files in ((MEDIA_FOTO_PROGRES, photo_files), (MEDIA_NOTA, receipt_files)):
        if not files:
            continue
        near = [f.phash for f in files if f.phash]
        stored = await repo.photo_hashes(session, kind, near=near, distance=hash_distance)
        first_by_hash: dict[str, repo.StoredHash] = {}
        for row in stored:
            first_by_hash.setdefault(row.phash, row)
        for position, f in enumerate(files):
            if kind == MEDIA_FOTO_PROGRES:
                found = evidence.flags_for(
                    f.exif or evidence.NO_INFO,
                    f.phash,
                    site=site,
                    approved_at=approved_at,
                    earlier_hashes=first_by_hash,
                    max_distance_m=max_distance_m,
                    hash_distance=hash_distance,
                )
            else:  # receipts: only reuse is meaningful (scans carry no useful EXIF)
                found = [
                    flag
                    for flag in evidence.flags_for(
                        evidence.NO_INFO,
                        f.phash,
                        site=None,
                        approved_at=None,
                        earlier_hashes=first_by_hash,
                        hash_distance=hash_distance,
                    )
                    if flag.kind == evidence.REUSED_PHOTO
                ]
            for flag in found:
                if flag.kind == evidence.REUSED_PHOTO:
                    match = first_by_hash[flag.detail["matched_hash"]]
                    flag.detail.update(
                        report_id=match.report_id, proposal_id=match.proposal_id, media_id=match.media_id
                    )
                flags.append(_flag_row(flag, kind, f.media.id, position))

    now = utcnow()
    row = ProgressReport(
        proposal_id=proposal.id,
        reporter_id=user_id,
        percent=percent,
        note=note,
        latitude=location[0] if location is not None else None,
        longitude=location[1] if location is not None else None,
        spent_total=spent_total,
        over_budget_note=over_budget_note,
        backwards_reason=backwards_reason if change.backwards else None,
        flags=flags,
        status=REPORT_PENDING,
        created_at=now,
        media=[
            ProgressMedia(
                media_id=f.media.id,
                kind=kind,
                position=position,
                telegram_file_id=f.file_id,
                telegram_file_unique_id=f.unique_id,
                exif_taken_at=f.exif.taken_at if f.exif is not None else None,
                exif_lat=f.exif.lat if f.exif is not None else None,
                exif_lon=f.exif.lon if f.exif is not None else None,
                phash=f.phash,
                created_at=now,
            )
            for kind, files in ((MEDIA_FOTO_PROGRES, photo_files), (MEDIA_NOTA, receipt_files))
            for position, f in enumerate(files)
        ],
    )
    session.add(row)
    await session.flush()
    proposal.status = to_status
    proposal.updated_at = now
    flag_kinds = sorted({f["kind"] for f in flags})
    summary = {
        "report_id": row.id,
        "percent": percent,
        "previous_percent": change.previous,
        "spent_total": spent_total,
        "flags": flag_kinds,
    }
    event = await record_transition(
        session,
        proposal,
        user_id,
        action,
        from_status,
        at=now,
        note=note,
        data=summary,
        audit_action="progress.report",
        audit_after=summary,
    )
    for officer_id in await registration.officers_for(session, proposal.rt, admin_ids):
        outbox.enqueue(
            session,
            officer_id,
            NOTICE_REPORTED,
            proposal_id=proposal.id,
            report_id=row.id,
            event_id=event.id,
            percent=percent,
            flags=flag_kinds,
        )
    await follows.notify(
        session,
        proposal,
        follows.EV_PROGRESS,
        actor_id=user_id,
        event_id=event.id,
        report_id=row.id,
        percent=percent,
        at=now,
    )
    await session.commit()
    return row


# --- the officer's verification ------------------------------------------------------------------------------


async def verify(
    session: AsyncSession,
    actor_id: int,
    roles: Roles,
    report_id: int,
    action: str,
    note: str | None = None,
) -> ProgressReport:
    """Mark a pending report "terverifikasi", or "minta_bukti" (a note is required; it goes to the RT head).

    Verifying the 100 % report of a proposal waiting for completion closes it (→ selesai) with the
    realised amount (the report's ``spent_total``) and the unspent remainder (approved − realised, not
    below zero) in ``proposal_completions``. Asking for more evidence on that report sends the
    proposal back to pelaksanaan (tolak_selesai), so the RT head can report 100 % again.

    Raises ValueError (unknown action), DecisionIncomplete(["note"]), InvalidField("note", "too_long"),
    ReportNotFound, Forbidden("out_of_scope") (audited as "denied.progress.<action>"), AlreadyVerified.
    """
    if action not in VERIFY_ACTIONS:
        raise ValueError(f"unknown verification action {action!r}")
    note = _clean_note("note", note)
    if action == ACTION_MINTA_BUKTI and note is None:
        raise DecisionIncomplete(["note"])

    await begin_write(session)
    found = await repo.get(session, report_id)
    if found is None:
        await release(session)
        raise ReportNotFound(report_id)
    # Lock order: the proposal, then the report (as a report's writer locks the proposal first).
    proposal = await proposals_repo.get_for_update(session, found.proposal_id)
    row = await repo.get_for_update(session, report_id)
    if proposal is None or row is None:
        await release(session)
        raise ReportNotFound(report_id)
    if not in_scope(roles.scope, proposal):
        await release(session)
        await registration.deny(session, actor_id, "progress." + action, "progress_report", report_id, "out_of_scope")
        raise Forbidden("out_of_scope")
    if row.status != REPORT_PENDING:
        await release(session)
        raise AlreadyVerified(row)

    now = utcnow()
    before = {"status": row.status}
    row.status = REPORT_VERIFIED if action == ACTION_TERVERIFIKASI else REPORT_NEEDS_EVIDENCE
    row.officer_note, row.verified_by, row.verified_at = note, actor_id, now
    audit.record(
        session,
        actor_id,
        "progress." + action,
        "progress_report",
        row.id,
        before=before,
        after={"status": row.status, "proposal_id": proposal.id, "percent": row.percent},
        reason=note,
    )
    closing = row.percent == 100 and proposal.status == MENUNGGU_VERIFIKASI_SELESAI
    completed = False
    payload: dict[str, Any] = {"proposal_id": proposal.id, "report_id": row.id}
    if closing:
        from_status = proposal.status
        transition = VERIFIKASI_SELESAI if action == ACTION_TERVERIFIKASI else TOLAK_SELESAI
        proposal.status = next_status(from_status, transition)
        proposal.updated_at = now
        data: dict[str, Any] = {"report_id": row.id}
        if action == ACTION_TERVERIFIKASI:
            completed = True
            realised = row.spent_total
            unspent = max(proposal.total_amount - realised, 0)
            session.add(
                ProposalCompletion(
                    proposal_id=proposal.id,
                    report_id=row.id,
                    realised_amount=realised,
                    unspent=unspent,
                    completed_at=now,
                    verified_by=actor_id,
                )
            )
            data.update(approved=proposal.total_amount, realised_amount=realised, unspent=unspent)
        event = await record_transition(
            session, proposal, actor_id, transition, from_status, at=now, note=note, data=data, audit_after=data
        )
        payload["event_id"] = event.id
    recipient = await _head_of(session, proposal, row.reporter_id)
    if action == ACTION_MINTA_BUKTI:
        outbox.enqueue(session, recipient, NOTICE_MORE_EVIDENCE, note=note, **payload)
    else:
        outbox.enqueue(session, recipient, NOTICE_VERIFIED, completed=completed, **payload)
    await follows.notify(
        session,
        proposal,
        follows.verify_event(action, completed),
        actor_id=actor_id,
        event_id=payload.get("event_id"),
        report_id=row.id,
        percent=row.percent,
        at=now,
    )
    await session.commit()
    return row
