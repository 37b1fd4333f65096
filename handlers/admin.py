"""/petugas (admins only): appoint an officer by Telegram id or shared contact with a scope —
one kelurahan, one kecamatan, or the whole city — list officers, and revoke."""

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
from bot.domain.permissions import Forbidden, Scope
from bot.domain.text import escape_html
from bot.services import officers
from bot.services.users import Roles
from handlers.common import (
    BTN_OFFICERS,
    NOT_FOR_STEP,
    TEXT_ANSWER,
    Label,
    cancel_row,
    chunk,
    drop_buttons,
    edit_or_send,
    parse_cb_int,
    stale_button,
)
from storage.models import SCOPE_KECAMATAN, SCOPE_KELURAHAN, SCOPE_KOTA, Officer, User
from storage.repositories import wilayah

router = Router(name=__name__)
router.message.filter(F.chat.type == "private")


class AdminCb(CallbackData, prefix="ad"):
    action: str  # new | list | scope | kec | kel | revoke | revoke_ok
    value: str = ""


class Appoint(StatesGroup):
    who = State()
    scope = State()
    kecamatan = State()
    kelurahan = State()


def scope_label(o: Officer) -> str:
    if o.scope == SCOPE_KOTA:
        return _("the whole city")
    if o.scope == SCOPE_KECAMATAN:
        return _("Kec. {name}").format(name=escape_html(o.kecamatan.name))
    return _("Kel. {name}").format(name=escape_html(o.kelurahan.name))


async def _admin_only(event: Message | CallbackQuery, user: User, settings: Settings, session: AsyncSession) -> bool:
    if settings.is_admin(user.id):
        return True
    await officers.record_denied(session, user.id, "officer.menu")
    text = _("This menu is for administrators only.")
    if isinstance(event, CallbackQuery):
        await event.answer(text, show_alert=True)
    else:
        await event.answer(text)
    return False


@router.message(Command("petugas"))
@router.message(Label(BTN_OFFICERS))
async def petugas(message: Message, user: User, settings: Settings, session: AsyncSession, state: FSMContext) -> None:
    if not await _admin_only(message, user, settings, session):
        return
    await state.clear()
    kb = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=_("➕ Appoint an officer"), callback_data=AdminCb(action="new").pack())],
            [InlineKeyboardButton(text=_("📋 List of officers"), callback_data=AdminCb(action="list").pack())],
        ]
    )
    await message.answer(_("<b>Officers</b>\nWhat would you like to do?"), reply_markup=kb)


@router.callback_query(AdminCb.filter(F.action == "list"))
async def list_officers(query: CallbackQuery, user: User, settings: Settings, session: AsyncSession) -> None:
    if not await _admin_only(query, user, settings, session):
        return
    await query.answer()
    rows = await officers.list_active(session)
    if not rows:
        await query.message.answer(_("No officers yet. Tap ➕ Appoint an officer to add one."))
        return
    for o in rows:
        kb = InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    InlineKeyboardButton(
                        text=_("🚫 Revoke"), callback_data=AdminCb(action="revoke", value=str(o.id)).pack()
                    )
                ]
            ]
        )
        await query.message.answer(
            _("👮 {name} (id {id}) — {scope}").format(
                name=escape_html(o.user.display_name()), id=o.user_id, scope=scope_label(o)
            ),
            reply_markup=kb,
        )


@router.callback_query(AdminCb.filter(F.action == "revoke"))
async def revoke_ask(
    query: CallbackQuery, callback_data: AdminCb, user: User, settings: Settings, session: AsyncSession
) -> None:
    if not await _admin_only(query, user, settings, session):
        return
    await query.answer()
    kb = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("Yes, revoke"), callback_data=AdminCb(action="revoke_ok", value=callback_data.value).pack()
                ),
                InlineKeyboardButton(text=_("No"), callback_data=AdminCb(action="list").pack()),
            ]
        ]
    )
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=kb)
    elif query.message is not None:  # the officers list is out of reach: ask in a new message
        await query.message.answer(_("Revoke this officer?"), reply_markup=kb)


@router.callback_query(AdminCb.filter(F.action == "revoke_ok"))
async def revoke_do(
    query: CallbackQuery, callback_data: AdminCb, user: User, settings: Settings, session: AsyncSession
) -> None:
    if not await _admin_only(query, user, settings, session):
        return
    try:
        officer_id = parse_cb_int(callback_data.value)
        if officer_id is None:
            raise officers.NotFound(callback_data.value)
        officer = await officers.revoke(session, user.id, settings.admin_ids, officer_id)
    except officers.NotFound:
        await query.answer(_("This officer was already revoked."), show_alert=True)
        await drop_buttons(query.message)
        return
    await query.answer(_("Revoked."))
    await edit_or_send(
        query.message, _("🚫 {name} is no longer an officer.").format(name=escape_html(officer.user.display_name()))
    )


@router.callback_query(AdminCb.filter(F.action == "new"))
async def appoint_start(
    query: CallbackQuery, user: User, settings: Settings, session: AsyncSession, state: FSMContext
) -> None:
    if not await _admin_only(query, user, settings, session):
        return
    await query.answer()
    await state.set_state(Appoint.who)
    await query.message.answer(
        _(
            "Who should become an officer? Send their <b>Telegram user id</b> (a number), or share their "
            "contact (📎 → Contact). They must have a Telegram account."
        ),
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[cancel_row()]),
    )


async def _ask_scope(message: Message, state: FSMContext) -> None:
    await state.set_state(Appoint.scope)
    kb = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("One kelurahan"), callback_data=AdminCb(action="scope", value=SCOPE_KELURAHAN).pack()
                )
            ],
            [
                InlineKeyboardButton(
                    text=_("One kecamatan"), callback_data=AdminCb(action="scope", value=SCOPE_KECAMATAN).pack()
                )
            ],
            [
                InlineKeyboardButton(
                    text=_("The whole city"), callback_data=AdminCb(action="scope", value=SCOPE_KOTA).pack()
                )
            ],
            cancel_row(),
        ]
    )
    await message.answer(_("Which area will they handle?"), reply_markup=kb)


@router.message(Appoint.who, F.contact)
async def appoint_contact(message: Message, state: FSMContext) -> None:
    contact = message.contact
    if not contact.user_id:
        await message.answer(_("This contact has no Telegram account. Send their Telegram user id instead."))
        return
    await state.update_data(user_id=contact.user_id, first_name=contact.first_name or "")
    await _ask_scope(message, state)


@router.message(Appoint.who, *TEXT_ANSWER)
async def appoint_id(message: Message, state: FSMContext) -> None:
    text = message.text.strip()
    if not text.isdigit() or not 0 < int(text) < 2**53:
        await message.answer(
            _("A Telegram user id is a number, e.g. <code>123456789</code>. Send the number, or share their contact.")
        )
        return
    await state.update_data(user_id=int(text), first_name="")
    await _ask_scope(message, state)


@router.message(Appoint.who, *NOT_FOR_STEP)
async def appoint_who_wrong(message: Message) -> None:
    await message.answer(_("Send a Telegram user id (a number) or share a contact, or /batal to stop."))


async def _finish(
    query: CallbackQuery,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    settings: Settings,
    roles: Roles,
    scope: Scope,
) -> None:
    data = await state.get_data()
    if "user_id" not in data:
        await stale_button(query, session)
        return
    try:
        officer = await officers.appoint(
            session, user.id, settings.admin_ids, data["user_id"], scope, data.get("first_name", "")
        )
    except Forbidden:
        await query.answer(_("This menu is for administrators only."), show_alert=True)
        return
    except officers.NotFound:
        await stale_button(query, session)
        return
    await state.clear()
    await query.answer(_("Saved."))
    await edit_or_send(
        query.message,
        _("👮 Officer appointed: id {id} for {scope}. They have been told.").format(
            id=officer.user_id, scope=scope_label(officer)
        )
    )


@router.callback_query(Appoint.scope, AdminCb.filter(F.action == "scope"))
async def appoint_scope(
    query: CallbackQuery,
    callback_data: AdminCb,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    settings: Settings,
    roles: Roles,
) -> None:
    if not await _admin_only(query, user, settings, session):
        return
    level = callback_data.value
    if level == SCOPE_KOTA:
        await _finish(query, state, session, user, settings, roles, Scope(SCOPE_KOTA, None, None))
        return
    if level not in (SCOPE_KECAMATAN, SCOPE_KELURAHAN):
        await stale_button(query, session)
        return
    await state.update_data(level=level)
    await state.set_state(Appoint.kecamatan)
    await query.answer()
    rows = [
        [InlineKeyboardButton(text=k.name, callback_data=AdminCb(action="kec", value=str(k.id)).pack())]
        for k in await wilayah.list_kecamatan(session)
    ]
    rows.append(cancel_row())
    await edit_or_send(query.message, _("Choose the kecamatan:"), InlineKeyboardMarkup(inline_keyboard=rows))


@router.callback_query(Appoint.kecamatan, AdminCb.filter(F.action == "kec"))
async def appoint_kecamatan(
    query: CallbackQuery,
    callback_data: AdminCb,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    settings: Settings,
    roles: Roles,
) -> None:
    if not await _admin_only(query, user, settings, session):
        return
    kec = await wilayah.get_kecamatan(session, parse_cb_int(callback_data.value) or 0)
    if kec is None:
        await stale_button(query, session)
        return
    data = await state.get_data()
    if data.get("level") == SCOPE_KECAMATAN:
        await _finish(query, state, session, user, settings, roles, Scope(SCOPE_KECAMATAN, kec.id, None))
        return
    await state.update_data(kecamatan_id=kec.id)
    await state.set_state(Appoint.kelurahan)
    await query.answer()
    buttons = [
        InlineKeyboardButton(text=k.name, callback_data=AdminCb(action="kel", value=str(k.id)).pack())
        for k in await wilayah.list_kelurahan(session, kec.id)
    ]
    await edit_or_send(
        query.message,
        _("Choose the kelurahan:"),
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[*chunk(buttons, 2), cancel_row()]),
    )


@router.callback_query(Appoint.kelurahan, AdminCb.filter(F.action == "kel"))
async def appoint_kelurahan(
    query: CallbackQuery,
    callback_data: AdminCb,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    settings: Settings,
    roles: Roles,
) -> None:
    if not await _admin_only(query, user, settings, session):
        return
    data = await state.get_data()
    kel = await wilayah.get_kelurahan(session, parse_cb_int(callback_data.value) or 0)
    if kel is None or kel.kecamatan_id != data.get("kecamatan_id"):
        await stale_button(query, session)
        return
    await _finish(query, state, session, user, settings, roles, Scope(SCOPE_KELURAHAN, kel.kecamatan_id, kel.id))


@router.message(Appoint.scope, *NOT_FOR_STEP)
@router.message(Appoint.kecamatan, *NOT_FOR_STEP)
@router.message(Appoint.kelurahan, *NOT_FOR_STEP)
async def appoint_use_buttons(message: Message) -> None:
    await message.answer(_("Please choose by tapping one of the buttons above, or type /batal to stop."))


@router.callback_query(AdminCb.filter())
async def admin_stale(query: CallbackQuery, user: User, settings: Settings, session: AsyncSession) -> None:
    if not await _admin_only(query, user, settings, session):
        return
    await stale_button(query, session)
