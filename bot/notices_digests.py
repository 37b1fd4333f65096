"""The officer's morning digest (outbox kind ``digest.officer``, enqueued by
``bot/services/digests.py::enqueue_due``): recomputed at send time, so an officer whose queues
emptied meanwhile, or whose scope was revoked, gets nothing; a digest not sent on its own day is
dropped. With a programme for the year it is a photo (the budget chart) with the summary as its
caption and buttons opening the queues; without one, a text message. Imported at the end of
``bot/notices.py`` so its renderer registers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from aiogram import Bot
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.money import format_rupiah_short
from bot.domain.timefmt import format_date
from bot.notices import Notice, renderer
from bot.services import digests
from handlers.progress.verify_render import VerifyProgressCb
from handlers.review.callbacks import ReviewCb
from handlers.verification import VerifyCb
from storage.models import Outbox, utcnow

CAPTION_MAX = 1024  # Telegram's limit for a photo caption


@dataclass
class DigestNotice(Notice):
    """The chart as a photo, the summary as its caption (a separate message only if too long)."""

    png: bytes = b""
    filename: str = "ringkasan.png"

    async def deliver(self, bot: Bot, chat_id: int) -> Message:
        photo = BufferedInputFile(self.png, filename=self.filename)
        if len(self.text) <= CAPTION_MAX:
            return await bot.send_photo(chat_id, photo, caption=self.text, reply_markup=self.reply_markup)
        await bot.send_photo(chat_id, photo)
        return await bot.send_message(chat_id, self.text, reply_markup=self.reply_markup)


def _queue_line(q: digests.Queue) -> str:
    if q.overdue:
        over = f"≥{q.overdue}" if q.capped else str(q.overdue)
        return _("{total} waiting ({overdue} overdue, the oldest {days} working days)").format(
            total=q.total, overdue=over, days=q.oldest_days
        )
    return _("{total} waiting").format(total=q.total)


def age_buckets(q: digests.Queue) -> str:
    """"by age: 1 ≤ 2 days · 0 3–5 days · 1 over 5 days", the limits being the year's SLA."""
    fresh, sla = q.fresh_within, q.overdue_after
    parts = [_("{count} ≤ {days} days").format(count=q.fresh, days=fresh)]
    if sla > fresh + 1:
        parts.append(_("{count} {low}–{high} days").format(count=q.waiting, low=fresh + 1, high=sla))
    elif sla == fresh + 1:
        parts.append(_("{count} {days} days").format(count=q.waiting, days=sla))
    parts.append(_("{count} over {days} days").format(count=q.overdue, days=sla))
    return _("by age: {buckets}").format(buckets=" · ".join(parts))


def scope_name(d: digests.Digest) -> str:
    from handlers.admin import scope_label

    return scope_label(d.officer)


def summary_text(d: digests.Digest) -> str:
    lines = [
        _("☀️ <b>Daily summary</b> · {scope}").format(scope=scope_name(d)),
        format_date(d.day),
        "",
    ]
    if d.registrations.total:
        lines.append(_("👤 Ketua RT registrations: {line}").format(line=_queue_line(d.registrations)))
        if d.new_registrations:
            lines.append(_("   {count} new in the last 24 hours").format(count=d.new_registrations))
    if d.reviews.total:
        lines.append(_("📥 Proposals to review: {line}").format(line=_queue_line(d.reviews)))
        lines.append("   " + age_buckets(d.reviews))
    if d.progress.total:
        lines.append(_("🧾 Progress reports to verify: {line}").format(line=_queue_line(d.progress)))
    if d.overdue:
        lines.append(
            _("⏰ <b>{count} overdue</b> (waiting more than {days} working days): please handle these first.").format(
                count=d.overdue, days=d.overdue_after
            )
        )
    if d.budget is not None:
        b = d.budget
        lines += [
            "",
            _(
                "💰 Budget {year}: ceiling {ceiling}, proposed {proposed}, approved {approved}, realised {realised}"
            ).format(
                year=d.year,
                ceiling=format_rupiah_short(b.ceiling),
                proposed=format_rupiah_short(b.proposed),
                approved=format_rupiah_short(b.approved),
                realised=format_rupiah_short(b.realised),
            ),
        ]
        if b.absorption is not None:
            lines.append(_("   absorption {percent} of the ceiling").format(percent=percent(b.absorption)))
    lines += ["", _("Tap a button below to open the queue.")]
    return "\n".join(lines)


def percent(fraction: float) -> str:
    return f"{fraction * 100:.1f}%".replace(".", ",")


def keyboard(d: digests.Digest) -> InlineKeyboardMarkup | None:
    rows: list[list[InlineKeyboardButton]] = []
    if d.reviews.total:
        rows.append(
            [
                InlineKeyboardButton(
                    text=_("📥 Review proposals ({count})").format(count=d.reviews.total),
                    callback_data=ReviewCb(action="list", id=0).pack(),
                )
            ]
        )
    if d.registrations.total:
        rows.append(
            [
                InlineKeyboardButton(
                    text=_("👤 Verify registrations ({count})").format(count=d.registrations.total),
                    callback_data=VerifyCb(action="list", id=0).pack(),
                )
            ]
        )
    if d.progress.total:
        rows.append(
            [
                InlineKeyboardButton(
                    text=_("🧾 Verify progress ({count})").format(count=d.progress.total),
                    callback_data=VerifyProgressCb(action="list", id=0).pack(),
                )
            ]
        )
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def chart_text(d: digests.Digest) -> digests.ChartText:
    absorption = ""
    if d.budget is not None and d.budget.absorption is not None:
        absorption = _("Absorption {percent} of the ceiling").format(percent=percent(d.budget.absorption))
    return digests.ChartText(
        series=(_("Ceiling"), _("Proposed"), _("Approved"), _("Realised")),
        title=_("Budget {year} · {scope}").format(year=d.year, scope=scope_name(d)),
        by_kelurahan_title=_("Per kelurahan"),
        absorption=absorption,
    )


async def render_digest(d: digests.Digest) -> Notice:
    text = summary_text(d)
    kb = keyboard(d)
    if d.budget is None:
        return Notice(text, kb)
    png = await asyncio.to_thread(digests.render_chart, d, chart_text(d))
    return DigestNotice(text, kb, png=png, filename=f"ringkasan-{d.day.isoformat()}.png")


@renderer(digests.KIND)
async def _officer_digest(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    payload: dict[str, Any] = row.payload or {}
    settings = SimpleNamespace(timezone=payload.get("tz") or "Asia/Makassar")
    now = utcnow()
    holidays = frozenset(dt.date.fromisoformat(h) for h in payload.get("holidays") or ())
    d = await digests.digest_for(session, row.chat_id, now, settings, holidays=holidays)
    if d is None or d.day.isoformat() != payload.get("date"):
        return None  # revoked, nothing waiting any more, or a day late: obsolete
    return await render_digest(d)
