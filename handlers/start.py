"""/start, /bantuan, /batal and /bahasa: greeting, role menu, help, cancel, language."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandStart, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.permissions import ADMIN, KETUA_RT, PETUGAS
from bot.domain.text import escape_html
from bot.i18n import LANGUAGES
from bot.services import users
from bot.services.users import Roles
from handlers.common import (
    BTN_HELP,
    BTN_LANGUAGE,
    CANCEL_WORDS,
    Label,
    NavCb,
    drop_buttons,
    edit_or_send,
    main_menu,
    rt_place,
)
from storage.models import User

router = Router(name=__name__)
router.message.filter(F.chat.type == "private")


class LangCb(CallbackData, prefix="lang"):
    code: str


def _role_line(roles: Roles) -> str:
    if ADMIN in roles.names:
        return _("You are registered as an <b>administrator</b>.")
    if PETUGAS in roles.names:
        return _("You are registered as an <b>officer</b>.")
    if KETUA_RT in roles.names:
        return _("You are registered as <b>Ketua RT</b> of {place}.").format(place=rt_place(roles.rt_head.rt))
    if roles.pending is not None:
        return _("Your Ketua RT registration for {place} is waiting for verification.").format(
            place=rt_place(roles.pending.rt)
        )
    return _("Are you a Ketua RT? Tap <b>📝 Register as RT head</b> below.")


@router.message(CommandStart())
async def start(message: Message, state: FSMContext, roles: Roles, user: User, settings: Settings) -> None:
    await state.clear()
    text = _(
        "Hello, {name}! 👋\n"
        "This is the {program} bot: RT heads submit proposals and report their work here, "
        "residents follow how their RT's money is used, and officers review."
    ).format(name=escape_html(user.first_name or ""), program=escape_html(settings.program_name))
    await message.answer(f"{text}\n\n{_role_line(roles)}", reply_markup=main_menu(roles))


def help_text(roles: Roles) -> str:
    lines = [_("<b>What you can do</b>")]
    names = roles.names
    if KETUA_RT not in names and PETUGAS not in names:
        if roles.pending is not None:
            lines.append(_("/daftar — see your Ketua RT registration"))
        else:
            lines.append(_("/daftar — register as Ketua RT"))
    if KETUA_RT in names:
        lines.append(_("/usulan — make a new proposal for your RT"))
        lines.append(_("/draf — continue a draft, or fix a proposal the officer sent back"))
        lines.append(_("/usulanku — your RT's proposals this year and the remaining ceiling"))
        lines.append(_("/progres — report the progress of approved work, with photos and spending"))
        lines.append(_("/aspirasi — read the ideas residents sent to your RT"))
        lines.append(_("/musyawarah — let the RT's followers vote on candidate ideas"))
    if PETUGAS in names:
        lines.append(_("/tinjau — review proposals waiting in your area"))
        lines.append(_("/verifikasi — check and verify Ketua RT registrations"))
        lines.append(_("/verifikasi_progres — check progress reports and their photos"))
        lines.append(_("/ekspor — the recap of your area as an Excel file"))
    if ADMIN in names:
        lines.append(_("/petugas — appoint or revoke officers"))
        lines.append(_("/siaran — send a message to a role or an area"))
    lines.append(_("/cek — check any proposal by its code"))
    lines.append(_("/jelajah — browse the proposals of every RT"))
    if KETUA_RT not in names:
        lines.append(_("/aspirasi — send an idea to your RT head"))
    lines.append(_("/ikuti — follow an RT or a proposal; /berhenti — stop following"))
    lines.append(_("/pengaturan — which notices you get, and quiet hours"))
    lines.append(_("/dataku — what is stored about you; /hapusdata — delete it"))
    lines.append(_("/bahasa — change the language"))
    lines.append(_("/batal — stop what you are doing"))
    lines.append(_("/bantuan — this help"))
    lines.append("")
    lines.append(_("You can also just tap the buttons at the bottom of the screen."))
    return "\n".join(lines)


@router.message(Command("bantuan", "help"))
@router.message(Label(BTN_HELP))
async def help_(message: Message, roles: Roles) -> None:
    await message.answer(help_text(roles), reply_markup=main_menu(roles))


@router.message(Command("batal", "cancel"))
@router.message(StateFilter("*"), F.text.lower().in_(CANCEL_WORDS))
async def cancel(message: Message, state: FSMContext, roles: Roles) -> None:
    current = await state.get_state()
    await state.clear()
    if current is None:
        text = _("There is nothing to cancel.")
    elif current.startswith("Usulan:"):
        text = _("Stopped. Your draft is kept: continue any time with /draf.")
    else:
        text = _("Cancelled. Nothing was saved.")
    await message.answer(text, reply_markup=main_menu(roles))


@router.callback_query(NavCb.filter(F.action == "cancel"))
async def cancel_button(query: CallbackQuery, state: FSMContext, roles: Roles) -> None:
    current = await state.get_state()
    await state.clear()
    await query.answer(_("Cancelled."))
    if query.message:
        await drop_buttons(query.message)
        if current is not None and current.startswith("Usulan:"):
            text = _("Stopped. Your draft is kept: continue any time with /draf.")
        else:
            text = _("Cancelled. Nothing was saved.")
        await query.message.answer(text, reply_markup=main_menu(roles))


@router.message(Command("bahasa", "language"))
@router.message(Label(BTN_LANGUAGE))
async def language(message: Message) -> None:
    buttons = [
        [InlineKeyboardButton(text=name, callback_data=LangCb(code=code).pack())] for code, name in LANGUAGES.items()
    ]
    await message.answer(_("Choose your language:"), reply_markup=InlineKeyboardMarkup(inline_keyboard=buttons))


@router.callback_query(LangCb.filter())
async def language_chosen(
    query: CallbackQuery, callback_data: LangCb, session: AsyncSession, user: User, roles: Roles, i18n: I18n
) -> None:
    if callback_data.code not in LANGUAGES:
        await query.answer(_("This language is not available."), show_alert=True)
        return
    await users.set_language(session, user, callback_data.code)
    with i18n.use_locale(callback_data.code):
        await query.answer()
        if query.message:
            await edit_or_send(query.message, _("Language: {name}").format(name=LANGUAGES[callback_data.code]))
            await query.message.answer(_("Done. I will write to you in this language."), reply_markup=main_menu(roles))
