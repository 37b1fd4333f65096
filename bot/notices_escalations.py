"""The escalation notice to an officer (outbox kind ``escalation.officer``, made by
``bot/services/escalations.py``): the proposals and progress reports newly brought to them, each
with its place and how long it has waited, and buttons that open them. At send time it leaves out
what was handled meanwhile and what the recipient no longer covers (scope changed or revoked); with
nothing left it sends nothing. Imported at the end of ``bot/notices.py``.
"""

from __future__ import annotations

from typing import Any

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.permissions import LEVEL_KECAMATAN, covers
from bot.domain.text import escape_html
from bot.notices import Notice, renderer
from bot.services import escalations
from bot.services.digests import active_officer
from bot.services.users import officer_scope
from handlers.common import rt_place
from handlers.progress.verify_render import VerifyProgressCb
from handlers.review.callbacks import ReviewCb
from storage.models import Escalation, Outbox, ProgressReport, Proposal

MAX_BUTTONS = 6
MAX_LINES = 15  # items listed in one message (a first run after a backlog can bring many)


def _line(code: str | None, what: str, place: str, days: int) -> str:
    return _("• <b>{code}</b> · {what} · {place} — {days} working days").format(
        code=escape_html(code or "-"), what=what, place=place, days=days
    )


def _heading(row: Escalation, sla: int) -> str:
    if row.level == 0:  # the first level that has anyone: the officers in charge
        return _("⏰ <b>Waiting for you for more than {days} working days</b>").format(days=sla)
    if row.scope_level == LEVEL_KECAMATAN:
        return _("⚠️ <b>Escalation</b>: not handled at the kelurahan for more than {days} working days").format(days=sla)
    return _("⚠️ <b>Escalation</b>: not handled in the kelurahan or kecamatan for more than {days} working days").format(
        days=sla
    )


async def _still_mine(session: AsyncSession, chat_id: int, admin_ids: tuple[int, ...], kec: int, kel: int) -> bool:
    if chat_id in admin_ids:
        return True
    officer = await active_officer(session, chat_id)
    return officer is not None and covers(officer_scope(officer), kec, kel)


@renderer(escalations.KIND)
async def _escalation(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    payload: dict[str, Any] = row.payload or {}
    ids = [int(i) for i in payload.get("escalations") or ()]
    rows = (await session.scalars(select(Escalation).where(Escalation.id.in_(ids)).order_by(Escalation.id))).all()
    sla = await _sla(session, row)
    # heading -> (proposal lines, report lines): in charge first, then the escalations
    groups: dict[tuple[bool, str], tuple[str, list[str], list[str]]] = {}
    buttons: list[InlineKeyboardButton] = []
    listed = more = 0
    any_proposal = any_report = False
    for esc in rows:
        since = await escalations.since_of(session, esc.item_type, esc.item_id)
        if since is None or since != esc.since:
            continue  # handled meanwhile (or sent again: a new wait)
        report = None
        if esc.item_type == escalations.ITEM_PROPOSAL:
            proposal = await session.get(Proposal, esc.item_id)
        else:
            report = await session.get(ProgressReport, esc.item_id)
            proposal = await session.get(Proposal, report.proposal_id) if report is not None else None
        if proposal is None:
            continue
        kel = proposal.rt.kelurahan
        if not await _still_mine(session, row.chat_id, admin_ids, kel.kecamatan_id, kel.id):
            continue  # no longer theirs: scope changed or revoked
        listed += 1
        if listed > MAX_LINES:
            more += 1
        else:
            key = (esc.level != 0, esc.scope_level)
            _title, proposal_lines, report_lines = groups.setdefault(key, (_heading(esc, sla), [], []))
            if report is None:
                what = escape_html(proposal.title or "-")
                proposal_lines.append(_line(proposal.code, what, rt_place(proposal.rt), esc.age_days))
            else:
                what = _("progress {percent}%").format(percent=report.percent)
                report_lines.append(_line(proposal.code, what, rt_place(proposal.rt), esc.age_days))
        if report is None:
            any_proposal = True
            buttons.append(
                InlineKeyboardButton(
                    text=_("📥 {code}").format(code=proposal.code or "-"),
                    callback_data=ReviewCb(action="open", id=proposal.id).pack(),
                )
            )
        else:
            any_report = True
            buttons.append(
                InlineKeyboardButton(
                    text=_("🧾 {code} · {percent}%").format(code=proposal.code or "-", percent=report.percent),
                    callback_data=VerifyProgressCb(action="open", id=report.id).pack(),
                )
            )
    if not groups:
        return None
    lines: list[str] = []
    for (escalated, _level), (title, proposal_lines, report_lines) in sorted(groups.items()):
        lines += [title, ""]
        if proposal_lines:
            lines += [_("📥 Proposals to review:"), *proposal_lines, ""]
        if report_lines:
            lines += [_("🧾 Progress reports to verify:"), *report_lines, ""]
        if escalated:
            lines += [_("Please follow it up with the officer in charge, or handle it yourself."), ""]
        else:
            lines += [_("If it still waits, it goes to the officer above. Please handle it today."), ""]
    if more:
        lines.append(_("…and {count} more: open the queues below.").format(count=more))
    keyboard = [[b] for b in buttons[:MAX_BUTTONS]]
    if len(buttons) > MAX_BUTTONS:
        if any_proposal:
            keyboard.append(
                [
                    InlineKeyboardButton(
                        text=_("📥 All proposals to review"), callback_data=ReviewCb(action="list").pack()
                    )
                ]
            )
        if any_report:
            keyboard.append(
                [
                    InlineKeyboardButton(
                        text=_("🧾 All reports to verify"), callback_data=VerifyProgressCb(action="list").pack()
                    )
                ]
            )
    return Notice("\n".join(lines).strip(), InlineKeyboardMarkup(inline_keyboard=keyboard))


async def _sla(session: AsyncSession, row: Outbox) -> int:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo((row.payload or {}).get("tz") or "Asia/Makassar")
    cfg = await escalations.config(session, row.created_at.astimezone(tz).year)
    return cfg.sla_working_days
