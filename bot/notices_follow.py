"""Texts of follow notices ("follow.event", "follow.weekly"; written by ``bot/services/follows.py``).

Public data only — code, title, RT, status, percent — never a person's name, phone number or
Telegram id, and no officer's note. Checked again at send time: a notice held through quiet hours
is dropped if the user stopped following, or turned such notices off, meanwhile.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import follow as rules
from bot.domain.text import escape_html
from bot.domain.timefmt import format_short_date
from bot.notices import Notice, renderer
from bot.services import follows
from handlers.common import rt_place
from storage.models import Follow, Outbox, ProgressReport, Proposal

WEEKLY_SHOWN = 10  # proposals listed in one weekly summary
WEEKLY_BUTTONS = 5


def see_button(proposal: Proposal, label: str | None = None) -> list[InlineKeyboardButton]:
    """🔍 See the proposal: opens its public card (handlers/public.py)."""
    from handlers.public import PubCb

    return [
        InlineKeyboardButton(
            text=label or _("🔍 See the proposal"), callback_data=PubCb(action="card", id=proposal.id).pack()
        )
    ]


def _what(proposal: Proposal) -> dict[str, str]:
    return {
        "code": escape_html(proposal.code or "-"),
        "title": escape_html(proposal.title or "-"),
        "place": rt_place(proposal.rt),
    }


def _percent(entry: dict[str, Any], report: ProgressReport | None) -> int:
    if report is not None:
        return report.percent
    return int(entry.get("percent") or 0)


def event_text(event: str, proposal: Proposal, percent: int) -> str:
    what = _what(proposal)
    if event == rules.EV_APPROVED:
        return _("✅ Proposal <b>{code}</b> ({title}, {place}) has been approved.").format(**what)
    if event == rules.EV_REJECTED:
        return _("❌ Proposal <b>{code}</b> ({title}, {place}) was not approved.").format(**what)
    if event == rules.EV_REVISION:
        return _("🔁 Proposal <b>{code}</b> ({title}, {place}) was sent back to the Ketua RT for changes.").format(
            **what
        )
    if event == rules.EV_COMPLETED:
        return _("🏁 Proposal <b>{code}</b> ({title}, {place}) is completed: the kelurahan verified the work.").format(
            **what
        )
    if event == rules.EV_PROGRESS:
        return _("📈 New progress report on <b>{code}</b> ({title}, {place}): <b>{percent}%</b>.").format(
            **what, percent=percent
        )
    return _(
        "✅ The {percent}% progress report on <b>{code}</b> ({title}, {place}) was verified by the kelurahan."
    ).format(**what, percent=percent)


def event_label(event: str, percent: int) -> str:
    """Short label of an event, for the weekly summary."""
    if event == rules.EV_APPROVED:
        return _("approved")
    if event == rules.EV_REJECTED:
        return _("rejected")
    if event == rules.EV_REVISION:
        return _("revision requested")
    if event == rules.EV_COMPLETED:
        return _("completed")
    if event == rules.EV_PROGRESS:
        return _("progress {percent}%").format(percent=percent)
    return _("progress {percent}% verified").format(percent=percent)


def _footer() -> str:
    return _("Settings: /pengaturan · stop following: /berhenti")


async def _mode(session: AsyncSession, user_id: int) -> str:
    return (await follows.prefs_of(session, user_id)).mode


@renderer(follows.NOTICE_EVENT)
async def _follow_event(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    event = row.payload.get("event")
    proposal = await session.get(Proposal, row.payload.get("proposal_id"))
    if proposal is None or event not in rules.EVENTS:
        return None
    mode = await _mode(session, row.chat_id)
    if mode not in rules.MODES or rules.route(mode, event) is None:
        return None  # turned off (or to decisions only) while the notice was held
    if not await follows.is_following(session, row.chat_id, proposal):
        return None  # stopped following meanwhile
    report = await session.get(ProgressReport, row.payload["report_id"]) if row.payload.get("report_id") else None
    text = event_text(event, proposal, _percent(row.payload, report)) + "\n\n" + _footer()
    return Notice(text, InlineKeyboardMarkup(inline_keyboard=[see_button(proposal)]))


async def _followed(session: AsyncSession, user_id: int) -> tuple[set[int], set[int]]:
    rows = (await session.execute(select(Follow.rt_id, Follow.proposal_id).where(Follow.user_id == user_id))).all()
    return {r for r, _p in rows if r is not None}, {p for _r, p in rows if p is not None}


@renderer(follows.NOTICE_WEEKLY)
async def _follow_weekly(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    if await _mode(session, row.chat_id) == rules.NOTIFY_OFF:
        return None
    entries = [e for e in row.payload.get("events") or () if e.get("event") in rules.EVENTS]
    rt_ids, proposal_ids = await _followed(session, row.chat_id)
    wanted = {e.get("proposal_id") for e in entries}
    proposals = {
        p.id: p
        for p in (
            await session.scalars(
                select(Proposal).where(
                    Proposal.id.in_(wanted), or_(Proposal.rt_id.in_(rt_ids), Proposal.id.in_(proposal_ids))
                )
            )
        ).all()
    }
    reports = {
        r.id: r
        for r in (
            await session.scalars(
                select(ProgressReport).where(
                    ProgressReport.id.in_({e["report_id"] for e in entries if e.get("report_id")})
                )
            )
        ).all()
    }
    grouped: dict[int, list[str]] = {}
    for e in entries:
        proposal = proposals.get(e.get("proposal_id"))
        if proposal is None:
            continue  # no longer followed
        label = event_label(e["event"], _percent(e, reports.get(e.get("report_id"))))
        labels = grouped.setdefault(proposal.id, [])
        if label not in labels:
            labels.append(label)
    if not grouped:
        return None
    tz = follows.display_tz()
    since = row.payload.get("since")
    start = dt.datetime.fromisoformat(since).astimezone(tz).date() if since else None
    end = dt.datetime.now(dt.UTC).astimezone(tz).date()
    lines = [
        _("🗓 <b>Weekly summary</b> of the RTs and proposals you follow ({start} – {end}):").format(
            start=format_short_date(start or end), end=format_short_date(end)
        ),
        "",
    ]
    shown = list(grouped.items())[:WEEKLY_SHOWN]
    for proposal_id, labels in shown:
        p = proposals[proposal_id]
        lines.append(
            f"• <b>{escape_html(p.code or '-')}</b> {escape_html(p.title or '-')} ({p.rt.label()}, "
            f"{escape_html(p.rt.kelurahan.name)}): {', '.join(labels)}"
        )
    if len(grouped) > WEEKLY_SHOWN:
        lines.append(_("…and {count} more.").format(count=len(grouped) - WEEKLY_SHOWN))
    lines += ["", _footer()]
    buttons = [
        see_button(proposals[pid], _("🔍 Open {code}").format(code=proposals[pid].code or "-"))
        for pid, _labels in shown[:WEEKLY_BUTTONS]
    ]
    return Notice("\n".join(lines), InlineKeyboardMarkup(inline_keyboard=buttons))
