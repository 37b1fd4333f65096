"""The officer's progress-report card: what the Ketua RT reported (percent, spending against the
approved amount, notes, evidence) and the evidence checks in plain words, per photo number.
Text and keyboards only (HTML, user text escaped); the decision lives in ``handlers.progress.verify``.

Flags are facts for the officer's judgement (``bot.domain.evidence``), never refusals: the wording
says what was found ("Photo 2: taken 1,4 km from the proposal site"), not what to decide.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import get_i18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import evidence
from bot.domain.money import format_rupiah
from bot.domain.text import escape_html
from bot.services import progress, registration
from handlers.common import CbInt, rt_place, short_day, when
from handlers.proposals.render import REPORT_STATUS_MARKS
from storage.models import (
    MEDIA_FOTO_PROGRES,
    MEDIA_NOTA,
    REPORT_NEEDS_EVIDENCE,
    REPORT_PENDING,
    REPORT_VERIFIED,
    ProgressReport,
    User,
)

CARD_LIMIT = 4000  # Telegram allows 4096 characters


class VerifyProgressCb(CallbackData, prefix="vp"):
    """``action``: list (queue page; ``id`` is the offset), open (a report's card), foto / nota / loc
    (send the site photos / receipts / the report's pin), ok (verify), more (ask for more evidence:
    asks for a note); ``id`` is the report id otherwise."""

    action: str
    id: CbInt = 0


# --- wording of the evidence flags -------------------------------------------------------------------


class ReusedSource(NamedTuple):
    """The earlier report a reused photo was first seen in: when, and on which proposal."""

    at: dt.datetime
    code: str


def _decimal_point() -> str:
    try:
        locale = get_i18n().current_locale
    except LookupError:
        locale = "id"
    return "." if locale == "en" else ","


def format_distance(metres: float) -> str:
    """``350 m`` below a kilometre, else ``1,4 km`` (``1.4 km`` in English); whole km from 10 km."""
    metres = max(float(metres), 0.0)
    if metres < 1000:
        return f"{round(metres)} m"
    km = metres / 1000
    if km >= 10:
        return f"{round(km):,} km".replace(",", ".")
    return f"{km:.1f}".replace(".", _decimal_point()) + " km"


def _day(iso: object) -> str:
    if not isinstance(iso, str):
        return "-"
    try:
        value = dt.datetime.fromisoformat(iso)
    except ValueError:
        return escape_html(iso[:25])
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return short_day(value)


def _number(value: object) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0


def _subject(flag: Mapping[str, Any]) -> str | None:
    """``Photo 2`` / ``Receipt 1`` for a flag on a file (positions are 0-based), None for the report."""
    position = flag.get("position")
    if not isinstance(position, int):
        return None
    if flag.get("file") == MEDIA_NOTA:
        return _("Receipt {n}").format(n=position + 1)
    return _("Photo {n}").format(n=position + 1)


def flag_text(flag: Mapping[str, Any], reused: Mapping[int, ReusedSource] | None = None) -> str:
    """One stored flag (``ProgressReport.flags`` row) in plain words (HTML-escaped)."""
    kind = flag.get("kind")
    detail = flag.get("detail") or {}
    subject = _subject(flag)
    if kind == evidence.OVER_BUDGET:
        return _("Spending {spent} is {over} above the approved amount {approved}").format(
            spent=format_rupiah(_number(detail.get("spent"))),
            over=format_rupiah(_number(detail.get("over"))),
            approved=format_rupiah(_number(detail.get("approved"))),
        )
    if kind == evidence.FAR_FROM_SITE:
        distance = format_distance(_number(detail.get("distance_m")))
        if subject is None:  # the report's own location pin
            return _("The report's location pin is {distance} from the proposal site").format(distance=distance)
        what = _("taken {distance} from the proposal site").format(distance=distance)
    elif kind == evidence.NO_EXIF:
        what = _("no capture time or GPS in the file (probably sent compressed)")
    elif kind == evidence.TAKEN_BEFORE_APPROVAL:
        what = _("taken on {taken}, before the approval on {approved}").format(
            taken=_day(detail.get("taken_at")), approved=_day(detail.get("approved_at"))
        )
    elif kind == evidence.REUSED_PHOTO:
        source = (reused or {}).get(_number(detail.get("report_id")))
        same = _number(detail.get("distance")) == 0
        if source is None:
            what = (
                _("the same picture as in an earlier report")
                if same
                else _("nearly the same picture as in an earlier report")
            )
        else:
            text = (
                _("the same picture as in the report of {date} on {code}")
                if same
                else _("nearly the same picture as in the report of {date} on {code}")
            )
            what = text.format(date=short_day(source.at), code=escape_html(source.code))
    else:
        what = escape_html(str(kind))
    if subject is None:
        return what
    return _("{subject}: {what}").format(subject=subject, what=what)


# Within one photo, in the order the checks run (bot.domain.evidence.flags_for).
KIND_ORDER = (
    evidence.OVER_BUDGET,
    evidence.NO_EXIF,
    evidence.FAR_FROM_SITE,
    evidence.TAKEN_BEFORE_APPROVAL,
    evidence.REUSED_PHOTO,
)


def _order(flag: Mapping[str, Any]) -> tuple[int, int, int, int]:
    position = flag.get("position")
    kind = flag.get("kind")
    rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    if not isinstance(position, int):
        return (0, 0, 0, rank)
    return (1, 1 if flag.get("file") == MEDIA_NOTA else 0, position, rank)


def flag_lines(flags: Iterable[Mapping[str, Any]], reused: Mapping[int, ReusedSource] | None = None) -> list[str]:
    """The flags of a report, report-level first, then photo by photo, then receipts."""
    return [flag_text(f, reused) for f in sorted(flags, key=_order)]


def flagged_positions(report: ProgressReport) -> set[int]:
    """0-based indices (in the report's site-photo order) of the photos that carry a flag."""
    photos = report.media_of(MEDIA_FOTO_PROGRES)
    index = {m.position: i for i, m in enumerate(photos)}
    return {
        index[f["position"]]
        for f in report.flags or ()
        if f.get("file") == MEDIA_FOTO_PROGRES and f.get("position") in index
    }


# --- what the card needs beyond the report row -----------------------------------------------------------


class EvidenceRequest(NamedTuple):
    """The officer's request for more evidence on the report before this one, which this report answers."""

    percent: int
    at: dt.datetime
    note: str


@dataclass
class ReportView:
    report: ProgressReport
    reporter: str
    previous_percent: int | None
    reused: dict[int, ReusedSource]
    verifier: str | None = None
    answers: EvidenceRequest | None = None


async def _person(session: AsyncSession, user_id: int | None, rt_id: int | None = None) -> str:
    if user_id is None:
        return "-"
    if rt_id is not None:
        head = await registration.current_head(session, rt_id)
        if head is not None and head.user_id == user_id:
            return head.full_name
    user = await session.get(User, user_id)
    return user.display_name() if user is not None else f"#{user_id}"


async def person_name(session: AsyncSession, user_id: int | None) -> str:
    return await _person(session, user_id)


async def report_view(session: AsyncSession, report: ProgressReport) -> ReportView:
    proposal = report.proposal
    entries = await progress.timeline(session, proposal.id)
    before = None  # the latest report created before this one
    for entry in entries:
        if entry.report_id == report.id:
            break
        before = entry
    previous = before.percent if before is not None else None
    answers = None
    if before is not None and before.status == REPORT_NEEDS_EVIDENCE:
        try:
            asked = await progress.get_report(session, before.report_id)
        except progress.ReportNotFound:
            pass
        else:
            answers = EvidenceRequest(asked.percent, asked.created_at, asked.officer_note or "-")
    reused: dict[int, ReusedSource] = {}
    for flag in report.flags or ():
        if flag.get("kind") != evidence.REUSED_PHOTO:
            continue
        rid = _number((flag.get("detail") or {}).get("report_id"))
        if rid and rid not in reused:
            try:
                earlier = await progress.get_report(session, rid)
            except progress.ReportNotFound:
                continue
            reused[rid] = ReusedSource(earlier.created_at, earlier.proposal.code or "-")
    verifier = await _person(session, report.verified_by) if report.verified_by is not None else None
    reporter = await _person(session, report.reporter_id, proposal.rt_id)
    return ReportView(report, reporter, previous, reused, verifier, answers)


# --- the card ------------------------------------------------------------------------------------------------


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + "…"


def card_text(view: ReportView, *, limit: int = CARD_LIMIT, show_status: bool = True) -> str:
    """The report as the officer verifies it (fits one Telegram message)."""
    text = ""
    for note_cap, flag_cap in ((1000, None), (400, 20), (200, 10), (100, 5)):
        text = _card(view, note_cap, flag_cap, show_status)
        if len(text) <= limit:
            break
    return text


def _card(view: ReportView, note_cap: int, flag_cap: int | None, show_status: bool) -> str:
    r = view.report
    p = r.proposal
    out = [
        _("📸 <b>Progress report</b> · <b>{code}</b> · {title}").format(
            code=escape_html(p.code or "-"), title=escape_html(p.title or "-")
        ),
        _("📍 {place}").format(place=rt_place(p.rt)),
        _("👤 Reported by {name} · 🕒 {date}").format(name=escape_html(view.reporter), date=when(r.created_at)),
    ]
    if view.previous_percent is None:
        out.append(_("📈 Progress: <b>{percent}%</b> (first report)").format(percent=r.percent))
    else:
        out.append(
            _("📈 Progress: {previous}% → <b>{percent}%</b>").format(previous=view.previous_percent, percent=r.percent)
        )
    if view.answers is not None:
        out.append(
            _("↩️ Sent after the request for more evidence on the {percent}% report ({date}): «{note}»").format(
                percent=view.answers.percent,
                date=short_day(view.answers.at),
                note=escape_html(_cut(view.answers.note, note_cap)),
            )
        )
    if r.backwards_reason:
        out.append(
            _("📉 Lower than the previous report. Reason: {reason}").format(
                reason=escape_html(_cut(r.backwards_reason, note_cap))
            )
        )
    if r.note:
        out.append(_("📝 Ketua RT's note: {note}").format(note=escape_html(_cut(r.note, note_cap))))
    approved = p.total_amount
    rab_total = sum(line.total for line in p.lines)
    share = round(100 * r.spent_total / approved) if approved else 0
    out.append("")
    out.append(
        _("💰 Spent so far: <b>{spent}</b> of the approved {approved} ({share}%); RAB total {rab}").format(
            spent=format_rupiah(r.spent_total),
            approved=format_rupiah(approved),
            share=share,
            rab=format_rupiah(rab_total),
        )
    )
    if r.spent_total > approved:
        out.append(
            _("⚠️ {over} above the approved amount. Ketua RT's explanation: {note}").format(
                over=format_rupiah(r.spent_total - approved),
                note=escape_html(_cut(r.over_budget_note or "-", note_cap)),
            )
        )
    out.append(
        _("🖼 Site photos: {photos} · 🧾 Receipts: {receipts}").format(
            photos=len(r.media_of(MEDIA_FOTO_PROGRES)), receipts=len(r.media_of(MEDIA_NOTA))
        )
    )
    site_pinned = p.latitude is not None and p.longitude is not None
    if r.latitude is None or r.longitude is None:
        if site_pinned:
            out.append(_("🗺 Location pin: not sent"))
        else:  # the officer must know the photos' GPS was not checked either
            out.append(_("🗺 Location pin: not sent (the proposal has no site pin to compare photo locations against)"))
    elif not site_pinned:
        out.append(_("🗺 Location pin: sent (the proposal has no site pin to compare)"))
    else:
        distance = evidence.distance_m(p.latitude, p.longitude, r.latitude, r.longitude)
        out.append(_("🗺 Location pin: {distance} from the proposal site").format(distance=format_distance(distance)))
    out.append("")
    lines = flag_lines(r.flags or (), view.reused)
    if lines:
        out.append(_("🚩 <b>Evidence checks</b> (for your judgement; the report was not refused):"))
        shown = lines if flag_cap is None else lines[:flag_cap]
        out += [f"• {line}" for line in shown]
        if len(lines) > len(shown):
            out.append(_("… and {count} more check(s).").format(count=len(lines) - len(shown)))
    else:
        out.append(_("✅ Evidence checks: nothing flagged."))
    if show_status and r.status != REPORT_PENDING:
        mark = REPORT_STATUS_MARKS.get(r.status)
        out.append(_("Status: {status}").format(status=_(mark) if mark else escape_html(r.status)))
    return "\n".join(out)


def status_text(status: str) -> str:
    mark = REPORT_STATUS_MARKS.get(status)
    return _(mark) if mark else escape_html(status)


def verdict_text(view: ReportView, completion: Any | None = None) -> str:
    """Who decided what and when, for the card after the decision."""
    r = view.report
    name = escape_html(view.verifier or "-")
    date = when(r.verified_at) if r.verified_at else "-"
    if r.status == REPORT_VERIFIED:
        line = _("✅ Verified by {name} on {date}.").format(name=name, date=date)
        if completion is not None:
            line += "\n" + _(
                "🏁 The proposal is completed: realised {realised} of {approved}; unspent {unspent}."
            ).format(
                realised=format_rupiah(completion.realised_amount),
                approved=format_rupiah(r.proposal.total_amount),
                unspent=format_rupiah(completion.unspent),
            )
    else:
        line = _("📝 More evidence asked by {name} on {date}.").format(name=name, date=date)
        line += "\n" + _("Note: {note}").format(note=escape_html(r.officer_note or "-"))
    return line + "\n" + _("The Ketua RT has been told.")


def card_keyboard(report: ProgressReport) -> InlineKeyboardMarkup:
    """Media buttons (what the report has), then the decisions while it waits."""
    rid = report.id
    media_row = []
    photos = len(report.media_of(MEDIA_FOTO_PROGRES))
    if photos:
        media_row.append(
            InlineKeyboardButton(
                text=_("🖼 Photos ({count})").format(count=photos),
                callback_data=VerifyProgressCb(action="foto", id=rid).pack(),
            )
        )
    receipts = len(report.media_of(MEDIA_NOTA))
    if receipts:
        media_row.append(
            InlineKeyboardButton(
                text=_("🧾 Receipts ({count})").format(count=receipts),
                callback_data=VerifyProgressCb(action="nota", id=rid).pack(),
            )
        )
    if report.latitude is not None and report.longitude is not None:
        media_row.append(
            InlineKeyboardButton(text=_("🗺 Location"), callback_data=VerifyProgressCb(action="loc", id=rid).pack())
        )
    rows = [media_row] if media_row else []
    if report.status == REPORT_PENDING:
        # One decision per row: both labels stay whole on a small phone.
        rows.append(
            [InlineKeyboardButton(text=_("✅ Verified"), callback_data=VerifyProgressCb(action="ok", id=rid).pack())]
        )
        rows.append(
            [
                InlineKeyboardButton(
                    text=_("📝 Ask for more evidence"), callback_data=VerifyProgressCb(action="more", id=rid).pack()
                )
            ]
        )
    return InlineKeyboardMarkup(inline_keyboard=rows)


def sheet_caption(report: ProgressReport, flagged: Sequence[int] | set[int]) -> str:
    count = len(report.media_of(MEDIA_FOTO_PROGRES))
    text = _("🖼 Site photos of the report on {code} ({percent}%): {count}, numbered as in the checks.").format(
        code=escape_html(report.proposal.code or "-"), percent=report.percent, count=count
    )
    if flagged:
        text += " " + _("Flagged photos are framed in red.")
    return text
