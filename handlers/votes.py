"""/musyawarah: the Ketua RT puts 2-10 ideas to a vote among the RT's followers (one native
Telegram poll each), sees the votes of the RT with their results, and attaches a result to a
proposal as musyawarah evidence. Also the ``poll_answer`` updates of those polls.

Thin: parse, call ``bot.services.votes``, render.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from contextlib import suppress

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, PollAnswer
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.permissions import Forbidden
from bot.domain.text import escape_html
from bot.services import votes
from bot.services.users import Roles
from handlers.common import (
    BTN_VOTE,
    MENU_LABELS,
    N_,
    CbInt,
    Label,
    cancel_row,
    drop_buttons,
    main_menu,
    rt_place,
    stale_button,
    when,
)
from handlers.proposals.render import status_label
from storage.models import RT, VOTE_CLOSED, MusyawarahVote, Proposal, utcnow

router = Router(name=__name__)
router.message.filter(F.chat.type == "private")

DEFAULT_QUESTION = N_("Which idea should our RT propose this year?")
LISTED = 10  # votes shown in /musyawarah
ASPIRATION_LABEL = 40  # characters of an aspiration on its button


def is_head(_event: object, roles: Roles | None = None) -> bool:
    """Dialog steps need a (still) verified Ketua RT; otherwise the step falls through."""
    return roles is not None and roles.rt_head is not None


ANSWER_TEXT = (F.text, ~F.text.startswith("/"), ~Label(*MENU_LABELS), is_head)
NOT_FOR_OTHERS = (~F.text.startswith("/"), ~Label(*MENU_LABELS))


class VoteCb(CallbackData, prefix="mv"):
    """``action``: new, list, open (vote ``id``), dq (default question), asp (aspiration ``id``),
    done (options finished), days (close in ``id`` days), send, attach (vote ``id``: pick a
    proposal), to (attach vote ``id`` to proposal ``p``)."""

    action: str
    id: CbInt = 0
    p: CbInt = 0


class Musyawarah(StatesGroup):
    question = State()
    options = State()
    closing = State()
    confirm = State()


# --- rendering -----------------------------------------------------------------------------------------


def result_lines(vote: MusyawarahVote) -> list[str]:
    """Votes per option, most first, with a bar; shared with the result notice."""
    result = vote.result or [0] * len(vote.options)
    rows = votes.ranking(vote.options, result)
    most = max((n for _, _, n in rows), default=0)
    lines = []
    for _i, option, n in rows:
        lines.append(f"{votes.bar(n, most)} <b>{n}</b> — {escape_html(option)}")
    return lines


def result_text(vote: MusyawarahVote, rt: RT) -> str:
    lines = [
        _("🗳 <b>Result of the musyawarah vote</b> · {place}").format(place=rt_place(rt)),
        f"<i>{escape_html(vote.question)}</i>",
        "",
        *result_lines(vote),
        "",
        _("{voters} resident(s) voted. Closed {when}.").format(
            voters=vote.voters or 0, when=when(vote.closed_at or vote.closes_at)
        ),
    ]
    return "\n".join(lines)


def attach_keyboard(vote: MusyawarahVote) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("📎 Attach to a proposal"), callback_data=VoteCb(action="attach", id=vote.id).pack()
                )
            ]
        ]
    )


def _short(text: str, limit: int) -> str:
    return votes.shorten(text, limit)


def _vote_line(vote: MusyawarahVote, answered: int) -> str:
    question = escape_html(_short(vote.question, 60))
    if vote.status == VOTE_CLOSED:
        rows = votes.ranking(vote.options, vote.result or [])
        top = rows[0] if rows else (0, "-", 0)
        return _("✅ {question} — closed: <b>{top}</b> ({votes} of {voters} voters)").format(
            question=question, top=escape_html(_short(top[1], 60)), votes=top[2], voters=vote.voters or 0
        )
    return _("⏳ {question} — open until {when}; {answered} answer(s) so far").format(
        question=question, when=when(vote.closes_at), answered=answered
    )


async def _require_head(message: Message, roles: Roles | None) -> bool:
    if roles is not None and roles.rt_head is not None:
        return True
    if roles is not None and roles.pending is not None:
        text = _("A musyawarah vote can be started once your Ketua RT registration is verified.")
    else:
        text = _("Only a verified Ketua RT can start a musyawarah vote. Are you the Ketua RT? Register with /daftar.")
    await message.answer(text, reply_markup=main_menu(roles))
    return False


async def _show_list(message: Message, session: AsyncSession, roles: Roles) -> None:
    rt = roles.rt_head.rt
    rows = await votes.list_for_rt(session, rt.id, LISTED)
    lines = [_("🗳 <b>Musyawarah votes</b> · {place}").format(place=rt_place(rt)), ""]
    buttons: list[list[InlineKeyboardButton]] = []
    if not rows:
        lines.append(
            _(
                "No votes yet. In a vote, the residents who follow your RT choose among 2 to 10 ideas, "
                "each with a Telegram poll. You get the result at the closing time."
            )
        )
    for vote in rows:
        answered = 0 if vote.status == VOTE_CLOSED else await votes.answers_so_far(session, vote.id)
        lines.append(_vote_line(vote, answered))
        buttons.append(
            [
                InlineKeyboardButton(
                    text="🗳 " + _short(vote.question, 40), callback_data=VoteCb(action="open", id=vote.id).pack()
                )
            ]
        )
    buttons.append([InlineKeyboardButton(text=_("➕ New vote"), callback_data=VoteCb(action="new").pack())])
    await message.answer("\n".join(lines), reply_markup=InlineKeyboardMarkup(inline_keyboard=buttons))


@router.message(Command("musyawarah"))
@router.message(Label(BTN_VOTE))
async def musyawarah(message: Message, state: FSMContext, session: AsyncSession, roles: Roles) -> None:
    if not await _require_head(message, roles):
        return
    await state.clear()
    await _show_list(message, session, roles)


@router.callback_query(VoteCb.filter(F.action == "list"), StateFilter("*"))
async def back_to_list(query: CallbackQuery, state: FSMContext, session: AsyncSession, roles: Roles) -> None:
    await query.answer()
    if roles is None or roles.rt_head is None:
        return
    await state.clear()
    await _show_list(query.message, session, roles)


@router.callback_query(VoteCb.filter(F.action == "open"), StateFilter("*"))
async def open_vote(query: CallbackQuery, callback_data: VoteCb, session: AsyncSession, roles: Roles) -> None:
    if roles is None or roles.rt_head is None:
        return await stale_button(query, session)
    try:
        vote = await votes.get_for_rt(session, callback_data.id, roles.rt_head.rt_id, query.from_user.id)
    except (votes.VoteNotFound, Forbidden):
        return await stale_button(query, session)
    await query.answer()
    rt = roles.rt_head.rt
    back = [InlineKeyboardButton(text=_("⬅️ All votes"), callback_data=VoteCb(action="list").pack())]
    if vote.status == VOTE_CLOSED:
        text = result_text(vote, rt)
        if vote.proposal_id is not None:
            proposal = await session.get(Proposal, vote.proposal_id)
            if proposal is not None:
                text += "\n" + _("📎 Attached to the proposal {title}.").format(title=_proposal_name(proposal))
        kb = attach_keyboard(vote)
        kb.inline_keyboard.append(back)
        await query.message.answer(text, reply_markup=kb)
        return
    answered = await votes.answers_so_far(session, vote.id)
    sent = await votes.polls_sent(session, vote.id)
    lines = [
        _("⏳ <b>Vote open</b> until {when}").format(when=when(vote.closes_at)),
        f"<i>{escape_html(vote.question)}</i>",
        "",
        *(f"{i}. {escape_html(o)}" for i, o in enumerate(vote.options, 1)),
        "",
        _("Polls delivered: {sent}. Answers so far: {answered}. The result is sent to you at the closing time.").format(
            sent=sent, answered=answered
        ),
    ]
    await query.message.answer("\n".join(lines), reply_markup=InlineKeyboardMarkup(inline_keyboard=[back]))


# --- a new vote: question, options, closing time, summary -------------------------------------------------


@router.callback_query(VoteCb.filter(F.action == "new"), StateFilter("*"))
async def new_vote(query: CallbackQuery, state: FSMContext, session: AsyncSession, roles: Roles) -> None:
    if roles is None or roles.rt_head is None:
        return await stale_button(query, session)
    await query.answer()
    await state.clear()
    await state.set_state(Musyawarah.question)
    await state.update_data(options=[])
    kb = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=_("✅ Use this question"), callback_data=VoteCb(action="dq").pack())],
            cancel_row(),
        ]
    )
    await query.message.answer(
        _(
            "What question should the residents answer? Type it (at most {max} characters), "
            "or tap the button to use:\n<i>{default}</i>"
        ).format(max=votes.QUESTION_MAX, default=escape_html(_(DEFAULT_QUESTION))),
        reply_markup=kb,
    )


async def _ask_options(message: Message, state: FSMContext, session: AsyncSession, roles: Roles) -> None:
    data = await state.get_data()
    options: list[str] = data.get("options") or []
    used = set(data.get("asp") or [])
    ideas = [a for a in await votes.aspiration_options(session, roles.rt_head.rt_id) if a.id not in used]
    lines = []
    if options:
        lines.append(
            _("<b>Choices so far</b> ({count} of at most {max}):").format(count=len(options), max=votes.MAX_OPTIONS)
        )
        lines.extend(f"{i}. {escape_html(o)}" for i, o in enumerate(options, 1))
        lines.append("")
    if len(options) >= votes.MAX_OPTIONS:
        lines.append(_("That is the maximum. Tap ✅ Done to continue."))
    elif not options:
        lines.append(
            _(
                "Now type the choices, from {min} to {max}: one per message, or several lines in one message. "
                "Each choice at most {length} characters."
            ).format(min=votes.MIN_OPTIONS, max=votes.MAX_OPTIONS, length=votes.OPTION_MAX)
        )
    else:
        lines.append(_("Type another choice, or tap ✅ Done."))
    rows: list[list[InlineKeyboardButton]] = []
    if ideas and len(options) < votes.MAX_OPTIONS:
        lines.append(_("💡 Or tap an idea from residents that you marked for the musyawarah."))
        for idea in ideas:
            rows.append(
                [
                    InlineKeyboardButton(
                        text="💡 " + _short(idea.text, ASPIRATION_LABEL),
                        callback_data=VoteCb(action="asp", id=idea.id).pack(),
                    )
                ]
            )
    if len(options) >= votes.MIN_OPTIONS:
        rows.append([InlineKeyboardButton(text=_("✅ Done"), callback_data=VoteCb(action="done").pack())])
    rows.append(cancel_row())
    await message.answer("\n".join(lines), reply_markup=InlineKeyboardMarkup(inline_keyboard=rows))


def explain(error: votes.VoteInputError) -> str:
    texts = {
        "question_empty": _("Please type the question as text."),
        "question_long": _("The question is too long: at most {limit} characters. Please make it shorter."),
        "option_long": _(
            "A choice is too long: at most {limit} characters each (Telegram's limit). Please shorten it."
        ),
        "option_duplicate": _("That choice is already in the list. Please type a different one."),
        "too_many": _("A vote can have at most {limit} choices. Tap ✅ Done to continue."),
        "too_few": _("A vote needs at least {limit} choices. Please type another one."),
        "closing_format": _("I could not read that date. Please type it like <b>30/11 20:00</b>, or tap a button."),
        "closing_past": _("The closing time must be at least 10 minutes from now. Please choose a later time."),
        "closing_far": _("The closing time can be at most {limit} days from now. Please choose an earlier date."),
    }
    return texts.get(error.code, _("Please check your answer and try again.")).format(limit=error.limit)


@router.callback_query(Musyawarah.question, VoteCb.filter(F.action == "dq"), is_head)
async def default_question(query: CallbackQuery, state: FSMContext, session: AsyncSession, roles: Roles) -> None:
    await query.answer()
    await drop_buttons(query.message)
    await state.update_data(question=_(DEFAULT_QUESTION))
    await state.set_state(Musyawarah.options)
    await _ask_options(query.message, state, session, roles)


@router.message(Musyawarah.question, *ANSWER_TEXT)
async def question_typed(message: Message, state: FSMContext, session: AsyncSession, roles: Roles) -> None:
    try:
        question = votes.clean_question(message.text)
    except votes.VoteInputError as e:
        await message.answer(explain(e))
        return
    await state.update_data(question=question)
    await state.set_state(Musyawarah.options)
    await _ask_options(message, state, session, roles)


async def _add(
    message: Message, state: FSMContext, session: AsyncSession, roles: Roles, new: Sequence[str], idea: int = 0
) -> None:
    data = await state.get_data()
    try:
        options = votes.add_options(data.get("options") or [], new)
    except votes.VoteInputError as e:
        await message.answer(explain(e))
        return
    used = [*(data.get("asp") or []), idea] if idea else data.get("asp") or []
    await state.update_data(options=options, asp=used)
    await _ask_options(message, state, session, roles)


@router.message(Musyawarah.options, *ANSWER_TEXT)
async def option_typed(message: Message, state: FSMContext, session: AsyncSession, roles: Roles) -> None:
    await _add(message, state, session, roles, votes.split_options(message.text))


@router.callback_query(Musyawarah.options, VoteCb.filter(F.action == "asp"), is_head)
async def option_from_idea(
    query: CallbackQuery, callback_data: VoteCb, state: FSMContext, session: AsyncSession, roles: Roles
) -> None:
    ideas = {a.id: a for a in await votes.aspiration_options(session, roles.rt_head.rt_id)}
    idea = ideas.get(callback_data.id)
    if idea is None:
        return await stale_button(query, session)
    await query.answer()
    await drop_buttons(query.message)
    await _add(query.message, state, session, roles, [votes.shorten(idea.text)], idea=idea.id)


@router.callback_query(Musyawarah.options, VoteCb.filter(F.action == "done"))
async def options_done(query: CallbackQuery, state: FSMContext) -> None:
    data = await state.get_data()
    try:
        votes.check_options(data.get("options") or [])
    except votes.VoteInputError as e:
        await query.answer(explain(e), show_alert=True)
        return
    await query.answer()
    await drop_buttons(query.message)
    await state.set_state(Musyawarah.closing)
    rows = [
        [
            InlineKeyboardButton(
                text=_("In {days} day(s)").format(days=d), callback_data=VoteCb(action="days", id=d).pack()
            )
            for d in votes.CLOSING_DAYS
        ],
        cancel_row(),
    ]
    await query.message.answer(
        _("When should the vote close? Tap a button, or type a date and time (WITA), e.g. <b>30/11 20:00</b>."),
        reply_markup=InlineKeyboardMarkup(inline_keyboard=rows),
    )


async def _summary(
    message: Message, state: FSMContext, session: AsyncSession, roles: Roles, closes_at: dt.datetime
) -> None:
    rt = roles.rt_head.rt
    followers = await votes.followers_of(session, rt.id)
    if not followers:
        await state.clear()
        await message.answer(
            _(
                "Nobody follows {place} in this bot yet, so there is no one to send the vote to. "
                "Ask the residents to open this bot and follow the RT with /ikuti (🔔 Follow an RT). "
                "Then start the vote again with /musyawarah."
            ).format(place=rt_place(rt)),
            reply_markup=main_menu(roles),
        )
        return
    await state.update_data(closes_at=closes_at.isoformat())
    await state.set_state(Musyawarah.confirm)
    data = await state.get_data()
    lines = [
        _("<b>Check the vote before sending</b>"),
        f"<i>{escape_html(data['question'])}</i>",
        *(f"{i}. {escape_html(o)}" for i, o in enumerate(data["options"], 1)),
        "",
        _("Closes: {when}").format(when=when(closes_at)),
        _("It will be sent as a Telegram poll to {count} resident(s) who follow {place}.").format(
            count=len(followers), place=rt_place(rt)
        ),
    ]
    kb = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=_("📨 Send the vote"), callback_data=VoteCb(action="send").pack())],
            cancel_row(),
        ]
    )
    await message.answer("\n".join(lines), reply_markup=kb)


@router.callback_query(Musyawarah.closing, VoteCb.filter(F.action == "days"), is_head)
async def closing_button(
    query: CallbackQuery, callback_data: VoteCb, state: FSMContext, session: AsyncSession, roles: Roles
) -> None:
    if callback_data.id not in votes.CLOSING_DAYS:
        return await stale_button(query, session)
    await query.answer()
    await drop_buttons(query.message)
    await _summary(query.message, state, session, roles, votes.closing_in_days(callback_data.id, utcnow()))


@router.message(Musyawarah.closing, *ANSWER_TEXT)
async def closing_typed(
    message: Message, state: FSMContext, session: AsyncSession, roles: Roles, settings: Settings
) -> None:
    try:
        closes_at = votes.parse_closing(message.text, utcnow(), settings.timezone)
    except votes.VoteInputError as e:
        await message.answer(explain(e))
        return
    await _summary(message, state, session, roles, closes_at)


@router.callback_query(Musyawarah.confirm, VoteCb.filter(F.action == "send"), is_head)
async def send_vote(query: CallbackQuery, state: FSMContext, session: AsyncSession, roles: Roles) -> None:
    data = await state.get_data()
    await drop_buttons(query.message)
    try:
        vote = await votes.create(
            session,
            query.from_user.id,
            roles.rt_head.rt_id,
            data["question"],
            data["options"],
            dt.datetime.fromisoformat(data["closes_at"]),
        )
    except votes.NoFollowers:
        await query.answer()
        await state.clear()
        await query.message.answer(
            _("Nobody follows your RT yet. Ask the residents to follow it with /ikuti, then try again."),
            reply_markup=main_menu(roles),
        )
        return
    except votes.VoteInputError as e:
        await query.answer()
        if e.code.startswith("closing"):
            await state.set_state(Musyawarah.closing)
            await query.message.answer(
                explain(e) + "\n" + _("Please type a new closing time, e.g. <b>30/11 20:00</b>.")
            )
        else:
            await query.message.answer(explain(e))
        return
    await query.answer(_("Sent."))
    await state.clear()
    sent_to = len(await votes.followers_of(session, vote.rt_id))
    text = _(
        "✅ The vote is on its way to {count} resident(s). Each answer counts once per person; "
        "I will send you the result on {when}."
    ).format(count=sent_to, when=when(vote.closes_at))
    held = await votes.polls_held(session, vote.id)
    if held:
        text += "\n" + _("{count} of them are in their quiet hours now and get it when those end.").format(
            count=held
        )
    await query.message.answer(text, reply_markup=main_menu(roles))


@router.message(Musyawarah.confirm, *NOT_FOR_OTHERS)
async def confirm_use_buttons(message: Message) -> None:
    await message.answer(_("Please tap 📨 Send the vote, or ✖️ Cancel."))


@router.message(StateFilter(Musyawarah.question, Musyawarah.options, Musyawarah.closing), *NOT_FOR_OTHERS)
async def type_text(message: Message) -> None:
    await message.answer(_("Please answer by typing text (not a photo or sticker)."))


# --- attaching a result to a proposal ---------------------------------------------------------------------


def _proposal_name(proposal: Proposal) -> str:
    title = escape_html(proposal.title or "-")
    return f"<b>{proposal.code}</b> ({title})" if proposal.code else f"<b>{title}</b>"


@router.callback_query(VoteCb.filter(F.action == "attach"), StateFilter("*"))
async def pick_proposal(
    query: CallbackQuery, callback_data: VoteCb, session: AsyncSession, roles: Roles, settings: Settings
) -> None:
    if roles is None or roles.rt_head is None:
        return await stale_button(query, session)
    try:
        vote = await votes.get_for_rt(session, callback_data.id, roles.rt_head.rt_id, query.from_user.id)
    except (votes.VoteNotFound, Forbidden):
        return await stale_button(query, session)
    if vote.status != VOTE_CLOSED:
        return await query.answer(
            _("The vote is still open. You can attach its result once it closes."), show_alert=True
        )
    proposals = await votes.attachable_proposals(session, vote.rt_id, settings.current_fiscal_year())
    await query.answer()
    if not proposals:
        await query.message.answer(
            _(
                "There is no proposal to attach it to yet (a draft, one to revise, or one waiting for review). "
                "Make one with /usulan, then attach the result from /musyawarah."
            )
        )
        return
    rows = [
        [
            InlineKeyboardButton(
                text=f"{p.code or _short(p.title or '-', 30)} · {status_label(p.status)}",
                callback_data=VoteCb(action="to", id=vote.id, p=p.id).pack(),
            )
        ]
        for p in proposals[:10]
    ]
    await query.message.answer(
        _("Which proposal is this vote evidence for?"), reply_markup=InlineKeyboardMarkup(inline_keyboard=rows)
    )


@router.callback_query(VoteCb.filter(F.action == "to"), StateFilter("*"))
async def attach_to(query: CallbackQuery, callback_data: VoteCb, session: AsyncSession, roles: Roles) -> None:
    if roles is None or roles.rt_head is None:
        return await stale_button(query, session)
    try:
        vote, proposal = await votes.attach(
            session, query.from_user.id, roles.rt_head.rt_id, callback_data.id, callback_data.p
        )
    except votes.VoteNotFound:
        return await stale_button(query, session)
    except Forbidden as e:
        if str(e) == "proposal_status":
            return await query.answer(
                _("This proposal can no longer take evidence (it was decided or withdrawn)."), show_alert=True
            )
        return await stale_button(query, session)
    await query.answer(_("Attached."))
    await drop_buttons(query.message)
    await query.message.answer(
        _(
            "📎 The vote result ({voters} voters) is attached to the proposal {proposal}. "
            "The kelurahan officer will see it as musyawarah evidence."
        ).format(voters=vote.voters or 0, proposal=_proposal_name(proposal)),
        reply_markup=main_menu(roles),
    )


@router.callback_query(VoteCb.filter())
async def vote_stale(query: CallbackQuery, session: AsyncSession) -> None:
    await stale_button(query, session)


# --- answers to the polls --------------------------------------------------------------------------------------


@router.poll_answer()
async def poll_answer(poll_answer: PollAnswer, bot: Bot, session: AsyncSession) -> None:
    voter = poll_answer.user
    if voter is None:  # an anonymous voter (a channel): our polls are not anonymous
        return
    outcome = await votes.answer(session, poll_answer.poll_id, voter.id, poll_answer.option_ids)
    if outcome.status == "late" and outcome.vote is not None:
        with suppress(TelegramBadRequest, TelegramForbiddenError):
            await bot.send_message(
                voter.id,
                _("⏰ This vote closed on {when}, so your answer was not counted. Thank you for taking part!").format(
                    when=when(outcome.vote.closes_at)
                ),
            )
