"""Outbox notices of reminders to RT heads (``reminder.<kind>``, made by ``bot/services/reminders.py``).

Each renderer checks the reminder's condition again at send time and returns None (nothing sent)
once it is resolved: the window reminder when the RT's ceiling is all proposed or the person is no
longer its Ketua RT, the revision reminder when the proposal was sent again, the progress reminders
when a report came or the work is no longer going on. Imported at the end of ``bot/notices.py``.
"""

from __future__ import annotations

import datetime as dt
import string
from typing import Any

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.money import format_rupiah
from bot.domain.text import escape_html
from bot.domain.timefmt import format_date
from bot.domain.workflow import MINTA_REVISI, PERLU_REVISI
from bot.notices import Notice, renderer
from bot.services import proposals, registration, reminders
from handlers.common import rt_place, short_day
from handlers.progress.callbacks import ProgCb
from handlers.proposals.callbacks import PropCb
from storage.models import RT, Outbox, Program, ProgressReport, Proposal, ProposalEvent


def _custom(program: Program | None, kind: str, fields: dict[str, Any]) -> str | None:
    """The fiscal year's own text for ``kind`` (programs.reminder_settings.texts), if any and usable."""
    if program is None:
        return None
    text = reminders.config_of(program).texts.get(kind)
    if not text:
        return None
    try:
        names = {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name}
        if names - set(fields):
            return None  # an unknown placeholder: the standard text is better than a broken one
        return text.format(**fields)
    except (ValueError, IndexError):
        return None


def _button(text: str, callback_data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text=text, callback_data=callback_data)]])


def _fields(proposal: Proposal) -> dict[str, Any]:
    return {
        "code": escape_html(proposal.code or "-"),
        "title": escape_html(proposal.title or "-"),
        "place": rt_place(proposal.rt),
    }


async def _proposal(session: AsyncSession, row: Outbox, statuses: frozenset[str]) -> Proposal | None:
    proposal = await session.get(Proposal, row.payload["proposal_id"])
    if proposal is None or proposal.status not in statuses:
        return None
    head = await registration.current_head(session, proposal.rt_id)
    if head is None or head.user_id != row.chat_id:
        return None  # no longer this RT's head
    return proposal


@renderer(reminders.NOTICE_PREFIX + reminders.WINDOW)
async def _window(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    program = await session.get(Program, row.payload.get("program_id") or 0)
    rt = await session.get(RT, row.payload["rt_id"])
    head = await registration.current_head(session, row.payload["rt_id"])
    if program is None or rt is None or head is None or head.user_id != row.chat_id:
        return None
    position = await proposals.budget_position(session, rt.id, program)
    if position.remaining <= 0:
        return None  # the whole ceiling is proposed now
    days = int(row.payload["days"])
    fields = {
        "program": program.name,
        "year": program.fiscal_year,
        "date": format_date(program.submission_closes),
        "days": days,
        "place": rt_place(rt),
        "remaining": format_rupiah(position.remaining),
    }
    text = _custom(program, reminders.WINDOW, fields)
    if text is None:
        if days == 0:
            closing = _("⏰ The {program} {year} submission window closes <b>today</b>, {date}.").format(**fields)
        else:
            closing = _("⏰ The {program} {year} submission window closes in <b>{days} day(s)</b>, on {date}.").format(
                **fields
            )
        text = (
            closing
            + "\n"
            + _(
                "{place} still has <b>{remaining}</b> of its ceiling not proposed. "
                "Make a proposal with /usulan (or the 📄 button in the menu)."
            ).format(**fields)
        )
    return Notice(text)


@renderer(reminders.NOTICE_PREFIX + reminders.REVISION)
async def _revision(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    proposal = await _proposal(session, row, frozenset({PERLU_REVISI}))
    if proposal is None:
        return None
    latest = await session.scalar(
        select(func.max(ProposalEvent.id)).where(
            ProposalEvent.proposal_id == proposal.id, ProposalEvent.action == MINTA_REVISI
        )
    )
    event = await session.get(ProposalEvent, row.payload["event_id"])
    if event is None or latest != event.id:
        return None  # another revision request since: its own reminder will come
    program = await session.get(Program, proposal.program_id)
    fields = {**_fields(proposal), "date": short_day(event.at)}
    text = _custom(program, reminders.REVISION, fields) or _(
        "✏️ A reminder: on {date} the kelurahan asked for a revision of your proposal <b>{code}</b> ({title}), "
        "and it has not been sent again yet. Please revise it and send it again."
    ).format(**fields)
    kb = _button(_("✏️ Revise {code}").format(code=proposal.code or ""), PropCb(action="open", id=proposal.id).pack())
    return Notice(text, kb)


async def _latest_report(session: AsyncSession, proposal_id: int) -> ProgressReport | None:
    return await session.scalar(
        select(ProgressReport)
        .where(ProgressReport.proposal_id == proposal_id)
        .order_by(ProgressReport.id.desc())
        .limit(1)
    )


@renderer(reminders.NOTICE_PREFIX + reminders.REPORT)
async def _report(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    proposal = await _proposal(session, row, reminders.ACTIVE)
    if proposal is None:
        return None
    latest = await _latest_report(session, proposal.id)
    since = dt.datetime.fromisoformat(row.payload["since"])
    if latest is not None and latest.created_at > since:
        return None  # reported since
    program = await session.get(Program, proposal.program_id)
    days = int(row.payload["days"])
    fields = {**_fields(proposal), "days": days}
    text = _custom(program, reminders.REPORT, fields) or _(
        "📈 A reminder: there has been no progress report on <b>{code}</b> ({title}) for {days} day(s). "
        "Please report how the work is going: percent done, site photos and spending."
    ).format(**fields)
    return Notice(text, _button(_("📈 Report progress"), ProgCb(action="start", id=proposal.id).pack()))


@renderer(reminders.NOTICE_PREFIX + reminders.YEAR_END)
async def _year_end(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    proposal = await _proposal(session, row, reminders.ACTIVE)
    if proposal is None:
        return None
    latest = await _latest_report(session, proposal.id)
    percent = latest.percent if latest is not None else 0
    if percent >= 100:
        return None
    program = await session.get(Program, proposal.program_id)
    days = int(row.payload["days"])
    fields = {
        **_fields(proposal),
        "days": days,
        "percent": percent,
        "year": proposal.fiscal_year,
        "date": format_date(dt.date(proposal.fiscal_year, 12, 31)),
    }
    text = _custom(program, reminders.YEAR_END, fields) or _(
        "🗓 The fiscal year {year} ends in {days} day(s) ({date}), and <b>{code}</b> ({title}) is at {percent}%. "
        "Please finish the work and report 100% with /progres."
    ).format(**fields)
    return Notice(text, _button(_("📈 Report progress"), ProgCb(action="start", id=proposal.id).pack()))
