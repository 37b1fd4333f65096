"""/daftar: a Ketua RT registers — consent, name, own phone (contact button), kecamatan → kelurahan
→ RT, confirm. Each step survives a restart (FSM state lives in the database)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardRemove,
)
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.permissions import KETUA_RT, PETUGAS
from bot.domain.text import TextError, clean_text, escape_html, valid_person_name
from bot.domain.wilayah import parse_rt_number
from bot.services import registration
from bot.services.users import Roles
from handlers.common import (
    BACK_WORDS,
    BTN_BACK,
    BTN_REG_STATUS,
    BTN_REGISTER,
    BTN_SHARE_PHONE,
    NOT_FOR_STEP,
    TEXT_ANSWER,
    CbInt,
    Label,
    NavCb,
    chunk,
    drop_buttons,
    edit_or_send,
    main_menu,
    nav_reply_keyboard,
    nav_row,
    rt_place,
    stale_button,
    when,
)
from storage.models import User
from storage.repositories import wilayah

router = Router(name=__name__)
router.message.filter(F.chat.type == "private")


class Reg(StatesGroup):
    consent = State()
    name = State()
    phone = State()
    kecamatan = State()
    kelurahan = State()
    rt = State()
    confirm = State()


ORDER = [Reg.consent, Reg.name, Reg.phone, Reg.kecamatan, Reg.kelurahan, Reg.rt, Reg.confirm]


class RegCb(CallbackData, prefix="rg"):
    step: str  # consent | kec | kel | rt | confirm
    value: CbInt = 0


def consent_text(settings: Settings) -> str:
    return _(
        "<b>Before registering: your personal data</b>\n"
        "Under Law No. 27/2022 on Personal Data Protection (UU PDP) we ask for your consent.\n\n"
        "<b>What we store:</b> your full name, phone number, Telegram id, and later the photos and "
        "locations you send for proposals and progress reports.\n"
        "<b>Why:</b> to verify that you are the Ketua RT, to process your RT's {program} proposals, "
        "and to contact you about them.\n"
        "<b>Who sees it:</b> the kelurahan, kecamatan and city officers handling {program}. Residents "
        "never see your phone number.\n"
        "<b>How long:</b> while you are Ketua RT, and afterwards only what the programme's audit "
        "must keep (5 years).\n"
        "<b>Your rights:</b> to see, correct and delete your data, and to withdraw this consent.\n\n"
        "Do you agree?"
    ).format(program=escape_html(settings.program_name))


async def ask(step: State, message: Message, state: FSMContext, session: AsyncSession, settings: Settings) -> None:
    """Show the question of ``step`` and set the state to it."""
    await state.set_state(step)
    data = await state.get_data()
    if step == Reg.consent:
        kb = InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    InlineKeyboardButton(text=_("✅ I agree"), callback_data=RegCb(step="consent", value=1).pack()),
                    InlineKeyboardButton(
                        text=_("✖️ I do not agree"), callback_data=RegCb(step="consent", value=0).pack()
                    ),
                ]
            ]
        )
        await message.answer(consent_text(settings), reply_markup=kb)
    elif step == Reg.name:
        await message.answer(
            _("Step 1 of 4. Please type your <b>full name</b> as on your KTP."),
            reply_markup=nav_reply_keyboard(),
        )
    elif step == Reg.phone:
        await message.answer(
            _("Step 2 of 4. Tap the <b>📱 Send my phone number</b> button below to share your phone number."),
            reply_markup=nav_reply_keyboard([KeyboardButton(text=_(BTN_SHARE_PHONE), request_contact=True)]),
        )
    elif step == Reg.kecamatan:
        rows = [
            [InlineKeyboardButton(text=k.name, callback_data=RegCb(step="kec", value=k.id).pack())]
            for k in await wilayah.list_kecamatan(session)
        ]
        rows.append(nav_row())
        await message.answer(_("Thank you."), reply_markup=ReplyKeyboardRemove())
        await message.answer(
            _("Step 3 of 4. Choose your <b>kecamatan</b>:"), reply_markup=InlineKeyboardMarkup(inline_keyboard=rows)
        )
    elif step == Reg.kelurahan:
        kels = await wilayah.list_kelurahan(session, data["kecamatan_id"])
        buttons = [InlineKeyboardButton(text=k.name, callback_data=RegCb(step="kel", value=k.id).pack()) for k in kels]
        rows = [*chunk(buttons, 2), nav_row()]
        await message.answer(
            _("Choose your <b>kelurahan</b>:"), reply_markup=InlineKeyboardMarkup(inline_keyboard=rows)
        )
    elif step == Reg.rt:
        kel = await wilayah.get_kelurahan(session, data["kelurahan_id"])
        rts = await wilayah.list_rts(session, kel.id)
        buttons = [
            InlineKeyboardButton(text=f"{r.number:02d}", callback_data=RegCb(step="rt", value=r.id).pack()) for r in rts
        ]
        rows = [*chunk(buttons, 6), nav_row()]
        if rts:
            text = _("Step 4 of 4. Which <b>RT</b> in Kel. {kelurahan}? Tap its number, or type it (e.g. 5).")
        else:
            text = _(
                "No RT of Kel. {kelurahan} is on file yet. Please contact the kelurahan office, "
                "or go back and choose another kelurahan."
            )
        await message.answer(
            text.format(kelurahan=escape_html(kel.name)), reply_markup=InlineKeyboardMarkup(inline_keyboard=rows)
        )
    elif step == Reg.confirm:
        rt = await wilayah.get_rt(session, data["rt_id"])
        head = await registration.current_head(session, rt.id)
        lines = [
            _("<b>Please check your registration</b>"),
            _("Name: {name}").format(name=escape_html(data["full_name"])),
            _("Phone: {phone}").format(phone=escape_html(data["phone"])),
            _("Ketua RT of: {place}").format(place=rt_place(rt)),
        ]
        if head is not None:
            lines.append("")
            lines.append(
                _(
                    "⚠️ This RT already has a verified Ketua RT. If you are the new Ketua RT, send it "
                    "anyway: the officer will check and replace the old one."
                )
            )
        kb = InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    InlineKeyboardButton(
                        text=_("📨 Send registration"), callback_data=RegCb(step="confirm", value=1).pack()
                    )
                ],
                nav_row(),
            ]
        )
        await message.answer("\n".join(lines), reply_markup=kb)


async def show_status(message: Message, roles: Roles) -> bool:
    """Tell an already registered user where they stand; True if they may not register again."""
    if PETUGAS in roles.names:
        await message.answer(
            _("You are an officer; officers do not register as Ketua RT."), reply_markup=main_menu(roles)
        )
        return True
    if KETUA_RT in roles.names:
        await message.answer(
            _("You are already the verified Ketua RT of {place}.").format(place=rt_place(roles.rt_head.rt)),
            reply_markup=main_menu(roles),
        )
        return True
    if roles.pending is not None:
        await message.answer(
            _(
                "Your registration as Ketua RT of {place} was sent on {date} and is waiting for the officer's "
                "verification. I will tell you here as soon as it is decided."
            ).format(place=rt_place(roles.pending.rt), date=when(roles.pending.created_at)),
            reply_markup=main_menu(roles),
        )
        return True
    return False


@router.message(Command("daftar"))
@router.message(Label(BTN_REGISTER, BTN_REG_STATUS))
async def daftar(message: Message, state: FSMContext, session: AsyncSession, roles: Roles, settings: Settings) -> None:
    if await show_status(message, roles):
        await state.clear()
        return
    current = await state.get_state()
    step = next((s for s in ORDER if s.state == current), None)
    if step is not None:
        await message.answer(_("Let's continue your registration where you left off."))
        await ask(step, message, state, session, settings)
        return
    await state.clear()
    await ask(Reg.consent, message, state, session, settings)


# --- back navigation (inline button, reply button, or typed word) -------------------------------


async def go_back(message: Message, state: FSMContext, session: AsyncSession, settings: Settings) -> None:
    current = await state.get_state()
    idx = next((i for i, s in enumerate(ORDER) if s.state == current), 0)
    await ask(ORDER[max(idx - 1, 0)], message, state, session, settings)


@router.message(StateFilter(Reg), Label(BTN_BACK))
@router.message(StateFilter(Reg), F.text.lower().in_(BACK_WORDS))
async def back_text(message: Message, state: FSMContext, session: AsyncSession, settings: Settings) -> None:
    await go_back(message, state, session, settings)


@router.callback_query(StateFilter(Reg), NavCb.filter(F.action == "back"))
async def back_button(query: CallbackQuery, state: FSMContext, session: AsyncSession, settings: Settings) -> None:
    await query.answer()
    await drop_buttons(query.message)
    await go_back(query.message, state, session, settings)


# --- consent ------------------------------------------------------------------------------------


@router.callback_query(Reg.consent, RegCb.filter(F.step == "consent"))
async def consent_answer(
    query: CallbackQuery,
    callback_data: RegCb,
    state: FSMContext,
    session: AsyncSession,
    settings: Settings,
    roles: Roles,
) -> None:
    await query.answer()
    await drop_buttons(query.message)
    if not callback_data.value:
        await state.clear()
        await query.message.answer(
            _(
                "Understood. Nothing was stored. You can still use the bot as a resident; "
                "to register later, tap 📝 Register as RT head."
            ),
            reply_markup=main_menu(roles),
        )
        return
    await state.update_data(consent=True)
    await ask(Reg.name, query.message, state, session, settings)


@router.message(Reg.consent, *NOT_FOR_STEP)
async def consent_wrong(message: Message) -> None:
    await message.answer(_("Please tap <b>✅ I agree</b> or <b>✖️ I do not agree</b> on the message above."))


# --- name ---------------------------------------------------------------------------------------


@router.message(Reg.name, *TEXT_ANSWER)
async def name_given(message: Message, state: FSMContext, session: AsyncSession, settings: Settings) -> None:
    try:
        name = clean_text(message.text, 120)
    except TextError:
        name = ""
    if not valid_person_name(name):
        await message.answer(_("That does not look like a name. Please type your full name, e.g. <i>Budi Santoso</i>."))
        return
    await state.update_data(full_name=name)
    await ask(Reg.phone, message, state, session, settings)


@router.message(Reg.name, *NOT_FOR_STEP)
async def name_wrong(message: Message) -> None:
    await message.answer(_("Please type your full name as text, e.g. <i>Budi Santoso</i>."))


# --- phone --------------------------------------------------------------------------------------


@router.message(Reg.phone, F.contact)
async def phone_given(message: Message, state: FSMContext, session: AsyncSession, settings: Settings) -> None:
    contact = message.contact
    if contact.user_id != message.from_user.id:
        await message.answer(
            _("That is someone else's contact. Please tap <b>📱 Send my phone number</b> to share your own number.")
        )
        return
    phone = contact.phone_number.strip()
    if not phone.startswith("+"):
        phone = "+" + phone
    await state.update_data(phone=phone)
    await ask(Reg.kecamatan, message, state, session, settings)


@router.message(Reg.phone, *NOT_FOR_STEP)
async def phone_wrong(message: Message) -> None:
    await message.answer(
        _(
            "Please do not type the number: tap the <b>📱 Send my phone number</b> button at the bottom of the "
            "screen. (If you cannot see it, tap the keyboard icon ⌨️ next to the text box.)"
        ),
        reply_markup=nav_reply_keyboard([KeyboardButton(text=_(BTN_SHARE_PHONE), request_contact=True)]),
    )


# --- kecamatan → kelurahan → RT -----------------------------------------------------------------


@router.callback_query(Reg.kecamatan, RegCb.filter(F.step == "kec"))
async def kecamatan_chosen(
    query: CallbackQuery, callback_data: RegCb, state: FSMContext, session: AsyncSession, settings: Settings
) -> None:
    kec = await wilayah.get_kecamatan(session, callback_data.value)
    if kec is None:
        await stale_button(query, session)
        return
    await query.answer()
    await edit_or_send(query.message, _("Kecamatan: <b>{name}</b>").format(name=escape_html(kec.name)))
    await state.update_data(kecamatan_id=kec.id)
    await ask(Reg.kelurahan, query.message, state, session, settings)


@router.callback_query(Reg.kelurahan, RegCb.filter(F.step == "kel"))
async def kelurahan_chosen(
    query: CallbackQuery, callback_data: RegCb, state: FSMContext, session: AsyncSession, settings: Settings
) -> None:
    data = await state.get_data()
    kel = await wilayah.get_kelurahan(session, callback_data.value)
    if kel is None or kel.kecamatan_id != data.get("kecamatan_id"):
        await stale_button(query, session)
        return
    await query.answer()
    await edit_or_send(query.message, _("Kelurahan: <b>{name}</b>").format(name=escape_html(kel.name)))
    await state.update_data(kelurahan_id=kel.id)
    await ask(Reg.rt, query.message, state, session, settings)


async def _rt_chosen(
    message: Message, rt_id: int, state: FSMContext, session: AsyncSession, settings: Settings
) -> None:
    await state.update_data(rt_id=rt_id)
    await ask(Reg.confirm, message, state, session, settings)


@router.callback_query(Reg.rt, RegCb.filter(F.step == "rt"))
async def rt_button(
    query: CallbackQuery, callback_data: RegCb, state: FSMContext, session: AsyncSession, settings: Settings
) -> None:
    data = await state.get_data()
    rt = await wilayah.get_rt(session, callback_data.value)
    if rt is None or rt.kelurahan_id != data.get("kelurahan_id"):
        await stale_button(query, session)
        return
    await query.answer()
    await edit_or_send(query.message, _("RT: <b>{rt}</b>").format(rt=rt.label()))
    await _rt_chosen(query.message, rt.id, state, session, settings)


@router.message(Reg.rt, *TEXT_ANSWER)
async def rt_typed(message: Message, state: FSMContext, session: AsyncSession, settings: Settings) -> None:
    data = await state.get_data()
    number = parse_rt_number(message.text)
    rt = await wilayah.find_rt(session, data["kelurahan_id"], number) if number else None
    if rt is None:
        kel = await wilayah.get_kelurahan(session, data["kelurahan_id"])
        if number is None:
            text = _("Please type only the RT number, e.g. <b>5</b> or <b>RT 05</b>, or tap a number above.")
        else:
            text = _("There is no RT {number} in Kel. {kelurahan}. Please check the number, or tap one above.")
        await message.answer(text.format(number=f"{number:02d}" if number else "", kelurahan=escape_html(kel.name)))
        return
    await _rt_chosen(message, rt.id, state, session, settings)


@router.message(StateFilter(Reg.kecamatan, Reg.kelurahan, Reg.rt, Reg.confirm), *NOT_FOR_STEP)
async def choose_with_buttons(message: Message) -> None:
    await message.answer(_("Please choose by tapping one of the buttons above, or type /batal to stop."))


# --- confirm ------------------------------------------------------------------------------------


@router.callback_query(Reg.confirm, RegCb.filter(F.step == "confirm"))
async def confirm(
    query: CallbackQuery, state: FSMContext, session: AsyncSession, user: User, roles: Roles, settings: Settings
) -> None:
    data = await state.get_data()
    if not all(k in data for k in ("full_name", "phone", "rt_id", "consent")):
        await stale_button(query, session)
        return
    try:
        reg = await registration.submit(
            session, user.id, data["full_name"], data["phone"], data["rt_id"], settings.admin_ids
        )
    except registration.AlreadyRegistered:
        await query.answer(_("Your registration was already sent."), show_alert=True)
        await state.clear()
        return
    except registration.UnknownRT:
        await stale_button(query, session)
        return
    await state.clear()
    await query.answer(_("Sent."))
    await drop_buttons(query.message)
    roles = Roles(is_admin=roles.is_admin, officer=roles.officer, rt_head=None, pending=reg)
    await query.message.answer(
        _(
            "📨 Your registration as Ketua RT of {place} has been sent.\n"
            "Status: <b>waiting for verification</b> by the kelurahan officer. "
            "I will tell you here as soon as it is decided; there is nothing else you need to do now."
        ).format(place=rt_place(reg.rt)),
        reply_markup=main_menu(roles),
    )


@router.callback_query(RegCb.filter())
async def reg_stale(query: CallbackQuery, session: AsyncSession) -> None:
    await stale_button(query, session)
