"""/tinjau: officers review submitted proposals in their area — the queue, each proposal's card with
its map pin, photos and musyawarah evidence, and the decision (approve / reject / request a revision).

Thin: parse the button or text, call ``bot.services.review``, render. The decision itself, its
scope check, its audit row and the RT head's notice live in ``review.decide``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.permissions import Forbidden
from bot.domain.text import TextError, clean_text, escape_html
from bot.domain.workflow import DIAJUKAN, DISETUJUI, DITARIK, DITOLAK, MINTA_REVISI, PERLU_REVISI, SETUJUI, TOLAK
from bot.services import programs, proposals, registration, review
from bot.services.media import MediaStore
from bot.services.proposals import InvalidField, ProposalNotFound, StaleVersion
from bot.services.users import Roles
from handlers.common import (
    BTN_CANCEL,
    BTN_REVIEW,
    MENU_LABELS,
    N_,
    Label,
    cancel_row,
    main_menu,
    stale_button,
)
from handlers.media import send_file, send_photos
from handlers.review.callbacks import ReviewCb
from handlers.review.render import (
    CARD_LIMIT,
    card_keyboard,
    card_text,
    parts_keyboard,
    parts_label,
    status_label,
    verdict_text,
)
from storage.models import MEDIA_BUKTI_MUSYAWARAH, MEDIA_FOTO_AWAL, Proposal, User

__all__ = ["ReviewCb", "router"]

router = Router(name=__name__)
router.message.filter(F.chat.type == "private")

PAGE = 5
NOTE_MAX = review.NOTE_MAX

OUT_OF_SCOPE = N_("This proposal is outside your area. The attempt was recorded.")
STALE_CARD = N_("This proposal has changed since this card was shown. Here is the current version.")

# Menu buttons and commands typed while we wait for a note are not notes: let their own handlers run.
NOTE_TEXT = (F.text, ~F.text.startswith("/"), ~Label(*MENU_LABELS))


class Review(StatesGroup):
    approve_note = State()
    reason = State()
    parts = State()
    revision_note = State()


# --- the queue ---------------------------------------------------------------------------------


async def send_card(bot: Bot, chat_id: int, session: AsyncSession, proposal: Proposal) -> None:
    await bot.send_message(chat_id, await card_text(session, proposal), reply_markup=card_keyboard(proposal))


async def send_queue(bot: Bot, chat_id: int, session: AsyncSession, roles: Roles | None, offset: int = 0) -> None:
    scope = roles.scope if roles is not None else None
    if scope is None:
        await bot.send_message(chat_id, _("This menu is for officers only."), reply_markup=main_menu(roles))
        return
    rows, total = await review.queue(session, scope, limit=PAGE, offset=offset)
    if not rows and total:
        offset = 0  # the page emptied meanwhile (others decided): start again from the oldest
        rows, total = await review.queue(session, scope, limit=PAGE, offset=offset)
    if total == 0:
        await bot.send_message(chat_id, _("No proposals are waiting for review. 👍"), reply_markup=main_menu(roles))
        return
    if offset == 0:
        await bot.send_message(
            chat_id, _("{count} proposal(s) waiting for your review, oldest first:").format(count=total)
        )
    for proposal in rows:
        await send_card(bot, chat_id, session, proposal)
    if offset + PAGE < total:
        more = InlineKeyboardMarkup(
            inline_keyboard=[
                [InlineKeyboardButton(text=_("Next ▶"), callback_data=ReviewCb(action="list", id=offset + PAGE).pack())]
            ]
        )
        await bot.send_message(
            chat_id,
            _("Showing {a}–{b} of {total}.").format(a=offset + 1, b=offset + len(rows), total=total),
            reply_markup=more,
        )


@router.message(Command("tinjau"))
@router.message(Label(BTN_REVIEW))
async def tinjau(
    message: Message,
    bot: Bot,
    session: AsyncSession,
    user: User,
    roles: Roles,
    state: FSMContext,
    settings: Settings,
    command: CommandObject | None = None,
) -> None:
    await state.clear()
    if command is not None and command.args and roles.scope is not None:
        # "/tinjau PRL-2026-0001" (any case, dashes optional) opens that proposal's card.
        program = await programs.ensure(session, settings, settings.current_fiscal_year())
        found = await proposals.find_by_code(session, command.args, program.code_prefix)
        if found is None:
            await message.answer(
                _("No proposal has the code {code}. Check it, or open the queue with /tinjau.").format(
                    code=escape_html(command.args.strip()[:30])
                )
            )
            return
        try:
            found = await review.get_in_scope(session, user.id, roles, found.id)
        except Forbidden:
            await message.answer(_(OUT_OF_SCOPE))
            return
        await send_card(bot, message.chat.id, session, found)
        return
    await send_queue(bot, message.chat.id, session, roles)


@router.callback_query(ReviewCb.filter(F.action == "list"))
async def tinjau_page(
    query: CallbackQuery, callback_data: ReviewCb, bot: Bot, session: AsyncSession, roles: Roles
) -> None:
    await query.answer()
    await send_queue(bot, query.from_user.id, session, roles, max(callback_data.id, 0))


async def _viewable(
    query: CallbackQuery, session: AsyncSession, user: User, roles: Roles, proposal_id: int
) -> Proposal | None:
    """The proposal if the officer may see it (a refusal is audited by the service), else None."""
    try:
        return await review.get_in_scope(session, user.id, roles, proposal_id)
    except Forbidden:
        await query.answer(_(OUT_OF_SCOPE), show_alert=True)
    except ProposalNotFound:
        await stale_button(query, session)
    return None


@router.callback_query(ReviewCb.filter(F.action == "open"))
async def open_card(
    query: CallbackQuery, callback_data: ReviewCb, bot: Bot, session: AsyncSession, user: User, roles: Roles
) -> None:
    proposal = await _viewable(query, session, user, roles, callback_data.id)
    if proposal is None:
        return
    await query.answer()
    await send_card(bot, query.from_user.id, session, proposal)


# --- map pin, photos, evidence -------------------------------------------------------------------


@router.callback_query(ReviewCb.filter(F.action.in_({"loc", "foto", "bukti"})))
async def show_media(
    query: CallbackQuery,
    callback_data: ReviewCb,
    bot: Bot,
    session: AsyncSession,
    user: User,
    roles: Roles,
    media_store: MediaStore,
) -> None:
    proposal = await _viewable(query, session, user, roles, callback_data.id)
    if proposal is None:
        return
    chat_id = query.from_user.id
    code = escape_html(proposal.code or "-")
    if callback_data.action == "loc":
        if proposal.latitude is None or proposal.longitude is None:
            await query.answer(_("This proposal has no location pin."), show_alert=True)
            return
        await query.answer()
        await bot.send_location(chat_id, proposal.latitude, proposal.longitude)
        return
    if callback_data.action == "foto":
        links = proposal.media_of(MEDIA_FOTO_AWAL)[:10]
        if not links:
            await query.answer(_("This proposal has no photos."), show_alert=True)
            return
        await query.answer()
        sent = await send_photos(bot, chat_id, media_store, links, _("Photos of {code}").format(code=code))
    else:
        links = proposal.media_of(MEDIA_BUKTI_MUSYAWARAH)
        if not links:
            await query.answer(_("This proposal has no musyawarah evidence."), show_alert=True)
            return
        await query.answer()
        caption = _("Musyawarah evidence of {code}").format(code=code)
        sent = False
        for link in links:
            sent = await send_file(bot, chat_id, media_store, link, caption) or sent
    if not sent:
        await bot.send_message(chat_id, _("Sorry, this file is not available any more."))


# --- deciding --------------------------------------------------------------------------------------


def _not_waiting_text(proposal: Proposal, user: User) -> str:
    status = status_label(proposal.status)
    if proposal.status == DITARIK:
        return _("The Ketua RT has withdrawn this proposal; there is nothing to decide.")
    if proposal.status in (DISETUJUI, DITOLAK, PERLU_REVISI):
        if proposal.decided_by == user.id:
            return _("You have already decided on this proposal: {status}.").format(status=status)
        return _("Another officer has already decided on this proposal: {status}.").format(status=status)
    return _("This proposal is not waiting for review (now: {status}).").format(status=status)


async def _set_card_markup(bot: Bot, chat_id: int, message_id: int | None, proposal: Proposal | None) -> None:
    """Leave an old card with only what still works (the media buttons, or nothing)."""
    if message_id is None:
        return
    markup = card_keyboard(proposal) if proposal is not None and proposal.status != DIAJUKAN else None
    with suppress(TelegramBadRequest):
        await bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id, reply_markup=markup)


def _message_id(query: CallbackQuery) -> int | None:
    return query.message.message_id if isinstance(query.message, Message) else None


async def _authorize(
    query: CallbackQuery,
    callback_data: ReviewCb,
    bot: Bot,
    session: AsyncSession,
    user: User,
    roles: Roles,
    action: str,
) -> Proposal | None:
    """Before asking for a note or a reason: may this officer decide on it, and is it still open?"""
    try:
        proposal = await proposals.get(session, callback_data.id)
    except ProposalNotFound:
        await stale_button(query, session)
        return None
    if not review.in_scope(roles.scope if roles is not None else None, proposal):
        await registration.deny(session, user.id, "proposal." + action, "proposal", callback_data.id, "out_of_scope")
        await query.answer(_(OUT_OF_SCOPE), show_alert=True)
        return None
    if proposal.status != DIAJUKAN:
        await query.answer(_not_waiting_text(proposal, user), show_alert=True)
        await _set_card_markup(bot, query.from_user.id, _message_id(query), proposal)
        return None
    if proposal.version != callback_data.v:
        await query.answer(_(STALE_CARD), show_alert=True)
        await _set_card_markup(bot, query.from_user.id, _message_id(query), None)
        await send_card(bot, query.from_user.id, session, proposal)
        return None
    return proposal


async def _start(state: FSMContext, step: State, proposal: Proposal, card_id: int | None) -> None:
    await state.set_state(step)
    await state.set_data({"pid": proposal.id, "v": proposal.version, "card": card_id, "parts": []})


@router.callback_query(ReviewCb.filter(F.action == "ok"))
async def approve_ask_note(
    query: CallbackQuery,
    callback_data: ReviewCb,
    bot: Bot,
    session: AsyncSession,
    user: User,
    roles: Roles,
    state: FSMContext,
) -> None:
    proposal = await _authorize(query, callback_data, bot, session, user, roles, SETUJUI)
    if proposal is None:
        return
    await _start(state, Review.approve_note, proposal, _message_id(query))
    await query.answer()
    kb = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("✅ Approve without a note"),
                    callback_data=ReviewCb(action="okn", id=proposal.id, v=proposal.version).pack(),
                )
            ],
            cancel_row(),
        ]
    )
    await bot.send_message(
        query.from_user.id,
        _("Approve {code}? You may type a note for the Ketua RT, or press the button.").format(
            code=escape_html(proposal.code or "-")
        ),
        reply_markup=kb,
    )


@router.callback_query(ReviewCb.filter(F.action == "okn"))
async def approve_without_note(
    query: CallbackQuery,
    callback_data: ReviewCb,
    bot: Bot,
    session: AsyncSession,
    user: User,
    roles: Roles,
    state: FSMContext,
) -> None:
    await _decide(bot, session, user, roles, state, callback_data.id, callback_data.v, SETUJUI, query=query)


@router.callback_query(ReviewCb.filter(F.action == "no"))
async def reject_ask_reason(
    query: CallbackQuery,
    callback_data: ReviewCb,
    bot: Bot,
    session: AsyncSession,
    user: User,
    roles: Roles,
    state: FSMContext,
) -> None:
    proposal = await _authorize(query, callback_data, bot, session, user, roles, TOLAK)
    if proposal is None:
        return
    await _start(state, Review.reason, proposal, _message_id(query))
    await query.answer()
    await bot.send_message(
        query.from_user.id,
        _("Why is {code} rejected? Please type the reason; it will be sent to the Ketua RT.").format(
            code=escape_html(proposal.code or "-")
        ),
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[cancel_row()]),
    )


@router.callback_query(ReviewCb.filter(F.action == "rev"))
async def revision_ask_parts(
    query: CallbackQuery,
    callback_data: ReviewCb,
    bot: Bot,
    session: AsyncSession,
    user: User,
    roles: Roles,
    state: FSMContext,
) -> None:
    proposal = await _authorize(query, callback_data, bot, session, user, roles, MINTA_REVISI)
    if proposal is None:
        return
    await _start(state, Review.parts, proposal, _message_id(query))
    await query.answer()
    await bot.send_message(
        query.from_user.id,
        _("Which parts of {code} must the Ketua RT fix? Tick one or more, then press Continue.").format(
            code=escape_html(proposal.code or "-")
        ),
        reply_markup=parts_keyboard(proposal.id, proposal.version, ()),
    )


async def _dialog_of(state: FSMContext, step: State, callback_data: ReviewCb) -> dict | None:
    """The FSM data if the button belongs to the dialog in progress (same step and proposal)."""
    if await state.get_state() != step.state:
        return None
    data = await state.get_data()
    if data.get("pid") != callback_data.id or data.get("v") != callback_data.v:
        return None
    return data


@router.callback_query(ReviewCb.filter(F.action == "part"))
async def revision_toggle_part(
    query: CallbackQuery, callback_data: ReviewCb, session: AsyncSession, state: FSMContext
) -> None:
    data = await _dialog_of(state, Review.parts, callback_data)
    if data is None or callback_data.arg not in proposals.PARTS:
        await stale_button(query, session)
        return
    chosen = [p for p in data.get("parts") or () if p in proposals.PARTS]
    if callback_data.arg in chosen:
        chosen.remove(callback_data.arg)
    else:
        chosen.append(callback_data.arg)
    chosen = [p for p in proposals.PARTS if p in chosen]
    await state.update_data(parts=chosen)
    await query.answer()
    if isinstance(query.message, Message):
        with suppress(TelegramBadRequest):
            await query.message.edit_reply_markup(
                reply_markup=parts_keyboard(callback_data.id, callback_data.v, chosen)
            )


@router.callback_query(ReviewCb.filter(F.action == "next"))
async def revision_ask_note(
    query: CallbackQuery, callback_data: ReviewCb, bot: Bot, session: AsyncSession, state: FSMContext
) -> None:
    data = await _dialog_of(state, Review.parts, callback_data)
    if data is None:
        await stale_button(query, session)
        return
    chosen = data.get("parts") or []
    if not chosen:
        await query.answer(_("Please tick at least one part first."), show_alert=True)
        return
    await state.set_state(Review.revision_note)
    await query.answer()
    if isinstance(query.message, Message):
        with suppress(TelegramBadRequest):
            await query.message.edit_text(
                _("Parts to fix: {parts}.").format(parts=parts_label(chosen)), reply_markup=None
            )
    await bot.send_message(
        query.from_user.id,
        _("Please type a note for the Ketua RT: what exactly should be fixed?"),
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


# The text an officer types after choosing a decision: a note, the reason, or the revision note.
TYPED_DECISION = {
    Review.approve_note.state: SETUJUI,
    Review.reason.state: TOLAK,
    Review.revision_note.state: MINTA_REVISI,
}


@router.message(StateFilter(Review.approve_note, Review.reason, Review.revision_note), *NOTE_TEXT)
async def decision_with_text(
    message: Message, bot: Bot, session: AsyncSession, user: User, roles: Roles, state: FSMContext
) -> None:
    text, problem = _clean_note(message.text)
    if problem:
        await message.answer(problem)
        return
    action = TYPED_DECISION[await state.get_state()]
    data = await state.get_data()
    parts = data.get("parts") if action == MINTA_REVISI else None
    await _decide(bot, session, user, roles, state, data["pid"], data["v"], action, note=text, parts=parts)


@router.message(StateFilter(Review), Label(BTN_CANCEL))
async def cancel_label(message: Message, roles: Roles, state: FSMContext) -> None:
    await state.clear()
    await message.answer(_("Cancelled. Nothing was saved."), reply_markup=main_menu(roles))


@router.message(Review.approve_note, ~F.text)
async def approve_note_wrong(message: Message) -> None:
    await message.answer(_("Please type the note as text, or press “Approve without a note”."))


@router.message(Review.reason, ~F.text)
async def reason_wrong(message: Message) -> None:
    await message.answer(_("Please type the reason for rejecting as text, or /batal to stop."))


@router.message(Review.revision_note, ~F.text)
async def revision_note_wrong(message: Message) -> None:
    await message.answer(_("Please type the note as text, or /batal to stop."))


@router.message(Review.parts, ~F.text.startswith("/"), ~Label(*MENU_LABELS))
async def parts_wrong(message: Message) -> None:
    await message.answer(_("Please tick the parts with the buttons above, then press Continue (or /batal to stop)."))


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
    proposal_id: int,
    version: int,
    action: str,
    *,
    note: str | None = None,
    parts: Sequence[str] | None = None,
    query: CallbackQuery | None = None,
) -> None:
    chat_id = user.id
    data = await state.get_data()
    card_id = data.get("card") if data.get("pid") == proposal_id else None
    prompt_id = _message_id(query) if query is not None else None
    try:
        proposal = await review.decide(
            session, user.id, roles, proposal_id, action, note=note, parts=parts, expected_version=version
        )
    except Forbidden:
        await state.clear()
        await _tell(bot, chat_id, query, _(OUT_OF_SCOPE))
        return
    except review.AlreadyDecided as exc:
        await state.clear()
        await _tell(bot, chat_id, query, _not_waiting_text(exc.proposal, user))
        await _set_card_markup(bot, chat_id, card_id, exc.proposal)
        await _set_card_markup(bot, chat_id, prompt_id, None)
        return
    except StaleVersion:
        await state.clear()
        await _tell(bot, chat_id, query, _(STALE_CARD))
        await _set_card_markup(bot, chat_id, card_id, None)
        await _set_card_markup(bot, chat_id, prompt_id, None)
        with suppress(ProposalNotFound):
            await send_card(bot, chat_id, session, await proposals.get(session, proposal_id))
        return
    except review.DecisionIncomplete as exc:
        # Our dialog always collects what is needed; this is a forged or half-lost dialog.
        await state.clear()
        await _tell(
            bot,
            chat_id,
            query,
            _("Something is missing ({what}). Please start again from the card.").format(
                what=", ".join(exc.missing + exc.unknown_parts)
            ),
        )
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
    verdict = verdict_text(proposal, user)
    card = await card_text(session, proposal, show_status=False, limit=CARD_LIMIT - len(verdict) - 2)
    text = f"{card}\n\n{verdict}"
    if card_id is not None:
        with suppress(TelegramBadRequest):
            await bot.edit_message_text(text, chat_id=chat_id, message_id=card_id, reply_markup=None)
    if query is not None:
        await query.answer(_("Saved. The Ketua RT has been told."))
        await _set_card_markup(bot, chat_id, prompt_id, None)
    code = escape_html(proposal.code or "-")
    done = {
        DISETUJUI: _("✅ {code} approved. The Ketua RT has been told."),
        DITOLAK: _("❌ {code} rejected. The Ketua RT has been told the reason."),
        PERLU_REVISI: _("🔁 {code} sent back for revision. The Ketua RT has been told what to fix."),
    }[proposal.status].format(code=code)
    await bot.send_message(chat_id, done, reply_markup=main_menu(roles))
