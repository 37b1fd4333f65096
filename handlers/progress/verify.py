"""/verifikasi_progres: officers check the Ketua RT's progress reports in their area — the queue
(oldest first), each report's overview image of its site photos, its card with the evidence checks
in plain words, the photos, receipts and pin, and the decision: Terverifikasi, or Minta bukti
tambahan with a note for the Ketua RT.

Thin: parse the button or text, call ``bot.services.progress``, render. The decision itself, its
scope check, its audit row, the close of a 100 % report and the RT head's notice live in
``progress.verify``.
"""

from __future__ import annotations

from contextlib import suppress

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.permissions import Forbidden
from bot.domain.text import TextError, clean_text, escape_html
from bot.services import media as media_svc
from bot.services import programs, progress, proposals, registration, review
from bot.services.media import MediaStore
from bot.services.proposals import InvalidField, ProposalNotFound
from bot.services.users import Roles
from handlers.common import BTN_CANCEL, BTN_VERIFY_PROGRESS, N_, Label, cancel_row, main_menu, stale_button
from handlers.media import send_file, send_photos
from handlers.progress.verify_render import (
    CARD_LIMIT,
    VerifyProgressCb,
    card_keyboard,
    card_text,
    flagged_positions,
    person_name,
    report_view,
    sheet_caption,
    status_text,
    verdict_text,
)

# NOTE_TEXT: menu buttons and commands typed while a note is awaited are not notes.
from handlers.review import NOTE_TEXT
from storage.models import MEDIA_FOTO_PROGRES, MEDIA_NOTA, REPORT_PENDING, REPORT_VERIFIED, ProgressReport, User

__all__ = ["VerifyProgressCb", "router"]

router = Router(name=__name__)
router.message.filter(F.chat.type == "private")

PAGE = 5
NOTE_MAX = progress.NOTE_MAX

OUT_OF_SCOPE = N_("This report is outside your area. The attempt was recorded.")


class VerifyProgress(StatesGroup):
    note = State()


# --- the queue and the card -----------------------------------------------------------------------


async def send_report(bot: Bot, chat_id: int, session: AsyncSession, store: MediaStore, report: ProgressReport) -> None:
    """The overview image of the site photos (flagged ones framed), then the card with its buttons."""
    photos = report.media_of(MEDIA_FOTO_PROGRES)
    if photos:
        flagged = flagged_positions(report)
        sheet = await media_svc.contact_sheet(store, [m.file for m in photos], flagged)
        if sheet is not None:
            await bot.send_photo(
                chat_id,
                BufferedInputFile(sheet, filename=f"laporan-{report.id}.jpg"),
                caption=sheet_caption(report, flagged),
            )
    view = await report_view(session, report)
    await bot.send_message(chat_id, card_text(view), reply_markup=card_keyboard(report))


async def send_queue(
    bot: Bot, chat_id: int, session: AsyncSession, store: MediaStore, roles: Roles | None, offset: int = 0
) -> None:
    scope = roles.scope if roles is not None else None
    if scope is None:
        await bot.send_message(chat_id, _("This menu is for officers only."), reply_markup=main_menu(roles))
        return
    rows, total = await progress.pending_in_scope(session, scope, limit=PAGE, offset=offset)
    if not rows and total:
        offset = 0  # the page emptied meanwhile (others decided): start again from the oldest
        rows, total = await progress.pending_in_scope(session, scope, limit=PAGE, offset=offset)
    if total == 0:
        await bot.send_message(
            chat_id, _("No progress reports are waiting for verification. 👍"), reply_markup=main_menu(roles)
        )
        return
    if offset == 0:
        await bot.send_message(
            chat_id, _("{count} progress report(s) waiting for your verification, oldest first:").format(count=total)
        )
    for report in rows:
        await send_report(bot, chat_id, session, store, report)
    if offset + PAGE < total:
        more = InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    InlineKeyboardButton(
                        text=_("Next ▶"), callback_data=VerifyProgressCb(action="list", id=offset + PAGE).pack()
                    )
                ]
            ]
        )
        await bot.send_message(
            chat_id,
            _("Showing {a}–{b} of {total}.").format(a=offset + 1, b=offset + len(rows), total=total),
            reply_markup=more,
        )


async def _reports_of_code(
    message: Message,
    bot: Bot,
    session: AsyncSession,
    store: MediaStore,
    user: User,
    roles: Roles,
    settings: Settings,
    code: str,
) -> None:
    """``/verifikasi_progres PRL-2026-0001``: the pending reports of that proposal."""
    program = await programs.ensure(session, settings, settings.current_fiscal_year())
    found = await proposals.find_by_code(session, code, program.code_prefix)
    if found is None:
        await message.answer(
            _("No proposal has the code {code}. Check it, or open the queue with /verifikasi_progres.").format(
                code=escape_html(code.strip()[:30])
            )
        )
        return
    try:
        found = await review.get_in_scope(session, user.id, roles, found.id)
    except Forbidden:
        await message.answer(_("This proposal is outside your area. The attempt was recorded."))
        return
    pending = [e.report_id for e in await progress.timeline(session, found.id) if e.status == REPORT_PENDING]
    code_html = escape_html(found.code or "-")
    if not pending:
        await message.answer(
            _("No progress report of {code} is waiting for verification. Its card: /tinjau {code}").format(
                code=code_html
            )
        )
        return
    await message.answer(
        _("{count} progress report(s) of {code} waiting for your verification, oldest first:").format(
            count=len(pending), code=code_html
        )
    )
    for report_id in pending:
        with suppress(progress.ReportNotFound):
            await send_report(bot, message.chat.id, session, store, await progress.get_report(session, report_id))


@router.message(Command("verifikasi_progres"))
@router.message(Label(BTN_VERIFY_PROGRESS))
async def verifikasi_progres(
    message: Message,
    bot: Bot,
    session: AsyncSession,
    user: User,
    roles: Roles,
    state: FSMContext,
    settings: Settings,
    media_store: MediaStore,
    command: CommandObject | None = None,
) -> None:
    await state.clear()
    if command is not None and command.args and roles.scope is not None:
        await _reports_of_code(message, bot, session, media_store, user, roles, settings, command.args)
        return
    await send_queue(bot, message.chat.id, session, media_store, roles)


@router.callback_query(VerifyProgressCb.filter(F.action == "list"))
async def queue_page(
    query: CallbackQuery,
    callback_data: VerifyProgressCb,
    bot: Bot,
    session: AsyncSession,
    roles: Roles,
    media_store: MediaStore,
) -> None:
    await query.answer()
    await send_queue(bot, query.from_user.id, session, media_store, roles, max(callback_data.id, 0))


async def _viewable(
    query: CallbackQuery, session: AsyncSession, user: User, roles: Roles, report_id: int, action: str
) -> ProgressReport | None:
    """The report if the officer may act on it (refusals are audited as ``denied.progress.<action>``)."""
    try:
        report = await progress.get_report(session, report_id)
    except progress.ReportNotFound:
        await stale_button(query, session)
        return None
    if not review.in_scope(roles.scope if roles is not None else None, report.proposal):
        await registration.deny(session, user.id, "progress." + action, "progress_report", report_id, "out_of_scope")
        await query.answer(_(OUT_OF_SCOPE), show_alert=True)
        return None
    return report


@router.callback_query(VerifyProgressCb.filter(F.action == "open"))
async def open_report(
    query: CallbackQuery,
    callback_data: VerifyProgressCb,
    bot: Bot,
    session: AsyncSession,
    user: User,
    roles: Roles,
    media_store: MediaStore,
) -> None:
    report = await _viewable(query, session, user, roles, callback_data.id, "view")
    if report is None:
        return
    await query.answer()
    await send_report(bot, query.from_user.id, session, media_store, report)


@router.callback_query(VerifyProgressCb.filter(F.action.in_({"foto", "nota", "loc"})))
async def show_media(
    query: CallbackQuery,
    callback_data: VerifyProgressCb,
    bot: Bot,
    session: AsyncSession,
    user: User,
    roles: Roles,
    media_store: MediaStore,
) -> None:
    report = await _viewable(query, session, user, roles, callback_data.id, "view")
    if report is None:
        return
    chat_id = query.from_user.id
    code = escape_html(report.proposal.code or "-")
    if callback_data.action == "loc":
        if report.latitude is None or report.longitude is None:
            await query.answer(_("This report has no location pin."), show_alert=True)
            return
        await query.answer()
        await bot.send_location(chat_id, report.latitude, report.longitude)
        return
    if callback_data.action == "foto":
        links = report.media_of(MEDIA_FOTO_PROGRES)[:10]
        if not links:
            await query.answer(_("This report has no photos."), show_alert=True)
            return
        await query.answer()
        caption = _("Site photos of {code} ({percent}%)").format(code=code, percent=report.percent)
        sent = await send_photos(bot, chat_id, media_store, links, caption)  # type: ignore[arg-type]
    else:
        links = report.media_of(MEDIA_NOTA)
        if not links:
            await query.answer(_("This report has no receipts."), show_alert=True)
            return
        await query.answer()
        sent = False
        for n, link in enumerate(links, start=1):
            caption = _("Receipt {n} of {count} · {code} ({percent}%)").format(
                n=n, count=len(links), code=code, percent=report.percent
            )
            sent = await send_file(bot, chat_id, media_store, link, caption) or sent  # type: ignore[arg-type]
    if not sent:
        await bot.send_message(chat_id, _("Sorry, this file is not available any more."))


# --- deciding --------------------------------------------------------------------------------------


def _message_id(query: CallbackQuery) -> int | None:
    return query.message.message_id if isinstance(query.message, Message) else None


async def _already_text(session: AsyncSession, report: ProgressReport, user: User) -> str:
    status = status_text(report.status)
    if report.verified_by == user.id:
        return _("You have already decided on this report: {status}.").format(status=status)
    if report.verified_by is None:
        return _("This report is not waiting for verification (now: {status}).").format(status=status)
    return _("{name} has already decided on this report: {status}.").format(
        name=escape_html(await person_name(session, report.verified_by)), status=status
    )


async def _set_card_markup(bot: Bot, chat_id: int, message_id: int | None, report: ProgressReport | None) -> None:
    """Leave an old card with only what still works (the media buttons, or nothing)."""
    if message_id is None:
        return
    with suppress(TelegramBadRequest):
        await bot.edit_message_reply_markup(
            chat_id=chat_id,
            message_id=message_id,
            reply_markup=card_keyboard(report) if report is not None else None,
        )


@router.callback_query(VerifyProgressCb.filter(F.action == "ok"))
async def verify_report(
    query: CallbackQuery,
    callback_data: VerifyProgressCb,
    bot: Bot,
    session: AsyncSession,
    user: User,
    roles: Roles,
    state: FSMContext,
) -> None:
    await _decide(
        bot, session, user, roles, state, callback_data.id, progress.ACTION_TERVERIFIKASI,
        query=query, card_id=_message_id(query),
    )  # fmt: skip


@router.callback_query(VerifyProgressCb.filter(F.action == "more"))
async def ask_note(
    query: CallbackQuery,
    callback_data: VerifyProgressCb,
    bot: Bot,
    session: AsyncSession,
    user: User,
    roles: Roles,
    state: FSMContext,
) -> None:
    report = await _viewable(query, session, user, roles, callback_data.id, progress.ACTION_MINTA_BUKTI)
    if report is None:
        return
    if report.status != REPORT_PENDING:
        await query.answer(await _already_text(session, report, user), show_alert=True)
        await _set_card_markup(bot, query.from_user.id, _message_id(query), report)
        return
    await state.set_state(VerifyProgress.note)
    await state.set_data({"rid": report.id, "card": _message_id(query)})
    await query.answer()
    await bot.send_message(
        query.from_user.id,
        _(
            "What more evidence is needed for {code} ({percent}%)? Please type a note; it will be sent to the Ketua RT."
        ).format(code=escape_html(report.proposal.code or "-"), percent=report.percent),
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[cancel_row()]),
    )


def _clean_note(text: str | None) -> tuple[str | None, str | None]:
    """(note, None) or (None, what to tell the officer)."""
    try:
        return clean_text(text or "", NOTE_MAX), None
    except TextError as exc:
        if exc.kind == "too_long":
            return None, _("Please keep it under {max} characters (now {length}).").format(
                max=NOTE_MAX, length=exc.length
            )
        return None, _("Please type the text, or /batal to stop.")


@router.message(VerifyProgress.note, *NOTE_TEXT)
async def note_typed(
    message: Message, bot: Bot, session: AsyncSession, user: User, roles: Roles, state: FSMContext
) -> None:
    text, problem = _clean_note(message.text)
    if problem:
        await message.answer(problem)
        return
    data = await state.get_data()
    await _decide(
        bot, session, user, roles, state, int(data.get("rid") or 0), progress.ACTION_MINTA_BUKTI,
        note=text, card_id=data.get("card"),
    )  # fmt: skip


@router.message(StateFilter(VerifyProgress), Label(BTN_CANCEL))
async def cancel_label(message: Message, roles: Roles, state: FSMContext) -> None:
    await state.clear()
    await message.answer(_("Cancelled. Nothing was saved."), reply_markup=main_menu(roles))


@router.message(VerifyProgress.note, ~F.text)
async def note_wrong(message: Message) -> None:
    await message.answer(_("Please type the note as text, or /batal to stop."))


async def _tell(bot: Bot, chat_id: int, query: CallbackQuery | None, text: str) -> None:
    if query is not None:
        await query.answer(text, show_alert=True)
    else:
        await bot.send_message(chat_id, text)


async def _decide(
    bot: Bot,
    session: AsyncSession,
    user: User,
    roles: Roles,
    state: FSMContext,
    report_id: int,
    action: str,
    *,
    note: str | None = None,
    query: CallbackQuery | None = None,
    card_id: int | None = None,
) -> None:
    chat_id = user.id
    try:
        row = await progress.verify(session, user.id, roles, report_id, action, note)
    except Forbidden:
        await state.clear()
        await _tell(bot, chat_id, query, _(OUT_OF_SCOPE))
        return
    except progress.AlreadyVerified as exc:
        await state.clear()
        await _tell(bot, chat_id, query, await _already_text(session, exc.report, user))
        await _set_card_markup(bot, chat_id, card_id, exc.report)
        return
    except progress.ReportNotFound:
        await state.clear()
        if query is not None:
            await stale_button(query, session)
        return
    except progress.DecisionIncomplete:
        # Our dialog always asks for the note; this is a forged or half-lost dialog.
        await state.clear()
        await _tell(bot, chat_id, query, _("Something is missing (note). Please start again from the card."))
        return
    except InvalidField:
        await _tell(bot, chat_id, query, _("Please keep it under {max} characters.").format(max=NOTE_MAX))
        return
    except ProposalNotFound:
        await state.clear()
        if query is not None:
            await stale_button(query, session)
        return
    await state.clear()
    completion = await progress.completion_of(session, row.proposal_id)
    view = await report_view(session, row)
    verdict = verdict_text(view, completion if row.status == REPORT_VERIFIED else None)
    text = card_text(view, show_status=False, limit=CARD_LIMIT - len(verdict) - 2) + "\n\n" + verdict
    if card_id is not None:
        with suppress(TelegramBadRequest):
            await bot.edit_message_text(text, chat_id=chat_id, message_id=card_id, reply_markup=card_keyboard(row))
    if query is not None:
        await query.answer(_("Saved. The Ketua RT has been told."))
    code = escape_html(row.proposal.code or "-")
    if action == progress.ACTION_MINTA_BUKTI:
        done = _("📝 More evidence asked for the report on {code}. The Ketua RT has been told your note.")
    elif completion is not None and completion.report_id == row.id:
        done = _("🏁 {code} is now completed. The Ketua RT has been told.")
    else:
        done = _("✅ Report on {code} ({percent}%) verified. The Ketua RT has been told.")
    await bot.send_message(chat_id, done.format(code=code, percent=row.percent), reply_markup=main_menu(roles))
