"""Last-resort handlers: unknown commands, unexpected message types, stale buttons, and errors.

Included last, so they only see what no feature router took."""

from __future__ import annotations

import logging
import re

from aiogram import F, Router
from aiogram.exceptions import TelegramForbiddenError
from aiogram.filters import ExceptionTypeFilter, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, ErrorEvent, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession

from bot.i18n import DEFAULT_LOCALE
from bot.services.users import Roles
from bot.unavailable import is_unavailable
from handlers.common import KNOWN_COMMANDS, main_menu, stale_button
from storage.models import User

router = Router(name=__name__)
# Included first: an unknown command is answered in any state, and the user is reminded of the
# dialog they are in, instead of the dialog's "please use the buttons" reply.
unknown_commands = Router(name=__name__ + ".unknown_commands")
log = logging.getLogger("prolita.errors")

_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@\w+)?(?:\s|$)")


def _unknown_command(message: Message) -> bool:
    match = _COMMAND.match(message.text or "")
    return bool(match) and match.group(1).lower() not in KNOWN_COMMANDS


@unknown_commands.message(F.chat.type == "private", _unknown_command, StateFilter("*"))
async def unknown_command(message: Message, roles: Roles, state: FSMContext) -> None:
    if await state.get_state() is not None:
        await message.answer(
            _(
                "I do not know that command. You are still in the middle of something: answer the "
                "question above to continue, or type /batal to stop."
            )
        )
        return
    await message.answer(
        _("I do not know that command. Type /bantuan to see what you can do."), reply_markup=main_menu(roles)
    )


@router.message(F.chat.type == "private")
async def not_understood(message: Message, roles: Roles) -> None:
    if message.text:
        text = _("Sorry, I did not understand. Please use the buttons below, or type /bantuan for help.")
    else:
        text = _("I cannot use this kind of message here. Please use the buttons below, or type /bantuan for help.")
    await message.answer(text, reply_markup=main_menu(roles))


@router.callback_query()
async def unknown_button(query: CallbackQuery, session: AsyncSession) -> None:
    await stale_button(query, session)


def _not_an_outage(event: ErrorEvent) -> bool:
    """An outage of the database or Redis is not handled here: the update is left unhandled, so the
    webhook answers 503 and Telegram sends it again once the service is back (bot/unavailable.py)."""
    return not is_unavailable(event.exception)


@router.errors(ExceptionTypeFilter(TelegramForbiddenError))
async def blocked_meanwhile(event: ErrorEvent) -> bool:
    """Telegram refused a reply because the person blocked the bot (or deleted their account) while
    their update was being handled: nobody is left to answer, and the update is done. The bot hears
    of it again only if they write again, which unblocks it."""
    log.info("update %s: the reply was refused (%s); nothing more to send", event.update.update_id, event.exception)
    return True


@router.errors(ExceptionTypeFilter(Exception), _not_an_outage)
async def on_error(event: ErrorEvent, i18n: I18n | None = None, user: User | None = None) -> bool:
    update = event.update
    log.error("update %s failed: %s", update.update_id, event.exception, exc_info=event.exception)
    target = update.message or (update.callback_query.message if update.callback_query else None)
    if target is None or i18n is None:
        return True
    # The failed update's session was rolled back: read the language without loading anything.
    language = sa_inspect(user).dict.get("language") if user is not None else None
    with i18n.context(), i18n.use_locale(language or DEFAULT_LOCALE):
        text = _(
            "Sorry, something went wrong on our side. What you entered before is kept; please try again in a moment."
        )
        try:
            if update.callback_query:
                await update.callback_query.answer(text, show_alert=True)
            else:
                await target.answer(text)
        except Exception:
            log.warning("could not tell the user about the error", exc_info=True)
    return True
