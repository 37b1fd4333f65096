"""The Ketua RT's card of one of their proposals (opened from /usulanku): code, title, category,
status, amount, the RAB, the history, the progress timeline and — once selesai — what was realised
and what is left unspent; a button to report progress and one for the latest report's photos.

Buttons are user input: only the verified Ketua RT of the proposal's RT may open it; anything
else is refused as a stale button (audited)."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.money import format_rupiah
from bot.domain.text import escape_html
from bot.domain.workflow import DISETUJUI, PELAKSANAAN, SELESAI
from bot.services import progress, proposals
from bot.services import public as public_svc
from bot.services.media import MediaStore
from bot.services.proposals import ProposalNotFound
from bot.services.users import Roles
from handlers.common import BTN_PROGRESS, CbInt, rt_place, stale_button
from handlers.media import send_photos
from handlers.progress.callbacks import ProgCb
from handlers.proposals import render
from storage.models import Program, Proposal

router = Router(name=__name__)

CARD_LIMIT = 4000  # Telegram allows 4096 characters
REPORTABLE = (DISETUJUI, PELAKSANAAN)
ALBUM_MAX = 10  # Telegram's album limit


class CardCb(CallbackData, prefix="kd"):
    """``action``: open (the card of proposal ``id``), foto (the latest progress report's photos)."""

    action: str
    id: CbInt


def open_button(proposal: Proposal) -> InlineKeyboardButton:
    """The /usulanku button that opens a proposal's card."""
    title = (proposal.title or _("(untitled)"))[:28]
    return InlineKeyboardButton(
        text=f"📄 {proposal.code} · {title}", callback_data=CardCb(action="open", id=proposal.id).pack()
    )


async def _own(query: CallbackQuery, session: AsyncSession, roles: Roles, proposal_id: int) -> Proposal | None:
    """The proposal if it is one of the pressing Ketua RT's (with a code); else refused and None."""
    proposal = None
    if roles.rt_head is not None:
        try:
            proposal = await proposals.get(session, proposal_id)
        except ProposalNotFound:
            proposal = None
    if proposal is None or proposal.rt_id != roles.rt_head.rt_id or proposal.code is None:
        await stale_button(query, session)
        return None
    return proposal


def card_text(proposal: Proposal, program: Program | None, events, entries, completion, max_lines: int | None) -> str:
    category = render.category_name(program, proposal.category_code) if program is not None else "-"
    lines = [
        f"📄 <b>{escape_html(proposal.code or '')}</b> — {escape_html(proposal.title or '-')}",
        f"📍 {rt_place(proposal.rt)}",
        _("Category: {category}").format(category=escape_html(category)),
        _("Status: {status}").format(status=f"<b>{render.status_label(proposal.status)}</b>"),
        _("Amount: <b>{amount}</b>").format(amount=format_rupiah(proposal.total_amount)),
        "",
        _("<b>Budget (RAB)</b>"),
    ]
    shown = proposal.lines if max_lines is None else proposal.lines[:max_lines]
    lines += [render.rab_line(i, line) for i, line in enumerate(shown, 1)]
    if len(shown) < len(proposal.lines):
        lines.append(_("…and {count} more.").format(count=len(proposal.lines) - len(shown)))
    if events:
        lines.append("")
        lines += render.timeline(list(events))
    if entries or proposal.status in (*REPORTABLE, SELESAI) or completion is not None:
        lines.append("")
        lines += render.progress_lines(entries, proposal.total_amount, completion)
    return "\n".join(lines)


async def send_card(bot: Bot, chat_id: int, session: AsyncSession, proposal: Proposal) -> None:
    program = await session.get(Program, proposal.program_id)
    events = await proposals.timeline(session, proposal.id)
    entries = await progress.timeline(session, proposal.id)
    completion = await progress.completion_of(session, proposal.id)
    text = ""
    for cap in (None, 20, 10, 5, 0):
        text = card_text(proposal, program, events, entries, completion, cap)
        if len(text) <= CARD_LIMIT:
            break
    if len(text) > CARD_LIMIT:  # a very long history: keep its latest steps
        text = card_text(proposal, program, events[-10:], entries[-10:], completion, 0)
    buttons = []
    if proposal.status in REPORTABLE:
        buttons.append(
            [InlineKeyboardButton(text=_(BTN_PROGRESS), callback_data=ProgCb(action="start", id=proposal.id).pack())]
        )
    photos = await public_svc.latest_photos(session, proposal, limit=ALBUM_MAX, initial=False)
    if photos.links:
        buttons.append(
            [
                InlineKeyboardButton(
                    text=_("🖼 Photos ({count})").format(count=len(photos.links)),
                    callback_data=CardCb(action="foto", id=proposal.id).pack(),
                )
            ]
        )
    await bot.send_message(
        chat_id, text, reply_markup=InlineKeyboardMarkup(inline_keyboard=buttons) if buttons else None
    )


@router.callback_query(CardCb.filter(F.action == "open"))
async def open_card(query: CallbackQuery, callback_data: CardCb, bot: Bot, session: AsyncSession, roles: Roles) -> None:
    proposal = await _own(query, session, roles, callback_data.id)
    if proposal is None:
        return
    await query.answer()
    await send_card(bot, query.from_user.id, session, proposal)


@router.callback_query(CardCb.filter(F.action == "foto"))
async def photos(
    query: CallbackQuery, callback_data: CardCb, bot: Bot, session: AsyncSession, roles: Roles, media_store: MediaStore
) -> None:
    proposal = await _own(query, session, roles, callback_data.id)
    if proposal is None:
        return
    latest = await public_svc.latest_photos(session, proposal, limit=ALBUM_MAX, initial=False)
    if not latest.links:
        await query.answer(_("No progress photos yet."), show_alert=True)
        return
    await query.answer()

    caption = _("Photos of {code}").format(code=proposal.code)
    if not await send_photos(bot, query.from_user.id, media_store, latest.links, caption):
        await bot.send_message(query.from_user.id, _("Sorry, this file is not available any more."))
