"""/draf (drafts and proposals to revise) and /usulanku (this year's proposals and the ceiling)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.money import format_rupiah
from bot.domain.text import escape_html
from bot.services import programs
from bot.services import proposals as svc
from bot.services.users import Roles
from handlers.common import BTN_DRAFTS, BTN_MY_PROPOSALS, Label, main_menu
from handlers.proposals import render
from handlers.proposals.callbacks import PropCb
from handlers.proposals.card import open_button
from handlers.proposals.wizard import require_rt_head

router = Router(name=__name__)
router.message.filter(F.chat.type == "private")


def _title(p) -> str:
    return escape_html(p.title or _("(untitled)"))


@router.message(Command("draf"))
@router.message(Label(BTN_DRAFTS))
async def drafts(message: Message, state: FSMContext, session: AsyncSession, roles: Roles, settings: Settings) -> None:
    if not await require_rt_head(message, roles):
        return
    await state.clear()
    rows = await svc.drafts_of(session, roles.rt_head.rt_id, settings.current_fiscal_year())
    if not rows:
        await message.answer(
            _("No drafts and nothing to revise. Start a new proposal with /usulan."), reply_markup=main_menu(roles)
        )
        return
    lines = [_("<b>Your drafts and proposals to revise</b>")]
    buttons = []
    for p in rows:
        if p.status == "perlu_revisi":
            lines.append(_("🔁 {code} {title} — revision requested").format(code=p.code or "", title=_title(p)))
            label = _("✏️ Revise {code}").format(code=p.code or _title(p)[:20])
        else:
            lines.append(
                _("📝 {title} — draft, {amount}").format(title=_title(p), amount=format_rupiah(p.total_amount))
            )
            label = _("▶️ Continue: {title}").format(title=(p.title or _("(untitled)"))[:30])
        buttons.append([InlineKeyboardButton(text=label, callback_data=PropCb(action="open", id=p.id).pack())])
    await message.answer("\n".join(lines), reply_markup=InlineKeyboardMarkup(inline_keyboard=buttons))


@router.message(Command("usulanku"))
@router.message(Label(BTN_MY_PROPOSALS))
async def my_proposals(message: Message, session: AsyncSession, roles: Roles, settings: Settings) -> None:
    if not await require_rt_head(message, roles):
        return
    program = await programs.ensure(session, settings, settings.current_fiscal_year())
    rows = [
        p
        for p in await svc.list_for_rt(session, roles.rt_head.rt_id, program.fiscal_year)
        if p.status != "ditarik" or p.code
    ]
    position = await svc.budget_position(session, roles.rt_head.rt_id, program)
    lines = [_("<b>Proposals of {rt} in {year}</b>").format(rt=roles.rt_head.rt.label(), year=program.fiscal_year)]
    if not rows:
        lines.append(_("None yet. Start one with /usulan."))
    for p in rows:
        code = f"<code>{p.code}</code> " if p.code else ""
        lines.append(f"• {code}{_title(p)} — {format_rupiah(p.total_amount)} — {render.status_label(p.status)}")
    lines.append("")
    lines.append(
        _("Ceiling {ceiling}; counted {used}; remaining <b>{remaining}</b>.").format(
            ceiling=format_rupiah(position.ceiling),
            used=format_rupiah(position.counted_total),
            remaining=format_rupiah(position.remaining),
        )
    )
    # Each proposal with a code opens its card (history, progress, the report button).
    buttons = [[open_button(p)] for p in rows if p.code]
    if buttons:
        lines.append(_("Tap a proposal to see its card."))
    markup = InlineKeyboardMarkup(inline_keyboard=buttons) if buttons else main_menu(roles)
    await message.answer("\n".join(lines), reply_markup=markup)
