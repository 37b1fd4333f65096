"""/aspirasi: residents send an idea to their RT head; the verified Ketua RT reads the RT's ideas
and decides on each (discuss at the musyawarah / became a proposal / cannot be followed up).

Resident's dialog: RT (the one they follow, else kecamatan → kelurahan → RT buttons) → text →
optional photo → optional location → share contact? → summary → Send. Thin: parse, call
``bot.services.aspirations``, render. Everything a user typed is escaped before it is shown.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
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
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.codes import format_code
from bot.domain.permissions import Forbidden
from bot.domain.text import EMPTY, TextError, escape_html
from bot.services import aspirations as svc
from bot.services import media as media_service
from bot.services import programs
from bot.services.media import MediaStore
from bot.services.users import Roles
from handlers.common import (
    BTN_CANCEL,
    BTN_IDEAS_INBOX,
    BTN_SEND_IDEA,
    N_,
    CbInt,
    Label,
    cancel_row,
    chunk,
    drop_buttons,
    edit_or_send,
    main_menu,
    rt_place,
    stale_button,
    when,
)
from handlers.media import fetch, incoming_file, send_photos
from storage.models import (
    ASPIRASI_BARU,
    ASPIRASI_DIBAHAS,
    ASPIRASI_DITOLAK,
    ASPIRASI_DIUSULKAN,
    RT,
    Aspiration,
    User,
)
from storage.repositories import wilayah

__all__ = ["AspCb", "router", "status_label"]

router = Router(name=__name__)
router.message.filter(F.chat.type == "private")

BTN_SEND_LOCATION = N_("📍 Send my current location")  # same msgids as the proposal wizard
BTN_SKIP = N_("Skip ➡️")
EXCERPT = 60  # characters of an idea in the inbox list

STATUS_LABELS = {
    ASPIRASI_BARU: N_("new"),
    ASPIRASI_DIBAHAS: N_("will be discussed at the musyawarah"),
    ASPIRASI_DIUSULKAN: N_("became a proposal"),
    ASPIRASI_DITOLAK: N_("cannot be followed up"),
}
STATUS_ICONS = {ASPIRASI_BARU: "🆕", ASPIRASI_DIBAHAS: "🗣", ASPIRASI_DIUSULKAN: "📄", ASPIRASI_DITOLAK: "🚫"}
ACTION_LABELS = {
    svc.BAHAS: N_("🗣 Discuss at musyawarah"),
    svc.USULKAN: N_("📄 Became a proposal"),
    svc.TOLAK: N_("🚫 Cannot be followed up"),
}


def status_label(status: str) -> str:
    return _(STATUS_LABELS[status]) if status in STATUS_LABELS else status


class AspCb(CallbackData, prefix="asp"):
    """Resident: frt (followed RT ``id``), other, kec/kel/rt (``id``), skip_photo, share (``id`` 1/0),
    send. RT head: list (``page``), open/photo/loc (idea ``id``), bahas/usulkan/tolak (idea ``id``)."""

    action: str
    id: CbInt = 0
    page: CbInt = 0


class Asp(StatesGroup):
    rt_pick = State()
    kecamatan = State()
    kelurahan = State()
    rt = State()
    text = State()
    photo = State()
    location = State()
    contact = State()
    confirm = State()


class AspHead(StatesGroup):
    code = State()
    reason = State()


def _kb(*rows: list[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[list(r) for r in rows])


def _btn(text: str, action: str, id: int = 0, page: int = 0) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=AspCb(action=action, id=id, page=page).pack())


def _reply_kb(*rows: list[KeyboardButton]) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        keyboard=[*rows, [KeyboardButton(text=_(BTN_CANCEL))]], resize_keyboard=True, one_time_keyboard=False
    )


def limit_text(next_at) -> str:
    return _(
        "You have already sent {limit} ideas in the last 24 hours, the most allowed. "
        "You can send the next one from {when}."
    ).format(limit=svc.DAILY_LIMIT, when=when(next_at))


# --- entry --------------------------------------------------------------------------------------


@router.message(Command("aspirasi"))
@router.message(Label(BTN_SEND_IDEA, BTN_IDEAS_INBOX))
async def aspirasi(message: Message, state: FSMContext, session: AsyncSession, user: User, roles: Roles) -> None:
    await state.clear()
    if roles is not None and roles.rt_head is not None:
        await message.answer(**await inbox_message(session, roles, 0))
        return
    next_at = await svc.limit_reached(session, user.id)
    if next_at is not None:
        await message.answer(limit_text(next_at), reply_markup=main_menu(roles))
        return
    followed = await svc.followed_rts(session, user.id)
    if len(followed) == 1:
        await _rt_chosen(message, state, session, followed[0])
        return
    if followed:
        await state.set_state(Asp.rt_pick)
        rows = [[_btn(rt_place(rt), "frt", rt.id)] for rt in followed]
        rows.append([_btn(_("🗺 Another RT"), "other")])
        rows.append(cancel_row())
        await message.answer(_("💡 Which RT is your idea for?"), reply_markup=_kb(*rows))
        return
    await _ask_kecamatan(message, state, session)


async def _ask_kecamatan(message: Message, state: FSMContext, session: AsyncSession) -> None:
    await state.set_state(Asp.kecamatan)
    rows = [[_btn(k.name, "kec", k.id)] for k in await wilayah.list_kecamatan(session)]
    rows.append(cancel_row())
    await message.answer(
        _("💡 Send an idea to your Ketua RT. First, choose your <b>kecamatan</b>:"), reply_markup=_kb(*rows)
    )


@router.callback_query(Asp.rt_pick, AspCb.filter(F.action == "frt"))
async def followed_chosen(query: CallbackQuery, callback_data: AspCb, state: FSMContext, session: AsyncSession) -> None:
    rt = await wilayah.get_rt(session, callback_data.id)
    if rt is None:
        await stale_button(query, session)
        return
    await query.answer()
    await drop_buttons(query.message)
    await _rt_chosen(query.message, state, session, rt)


@router.callback_query(Asp.rt_pick, AspCb.filter(F.action == "other"))
async def other_rt(query: CallbackQuery, state: FSMContext, session: AsyncSession) -> None:
    await query.answer()
    await drop_buttons(query.message)
    await _ask_kecamatan(query.message, state, session)


@router.callback_query(Asp.kecamatan, AspCb.filter(F.action == "kec"))
async def kecamatan_chosen(
    query: CallbackQuery, callback_data: AspCb, state: FSMContext, session: AsyncSession
) -> None:
    kec = await wilayah.get_kecamatan(session, callback_data.id)
    if kec is None:
        await stale_button(query, session)
        return
    await query.answer()
    await state.update_data(kecamatan_id=kec.id)
    await state.set_state(Asp.kelurahan)
    buttons = [_btn(k.name, "kel", k.id) for k in await wilayah.list_kelurahan(session, kec.id)]
    await edit_or_send(
        query.message,
        _("Kecamatan: <b>{name}</b>. Choose your <b>kelurahan</b>:").format(name=escape_html(kec.name)),
        reply_markup=_kb(*chunk(buttons, 2), cancel_row()),
    )


@router.callback_query(Asp.kelurahan, AspCb.filter(F.action == "kel"))
async def kelurahan_chosen(
    query: CallbackQuery, callback_data: AspCb, state: FSMContext, session: AsyncSession
) -> None:
    data = await state.get_data()
    kel = await wilayah.get_kelurahan(session, callback_data.id)
    if kel is None or kel.kecamatan_id != data.get("kecamatan_id"):
        await stale_button(query, session)
        return
    await query.answer()
    await state.update_data(kelurahan_id=kel.id)
    await state.set_state(Asp.rt)
    buttons = [_btn(f"{r.number:02d}", "rt", r.id) for r in await wilayah.list_rts(session, kel.id)]
    await edit_or_send(
        query.message,
        _("Kel. {kelurahan}: which <b>RT</b>?").format(kelurahan=escape_html(kel.name)),
        reply_markup=_kb(*chunk(buttons, 6), cancel_row()),
    )


@router.callback_query(Asp.rt, AspCb.filter(F.action == "rt"))
async def rt_chosen(query: CallbackQuery, callback_data: AspCb, state: FSMContext, session: AsyncSession) -> None:
    data = await state.get_data()
    rt = await wilayah.get_rt(session, callback_data.id)
    if rt is None or rt.kelurahan_id != data.get("kelurahan_id"):
        await stale_button(query, session)
        return
    await query.answer()
    await drop_buttons(query.message)
    await _rt_chosen(query.message, state, session, rt)


@router.message(StateFilter(Asp.rt_pick, Asp.kecamatan, Asp.kelurahan, Asp.rt))
async def choose_with_buttons(message: Message) -> None:
    await message.answer(_("Please choose by tapping one of the buttons above, or type /batal to stop."))


async def _rt_chosen(message: Message, state: FSMContext, session: AsyncSession, rt: RT) -> None:
    await state.update_data(rt_id=rt.id)
    await state.set_state(Asp.text)
    lines = [
        _("💡 Your idea for {place}.").format(place=rt_place(rt)),
        _(
            "Please type it in one message (at most {max} characters): what the problem or the wish is, "
            "and where. Your Ketua RT sees only your first name."
        ).format(max=svc.TEXT_MAX),
    ]
    if await svc.head_user_id(session, rt.id) is None:
        lines.append("")
        lines.append(
            _(
                "ℹ️ {rt} has no verified Ketua RT on this bot yet. Your idea will be kept and will reach "
                "the Ketua RT as soon as one is verified."
            ).format(rt=rt.label())
        )
    await message.answer("\n".join(lines), reply_markup=_kb(cancel_row()))


# --- text, photo, location, contact ----------------------------------------------------------------


@router.message(StateFilter(Asp.text, Asp.photo, Asp.location, Asp.contact, Asp.confirm), Label(BTN_CANCEL))
async def cancel_label(message: Message, state: FSMContext, roles: Roles) -> None:
    await state.clear()
    await message.answer(_("Cancelled. Nothing was saved."), reply_markup=main_menu(roles))


async def _take_text(message: Message, state: FSMContext, text: str) -> bool:
    try:
        cleaned = svc.clean_idea(text)
    except TextError as e:
        if e.kind == EMPTY:
            await message.answer(_("Please type your idea as text, or /batal to stop."))
        else:
            await message.answer(
                _(
                    "Your text is {length} characters long; the limit is {max}. "
                    "Please shorten it and send it again. Nothing was saved."
                ).format(length=e.length, max=e.max_len)
            )
        return False
    await state.update_data(text=cleaned)
    return True


async def _ask_photo(message: Message, state: FSMContext) -> None:
    await state.set_state(Asp.photo)
    await message.answer(
        _("📷 Do you have a photo of it? Send <b>one photo</b> now, or tap <b>Skip ➡️</b>."),
        reply_markup=_reply_kb([KeyboardButton(text=_(BTN_SKIP))]),
    )


@router.message(Asp.text, F.text)
async def text_given(message: Message, state: FSMContext) -> None:
    if await _take_text(message, state, message.text):
        await _ask_photo(message, state)


@router.message(Asp.text, F.photo, F.caption)
async def photo_with_caption(
    message: Message, bot: Bot, state: FSMContext, session: AsyncSession, media_store: MediaStore
) -> None:
    if await _take_text(message, state, message.caption) and await _take_photo(
        message, bot, state, session, media_store
    ):
        await _ask_location(message, state)


@router.message(Asp.text)
async def text_wrong(message: Message) -> None:
    await message.answer(_("Please type your idea as text, or /batal to stop."))


async def _take_photo(
    message: Message, bot: Bot, state: FSMContext, session: AsyncSession, media_store: MediaStore
) -> bool:
    item = incoming_file(message)
    if item is None:
        return False
    try:
        stored = await fetch(bot, session, media_store, item, kind=media_service.KIND_PHOTO)
    except media_service.FileTooLarge:
        await message.answer(_("This photo is too large (the limit is 20 MB). Please send a smaller one, or skip."))
        return False
    except media_service.ImageTooLarge as exc:
        await message.answer(
            _(
                "This picture is too large to process (at most {limit} megapixels). Please send a smaller one, or skip."
            ).format(limit=exc.limit // 1_000_000)
        )
        return False
    except (media_service.NotAnImage, media_service.UnsupportedFile, media_service.EmptyFile):
        await message.answer(_("That is not a photo I can use. Please send a photo (JPEG or PNG), or skip."))
        return False
    await state.update_data(media_id=stored.id, file_id=item.file_id)
    return True


async def _ask_location(message: Message, state: FSMContext) -> None:
    await state.set_state(Asp.location)
    await message.answer(
        _(
            "📍 Optional: where is it? Tap <b>📍 Send my current location</b> when you are there "
            "(or 📎 → Location), or tap <b>Skip ➡️</b>."
        ),
        reply_markup=_reply_kb(
            [KeyboardButton(text=_(BTN_SEND_LOCATION), request_location=True)], [KeyboardButton(text=_(BTN_SKIP))]
        ),
    )


@router.message(Asp.photo, F.photo | F.document)
async def photo_given(
    message: Message, bot: Bot, state: FSMContext, session: AsyncSession, media_store: MediaStore
) -> None:
    if await _take_photo(message, bot, state, session, media_store):
        await _ask_location(message, state)


@router.message(Asp.photo, Label(BTN_SKIP))
async def photo_skipped(message: Message, state: FSMContext) -> None:
    await state.update_data(media_id=None, file_id=None)
    await _ask_location(message, state)


@router.message(Asp.photo)
async def photo_wrong(message: Message) -> None:
    await message.answer(_("Please send one photo, or tap <b>Skip ➡️</b>. (/batal stops.)"))


async def _ask_contact(message: Message, state: FSMContext) -> None:
    await state.set_state(Asp.contact)
    await message.answer(_("Thank you."), reply_markup=ReplyKeyboardRemove())
    await message.answer(
        _(
            "👤 Your Ketua RT will see only your <b>first name</b>. Do you also want to share your full name "
            "and your Telegram contact, so the Ketua RT can reply to you directly?"
        ),
        reply_markup=_kb(
            [_btn(_("✅ Yes, share my contact"), "share", 1)],
            [_btn(_("🙈 No, first name only"), "share", 0)],
            cancel_row(),
        ),
    )


@router.message(Asp.location, F.location)
async def location_given(message: Message, state: FSMContext) -> None:
    loc = message.location
    if not svc.valid_location(loc.latitude, loc.longitude):
        await message.answer(_("That location is not valid. Please send it again, or tap <b>Skip ➡️</b>."))
        return
    await state.update_data(latitude=loc.latitude, longitude=loc.longitude)
    await _ask_contact(message, state)


@router.message(Asp.location, Label(BTN_SKIP))
async def location_skipped(message: Message, state: FSMContext) -> None:
    await state.update_data(latitude=None, longitude=None)
    await _ask_contact(message, state)


@router.message(Asp.location)
async def location_wrong(message: Message) -> None:
    await message.answer(_("Please send a location, or tap <b>Skip ➡️</b>. (/batal stops.)"))


@router.callback_query(Asp.contact, AspCb.filter(F.action == "share"))
async def contact_chosen(
    query: CallbackQuery, callback_data: AspCb, state: FSMContext, session: AsyncSession, user: User
) -> None:
    await query.answer()
    await drop_buttons(query.message)
    await state.update_data(share_contact=bool(callback_data.id))
    await state.set_state(Asp.confirm)
    data = await state.get_data()
    rt = await wilayah.get_rt(session, data["rt_id"])
    if data.get("share_contact"):
        who = _("your full name ({name}) and your Telegram contact").format(name=escape_html(user.display_name()))
    else:
        who = _("your first name only ({name})").format(name=escape_html(user.first_name or ""))
    lines = [
        _("<b>Please check your idea</b>"),
        _("To: the Ketua RT of {place}").format(place=rt_place(rt)),
        "",
        escape_html(data["text"]),
        "",
        _("📷 Photo: {answer}").format(answer=_("yes") if data.get("media_id") else _("no")),
        _("📍 Location: {answer}").format(answer=_("yes") if data.get("latitude") is not None else _("no")),
        _("👤 The Ketua RT sees: {who}").format(who=who),
    ]
    await query.message.answer("\n".join(lines), reply_markup=_kb([_btn(_("📨 Send"), "send")], cancel_row()))


@router.message(Asp.contact)
async def contact_wrong(message: Message) -> None:
    await message.answer(_("Please choose by tapping one of the buttons above, or type /batal to stop."))


# --- send -------------------------------------------------------------------------------------------


@router.callback_query(Asp.confirm, AspCb.filter(F.action == "send"))
async def send(query: CallbackQuery, state: FSMContext, session: AsyncSession, user: User, roles: Roles) -> None:
    data = await state.get_data()
    if not data.get("rt_id") or not data.get("text"):
        await stale_button(query, session)
        return
    # Cleared first: the state change commits with the idea, so a second tap finds no dialog.
    await state.clear()
    try:
        sent = await svc.submit(
            session,
            user.id,
            data["rt_id"],
            data["text"],
            media_id=data.get("media_id"),
            telegram_file_id=data.get("file_id"),
            latitude=data.get("latitude"),
            longitude=data.get("longitude"),
            share_contact=bool(data.get("share_contact")),
        )
    except svc.LimitReached as e:
        await query.answer()
        await drop_buttons(query.message)
        await query.message.answer(limit_text(e.next_at), reply_markup=main_menu(roles))
        return
    except svc.AlreadySent:
        await query.answer(_("You have already sent this idea."), show_alert=True)
        await drop_buttons(query.message)
        return
    except (svc.UnknownRT, svc.BadLocation, TextError):
        await stale_button(query, session)
        return
    await query.answer(_("Sent."))
    await drop_buttons(query.message)
    rt = await wilayah.get_rt(session, data["rt_id"])
    if sent.head_known:
        text = _(
            "📨 Your idea has been sent to the Ketua RT of {place}. I will tell you here when the Ketua RT "
            "decides what to do with it."
        )
    else:
        text = _(
            "📨 Your idea for {place} is saved. The RT has no verified Ketua RT yet; it will reach the "
            "Ketua RT as soon as one is verified, and I will tell you here what they decide."
        )
    await query.message.answer(text.format(place=rt_place(rt)), reply_markup=main_menu(roles))


@router.callback_query(AspCb.filter(F.action == "send"))
async def send_again(query: CallbackQuery) -> None:
    """Send pressed again (a double tap, or an old summary): the dialog is over, nothing is stored."""
    await query.answer(
        _("This idea has already been sent or cancelled. To send a new one, use /aspirasi."), show_alert=True
    )


# --- the RT head's inbox ------------------------------------------------------------------------------


def _excerpt(text: str, n: int = EXCERPT) -> str:
    flat = " ".join(text.split())
    return escape_html(flat[:n] + ("…" if len(flat) > n else ""))


async def inbox_message(session: AsyncSession, roles: Roles, page: int) -> dict:
    rt = roles.rt_head.rt
    box = await svc.inbox(session, rt.id, page)
    lines = [_("💡 <b>Residents' ideas</b> for {place}").format(place=rt_place(rt))]
    if not box.total:
        lines.append(_("No resident has sent an idea yet. Residents send them with /aspirasi."))
        return {"text": "\n".join(lines)}
    counts = ", ".join(f"{STATUS_ICONS[s]} {status_label(s)}: {box.counts[s]}" for s in svc.STATUSES if box.counts[s])
    lines.append(counts)
    lines.append("")
    rows = []
    for i, row in enumerate(box.items, start=1 + box.page * svc.PAGE_SIZE):
        lines.append(f"{i}. {STATUS_ICONS.get(row.status, '')} {when(row.created_at)}\n   {_excerpt(row.text)}")
        rows.append([_btn(_("🔎 Open idea {n}").format(n=i), "open", row.id)])
    nav = []
    if box.page > 0:
        nav.append(_btn(_("⬅️ Newer"), "list", page=box.page - 1))
    if box.page + 1 < box.pages:
        nav.append(_btn(_("Older ➡️"), "list", page=box.page + 1))
    if nav:
        rows.append(nav)
    if box.pages > 1:
        lines.append("")
        lines.append(_("Page {page} of {pages}").format(page=box.page + 1, pages=box.pages))
    return {"text": "\n".join(lines), "reply_markup": _kb(*rows)}


async def card(session: AsyncSession, row: Aspiration) -> tuple[str, InlineKeyboardMarkup]:
    sender = await svc.sender_of(session, row)
    if sender.name is None:
        who = _("a resident who has deleted their data")
    elif sender.user_id is not None:
        who = _('{name} (shared their contact: <a href="tg://user?id={id}">write to them</a>)').format(
            name=escape_html(sender.name), id=sender.user_id
        )
    else:
        who = escape_html(sender.name)
    lines = [
        _("💡 <b>Idea from a resident</b> — {status}").format(status=status_label(row.status)),
        _("From: {who}").format(who=who),
        _("Sent: {date}").format(date=when(row.created_at)),
        "",
        escape_html(row.text),
    ]
    code = await svc.proposal_code_of(session, row)
    if code:
        lines.append("")
        lines.append(_("📄 Proposal: <b>{code}</b>").format(code=escape_html(code)))
    if row.reason:
        lines.append("")
        lines.append(_("Reason: {reason}").format(reason=escape_html(row.reason)))
    rows = []
    media = []
    if row.media_id is not None:
        media.append(_btn(_("🖼 Photo"), "photo", row.id))
    if row.latitude is not None:
        media.append(_btn(_("🗺 Location"), "loc", row.id))
    if media:
        rows.append(media)
    rows += [[_btn(_(ACTION_LABELS[a]), a, row.id)] for a in svc.allowed_actions(row.status)]
    rows.append([_btn(_("📋 All ideas"), "list")])
    return "\n".join(lines), _kb(*rows)


async def _head_row(query: CallbackQuery, callback_data: AspCb, session: AsyncSession, roles: Roles):
    if roles is None or roles.rt_head is None:
        await query.answer(_("Only the verified Ketua RT of this RT can do this."), show_alert=True)
        return None
    try:
        return await svc.get_for_head(session, query.from_user.id, roles, callback_data.id)
    except svc.AspirationNotFound:
        await stale_button(query, session)
    except Forbidden:
        await query.answer(_("This idea was sent to another RT. The attempt was recorded."), show_alert=True)
    return None


@router.callback_query(AspCb.filter(F.action == "list"))
async def list_page(query: CallbackQuery, callback_data: AspCb, session: AsyncSession, roles: Roles) -> None:
    if roles is None or roles.rt_head is None:
        await query.answer(_("Only the verified Ketua RT of this RT can do this."), show_alert=True)
        return
    await query.answer()
    await query.message.answer(**await inbox_message(session, roles, callback_data.page))


@router.callback_query(AspCb.filter(F.action == "open"))
async def open_card(
    query: CallbackQuery, callback_data: AspCb, state: FSMContext, session: AsyncSession, roles: Roles
) -> None:
    row = await _head_row(query, callback_data, session, roles)
    if row is None:
        return
    await query.answer()
    text, kb = await card(session, row)
    await query.message.answer(text, reply_markup=kb)


@router.callback_query(AspCb.filter(F.action == "photo"))
async def show_photo(
    query: CallbackQuery, callback_data: AspCb, bot: Bot, session: AsyncSession, roles: Roles, media_store: MediaStore
) -> None:
    row = await _head_row(query, callback_data, session, roles)
    if row is None:
        return
    if row.media_id is None:
        await query.answer(_("This idea has no photo."), show_alert=True)
        return
    await query.answer()

    await send_photos(bot, query.message.chat.id, media_store, [row], _("Photo of the idea"))


@router.callback_query(AspCb.filter(F.action == "loc"))
async def show_location(query: CallbackQuery, callback_data: AspCb, session: AsyncSession, roles: Roles) -> None:
    row = await _head_row(query, callback_data, session, roles)
    if row is None:
        return
    if row.latitude is None:
        await query.answer(_("This idea has no location."), show_alert=True)
        return
    await query.answer()
    await query.message.answer_location(row.latitude, row.longitude)


async def _decided(message: Message, session: AsyncSession, row: Aspiration) -> None:
    text, kb = await card(session, row)
    if row.user_id is None:  # the resident erased their data: nobody to tell
        saved = _("✅ Saved: {status}.")
    elif await svc.answer_held(session, row.id):
        saved = _("✅ Saved: {status}. The resident is told when their quiet hours end.")
    else:
        saved = _("✅ Saved: {status}. The resident is told.")
    await message.answer(saved.format(status=status_label(row.status)))
    await message.answer(text, reply_markup=kb)


def _refusal(e: Exception) -> str:
    if isinstance(e, svc.AlreadyDecided):
        return _("This idea is already marked: {status}.").format(status=status_label(e.status))
    return _("This idea was sent to another RT. The attempt was recorded.")


@router.callback_query(AspCb.filter(F.action == svc.BAHAS))
async def discuss(
    query: CallbackQuery, callback_data: AspCb, state: FSMContext, session: AsyncSession, user: User, roles: Roles
) -> None:
    if await _head_row(query, callback_data, session, roles) is None:
        return
    await state.clear()
    try:
        row = await svc.decide(session, user.id, roles, callback_data.id, svc.BAHAS)
    except (svc.AlreadyDecided, Forbidden) as e:
        await query.answer(_refusal(e), show_alert=True)
        return
    await query.answer()
    await drop_buttons(query.message)
    await _decided(query.message, session, row)


@router.callback_query(AspCb.filter(F.action.in_({svc.USULKAN, svc.TOLAK})))
async def ask_code_or_reason(
    query: CallbackQuery,
    callback_data: AspCb,
    state: FSMContext,
    session: AsyncSession,
    roles: Roles,
    settings: Settings,
) -> None:
    row = await _head_row(query, callback_data, session, roles)
    if row is None:
        return
    if callback_data.action not in svc.allowed_actions(row.status):
        await query.answer(_refusal(svc.AlreadyDecided(row)), show_alert=True)
        return
    await query.answer()
    await state.clear()
    await state.update_data(aspiration_id=row.id)
    if callback_data.action == svc.USULKAN:
        program = await programs.ensure(session, settings, settings.current_fiscal_year())
        await state.set_state(AspHead.code)
        text = _(
            "Type the <b>code of the proposal</b> this idea became (a proposal of your RT), "
            "e.g. <code>{example}</code>."
        ).format(example=format_code(program.code_prefix, program.fiscal_year, 1))
    else:
        await state.set_state(AspHead.reason)
        text = _(
            "Why can this idea not be followed up? Please type the reason (at most {max} characters); "
            "it will be sent to the resident."
        ).format(max=svc.REASON_MAX)
    await query.message.answer(text, reply_markup=_kb(cancel_row()))


@router.message(AspHead.code, F.text)
async def code_given(
    message: Message, state: FSMContext, session: AsyncSession, user: User, roles: Roles, settings: Settings
) -> None:
    data = await state.get_data()
    program = await programs.ensure(session, settings, settings.current_fiscal_year())
    try:
        row = await svc.decide(
            session,
            user.id,
            roles,
            data.get("aspiration_id", 0),
            svc.USULKAN,
            proposal_code=message.text,
            code_prefix=program.code_prefix,
        )
    except svc.InvalidProposalCode as e:
        if e.kind == "other_rt":
            text = _("Proposal <code>{code}</code> belongs to another RT. Please type a proposal code of your RT.")
        else:
            text = _(
                "I cannot find a proposal with the code <code>{code}</code>. Please check it (see /usulanku) "
                "and type it again, or /batal to stop."
            )
        await message.answer(text.format(code=escape_html(e.code[:40])))
        return
    except (svc.AlreadyDecided, Forbidden, svc.AspirationNotFound) as e:
        await state.clear()
        await message.answer(
            _refusal(e) if not isinstance(e, svc.AspirationNotFound) else _("This idea no longer exists.")
        )
        return
    await state.clear()
    await _decided(message, session, row)


@router.message(AspHead.reason, F.text)
async def reason_given(message: Message, state: FSMContext, session: AsyncSession, user: User, roles: Roles) -> None:
    data = await state.get_data()
    try:
        row = await svc.decide(session, user.id, roles, data.get("aspiration_id", 0), svc.TOLAK, reason=message.text)
    except TextError as e:
        if e.kind == EMPTY:
            await message.answer(_("Please type the reason as text, or /batal to stop."))
        else:
            await message.answer(
                _("The reason is {length} characters long; the limit is {max}. Please shorten it.").format(
                    length=e.length, max=e.max_len
                )
            )
        return
    except (svc.AlreadyDecided, Forbidden, svc.AspirationNotFound) as e:
        await state.clear()
        await message.answer(
            _refusal(e) if not isinstance(e, svc.AspirationNotFound) else _("This idea no longer exists.")
        )
        return
    await state.clear()
    await _decided(message, session, row)


@router.message(StateFilter(AspHead.code, AspHead.reason))
async def head_text_wrong(message: Message) -> None:
    await message.answer(_("Please type it as text, or /batal to stop."))


@router.callback_query(AspCb.filter())
async def asp_stale(query: CallbackQuery, session: AsyncSession) -> None:
    await stale_button(query, session)
