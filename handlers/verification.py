"""/verifikasi: officers check pending Ketua RT registrations in their scope and decide."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.permissions import Forbidden
from bot.domain.text import TextError, clean_text, escape_html
from bot.services import registration
from bot.services.users import Roles
from handlers.common import (
    BTN_VERIFY,
    NOT_FOR_STEP,
    TEXT_ANSWER,
    CbInt,
    Label,
    cancel_row,
    drop_buttons,
    edit_or_send,
    main_menu,
    rt_place,
    when,
)
from storage.models import RTHead, User

router = Router(name=__name__)
router.message.filter(F.chat.type == "private")

PAGE = 5


class VerifyCb(CallbackData, prefix="vf"):
    action: str  # list | ok | no
    id: CbInt = 0  # registration id, or the page offset for "list"


class Verify(StatesGroup):
    reason = State()


def card(reg: RTHead, current: RTHead | None) -> str:
    lines = [
        _("<b>Ketua RT registration</b> #{id}").format(id=reg.id),
        _("Name: {name}").format(name=escape_html(reg.full_name)),
        _("Phone: {phone}").format(phone=escape_html(reg.phone)),
        _("RT: {place}").format(place=rt_place(reg.rt)),
        _("Telegram: {tg}").format(
            tg=escape_html(reg.user.display_name())
            + (f" (@{escape_html(reg.user.username)})" if reg.user.username else "")
        ),
        _("Sent: {date}").format(date=when(reg.created_at)),
    ]
    if current is not None and current.id != reg.id:
        lines.append(
            _("⚠️ This RT already has a verified Ketua RT: {name}. Approving replaces them.").format(
                name=escape_html(current.full_name)
            )
        )
    return "\n".join(lines)


def card_keyboard(reg: RTHead) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text=_("✅ Approve"), callback_data=VerifyCb(action="ok", id=reg.id).pack()),
                InlineKeyboardButton(text=_("❌ Reject"), callback_data=VerifyCb(action="no", id=reg.id).pack()),
            ]
        ]
    )


async def send_queue(message: Message, session: AsyncSession, roles: Roles, offset: int = 0) -> None:
    scope = roles.scope
    if scope is None:
        await message.answer(_("This menu is for officers only."), reply_markup=main_menu(roles))
        return
    rows, total = await registration.pending_in_scope(session, scope, limit=PAGE, offset=offset)
    if total == 0:
        await message.answer(_("No registrations are waiting for verification. 👍"), reply_markup=main_menu(roles))
        return
    await message.answer(_("{count} registration(s) waiting, oldest first:").format(count=total))
    for reg in rows:
        head = await registration.current_head(session, reg.rt_id)
        await message.answer(card(reg, head), reply_markup=card_keyboard(reg))
    if offset + PAGE < total:
        more = InlineKeyboardMarkup(
            inline_keyboard=[
                [InlineKeyboardButton(text=_("Next ▶"), callback_data=VerifyCb(action="list", id=offset + PAGE).pack())]
            ]
        )
        await message.answer(
            _("Showing {a}–{b} of {total}.").format(a=offset + 1, b=offset + len(rows), total=total), reply_markup=more
        )


@router.message(Command("verifikasi"))
@router.message(Label(BTN_VERIFY))
async def verifikasi(message: Message, session: AsyncSession, roles: Roles, state: FSMContext) -> None:
    await state.clear()
    await send_queue(message, session, roles)


@router.callback_query(VerifyCb.filter(F.action == "list"))
async def verifikasi_page(query: CallbackQuery, callback_data: VerifyCb, session: AsyncSession, roles: Roles) -> None:
    await query.answer()
    await send_queue(query.message, session, roles, max(callback_data.id, 0))


async def _decide(
    query: CallbackQuery,
    session: AsyncSession,
    user: User,
    roles: Roles,
    reg_id: int,
    approve: bool,
    reason: str | None,
    reply_to: Message,
) -> None:
    try:
        decision = await registration.decide(session, user.id, roles, reg_id, approve, reason)
    except Forbidden:
        text = _("You may not decide on this registration: it is outside your area. The attempt was recorded.")
        if query is not None:
            await query.answer(text, show_alert=True)
        else:
            await reply_to.answer(text)
        return
    except registration.AlreadyDecided as exc:
        reg = exc.registration
        text = _("This registration was already decided ({status}).").format(status=reg.status if reg else "-")
        if query is not None:
            await query.answer(text, show_alert=True)
            await drop_buttons(query.message)
        else:
            await reply_to.answer(text)
        return
    reg = decision.registration
    verdict = (_("✅ Approved by you on {date}.") if approve else _("❌ Rejected by you on {date}.")).format(
        date=when(reg.decided_at)
    )
    if query is not None:
        await query.answer(_("Saved. The applicant has been told."))
        await edit_or_send(query.message, f"{card(reg, None)}\n\n{verdict}")
    else:
        await reply_to.answer(
            _("Registration #{id} of {name}: {verdict} The applicant has been told.").format(
                id=reg.id, name=escape_html(reg.full_name), verdict=verdict
            ),
            reply_markup=main_menu(roles),
        )


@router.callback_query(VerifyCb.filter(F.action == "ok"))
async def approve(
    query: CallbackQuery, callback_data: VerifyCb, session: AsyncSession, user: User, roles: Roles
) -> None:
    await _decide(query, session, user, roles, callback_data.id, True, None, query.message)


@router.callback_query(VerifyCb.filter(F.action == "no"))
async def reject_ask_reason(
    query: CallbackQuery, callback_data: VerifyCb, session: AsyncSession, user: User, roles: Roles, state: FSMContext
) -> None:
    # Check authority and status before asking for a reason, so nobody types a reason in vain.
    reg = await registration.get(session, callback_data.id)
    scope = roles.scope
    if reg is None or scope is None or not registration.in_scope(scope, reg):
        await registration.deny(session, user.id, "registration.reject", "rt_head", callback_data.id, "out_of_scope")
        await query.answer(
            _("You may not decide on this registration: it is outside your area. The attempt was recorded."),
            show_alert=True,
        )
        return
    if reg.status != "menunggu":
        await query.answer(
            _("This registration was already decided ({status}).").format(status=reg.status), show_alert=True
        )
        await drop_buttons(query.message)
        return
    await state.set_state(Verify.reason)
    await state.update_data(registration_id=reg.id)
    await query.answer()
    await query.message.answer(
        _("Why is the registration of {name} rejected? Type the reason; it will be sent to them.").format(
            name=escape_html(reg.full_name)
        ),
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[cancel_row()]),
    )


@router.message(Verify.reason, *TEXT_ANSWER)
async def reject_with_reason(
    message: Message, session: AsyncSession, user: User, roles: Roles, state: FSMContext
) -> None:
    try:
        reason = clean_text(message.text, 500)
    except TextError as exc:
        if exc.kind == "too_long":
            await message.answer(_("Please keep the reason under 500 characters."))
        else:
            await message.answer(_("Please type the reason for rejecting."))
        return
    data = await state.get_data()
    await state.clear()
    await _decide(None, session, user, roles, data["registration_id"], False, reason, message)


@router.message(Verify.reason, *NOT_FOR_STEP)
async def reject_reason_wrong(message: Message) -> None:
    await message.answer(_("Please type the reason for rejecting as text, or /batal to stop."))
