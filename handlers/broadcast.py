"""/siaran (admins only): pick an audience (a role, or an RT / kelurahan / kecamatan), type the
message, see it exactly as recipients will, then "📣 Send to N". The confirmation message becomes
the progress message ("Terkirim 120/499 · gagal 2"), edited by bot/notices_broadcast.py."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.permissions import Forbidden
from bot.notices_broadcast import broadcast_text, progress_text
from bot.services import broadcast as broadcasts
from bot.services import officers
from handlers.common import (
    BTN_BROADCAST,
    TEXT_ANSWER,
    Label,
    cancel_row,
    chunk,
    drop_buttons,
    edit_or_send,
    parse_cb_int,
    stale_button,
)
from storage.models import User
from storage.repositories import wilayah

router = Router(name=__name__)
router.message.filter(F.chat.type == "private")


class SiaranCb(CallbackData, prefix="sr"):
    action: str  # aud | kec | kel | send | cancel
    value: str = ""


class Siaran(StatesGroup):
    audience = State()
    text = State()
    confirm = State()


# An area audience in callback data: "kec.5" for the service's "kec:5" (the data's own separator is ":").
AREA_SEPARATOR = "."


def _area(kind: str, ident: int) -> str:
    return f"{kind}{AREA_SEPARATOR}{ident}"


def _btn(text: str, action: str, value: str = "") -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=SiaranCb(action=action, value=value).pack())


async def _admin_only(event: Message | CallbackQuery, user: User, settings: Settings, session: AsyncSession) -> bool:
    if settings.is_admin(user.id):
        return True
    await officers.record_denied(session, user.id, "broadcast")
    text = _("This menu is for administrators only.")
    if isinstance(event, CallbackQuery):
        await event.answer(text, show_alert=True)
    else:
        await event.answer(text)
    return False


@router.message(Command("siaran"))
@router.message(Label(BTN_BROADCAST))
async def siaran(message: Message, user: User, settings: Settings, session: AsyncSession, state: FSMContext) -> None:
    if not await _admin_only(message, user, settings, session):
        return
    await state.clear()
    await state.set_state(Siaran.audience)
    kb = InlineKeyboardMarkup(
        inline_keyboard=[
            [_btn(_("👤 All Ketua RT"), "aud", "heads")],
            [_btn(_("👮 All officers"), "aud", "officers")],
            [_btn(_("👥 Everyone who uses the bot"), "aud", "all")],
            [_btn(_("🏘 An area: kecamatan, kelurahan or RT"), "area")],
            cancel_row(),
        ]
    )
    await message.answer(_("📣 <b>Broadcast</b>\nWho should receive the message?"), reply_markup=kb)


@router.callback_query(SiaranCb.filter(F.action == "area"), Siaran.audience)
async def pick_kecamatan(query: CallbackQuery, session: AsyncSession) -> None:
    rows = [[_btn(k.name, "kec", str(k.id))] for k in await wilayah.list_kecamatan(session)]
    await edit_or_send(
        query.message, _("Choose the kecamatan."), InlineKeyboardMarkup(inline_keyboard=[*rows, cancel_row()])
    )
    await query.answer()


@router.callback_query(SiaranCb.filter(F.action == "kec"), Siaran.audience)
async def pick_kelurahan(query: CallbackQuery, callback_data: SiaranCb, session: AsyncSession) -> None:
    kec_id = parse_cb_int(callback_data.value)
    kec = await wilayah.get_kecamatan(session, kec_id) if kec_id is not None else None
    if kec is None:
        return await stale_button(query, session)
    rows = [[_btn(k.name, "kel", str(k.id))] for k in await wilayah.list_kelurahan(session, kec.id)]
    everyone = [_btn(_("Everyone in Kec. {name}").format(name=kec.name), "aud", _area("kec", kec.id))]
    await edit_or_send(
        query.message,
        _("Choose the kelurahan, or the whole kecamatan."),
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[everyone, *rows, cancel_row()]),
    )
    await query.answer()


@router.callback_query(SiaranCb.filter(F.action == "kel"), Siaran.audience)
async def pick_rt(query: CallbackQuery, callback_data: SiaranCb, session: AsyncSession) -> None:
    kel_id = parse_cb_int(callback_data.value)
    kel = await wilayah.get_kelurahan(session, kel_id) if kel_id is not None else None
    if kel is None:
        return await stale_button(query, session)
    buttons = [_btn(f"{rt.number:02d}", "aud", _area("rt", rt.id)) for rt in await wilayah.list_rts(session, kel.id)]
    everyone = [_btn(_("Everyone in Kel. {name}").format(name=kel.name), "aud", _area("kel", kel.id))]
    await edit_or_send(
        query.message,
        _("Choose an RT (its Ketua RT and followers), or the whole kelurahan."),
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[everyone, *chunk(buttons, 5), cancel_row()]),
    )
    await query.answer()


@router.callback_query(SiaranCb.filter(F.action == "aud"), Siaran.audience)
async def chosen(query: CallbackQuery, callback_data: SiaranCb, session: AsyncSession, state: FSMContext) -> None:
    audience = callback_data.value.replace(AREA_SEPARATOR, ":", 1)  # "kec.5" -> the service's "kec:5"
    try:
        found = await broadcasts.recipients(session, audience)
    except broadcasts.BadAudience:
        return await stale_button(query, session)
    await state.update_data(audience=audience)
    await state.set_state(Siaran.text)
    await drop_buttons(query.message)
    await query.message.answer(
        _(
            "The message will reach <b>{n}</b> people. Please type the message (plain text, at most "
            "{max} characters). /batal to stop."
        ).format(n=len(found.ids), max=broadcasts.MAX_TEXT)
    )
    await query.answer()


@router.message(Siaran.text, *TEXT_ANSWER)
async def typed(message: Message, session: AsyncSession, state: FSMContext) -> None:
    text = (message.text or "").strip()
    if len(text) > broadcasts.MAX_TEXT:
        await message.answer(
            _("The message is {n} characters long; the limit is {max}. Please shorten it and send it again.").format(
                n=len(text), max=broadcasts.MAX_TEXT
            )
        )
        return
    data = await state.get_data()
    found = await broadcasts.recipients(session, data["audience"])
    await state.update_data(text=text)
    await state.set_state(Siaran.confirm)
    await message.answer(_("Preview — recipients will see exactly this:"))
    await message.answer(broadcast_text(text))
    kb = InlineKeyboardMarkup(
        inline_keyboard=[
            [_btn(_("📣 Send to {n}").format(n=len(found.ids)), "send")],
            [_btn(_("✖️ Cancel"), "cancel")],
        ]
    )
    await message.answer(_("Send this message to {n} people?").format(n=len(found.ids)), reply_markup=kb)


@router.callback_query(SiaranCb.filter(F.action == "send"), Siaran.confirm)
async def send(
    query: CallbackQuery, user: User, settings: Settings, session: AsyncSession, state: FSMContext
) -> None:
    data = await state.get_data()
    shown = query.message
    if not isinstance(shown, Message) or shown.text is None:  # no question to edit: progress in a new message
        if not settings.is_admin(user.id):
            await query.answer(_("This menu is for administrators only."), show_alert=True)
            return
        shown = await query.bot.send_message(user.id, _("Sending…"))
    try:
        item = await broadcasts.create(
            session, user.id, settings.admin_ids, data["audience"], data["text"],
            progress_chat_id=shown.chat.id, progress_message_id=shown.message_id,
        )
    except Forbidden:
        await query.answer(_("This menu is for administrators only."), show_alert=True)
        return
    await state.clear()
    progress = broadcasts.Progress(item.total, 0, 0, 0, item.total)
    await shown.edit_text(progress_text(progress), reply_markup=None)
    await query.answer(_("Sending…"))


@router.callback_query(SiaranCb.filter(F.action == "cancel"))
async def cancel(query: CallbackQuery, state: FSMContext) -> None:
    await state.clear()
    await edit_or_send(query.message, _("Broadcast cancelled; nothing was sent."))
    await query.answer()


@router.callback_query(SiaranCb.filter())
async def stale(query: CallbackQuery, session: AsyncSession) -> None:
    await stale_button(query, session)
