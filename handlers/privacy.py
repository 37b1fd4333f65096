"""/dataku and /hapusdata (UU PDP No. 27/2022): see what is stored about you, and delete it.

The rules of what is deleted, anonymised or kept live in ``bot/services/privacy.py``; this module
explains them and asks for a confirmation (the button carries the time it was shown, so a second
press after the erasure is recognised and nothing is done twice).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from typing import Any
from zoneinfo import ZoneInfo

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.text import escape_html
from bot.i18n import LANGUAGES
from bot.services import privacy
from bot.services.users import Roles
from handlers.common import BTN_CANCEL, N_, CbInt, drop_buttons, main_menu, short_day, when
from storage.models import (
    ROLE_ADMIN,
    ROLE_KETUA_RT,
    SCOPE_KECAMATAN,
    SCOPE_KOTA,
    User,
)

router = Router(name=__name__)
router.message.filter(F.chat.type == "private")

CONFIRM_VALID_FOR = 24 * 3600  # seconds a confirmation button stays valid
LIST_MAX = 15  # codes / targets listed in the summary; the file has them all

CONSENT_LABELS = {"rt_head_registration": N_("Ketua RT registration")}
REG_STATUS_LABELS = {
    "menunggu": N_("waiting for verification"),
    "terverifikasi": N_("verified (active)"),
    "ditolak": N_("not approved by the kelurahan"),
    "diganti": N_("replaced by a new Ketua RT"),
}
NOTIFY_LABELS = {
    "semua": N_("every decision and progress report"),
    "keputusan": N_("decisions only"),
    "mingguan": N_("a weekly summary"),
    "mati": N_("no notices"),
}
ASPIRATION_LABELS = {
    "baru": N_("new, not yet answered"),
    "akan_dibahas": N_("to be discussed at the musyawarah"),
    "dijadikan_usulan": N_("became a proposal"),
    "tidak_dapat": N_("cannot be followed up"),
}


class PrivacyCb(CallbackData, prefix="pdp"):
    action: str  # "erase" | "keep"
    at: CbInt = 0  # unix time the confirmation was shown


# --- rendering ---------------------------------------------------------------------------------------


def _label(table: dict[str, str], code: str | None) -> str:
    return _(table[code]) if code in table else escape_html(code or "-")


def _place(place: dict[str, Any] | None) -> str:
    if not place:
        return "-"
    return _("{rt}, Kel. {kelurahan}, Kec. {kecamatan}").format(
        rt=f"RT {place['rt']:02d}", kelurahan=escape_html(place["kelurahan"]), kecamatan=escape_html(place["kecamatan"])
    )


def _scope(o: dict[str, Any]) -> str:
    if o["scope"] == SCOPE_KOTA:
        return _("the whole city")
    if o["scope"] == SCOPE_KECAMATAN:
        return _("Kec. {name}").format(name=escape_html(o["kecamatan"] or "-"))
    return _("Kel. {name}").format(name=escape_html(o["kelurahan"] or "-"))


def _codes(codes: list[str]) -> str:
    shown = ", ".join(escape_html(c) for c in codes[:LIST_MAX])
    if len(codes) > LIST_MAX:
        shown += " " + _("and {n} more").format(n=len(codes) - LIST_MAX)
    return shown


def summary_text(data: dict[str, Any]) -> str:
    u = data["user"]
    none = _("nothing stored")
    name = " ".join(p for p in (u["first_name"], u["last_name"]) if p)
    lines = [_("<b>🔐 The data stored about you</b>"), ""]
    lines.append(_("Name: {name}").format(name=escape_html(name) if name else none))
    lines.append(_("Username: {username}").format(username=f"@{escape_html(u['username'])}" if u["username"] else none))
    lines.append(_("Telegram id: <code>{id}</code>").format(id=u["telegram_id"]))
    lines.append(_("Language: {language}").format(language=escape_html(LANGUAGES.get(u["language"], u["language"]))))
    lines.append(_("First seen: {date}").format(date=when(u["first_seen"])))
    if u["erased_at"] is not None:
        lines.append(_("Earlier data deleted with /hapusdata on {date}.").format(date=when(u["erased_at"])))

    lines += ["", _("<b>Consents</b>")]
    for c in data["consents"]:
        line = _("• {purpose} (version {version}), given {date}").format(
            purpose=_label(CONSENT_LABELS, c["purpose"]), version=escape_html(c["version"]), date=when(c["given_at"])
        )
        if c["withdrawn_at"] is not None:
            line += "; " + _("withdrawn {date}").format(date=when(c["withdrawn_at"]))
        lines.append(line)
    if not data["consents"]:
        lines.append(none)

    if data["rt_registrations"]:
        lines += ["", _("<b>Ketua RT registrations</b>")]
        for r in data["rt_registrations"]:
            lines.append(
                _("• {place}: {status}. Name: {name}; phone: {phone}; sent {date}").format(
                    place=_place(r["place"]),
                    status=_label(REG_STATUS_LABELS, r["status"]),
                    name=escape_html(r["full_name"]) or "-",
                    phone=escape_html(r["phone"]) or "-",
                    date=short_day(r["created_at"]),
                )
            )
            if r["decided_at"] is not None:
                lines.append(
                    "  " + _("decided by a kelurahan officer on {date}").format(date=short_day(r["decided_at"]))
                )

    if data["officer_roles"]:
        lines += ["", _("<b>Officer appointments</b>")]
        for o in data["officer_roles"]:
            if o["active"]:
                line = _("• {scope}: active since {date}").format(scope=_scope(o), date=short_day(o["appointed_at"]))
            else:
                line = _("• {scope}: {start} – {end}").format(
                    scope=_scope(o), start=short_day(o["appointed_at"]), end=short_day(o["revoked_at"])
                )
            lines.append(line)

    lines.append("")
    props = data["proposals"]
    codes = [p["code"] for p in props if p["code"]]
    drafts = len(props) - len(codes)
    text = _("<b>Proposals you made:</b> {n}").format(n=len(props))
    if codes:
        text += f" ({_codes(codes)})"
    if drafts:
        text += "; " + _("drafts without a code: {n}").format(n=drafts)
    lines.append(text)
    reports = data["progress_reports"]
    text = _("<b>Progress reports you made:</b> {n}").format(n=len(reports))
    if reports:
        text += f" ({_codes(sorted({r['proposal'] or '-' for r in reports}))})"
    lines.append(text)

    follows = []
    for f in data["follows"]:
        follows.append(_place(f["rt"]) if "rt" in f else escape_html(f["proposal"] or "-"))
    text = _("<b>You follow:</b> {list}").format(list="; ".join(follows[:LIST_MAX]) if follows else none)
    if len(follows) > LIST_MAX:
        text += " " + _("and {n} more").format(n=len(follows) - LIST_MAX)
    lines.append(text)
    prefs = data["notification_settings"]
    if prefs is None:
        lines.append(_("<b>Notice settings:</b> not set (the defaults apply)"))
    else:
        lines.append(
            _("<b>Notice settings:</b> {mode}; quiet hours {start}–{end}").format(
                mode=_label(NOTIFY_LABELS, prefs["mode"]), start=prefs["quiet_start"], end=prefs["quiet_end"]
            )
        )
    asp = data["aspirations"]
    text = _("<b>Ideas you sent to your RT:</b> {n}").format(n=len(asp))
    if asp:
        counts = Counter(a["status"] for a in asp)
        text += " (" + ", ".join(f"{_label(ASPIRATION_LABELS, s)}: {n}" for s, n in counts.items()) + ")"
    lines.append(text)
    lines.append(_("<b>Musyawarah votes you answered:</b> {n}").format(n=len(data["votes_answered"])))
    if data["votes_created"]:
        lines.append(_("<b>Musyawarah votes you started:</b> {n}").format(n=len(data["votes_created"])))
    lines.append(_("<b>Notices waiting to be sent to you:</b> {n}").format(n=data["pending_notices"]))
    if data["reminders_received"]:
        lines.append(_("<b>Reminders you were given:</b> {n}").format(n=len(data["reminders_received"])))
    if data["escalations_received"]:
        lines.append(
            _("<b>Alerts about overdue work you received as an officer:</b> {n}").format(
                n=len(data["escalations_received"])
            )
        )
    if data["broadcasts_sent"]:
        lines.append(_("<b>Broadcasts you sent:</b> {n}").format(n=len(data["broadcasts_sent"])))
    if data["dialogs"]:
        lines.append(_("<b>Unfinished dialogs:</b> {n}").format(n=len(data["dialogs"])))
    lines.append(_("<b>Audit log entries of your actions:</b> {n}").format(n=len(data["audit_entries"])))
    lines += [
        "",
        _(
            "Everything is in the attached file. Other people are shown by their role only, never by "
            "their Telegram id. To delete your data: /hapusdata"
        ),
    ]
    return "\n".join(lines)


@router.message(Command("dataku"))
async def my_data(message: Message, session: AsyncSession, user: User, settings: Settings) -> None:
    data = await privacy.collect(session, user.id)
    await message.answer(summary_text(data))
    day = data["generated_at"].astimezone(ZoneInfo(settings.timezone)).date().isoformat()
    file = BufferedInputFile(privacy.to_json(data).encode(), filename=f"data-saya-{day}.json")
    await message.answer_document(file, caption=_("All data stored about you (JSON)."))


# --- /hapusdata -----------------------------------------------------------------------------------


def refusal_text(blocked: privacy.HoldsRole) -> str:
    if blocked.role == ROLE_ADMIN:
        return _(
            "You are an administrator of this bot. While you are, your data cannot be deleted.\n\n"
            "Please ask whoever runs the bot to remove you from the administrators (ADMIN_IDS) first; "
            "after that, /hapusdata will work. You can see your data any time with /dataku."
        )
    if blocked.role == ROLE_KETUA_RT:
        head = blocked.detail
        return _(
            "You are the verified Ketua RT of {place}. While you hold this role, the kelurahan needs "
            "your name and phone number, so your data cannot be deleted now.\n\n"
            "Please ask your kelurahan to verify the new Ketua RT or to end your registration first; "
            "after that, /hapusdata will work. You can see your data any time with /dataku."
        ).format(
            place=_place(
                {
                    "rt": head.rt.number,
                    "kelurahan": head.rt.kelurahan.name,
                    "kecamatan": head.rt.kelurahan.kecamatan.name,
                }
            )
        )
    officer = blocked.detail
    scope = _scope(
        {
            "scope": officer.scope,
            "kecamatan": officer.kecamatan.name if officer.kecamatan else None,
            "kelurahan": officer.kelurahan.name if officer.kelurahan else None,
        }
    )
    return _(
        "You are an active officer for {scope}. While you hold this role, the programme needs your "
        "data for its records, so it cannot be deleted now.\n\n"
        "Please ask the administrator to revoke your appointment first; after that, /hapusdata will "
        "work. You can see your data any time with /dataku."
    ).format(scope=scope)


def explanation_text() -> str:
    return _(
        "<b>🗑 Delete my data</b>\n\n"
        "<b>This will be deleted:</b>\n"
        "• the RTs and proposals you follow, and your notice settings\n"
        "• your answers to musyawarah votes, and the record of the vote polls sent to you\n"
        "• notices and reminders to you, sent or not yet sent, and any unfinished dialog\n"
        "• your name and username (the language stays, so I can still answer you in it)\n"
        "• a Ketua RT registration still waiting for verification (it is withdrawn)\n"
        "• the full name and phone number on your earlier Ketua RT registrations that were not "
        "approved or were replaced\n\n"
        "<b>This is kept, and why:</b>\n"
        "• proposals, progress reports, the officers' decisions, alerts to officers about overdue "
        "work and broadcasts: they are the programme's public record and must be kept for the audit "
        "under the regional finance rules. They stay linked to your Telegram id only, without your "
        "name.\n"
        "• the ideas you sent to your RT: the text stays so the RT's musyawarah record is complete, "
        "but it is no longer linked to you.\n"
        "• your consent records: they prove on what legal basis your data was used; they are "
        "marked as withdrawn.\n"
        "• the audit log of what you did in the bot (your Telegram id, no name).\n\n"
        "This cannot be undone. If you use the bot again afterwards, I will see your Telegram name "
        "again and you start as a new resident.\n\n"
        "Delete your data now?"
    )


@router.message(Command("hapusdata"))
async def erase_ask(message: Message, session: AsyncSession, user: User, settings: Settings) -> None:
    blocked = await privacy.blocking_role(session, user.id, settings.admin_ids)
    if blocked is not None:
        await message.answer(refusal_text(blocked))
        return
    shown = int(time.time())
    kb = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("🗑 Yes, delete my data"), callback_data=PrivacyCb(action="erase", at=shown).pack()
                )
            ],
            [InlineKeyboardButton(text=_(BTN_CANCEL), callback_data=PrivacyCb(action="keep").pack())],
        ]
    )
    await message.answer(explanation_text(), reply_markup=kb)


@router.callback_query(PrivacyCb.filter(F.action == "keep"))
async def erase_cancelled(query: CallbackQuery) -> None:
    await query.answer(_("Nothing was deleted."))
    await drop_buttons(query.message)
    if query.message:
        await query.message.answer(_("Nothing was deleted. Your data stays as it is."))


@router.callback_query(PrivacyCb.filter(F.action == "erase"))
async def erase_confirmed(
    query: CallbackQuery,
    callback_data: PrivacyCb,
    session: AsyncSession,
    user: User,
    roles: Roles,
    settings: Settings,
    state: FSMContext,
) -> None:
    now = time.time()
    if not (now - CONFIRM_VALID_FOR <= callback_data.at <= now + 60):
        await query.answer(_("This button has expired. Please type /hapusdata again."), show_alert=True)
        await drop_buttons(query.message)
        return
    await state.clear()  # the dialog state of this chat (in Redis too); the service clears the rest
    try:
        await privacy.erase(
            session,
            user.id,
            admin_ids=settings.admin_ids,
            confirmed_after=dt.datetime.fromtimestamp(callback_data.at, dt.UTC),
        )
    except privacy.AlreadyErased:
        await query.answer(_("Your data has already been deleted."), show_alert=True)
        await drop_buttons(query.message)
        return
    except privacy.HoldsRole as blocked:
        await query.answer()
        await drop_buttons(query.message)
        if query.message:
            await query.message.answer(refusal_text(blocked), reply_markup=main_menu(roles))
        return
    await query.answer(_("Deleted."))
    await drop_buttons(query.message)
    if query.message:
        # No role any more (erasing needs none, and a waiting registration was withdrawn).
        fresh = Roles(is_admin=False, officer=None, rt_head=None, pending=None)
        await query.message.answer(
            _(
                "✅ Your data has been deleted. What the programme must keep is kept without your name.\n\n"
                "Thank you for taking part. If you use the bot again, you start as a new resident."
            ),
            reply_markup=main_menu(fresh),
        )
