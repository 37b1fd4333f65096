"""Notices of residents' ideas (aspirasi): the RT head is told of a new idea, the resident of each
decision. Rendered at send time from ids; the resident never sees who the Ketua RT is."""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.text import escape_html
from bot.notices import Notice, renderer
from bot.notices_follow import see_button
from bot.services import aspirations as svc
from bot.services.public import is_public
from handlers.aspirations import AspCb, status_label
from handlers.common import rt_place
from storage.models import ASPIRASI_DIBAHAS, ASPIRASI_DITOLAK, ASPIRASI_DIUSULKAN, RT, Aspiration, Outbox, Proposal

EXCERPT = 200


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return escape_html(flat[:EXCERPT] + ("…" if len(flat) > EXCERPT else ""))


@renderer(svc.NOTICE_NEW)
async def _aspiration_new(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    asp = await session.get(Aspiration, row.payload.get("aspiration_id"))
    if asp is None:
        return None
    if await svc.head_user_id(session, asp.rt_id) != row.chat_id:
        return None  # no longer this RT's head: the new head sees it in /aspirasi
    rt = await session.get(RT, asp.rt_id)
    text = _("💡 A resident sent a new idea to {place}:\n\n«{text}»\n\nSee all ideas with /aspirasi.").format(
        place=rt_place(rt), text=_excerpt(asp.text)
    )
    button = InlineKeyboardButton(text=_("🔎 Open"), callback_data=AspCb(action="open", id=asp.id).pack())
    kb = InlineKeyboardMarkup(inline_keyboard=[[button]])
    return Notice(text, kb)


@renderer(svc.NOTICE_DECIDED)
async def _aspiration_decided(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    asp = await session.get(Aspiration, row.payload.get("aspiration_id"))
    if asp is None or asp.user_id != row.chat_id or asp.status != row.payload.get("status"):
        return None  # erased, or decided again since (that notice follows)
    rt = await session.get(RT, asp.rt_id)
    what = {"place": rt_place(rt), "text": _excerpt(asp.text), "status": status_label(asp.status)}
    kb = None
    if asp.status == ASPIRASI_DIUSULKAN:
        proposal = await session.get(Proposal, asp.proposal_id) if asp.proposal_id is not None else None
        code = proposal.code if proposal is not None else None
        text = _(
            "📄 Good news! Your idea for {place} («{text}») <b>became a proposal</b>: <b>{code}</b>.\n"
            "Follow it with /cek {code}."
        ).format(**what, code=escape_html(code or "-"))
        if is_public(proposal):
            kb = InlineKeyboardMarkup(inline_keyboard=[see_button(proposal)])
    elif asp.status == ASPIRASI_DIBAHAS:
        text = _(
            "🗣 The Ketua RT of {place} will discuss your idea («{text}») at the next <b>musyawarah</b>. "
            "I will tell you if it becomes a proposal."
        ).format(**what)
    elif asp.status == ASPIRASI_DITOLAK:
        text = _(
            "🚫 Your idea for {place} («{text}») <b>cannot be followed up</b>.\nReason: {reason}\n\n"
            "Thank you for caring about your RT; you are welcome to send other ideas with /aspirasi."
        ).format(**what, reason=escape_html(asp.reason or "-"))
    else:
        return None
    return Notice(text, kb)
