"""The officer's proposal card: what was asked for, where, for how much, within which ceiling, and
what changed since the last submission. Text only (HTML, user text escaped); no decisions here."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.money import format_rupiah
from bot.domain.rab import format_volume
from bot.domain.text import escape_html
from bot.domain.workflow import DIAJUKAN, MENUNGGU_VERIFIKASI_SELESAI, MINTA_REVISI, PELAKSANAAN, SELESAI
from bot.services import progress, proposals, review
from handlers.common import N_, cancel_row, rt_place, short_day, when
from handlers.proposals import render as proposal_texts
from handlers.review.callbacks import ReviewCb
from storage.models import MEDIA_BUKTI_MUSYAWARAH, MEDIA_FOTO_AWAL, Program, Proposal, ProposalEvent, User

CARD_LIMIT = 4000  # Telegram allows 4096 characters
DESCRIPTION_SHOWN = 600
WITH_PROGRESS = (PELAKSANAAN, MENUNGGU_VERIFIKASI_SELESAI, SELESAI)  # statuses whose card shows the reports

# The RT head's words for statuses and parts (handlers/proposals), so both sides name them alike.
PART_LABELS = proposal_texts.PART_LABELS
status_label = proposal_texts.status_label

FIELD_LABELS = {
    "category_code": N_("category"),
    "title": N_("title"),
    "description": N_("description"),
    "latitude": N_("location"),
    "longitude": N_("location"),
    "address": N_("address"),
    "attendees": N_("number of attendees"),
    "photos": N_("photos"),
    "evidence": N_("musyawarah evidence"),
}


def parts_label(parts: Sequence[str]) -> str:
    return ", ".join(_(PART_LABELS[p]) if p in PART_LABELS else escape_html(p) for p in parts)


def _volume(value: Any) -> str:
    try:
        return format_volume(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return escape_html(str(value))


def line_text(description: str, volume: Any, unit: str, unit_price: int, total: int) -> str:
    """``Semen — 50 sak × Rp 65.000 = Rp 3.250.000`` (HTML-escaped)."""
    qty = _volume(volume) + (f" {escape_html(unit)}" if unit else "")
    return f"{escape_html(description)} — {qty} × {format_rupiah(unit_price)} = {format_rupiah(total)}"


def _snap_line(line: dict[str, Any]) -> str:
    return line_text(
        str(line.get("description", "")),
        line.get("volume", 0),
        str(line.get("unit") or ""),
        int(line.get("unit_price") or 0),
        int(line.get("total") or 0),
    )


def changes_text(changes: dict[str, Any], max_items: int | None = None) -> str:
    """The change summary of a resubmission: total before → after, RAB lines, other fields."""
    out = [
        _("🔁 <b>Resubmitted after revision.</b> Changes since the last submission:"),
        _("Total: {before} → {after}").format(
            before=format_rupiah(int(changes.get("total_before") or 0)),
            after=format_rupiah(int(changes.get("total_after") or 0)),
        ),
    ]
    items = [_("➕ added: {line}").format(line=_snap_line(line)) for line in changes.get("lines_added") or ()]
    items += [_("➖ removed: {line}").format(line=_snap_line(line)) for line in changes.get("lines_removed") or ()]
    items += [
        _("✏️ changed: {before} → {after}").format(
            before=_snap_line(pair.get("before") or {}), after=_snap_line(pair.get("after") or {})
        )
        for pair in changes.get("lines_changed") or ()
    ]
    shown = items if max_items is None else items[:max_items]
    out += shown
    if len(items) > len(shown):
        out.append(_("… and {count} more change(s) in the budget lines.").format(count=len(items) - len(shown)))
    fields = list(dict.fromkeys(FIELD_LABELS[f] for f in changes.get("fields") or {} if f in FIELD_LABELS))
    if fields:
        out.append(_("Also changed: {fields}").format(fields=", ".join(_(f) for f in fields)))
    if not items and not fields:
        out.append(_("No changes in the budget or the other parts."))
    return "\n".join(out)


def _last(events: Sequence[ProposalEvent], action: str) -> ProposalEvent | None:
    return next((e for e in reversed(events) if e.action == action), None)


async def card_text(
    session: AsyncSession,
    proposal: Proposal,
    *,
    max_lines: int | None = None,
    show_status: bool = True,
    limit: int = CARD_LIMIT,
) -> str:
    """The proposal as the officer reviews it (fits one Telegram message); ``show_status`` adds the
    status line once it is no longer waiting (left out when a verdict line follows)."""
    program = await session.get(Program, proposal.program_id)
    events = await proposals.timeline(session, proposal.id)
    if proposal.status == DIAJUKAN:
        changes = await review.changes_since_last_submission(session, proposal)
    else:
        submitted = _last(events, "ajukan")
        changes = (submitted.data or {}).get("changes") if submitted is not None else None
    position = await proposals.budget_position(session, proposal.rt_id, program, exclude_proposal_id=proposal.id)
    category = next((c.name for c in program.categories if c.code == proposal.category_code), None)
    progress_text = None
    if proposal.status in WITH_PROGRESS:
        entries = await progress.timeline(session, proposal.id)
        completion = await progress.completion_of(session, proposal.id)
        progress_text = proposal_texts.progress_lines(entries, proposal.total_amount, completion, show_flags=True)
    vote_text = await _vote_lines(session, proposal)

    caps = [max_lines] if max_lines is not None else [len(proposal.lines), 20, 10, 5, 0]
    text = ""
    for cap in caps:
        text = _card(
            proposal, program, events, changes, position, category, cap, show_status, progress_text, vote_text
        )
        if len(text) <= limit:
            break
    return text


async def _vote_lines(session: AsyncSession, proposal: Proposal) -> list[str]:
    """Musyawarah votes the Ketua RT attached to the proposal as evidence: question and result."""
    from bot.services import votes
    from handlers.votes import result_lines

    out: list[str] = []
    for vote in await votes.for_proposal(session, proposal.id):
        out.append(_("🗳 Musyawarah vote: <i>{question}</i>").format(question=escape_html(vote.question)))
        out += result_lines(vote)
        out.append(
            _("{voters} resident(s) voted; closed {date}.").format(
                voters=vote.voters or 0, date=short_day(vote.closed_at) if vote.closed_at else "-"
            )
        )
    return out


def _card(
    proposal: Proposal,
    program: Program,
    events: Sequence[ProposalEvent],
    changes: dict[str, Any] | None,
    position: proposals.BudgetPosition,
    category: str | None,
    max_lines: int,
    show_status: bool,
    progress_text: list[str] | None = None,
    vote_text: list[str] | None = None,
) -> str:
    out = [
        _("📄 <b>{code}</b> · {title}").format(
            code=escape_html(proposal.code or "-"), title=escape_html(proposal.title or "-")
        ),
        _("📍 {place}").format(place=rt_place(proposal.rt)),
        _("🏷 Category: {category}").format(category=escape_html(category or proposal.category_code or "-")),
    ]
    if proposal.description:
        description = proposal.description
        if len(description) > DESCRIPTION_SHOWN:
            description = description[:DESCRIPTION_SHOWN].rstrip() + "…"
        out.append(_("📝 {description}").format(description=escape_html(description)))
    if proposal.address:
        out.append(_("🏠 Address: {address}").format(address=escape_html(proposal.address)))
    out.append("")
    out.append(_("💰 Total: <b>{amount}</b>").format(amount=format_rupiah(proposal.total_amount)))
    out.append(_("Budget plan (RAB):"))
    for i, line in enumerate(proposal.lines[:max_lines], start=1):
        out.append(f"{i}. " + line_text(line.description, line.volume, line.unit, line.unit_price, line.total))
    hidden = len(proposal.lines) - max_lines
    if hidden > 0:
        out.append(_("… and {count} more line(s).").format(count=hidden))
    out.append(
        _("📊 Ceiling of {rt} for {year}: {ceiling}. Left before this proposal: {before}; after it: {after}.").format(
            rt=proposal.rt.label(),
            year=proposal.fiscal_year,
            ceiling=format_rupiah(position.ceiling),
            before=format_rupiah(position.remaining),
            after=format_rupiah(position.remaining - proposal.total_amount),
        )
    )
    if proposal.total_amount > position.remaining:
        out.append(_("⚠️ This proposal is above what is left of the ceiling."))
    out.append("")
    out.append(_("👥 Musyawarah: {count} resident(s) present").format(count=proposal.attendees or 0))
    out += vote_text or []
    out.append(
        _("🖼 Photos: {photos} · 📄 Evidence files: {evidence} · 🗺 Location pin: {pin}").format(
            photos=len(proposal.media_of(MEDIA_FOTO_AWAL)),
            evidence=len(proposal.media_of(MEDIA_BUKTI_MUSYAWARAH)),
            pin=_("yes") if proposal.latitude is not None else _("no"),
        )
    )
    if proposal.submitted_at is not None:
        out.append(_("🕒 Submitted: {date}").format(date=when(proposal.submitted_at)))
    if show_status and proposal.status != DIAJUKAN:
        out.append(_("Status: {status}").format(status=status_label(proposal.status)))
    if changes:
        out.append("")
        out.append(changes_text(changes, max_lines))
        asked = _last(events, MINTA_REVISI)
        if asked is not None:
            out.append(
                _("Revision asked earlier ({parts}): {note}").format(
                    parts=parts_label((asked.data or {}).get("parts") or ()), note=escape_html(asked.note or "-")
                )
            )
    if progress_text:
        out.append("")
        out += progress_text
    return "\n".join(out)


def verdict_text(proposal: Proposal, officer: User) -> str:
    """Who decided what and when, for the officer's card after the decision."""
    name = escape_html(officer.display_name())
    date = when(proposal.decided_at) if proposal.decided_at else "-"
    if proposal.status == "disetujui":
        line = _("✅ Approved by {name} on {date}.").format(name=name, date=date)
        if proposal.decision_note:
            line += "\n" + _("Note: {note}").format(note=escape_html(proposal.decision_note))
    elif proposal.status == "ditolak":
        line = _("❌ Rejected by {name} on {date}.").format(name=name, date=date)
        line += "\n" + _("Reason: {reason}").format(reason=escape_html(proposal.decision_note or "-"))
    else:
        line = _("🔁 Revision requested by {name} on {date}: {parts}.").format(
            name=name, date=date, parts=parts_label(proposal.revision_parts or ())
        )
        line += "\n" + _("Note: {note}").format(note=escape_html(proposal.revision_note or "-"))
    return line + "\n" + _("The Ketua RT has been told.")


def card_keyboard(proposal: Proposal) -> InlineKeyboardMarkup:
    """Media buttons (what the proposal has), then the decisions while it waits for review."""
    pid, v = proposal.id, proposal.version
    media_row = []
    if proposal.latitude is not None and proposal.longitude is not None:
        media_row.append(
            InlineKeyboardButton(text=_("🗺 Location"), callback_data=ReviewCb(action="loc", id=pid, v=v).pack())
        )
    photos = len(proposal.media_of(MEDIA_FOTO_AWAL))
    if photos:
        media_row.append(
            InlineKeyboardButton(
                text=_("🖼 Photos ({count})").format(count=photos),
                callback_data=ReviewCb(action="foto", id=pid, v=v).pack(),
            )
        )
    if proposal.media_of(MEDIA_BUKTI_MUSYAWARAH):
        media_row.append(
            InlineKeyboardButton(
                text=_("📄 Musyawarah evidence"), callback_data=ReviewCb(action="bukti", id=pid, v=v).pack()
            )
        )
    rows = [media_row] if media_row else []
    if proposal.status == DIAJUKAN:
        rows.append(
            [
                InlineKeyboardButton(text=_("✅ Approve"), callback_data=ReviewCb(action="ok", id=pid, v=v).pack()),
                InlineKeyboardButton(text=_("❌ Reject"), callback_data=ReviewCb(action="no", id=pid, v=v).pack()),
            ]
        )
        rows.append(
            [
                InlineKeyboardButton(
                    text=_("🔁 Request revision"), callback_data=ReviewCb(action="rev", id=pid, v=v).pack()
                )
            ]
        )
    return InlineKeyboardMarkup(inline_keyboard=rows)


def parts_keyboard(proposal_id: int, version: int, chosen: Sequence[str]) -> InlineKeyboardMarkup:
    rows = [
        [
            InlineKeyboardButton(
                text=("☑ " if part in chosen else "☐ ") + _(PART_LABELS[part]),
                callback_data=ReviewCb(action="part", id=proposal_id, v=version, arg=part).pack(),
            )
        ]
        for part in proposals.PARTS
    ]
    rows.append(
        [
            InlineKeyboardButton(
                text=_("Continue ▶"), callback_data=ReviewCb(action="next", id=proposal_id, v=version).pack()
            )
        ]
    )
    rows.append(cancel_row())
    return InlineKeyboardMarkup(inline_keyboard=rows)
