"""Proposals (usulan) of a Ketua RT: drafts saved at every step, the RAB, media, submission, withdrawal.

Every mutating call is one write transaction (``begin_write`` first, then the reads that decide the
write), re-reads the proposal from the database, refuses non-editable statuses and, when given,
a stale ``expected_version``; content changes bump ``Proposal.version`` so the buttons of an old
summary card are refused. Rules live in ``bot.domain`` (budget, workflow, codes, rab); errors are
typed exceptions carrying the numbers a handler needs to explain them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import budget, rab
from bot.domain.codes import format_code, parse_code
from bot.domain.money import DEFAULT_MAX_VALUE
from bot.domain.permissions import Forbidden
from bot.domain.workflow import (
    AJUKAN,
    COUNTS_AGAINST_CEILING,
    DIAJUKAN,
    DRAF,
    EDITABLE,
    PERLU_REVISI,
    TARIK,
    TransitionError,
    next_status,
)
from bot.services import audit, outbox, registration
from storage.db import begin_write, release
from storage.models import (
    MEDIA_BUKTI_MUSYAWARAH,
    MEDIA_FOTO_AWAL,
    REG_VERIFIED,
    RT,
    Media,
    Program,
    Proposal,
    ProposalEvent,
    ProposalMedia,
    RabLine,
    RTHead,
    utcnow,
)
from storage.repositories import proposals as repo

# --- parts (what an officer may ask to revise; what the wizard can jump to) --------------------
PART_ANGGARAN = "anggaran"
PART_LOKASI = "lokasi"
PART_FOTO = "foto"
PART_URAIAN = "uraian"
PART_MUSYAWARAH = "musyawarah"
PARTS = (PART_ANGGARAN, PART_LOKASI, PART_FOTO, PART_URAIAN, PART_MUSYAWARAH)

# --- what a complete proposal needs (missing_parts) --------------------------------------------
MISSING_CATEGORY = "kategori"
MISSING_TITLE = "judul"
MISSING_DESCRIPTION = "uraian"
MISSING_LOCATION = "lokasi"
MISSING_RAB = "anggaran"
MISSING_PHOTOS = "foto"
MISSING_EVIDENCE = "bukti_musyawarah"
MISSING_ATTENDEES = "peserta_musyawarah"
MISSING_KINDS = (
    MISSING_CATEGORY,
    MISSING_TITLE,
    MISSING_DESCRIPTION,
    MISSING_LOCATION,
    MISSING_RAB,
    MISSING_PHOTOS,
    MISSING_EVIDENCE,
    MISSING_ATTENDEES,
)
# The part of the wizard where each missing item is filled in.
PART_OF_MISSING = {
    MISSING_CATEGORY: PART_URAIAN,
    MISSING_TITLE: PART_URAIAN,
    MISSING_DESCRIPTION: PART_URAIAN,
    MISSING_LOCATION: PART_LOKASI,
    MISSING_RAB: PART_ANGGARAN,
    MISSING_PHOTOS: PART_FOTO,
    MISSING_EVIDENCE: PART_MUSYAWARAH,
    MISSING_ATTENDEES: PART_MUSYAWARAH,
}

# --- limits --------------------------------------------------------------------------------------
MAX_LINES = 50
MAX_PHOTOS = 10
MAX_EVIDENCE = 5
MEDIA_LIMITS = {MEDIA_FOTO_AWAL: MAX_PHOTOS, MEDIA_BUKTI_MUSYAWARAH: MAX_EVIDENCE}
MEDIA_PART = {MEDIA_FOTO_AWAL: PART_FOTO, MEDIA_BUKTI_MUSYAWARAH: PART_MUSYAWARAH}
TITLE_MIN, TITLE_MAX = 5, 120
DESCRIPTION_MIN, DESCRIPTION_MAX = 1, 1000
ADDRESS_MAX = 255
LINE_DESCRIPTION_MAX = 200
UNIT_MAX = 32
ATTENDEES_MIN, ATTENDEES_MAX = 1, 10_000
WIZARD_STEP_MAX = 32

FIELD_PART = {"category_code": PART_URAIAN, "title": PART_URAIAN, "description": PART_URAIAN, "address": PART_LOKASI}


# --- exceptions ------------------------------------------------------------------------------------


class ProposalNotFound(LookupError):
    def __init__(self, proposal_id: int) -> None:
        super().__init__(proposal_id)
        self.proposal_id = proposal_id


class LineNotFound(LookupError):
    def __init__(self, line_id: int) -> None:
        super().__init__(line_id)
        self.line_id = line_id


class MediaNotFound(LookupError):
    def __init__(self, link_id: int) -> None:
        super().__init__(link_id)
        self.link_id = link_id


class StaleVersion(Exception):
    """The card the user pressed was built from an older version of the proposal."""

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(f"expected version {expected}, current {current}")
        self.expected = expected
        self.current = current


class NotEditable(Exception):
    """The proposal can't be changed in ``status`` (or, in perlu_revisi, ``part`` was not flagged)."""

    def __init__(self, status: str, part: str | None = None) -> None:
        super().__init__(status if part is None else f"{status}:{part}")
        self.status = status
        self.part = part


class InvalidField(ValueError):
    """``reason``: required | too_short | too_long | out_of_range | unknown_category | unknown_field."""

    def __init__(
        self, field: str, reason: str, *, minimum: int | float | None = None, maximum: int | float | None = None
    ) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.minimum = minimum
        self.maximum = maximum


class TooManyLines(Exception):
    def __init__(self, limit: int, current: int) -> None:
        super().__init__(f"{current}/{limit}")
        self.limit = limit
        self.current = current


class TooManyPhotos(Exception):
    """Attaching ``adding`` more files of ``kind`` to ``current`` ones would pass ``limit``."""

    def __init__(self, limit: int, current: int, adding: int = 1, kind: str = MEDIA_FOTO_AWAL) -> None:
        super().__init__(f"{kind}: {current}+{adding}>{limit}")
        self.limit = limit
        self.current = current
        self.adding = adding
        self.kind = kind


class NotReady(Exception):
    """Submission refused: ``missing`` (MISSING_* codes) and budget ``violations`` (bot.domain.budget)."""

    def __init__(self, missing: Sequence[str], violations: Sequence[budget.Violation]) -> None:
        super().__init__(", ".join([*missing, *(v.kind for v in violations)]))
        self.missing = list(missing)
        self.violations = list(violations)


class LineData(Protocol):
    """What a RAB line needs; ``bot.domain.rab.RabLine`` (from ``parse_rab_line``) fits."""

    description: str
    volume: Decimal | int
    unit: str
    unit_price: int


class BudgetPosition(NamedTuple):
    ceiling: int
    counted_total: int
    remaining: int
    amounts_by_category: dict[str, int]


# --- reading -------------------------------------------------------------------------------------


async def _verified_rt_of(session: AsyncSession, user_id: int) -> int | None:
    return await session.scalar(select(RTHead.rt_id).where(RTHead.user_id == user_id, RTHead.status == REG_VERIFIED))


async def create_draft(session: AsyncSession, user_id: int, rt_id: int, program: Program) -> Proposal:
    """A new empty draft of the user's RT for the programme's fiscal year."""
    await begin_write(session)
    if await _verified_rt_of(session, user_id) != rt_id:
        await release(session)
        raise Forbidden("not_your_rt")
    rt = await session.get(RT, rt_id)
    proposal = Proposal(
        program_id=program.id,
        fiscal_year=program.fiscal_year,
        rt=rt,
        created_by=user_id,
        status=DRAF,
        total_amount=0,
        version=1,
        lines=[],
        media=[],
    )
    session.add(proposal)
    await session.flush()
    session.add(ProposalEvent(proposal_id=proposal.id, actor_id=user_id, action="buat", to_status=DRAF))
    await session.commit()
    return proposal


async def get(session: AsyncSession, proposal_id: int) -> Proposal:
    proposal = await repo.get(session, proposal_id)
    if proposal is None:
        raise ProposalNotFound(proposal_id)
    return proposal


async def find_by_code(session: AsyncSession, text: str, prefix: str) -> Proposal | None:
    """A proposal by its code as people type it: any case, with or without dashes or spaces."""
    parsed = parse_code(text, prefix)
    if parsed is None:
        return None
    return await repo.by_code(session, prefix, *parsed)


async def get_for_rt_head(session: AsyncSession, proposal_id: int, user_id: int, rt_id: int) -> Proposal:
    """The proposal if it belongs to the head's RT; otherwise Forbidden("not_your_rt"), audited."""
    proposal = await repo.get(session, proposal_id, fresh=True)
    if proposal is None:
        raise ProposalNotFound(proposal_id)
    if proposal.rt_id != rt_id:
        await release(session)
        await registration.deny(session, user_id, "proposal.open", "proposal", proposal_id, "not_your_rt")
        raise Forbidden("not_your_rt")
    return proposal


async def drafts_of(session: AsyncSession, rt_id: int, year: int) -> Sequence[Proposal]:
    """Drafts and proposals sent back for revision, most recently changed first."""
    return await repo.list_for_rt(session, rt_id, year, (DRAF, PERLU_REVISI))


async def list_for_rt(session: AsyncSession, rt_id: int, year: int) -> Sequence[Proposal]:
    return await repo.list_for_rt(session, rt_id, year)


async def timeline(session: AsyncSession, proposal_id: int) -> Sequence[ProposalEvent]:
    """Every transition of the proposal (who, when, from, to, note), oldest first."""
    return await repo.events(session, proposal_id)


def editable_parts(proposal: Proposal) -> tuple[str, ...]:
    """The parts the RT head may change now: all in a draft, the flagged ones in perlu_revisi."""
    if proposal.status == DRAF:
        return PARTS
    if proposal.status == PERLU_REVISI:
        flagged = tuple(p for p in PARTS if p in (proposal.revision_parts or ()))
        return flagged or PARTS
    return ()


# --- editing -------------------------------------------------------------------------------------


async def _load_for_edit(
    session: AsyncSession, proposal_id: int, expected_version: int | None, parts: Sequence[str] = ()
) -> Proposal:
    await begin_write(session)
    proposal = await repo.get_for_update(session, proposal_id)
    if proposal is None:
        await release(session)
        raise ProposalNotFound(proposal_id)
    if proposal.status not in EDITABLE:
        await release(session)
        raise NotEditable(proposal.status)
    if expected_version is not None and proposal.version != expected_version:
        await release(session)
        raise StaleVersion(expected_version, proposal.version)
    allowed = editable_parts(proposal)
    for part in parts:
        if part not in allowed:
            await release(session)
            raise NotEditable(proposal.status, part)
    return proposal


async def _commit_edit(
    session: AsyncSession,
    proposal: Proposal,
    actor_id: int | None,
    what: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    proposal.version += 1
    proposal.updated_at = utcnow()
    if proposal.status != DRAF:
        audit.record(
            session,
            actor_id if actor_id is not None else proposal.created_by,
            "proposal.edit",
            "proposal",
            proposal.id,
            before={"what": what, "version": proposal.version - 1, **(before or {})},
            after={"what": what, "version": proposal.version, **(after or {})},
        )
    await session.commit()


def _clean_text(field: str, value: object, minimum: int, maximum: int, *, multiline: bool = False) -> str | None:
    if value is None:
        text = ""
    elif isinstance(value, str):
        if multiline:
            text = "\n".join(" ".join(line.split()) for line in value.strip().splitlines()).strip()
        else:
            text = " ".join(value.split())
    else:
        raise InvalidField(field, "invalid")
    if not text:
        if minimum > 0:
            raise InvalidField(field, "required", minimum=minimum, maximum=maximum)
        return None
    if len(text) < minimum:
        raise InvalidField(field, "too_short", minimum=minimum, maximum=maximum)
    if len(text) > maximum:
        raise InvalidField(field, "too_long", minimum=minimum, maximum=maximum)
    return text


def _clean_fields(fields: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "title":
            clean[name] = _clean_text(name, value, TITLE_MIN, TITLE_MAX)
        elif name == "description":
            clean[name] = _clean_text(name, value, DESCRIPTION_MIN, DESCRIPTION_MAX, multiline=True)
        elif name == "address":
            clean[name] = _clean_text(name, value, 0, ADDRESS_MAX)
        elif name == "category_code":
            if not isinstance(value, str) or not value.strip():
                raise InvalidField(name, "required")
            clean[name] = value.strip()
        else:
            raise InvalidField(name, "unknown_field")
    return clean


async def update_fields(
    session: AsyncSession,
    proposal: Proposal,
    *,
    expected_version: int | None = None,
    wizard_step: str | None = None,
    actor_id: int | None = None,
    **fields: Any,
) -> Proposal:
    """Set ``category_code``, ``title``, ``description`` and/or ``address``; remember ``wizard_step``.

    The version goes up when content changes (not for ``wizard_step`` alone).
    """
    clean = _clean_fields(fields)
    if wizard_step is not None and len(wizard_step) > WIZARD_STEP_MAX:
        raise InvalidField("wizard_step", "too_long", maximum=WIZARD_STEP_MAX)
    parts = sorted({FIELD_PART[name] for name in clean})
    row = await _load_for_edit(session, proposal.id, expected_version, parts)
    if "category_code" in clean:
        program = await session.get(Program, row.program_id)
        codes = [c.code for c in program.categories] if program is not None else []
        if clean["category_code"] not in codes:
            await release(session)
            raise InvalidField("category_code", "unknown_category")
    before = {k: getattr(row, k) for k in clean}
    changed = {k: v for k, v in clean.items() if before[k] != v}
    for name, value in changed.items():
        setattr(row, name, value)
    if wizard_step is not None:
        row.wizard_step = wizard_step
    if changed:
        await _commit_edit(
            session, row, actor_id, "fields", before={k: before[k] for k in changed}, after=dict(changed)
        )
    else:
        await session.commit()
    return row


def _line_values(data: LineData) -> dict[str, Any]:
    description = _clean_text("line.description", data.description, 1, LINE_DESCRIPTION_MAX)
    unit = _clean_text("line.unit", data.unit or "", 0, UNIT_MAX) or ""
    volume = data.volume
    if isinstance(volume, bool) or not isinstance(volume, int | Decimal):
        raise InvalidField("line.volume", "invalid")
    volume = Decimal(volume)
    if not volume.is_finite() or volume <= 0 or volume > rab.MAX_VOLUME:
        raise InvalidField("line.volume", "out_of_range", minimum=0, maximum=rab.MAX_VOLUME)
    if volume != volume.quantize(Decimal(1).scaleb(-rab.MAX_VOLUME_DECIMALS)):
        raise InvalidField("line.volume", "invalid")
    price = data.unit_price
    if isinstance(price, bool) or not isinstance(price, int) or not 0 < price <= DEFAULT_MAX_VALUE:
        raise InvalidField("line.unit_price", "out_of_range", minimum=1, maximum=DEFAULT_MAX_VALUE)
    volume = volume.normalize() if volume != volume.to_integral_value() else Decimal(int(volume))
    total = rab.RabLine(description=description, volume=volume, unit=unit, unit_price=price).total
    return {"description": description, "volume": volume, "unit": unit, "unit_price": price, "total": total}


def check_line(data: LineData) -> None:
    """Raise InvalidField when ``data`` cannot be stored as a RAB line (before any write)."""
    _line_values(data)


def _renumber(items: Sequence[Any]) -> None:
    for i, item in enumerate(items, start=1):
        item.position = i


def _line_snapshot(line: RabLine) -> dict[str, Any]:
    return {
        "id": line.id,
        "position": line.position,
        "description": line.description,
        "volume": _volume_str(line.volume),
        "unit": line.unit,
        "unit_price": line.unit_price,
        "total": line.total,
    }


def _volume_str(volume: Decimal | int) -> str:
    volume = Decimal(volume)
    return str(int(volume)) if volume == volume.to_integral_value() else format(volume.normalize(), "f")


async def add_line(
    session: AsyncSession,
    proposal: Proposal,
    line: LineData,
    *,
    expected_version: int | None = None,
    actor_id: int | None = None,
) -> RabLine:
    """Append a RAB line (at most MAX_LINES); ``total_amount`` follows the sum of the lines."""
    values = _line_values(line)
    row = await _load_for_edit(session, proposal.id, expected_version, (PART_ANGGARAN,))
    if len(row.lines) >= MAX_LINES:
        await release(session)
        raise TooManyLines(MAX_LINES, len(row.lines))
    new = RabLine(position=len(row.lines) + 1, **values)
    row.lines.append(new)
    row.total_amount = sum(x.total for x in row.lines)
    await session.flush()
    await _commit_edit(session, row, actor_id, "line.add", after={"line": _line_snapshot(new)})
    return new


async def add_lines(
    session: AsyncSession,
    proposal: Proposal,
    lines: Sequence[LineData],
    *,
    expected_version: int | None = None,
    actor_id: int | None = None,
) -> list[RabLine]:
    """Append several RAB lines (a message with one item per line) in one write: as many as
    MAX_LINES leaves room for, in order. Raises TooManyLines when not one fits; InvalidField (nothing
    written) when one of them is invalid."""
    values = [_line_values(line) for line in lines]
    row = await _load_for_edit(session, proposal.id, expected_version, (PART_ANGGARAN,))
    room = MAX_LINES - len(row.lines)
    if values and room <= 0:
        await release(session)
        raise TooManyLines(MAX_LINES, len(row.lines))
    added = [RabLine(position=len(row.lines) + i, **v) for i, v in enumerate(values[:room], start=1)]
    if not added:
        await release(session)
        return []
    row.lines.extend(added)
    row.total_amount = sum(x.total for x in row.lines)
    await session.flush()
    snapshots = [_line_snapshot(x) for x in added]
    after = {"line": snapshots[0]} if len(added) == 1 else {"lines": snapshots}
    await _commit_edit(session, row, actor_id, "line.add", after=after)
    return added


def _find_line(row: Proposal, line_id: int) -> RabLine | None:
    return next((x for x in row.lines if x.id == line_id), None)


async def replace_line(
    session: AsyncSession,
    proposal: Proposal,
    line_id: int,
    line: LineData,
    *,
    expected_version: int | None = None,
    actor_id: int | None = None,
) -> RabLine:
    """Change a RAB line in place (it keeps its id and position)."""
    values = _line_values(line)
    row = await _load_for_edit(session, proposal.id, expected_version, (PART_ANGGARAN,))
    target = _find_line(row, line_id)
    if target is None:
        await release(session)
        raise LineNotFound(line_id)
    before = _line_snapshot(target)
    for name, value in values.items():
        setattr(target, name, value)
    row.total_amount = sum(x.total for x in row.lines)
    await _commit_edit(
        session, row, actor_id, "line.replace", before={"line": before}, after={"line": _line_snapshot(target)}
    )
    return target


async def remove_line(
    session: AsyncSession,
    proposal: Proposal,
    line_id: int,
    *,
    expected_version: int | None = None,
    actor_id: int | None = None,
) -> Proposal:
    row = await _load_for_edit(session, proposal.id, expected_version, (PART_ANGGARAN,))
    target = _find_line(row, line_id)
    if target is None:
        await release(session)
        raise LineNotFound(line_id)
    before = _line_snapshot(target)
    row.lines.remove(target)
    _renumber(row.lines)
    row.total_amount = sum(x.total for x in row.lines)
    await _commit_edit(session, row, actor_id, "line.remove", before={"line": before})
    return row


async def attach_media_batch(
    session: AsyncSession,
    proposal: Proposal,
    kind: str,
    items: Sequence[tuple[Media, str | None, str | None]],
    *,
    expected_version: int | None = None,
    actor_id: int | None = None,
) -> list[ProposalMedia]:
    """Attach ``(media, file_id, file_unique_id)`` items as one batch (an album): all or none.

    Files already attached in ``kind`` are skipped; TooManyPhotos when the batch would pass the limit.
    """
    if kind not in MEDIA_LIMITS:
        raise ValueError(f"unknown media kind {kind!r}")
    row = await _load_for_edit(session, proposal.id, expected_version, (MEDIA_PART[kind],))
    existing = {m.media_id: m for m in row.media_of(kind)}
    new_items: dict[int, tuple[str | None, str | None]] = {}
    for media, file_id, file_unique_id in items:
        if media.id not in existing and media.id not in new_items:
            new_items[media.id] = (file_id, file_unique_id)
    if not new_items:
        await release(session)
        return [existing[m.id] for m, _, _ in items]
    limit = MEDIA_LIMITS[kind]
    if len(existing) + len(new_items) > limit:
        await release(session)
        raise TooManyPhotos(limit, len(existing), len(new_items), kind)
    files = {m.id: m for m in (await session.scalars(select(Media).where(Media.id.in_(list(new_items))))).all()}
    missing = [mid for mid in new_items if mid not in files]
    if missing:
        await release(session)
        raise LookupError(f"media {missing} not stored")
    position = len(existing)
    for media_id, (file_id, file_unique_id) in new_items.items():
        position += 1
        link = ProposalMedia(
            kind=kind,
            file=files[media_id],
            telegram_file_id=file_id,
            telegram_file_unique_id=file_unique_id,
            position=position,
        )
        row.media.append(link)
        existing[media_id] = link
    await session.flush()
    await _commit_edit(session, row, actor_id, "media.add", after={"kind": kind, "media_ids": list(new_items)})
    return [existing[m.id] for m, _, _ in items]


async def attach_media(
    session: AsyncSession,
    proposal: Proposal,
    media: Media,
    kind: str,
    file_id: str | None,
    file_unique_id: str | None,
    *,
    expected_version: int | None = None,
    actor_id: int | None = None,
) -> ProposalMedia:
    """Attach one stored file; attaching the same content twice is a no-op."""
    links = await attach_media_batch(
        session,
        proposal,
        kind,
        [(media, file_id, file_unique_id)],
        expected_version=expected_version,
        actor_id=actor_id,
    )
    return links[0]


async def remove_media(
    session: AsyncSession,
    proposal: Proposal,
    link_id: int,
    *,
    expected_version: int | None = None,
    actor_id: int | None = None,
) -> Proposal:
    """Detach a photo or evidence file (the stored file stays: it may be shared)."""
    row = await _load_for_edit(session, proposal.id, expected_version)
    link = next((m for m in row.media if m.id == link_id), None)
    if link is None:
        await release(session)
        raise MediaNotFound(link_id)
    if MEDIA_PART[link.kind] not in editable_parts(row):
        await release(session)
        raise NotEditable(row.status, MEDIA_PART[link.kind])
    row.media.remove(link)
    _renumber(row.media_of(link.kind))
    await _commit_edit(session, row, actor_id, "media.remove", before={"kind": link.kind, "media_id": link.media_id})
    return row


async def set_location(
    session: AsyncSession,
    proposal: Proposal,
    latitude: float | None,
    longitude: float | None,
    *,
    expected_version: int | None = None,
    actor_id: int | None = None,
    wizard_step: str | None = None,
) -> Proposal:
    """Set the location pin (both None clears it); ``wizard_step``: the draft's step now, in the same write."""
    if (latitude is None) != (longitude is None):
        raise InvalidField("location", "required")
    if latitude is not None:
        if not -90 <= latitude <= 90:
            raise InvalidField("latitude", "out_of_range", minimum=-90, maximum=90)
        if not -180 <= longitude <= 180:
            raise InvalidField("longitude", "out_of_range", minimum=-180, maximum=180)
    row = await _load_for_edit(session, proposal.id, expected_version, (PART_LOKASI,))
    before = {"latitude": row.latitude, "longitude": row.longitude}
    row.latitude, row.longitude = latitude, longitude
    if wizard_step is not None:
        row.wizard_step = wizard_step
    await _commit_edit(
        session, row, actor_id, "location", before=before, after={"latitude": latitude, "longitude": longitude}
    )
    return row


async def set_musyawarah(
    session: AsyncSession,
    proposal: Proposal,
    attendees: int,
    *,
    expected_version: int | None = None,
    actor_id: int | None = None,
    wizard_step: str | None = None,
) -> Proposal:
    """The number of residents present at the musyawarah (1..10000); ``wizard_step`` as in ``set_location``."""
    if isinstance(attendees, bool) or not isinstance(attendees, int) or not ATTENDEES_MIN <= attendees <= ATTENDEES_MAX:
        raise InvalidField("attendees", "out_of_range", minimum=ATTENDEES_MIN, maximum=ATTENDEES_MAX)
    row = await _load_for_edit(session, proposal.id, expected_version, (PART_MUSYAWARAH,))
    before = {"attendees": row.attendees}
    row.attendees = attendees
    if wizard_step is not None:
        row.wizard_step = wizard_step
    await _commit_edit(session, row, actor_id, "musyawarah", before=before, after={"attendees": attendees})
    return row


# --- budget and completeness -------------------------------------------------------------------------


def rules_for(program: Program) -> budget.ProgramRules:
    return budget.ProgramRules(
        ceiling=program.budget_per_rt,
        categories={
            c.code: budget.CategoryRule(min_share_pct=c.min_share_pct, max_share_pct=c.max_share_pct, name=c.name)
            for c in program.categories
        },
        opens=program.submission_opens,
        closes=program.submission_closes,
    )


async def budget_position(
    session: AsyncSession, rt_id: int, program: Program, exclude_proposal_id: int | None = None
) -> BudgetPosition:
    """The RT's ceiling, what its counted proposals use, what remains, and the use per category."""
    others = await repo.counted_amounts(
        session, rt_id, program.fiscal_year, COUNTS_AGAINST_CEILING, exclude_proposal_id
    )
    counted = sum(a for _, a in others)
    return BudgetPosition(
        ceiling=program.budget_per_rt,
        counted_total=counted,
        remaining=budget.remaining_ceiling(program.budget_per_rt, (a for _, a in others)),
        amounts_by_category=budget.category_totals(others),
    )


def missing_parts(proposal: Proposal, program: Program) -> list[str]:
    """What the proposal still lacks before it can be submitted (MISSING_* codes, wizard order)."""
    missing: list[str] = []
    category = next((c for c in program.categories if c.code == proposal.category_code), None)
    if category is None:
        missing.append(MISSING_CATEGORY)
    if not proposal.title:
        missing.append(MISSING_TITLE)
    if not proposal.description:
        missing.append(MISSING_DESCRIPTION)
    if category is not None and category.is_physical and (proposal.latitude is None or proposal.longitude is None):
        missing.append(MISSING_LOCATION)
    if not proposal.lines:
        missing.append(MISSING_RAB)
    if not 1 <= len(proposal.media_of(MEDIA_FOTO_AWAL)) <= MAX_PHOTOS:
        missing.append(MISSING_PHOTOS)
    if not proposal.media_of(MEDIA_BUKTI_MUSYAWARAH):
        missing.append(MISSING_EVIDENCE)
    if not proposal.attendees:
        missing.append(MISSING_ATTENDEES)
    return missing


async def check_submission(
    session: AsyncSession, proposal: Proposal, program: Program, today: dt.date
) -> list[budget.Violation]:
    """The programme rules the proposal breaks now (window, ceiling, category shares).

    Violations already covered by ``missing_parts`` (no category, no RAB lines) are left out.
    """
    others = await repo.counted_amounts(
        session, proposal.rt_id, program.fiscal_year, COUNTS_AGAINST_CEILING, proposal.id
    )
    violations = budget.check_proposal(
        rules_for(program), others, proposal.category_code or "", proposal.total_amount, today
    )
    skip = set()
    if not proposal.category_code:
        skip.add(budget.UNKNOWN_CATEGORY)
    if not proposal.lines:
        skip.add(budget.EMPTY_BUDGET)
    return [v for v in violations if v.kind not in skip]


# --- snapshots and change summaries -----------------------------------------------------------------

_SNAPSHOT_FIELDS = ("category_code", "title", "description", "latitude", "longitude", "address", "attendees")
_LINE_KEYS = ("description", "volume", "unit", "unit_price", "total")


def snapshot(proposal: Proposal) -> dict[str, Any]:
    """What was submitted: fields, RAB lines, amount, location, photo and evidence counts (JSON-safe)."""
    return {
        **{name: getattr(proposal, name) for name in _SNAPSHOT_FIELDS},
        "total_amount": proposal.total_amount,
        "lines": [_line_snapshot(x) for x in proposal.lines],
        "photos": len(proposal.media_of(MEDIA_FOTO_AWAL)),
        "evidence": len(proposal.media_of(MEDIA_BUKTI_MUSYAWARAH)),
    }


def diff_snapshots(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Change summary between two snapshots: lines added/removed/changed and fields before → after.

    Lines are matched by id, then (for lines deleted and typed again) by description.
    """
    old = list(before.get("lines", []))
    new = list(after.get("lines", []))
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    by_id = {x["id"]: x for x in old}
    unmatched_new = []
    for line in new:
        match = by_id.pop(line["id"], None)
        if match is None:
            unmatched_new.append(line)
        else:
            pairs.append((match, line))
    removed = list(by_id.values())
    added = []
    for line in unmatched_new:
        key = line["description"].casefold()
        match = next((x for x in removed if x["description"].casefold() == key), None)
        if match is None:
            added.append(line)
        else:
            removed.remove(match)
            pairs.append((match, line))
    changed = [{"before": a, "after": b} for a, b in pairs if any(a.get(k) != b.get(k) for k in _LINE_KEYS)]
    fields = {
        name: [before.get(name), after.get(name)]
        for name in (*_SNAPSHOT_FIELDS, "photos", "evidence")
        if before.get(name) != after.get(name)
    }
    return {
        "total_before": before.get("total_amount", 0),
        "total_after": after.get("total_amount", 0),
        "lines_added": added,
        "lines_removed": removed,
        "lines_changed": changed,
        "fields": fields,
    }


# --- submission and withdrawal --------------------------------------------------------------------


async def record_transition(
    session: AsyncSession,
    proposal: Proposal,
    actor_id: int | None,
    action: str,
    from_status: str,
    *,
    at: dt.datetime,
    note: str | None = None,
    data: dict[str, Any] | None = None,
    audit_action: str | None = None,
    audit_after: dict[str, Any] | None = None,
) -> ProposalEvent:
    """The timeline event and the audit row of a status change (the caller sets the new status)."""
    event = ProposalEvent(
        proposal_id=proposal.id,
        at=at,
        actor_id=actor_id,
        action=action,
        from_status=from_status,
        to_status=proposal.status,
        note=note,
        data=data,
    )
    session.add(event)
    await session.flush()
    audit.record(
        session,
        actor_id,
        audit_action or "proposal." + action,
        "proposal",
        proposal.id,
        before={"status": from_status},
        after={"status": proposal.status, **(audit_after or {})},
        reason=note,
    )
    return event


async def submit(
    session: AsyncSession,
    user_id: int,
    proposal_id: int,
    expected_version: int | None,
    today: dt.date,
    *,
    admin_ids: tuple[int, ...] = (),
) -> Proposal:
    """Submit (or resubmit after a revision request) in one write transaction.

    Raises Forbidden("not_your_rt"), TransitionError (not draf/perlu_revisi — e.g. Kirim pressed
    twice), StaleVersion, NotReady(missing, violations). The code is given on first submission
    and kept on resubmission; officers covering the RT get a "proposal.submitted" notice.
    """
    await begin_write(session)
    found = await repo.get(session, proposal_id)
    if found is None:
        await release(session)
        raise ProposalNotFound(proposal_id)
    await repo.lock_rt(session, found.rt_id)
    proposal = await repo.get_for_update(session, proposal_id)
    if await _verified_rt_of(session, user_id) != proposal.rt_id:
        await release(session)
        await registration.deny(session, user_id, "proposal.ajukan", "proposal", proposal_id, "not_your_rt")
        raise Forbidden("not_your_rt")
    from_status = proposal.status
    try:
        to_status = next_status(from_status, AJUKAN)
    except TransitionError:
        await release(session)
        raise
    if expected_version is not None and proposal.version != expected_version:
        await release(session)
        raise StaleVersion(expected_version, proposal.version)
    program = await session.get(Program, proposal.program_id)
    missing = missing_parts(proposal, program)
    violations = await check_submission(session, proposal, program, today)
    if missing or violations:
        await release(session)
        raise NotReady(missing, violations)

    first = proposal.code is None
    if first:
        proposal.seq = await repo.next_seq(session, program.code_prefix, proposal.fiscal_year)
        proposal.code = format_code(program.code_prefix, proposal.fiscal_year, proposal.seq)
    now = utcnow()
    proposal.status = to_status
    proposal.submitted_at = now
    proposal.updated_at = now
    snap = snapshot(proposal)
    data: dict[str, Any] = {"snapshot": snap, "resubmission": not first}
    if not first:
        previous = await repo.last_event(session, proposal.id, AJUKAN)
        if previous is not None and previous.data and "snapshot" in previous.data:
            data["changes"] = diff_snapshots(previous.data["snapshot"], snap)
    event = await record_transition(
        session,
        proposal,
        user_id,
        AJUKAN,
        from_status,
        at=now,
        data=data,
        audit_action="proposal.resubmit" if not first else "proposal.submit",
        audit_after={"code": proposal.code, "total_amount": proposal.total_amount},
    )
    for officer_id in await registration.officers_for(session, proposal.rt, admin_ids):
        outbox.enqueue(
            session,
            officer_id,
            "proposal.submitted",
            proposal_id=proposal.id,
            event_id=event.id,
            resubmission=not first,
        )
    await session.commit()
    return proposal


async def withdraw(
    session: AsyncSession,
    user_id: int,
    proposal_id: int,
    reason: str | None = None,
    *,
    admin_ids: tuple[int, ...] = (),
) -> Proposal:
    """The RT head withdraws a proposal before a decision (draf/diajukan/perlu_revisi → ditarik).

    Officers are told ("proposal.withdrawn") when it had been submitted.
    """
    await begin_write(session)
    proposal = await repo.get_for_update(session, proposal_id)
    if proposal is None:
        await release(session)
        raise ProposalNotFound(proposal_id)
    if await _verified_rt_of(session, user_id) != proposal.rt_id:
        await release(session)
        await registration.deny(session, user_id, "proposal.tarik", "proposal", proposal_id, "not_your_rt")
        raise Forbidden("not_your_rt")
    from_status = proposal.status
    try:
        to_status = next_status(from_status, TARIK)
    except TransitionError:
        await release(session)
        raise
    reason = (reason or "").strip() or None
    now = utcnow()
    proposal.status = to_status
    proposal.withdrawn_at = now
    proposal.updated_at = now
    event = await record_transition(
        session, proposal, user_id, TARIK, from_status, at=now, note=reason, audit_action="proposal.withdraw"
    )
    if from_status in (DIAJUKAN, PERLU_REVISI):
        for officer_id in await registration.officers_for(session, proposal.rt, admin_ids):
            outbox.enqueue(session, officer_id, "proposal.withdrawn", proposal_id=proposal.id, event_id=event.id)
    await session.commit()
    return proposal
