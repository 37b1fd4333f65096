"""Texts of outbox notifications, rendered at send time in the recipient's language from ids
(so a notice always shows current data, and the outbox never stores personal text twice)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, ReplyKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.text import escape_html
from bot.services import users
from handlers.common import main_menu, rt_place
from handlers.verification import VerifyCb
from storage.models import Officer, Outbox, RTHead


@dataclass
class Notice:
    text: str
    reply_markup: InlineKeyboardMarkup | ReplyKeyboardMarkup | None = None


Renderer = Callable[[AsyncSession, Outbox, tuple[int, ...]], Awaitable[Notice | None]]
RENDERERS: dict[str, Renderer] = {}


def renderer(kind: str) -> Callable[[Renderer], Renderer]:
    def deco(fn: Renderer) -> Renderer:
        RENDERERS[kind] = fn
        return fn

    return deco


async def render(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    fn = RENDERERS.get(row.kind)
    if fn is None:
        raise KeyError(f"no renderer for outbox kind {row.kind!r}")
    return await fn(session, row, admin_ids)


async def _menu(session: AsyncSession, user_id: int, admin_ids: tuple[int, ...]) -> Any:
    return main_menu(await users.load_roles(session, user_id, admin_ids))


@renderer("registration.new")
async def _registration_new(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    reg = await session.get(RTHead, row.payload["registration_id"])
    if reg is None or reg.status != "menunggu":
        return None  # already decided: nothing to ask the officer any more
    kb = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=_("🔎 Check now"), callback_data=VerifyCb(action="list", id=0).pack())]
        ]
    )
    return Notice(
        _("🆕 New Ketua RT registration: <b>{name}</b>, {place}. Please check it in /verifikasi.").format(
            name=escape_html(reg.full_name), place=rt_place(reg.rt)
        ),
        kb,
    )


@renderer("registration.approved")
async def _registration_approved(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    reg = await session.get(RTHead, row.payload["registration_id"])
    if reg is None:
        return None
    return Notice(
        _(
            "✅ Congratulations, {name}! You are now the verified <b>Ketua RT</b> of {place}. "
            "The Ketua RT menu is now available below."
        ).format(name=escape_html(reg.full_name), place=rt_place(reg.rt)),
        await _menu(session, reg.user_id, admin_ids),
    )


@renderer("registration.rejected")
async def _registration_rejected(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    reg = await session.get(RTHead, row.payload["registration_id"])
    if reg is None:
        return None
    return Notice(
        _(
            "❌ Your registration as Ketua RT of {place} was not approved.\nReason: {reason}\n\n"
            "If something was wrong, you can register again with /daftar."
        ).format(place=rt_place(reg.rt), reason=escape_html(reg.reason or "-")),
        await _menu(session, reg.user_id, admin_ids),
    )


@renderer("registration.replaced")
async def _registration_replaced(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    reg = await session.get(RTHead, row.payload["registration_id"])
    if reg is None:
        return None
    return Notice(
        _(
            "ℹ️ A new Ketua RT of {place} has been verified, so your Ketua RT access has ended. "
            "Thank you for your service! If this is a mistake, please contact your kelurahan."
        ).format(place=rt_place(reg.rt)),
        await _menu(session, reg.user_id, admin_ids),
    )


@renderer("officer.appointed")
async def _officer_appointed(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    officer = await session.get(Officer, row.payload["officer_id"])
    if officer is None or officer.revoked_at is not None:
        return None
    from handlers.admin import scope_label

    return Notice(
        _(
            "👮 You have been appointed as an officer for {scope}. Use /verifikasi to verify Ketua RT registrations."
        ).format(scope=scope_label(officer)),
        await _menu(session, officer.user_id, admin_ids),
    )


@renderer("officer.revoked")
async def _officer_revoked(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    officer = await session.get(Officer, row.payload["officer_id"])
    if officer is None:
        return None
    return Notice(_("Your officer role has ended. Thank you!"), await _menu(session, officer.user_id, admin_ids))
