"""Shared pieces of the chat UI: menu labels, role menus, navigation buttons, small renderers."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from aiogram import F
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Filter
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    MaybeInaccessibleMessage,
    Message,
    ReplyKeyboardMarkup,
)
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.permissions import ADMIN, KETUA_RT, PETUGAS
from bot.domain.text import escape_html
from bot.domain.timefmt import format_datetime, format_short_date
from bot.services import audit
from bot.services.users import Roles
from storage.models import RT


def N_(message: str) -> str:
    """Mark a string for translation without translating it now (gettext_noop)."""
    return message


# Reply-keyboard menu labels (msgids). Matched in every language, so an old keyboard still works.
BTN_REGISTER = N_("📝 Register as RT head")
BTN_REG_STATUS = N_("⏳ My registration")
BTN_HELP = N_("❓ Help")
BTN_LANGUAGE = N_("🌐 Language")
BTN_VERIFY = N_("✅ Verify RT heads")
BTN_OFFICERS = N_("👮 Manage officers")
BTN_NEW_PROPOSAL = N_("📄 New proposal")
BTN_DRAFTS = N_("🗂 My drafts")
BTN_MY_PROPOSALS = N_("📋 My proposals")
BTN_REVIEW = N_("🔎 Review proposals")
BTN_PROGRESS = N_("📈 Report progress")
BTN_VERIFY_PROGRESS = N_("📸 Verify progress")
BTN_CHECK_CODE = N_("🔍 Check a proposal")
BTN_BROWSE = N_("🗺 Browse RTs")
BTN_FOLLOW = N_("🔔 Follow an RT")
BTN_SETTINGS = N_("⚙️ Notice settings")
BTN_SEND_IDEA = N_("💡 Send an idea to my RT")
BTN_IDEAS_INBOX = N_("💡 Residents' ideas")
BTN_VOTE = N_("🗳 Musyawarah vote")
BTN_EXPORT = N_("📊 Export recap (Excel)")
BTN_BROADCAST = N_("📣 Broadcast")
BTN_CANCEL = N_("✖️ Cancel")
BTN_BACK = N_("⬅️ Back")
BTN_SHARE_PHONE = N_("📱 Send my phone number")

# Every menu label: typed while a dialog waits for free text, they are not that text.
MENU_LABELS = (
    BTN_REGISTER,
    BTN_REG_STATUS,
    BTN_HELP,
    BTN_LANGUAGE,
    BTN_VERIFY,
    BTN_OFFICERS,
    BTN_NEW_PROPOSAL,
    BTN_DRAFTS,
    BTN_MY_PROPOSALS,
    BTN_REVIEW,
    BTN_PROGRESS,
    BTN_VERIFY_PROGRESS,
    BTN_CHECK_CODE,
    BTN_BROWSE,
    BTN_FOLLOW,
    BTN_SETTINGS,
    BTN_SEND_IDEA,
    BTN_IDEAS_INBOX,
    BTN_VOTE,
    BTN_EXPORT,
    BTN_BROADCAST,
    BTN_BACK,
)


class Label(Filter):
    """Matches a message whose text is one of our menu labels, in any language."""

    def __init__(self, *msgids: str) -> None:
        self.msgids = msgids

    async def __call__(self, message: Message, i18n: I18n) -> bool:
        text = (message.text or "").strip()
        if not text:
            return False
        for msgid in self.msgids:
            if text == msgid:
                return True
            for locale in i18n.available_locales:
                if text == i18n.gettext(msgid, locale=locale):
                    return True
        return False


# Filters of a dialog step that takes free text: a command or a menu button typed there is not the
# answer (its own handler runs instead, e.g. /progres in the middle of /usulan).
TEXT_ANSWER = (F.text, ~F.text.startswith("/"), ~Label(*MENU_LABELS))
# The same for a step's fallback ("please send a photo"): commands and menu buttons pass through.
NOT_FOR_STEP = (~F.text.startswith("/"), ~Label(*MENU_LABELS))

# Every command some router handles; anything else is answered as unknown (handlers/errors.py).
KNOWN_COMMANDS = frozenset(
    {
        "start",
        "bantuan",
        "help",
        "batal",
        "cancel",
        "bahasa",
        "language",
        "daftar",
        "verifikasi",
        "petugas",
        "usulan",
        "draf",
        "usulanku",
        "tinjau",
        "progres",
        "verifikasi_progres",
        "cek",
        "jelajah",
        "ikuti",
        "berhenti",
        "pengaturan",
        "aspirasi",
        "musyawarah",
        "dataku",
        "hapusdata",
        "ekspor",
        "siaran",
    }
)

CANCEL_WORDS = {"batal", "cancel", "/batal", "/cancel", "stop"}
BACK_WORDS = {"kembali", "back", "/kembali"}


# An integer field of callback data (ids, pages, offsets, a unix time): 0 to 2**31 - 1, the range
# of the database's integer columns. Data forged with a negative or larger number does not match
# the button's handlers (it is refused as a stale button) instead of reaching a query that fails.
CB_INT_MAX = 2**31 - 1
CbInt = Annotated[int, Field(ge=0, le=CB_INT_MAX)]


def parse_cb_int(value: str) -> int | None:
    """A number carried in a text field of callback data (``AdminCb.value``...), if it is one in
    :data:`CbInt`'s range; None for anything else a forged button may carry."""
    if not (value.isascii() and value.isdigit()):
        return None
    number = int(value)
    return number if number <= CB_INT_MAX else None


class NavCb(CallbackData, prefix="nav"):
    action: str  # "back" | "cancel"


def nav_row() -> list[InlineKeyboardButton]:
    return [
        InlineKeyboardButton(text=_(BTN_BACK), callback_data=NavCb(action="back").pack()),
        InlineKeyboardButton(text=_(BTN_CANCEL), callback_data=NavCb(action="cancel").pack()),
    ]


def cancel_row() -> list[InlineKeyboardButton]:
    return [InlineKeyboardButton(text=_(BTN_CANCEL), callback_data=NavCb(action="cancel").pack())]


def main_menu(roles: Roles | None) -> ReplyKeyboardMarkup:
    """The persistent menu for the user's role: every command has a button."""
    names = roles.names if roles else set()
    rows: list[list[KeyboardButton]] = []
    if KETUA_RT in names:
        rows.append([KeyboardButton(text=_(BTN_NEW_PROPOSAL)), KeyboardButton(text=_(BTN_PROGRESS))])
        rows.append([KeyboardButton(text=_(BTN_DRAFTS)), KeyboardButton(text=_(BTN_MY_PROPOSALS))])
        rows.append([KeyboardButton(text=_(BTN_IDEAS_INBOX)), KeyboardButton(text=_(BTN_VOTE))])
    if PETUGAS in names:
        rows.append([KeyboardButton(text=_(BTN_REVIEW)), KeyboardButton(text=_(BTN_VERIFY))])
        rows.append([KeyboardButton(text=_(BTN_VERIFY_PROGRESS)), KeyboardButton(text=_(BTN_EXPORT))])
    if ADMIN in names:
        rows.append([KeyboardButton(text=_(BTN_OFFICERS)), KeyboardButton(text=_(BTN_BROADCAST))])
    if KETUA_RT not in names and PETUGAS not in names:
        if roles is not None and roles.pending is not None:
            rows.append([KeyboardButton(text=_(BTN_REG_STATUS))])
        else:
            rows.append([KeyboardButton(text=_(BTN_REGISTER))])
        rows.append([KeyboardButton(text=_(BTN_CHECK_CODE)), KeyboardButton(text=_(BTN_BROWSE))])
        rows.append([KeyboardButton(text=_(BTN_SEND_IDEA)), KeyboardButton(text=_(BTN_FOLLOW))])
        rows.append([KeyboardButton(text=_(BTN_SETTINGS))])
    rows.append([KeyboardButton(text=_(BTN_HELP)), KeyboardButton(text=_(BTN_LANGUAGE))])
    return ReplyKeyboardMarkup(keyboard=rows, resize_keyboard=True, is_persistent=True)


def nav_reply_keyboard(*first_rows: list[KeyboardButton]) -> ReplyKeyboardMarkup:
    rows = [*first_rows, [KeyboardButton(text=_(BTN_BACK)), KeyboardButton(text=_(BTN_CANCEL))]]
    return ReplyKeyboardMarkup(keyboard=rows, resize_keyboard=True, one_time_keyboard=False)


def rt_place(rt: RT) -> str:
    """``RT 05, Kel. Api-Api, Kec. Bontang Utara`` (HTML-escaped)."""
    kel = rt.kelurahan
    return _("{rt}, Kel. {kelurahan}, Kec. {kecamatan}").format(
        rt=rt.label(), kelurahan=escape_html(kel.name), kecamatan=escape_html(kel.kecamatan.name)
    )


async def drop_buttons(message: MaybeInaccessibleMessage | None) -> None:
    """Remove a message's inline buttons; harmless if they are already gone (a double tap), or if
    Telegram no longer lets the bot see the message (an ``InaccessibleMessage``: nothing to edit)."""
    if not isinstance(message, Message):
        return
    try:
        await message.edit_reply_markup(reply_markup=None)
    except TelegramBadRequest as exc:
        if "not modified" not in str(exc) and "not found" not in str(exc):
            raise


async def edit_or_send(
    message: MaybeInaccessibleMessage | None, text: str, reply_markup: InlineKeyboardMarkup | None = None
) -> None:
    """Show ``text`` in place of the message whose button was pressed; as a new message when that
    one has no text to replace (a photo, a map pin: a forged button may be pressed on any message)
    or Telegram sends it as an ``InaccessibleMessage`` (deleted, or out of the bot's reach)."""
    if message is None:
        return
    if isinstance(message, Message) and message.text is not None:
        try:
            await message.edit_text(text, reply_markup=reply_markup)
            return
        except TelegramBadRequest as exc:
            if "not modified" in str(exc):
                return
            if "can't be edited" not in str(exc) and "not found" not in str(exc):
                raise
    await message.answer(text, reply_markup=reply_markup)


async def stale_button(query: CallbackQuery, session: AsyncSession) -> None:
    """Refuse a button that does not fit the dialog's current step (old message, or forged data)."""
    await audit.record_refused(session, query.from_user.id, "stale_button", query.data)
    await query.answer(
        _("This button is no longer valid. Please use the latest message, or type /start."), show_alert=True
    )


_display_tz = "Asia/Makassar"


def configure(timezone: str) -> None:
    """Set the zone times are shown in (``TIMEZONE``; WITA by default). Called once at start-up."""
    global _display_tz
    _display_tz = timezone


def when(value: dt.datetime) -> str:
    """A stored UTC time as users read it: ``Senin, 27 April 2026 14.05 WITA``."""
    return format_datetime(value, _display_tz)


def short_day(value: dt.datetime) -> str:
    """The local date of a stored UTC time, compact for timelines: ``27 Apr 2026``."""
    from zoneinfo import ZoneInfo

    return format_short_date(value.astimezone(ZoneInfo(_display_tz)).date())


def chunk(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
