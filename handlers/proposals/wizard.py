"""/usulan: the Ketua RT's proposal wizard. One short question per step, buttons where possible,
Kembali and Batal always there. Every answer is saved to the draft in the database at once, so a
draft survives days, restarts and a lost connection; the FSM only remembers which draft and step."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

from aiogram import Bot, F, Router
from aiogram.filters import Command, StateFilter
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
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.debounce import Debouncer
from bot.domain import budget, rab
from bot.domain.money import format_rupiah
from bot.domain.permissions import Forbidden
from bot.domain.text import TextError, clean_text, escape_html
from bot.domain.workflow import TransitionError
from bot.services import media as media_service
from bot.services import programs
from bot.services import proposals as svc
from bot.services.users import Roles
from handlers.common import (
    BACK_WORDS,
    BTN_BACK,
    BTN_NEW_PROPOSAL,
    N_,
    NOT_FOR_STEP,
    TEXT_ANSWER,
    Label,
    NavCb,
    chunk,
    drop_buttons,
    edit_or_send,
    main_menu,
    nav_reply_keyboard,
    nav_row,
    stale_button,
)
from handlers.media import fetch, incoming_file, too_many_pixels_text
from handlers.proposals import render
from handlers.proposals.callbacks import PropCb
from storage.models import MEDIA_BUKTI_MUSYAWARAH, MEDIA_FOTO_AWAL, Program, Proposal, User

router = Router(name=__name__)
router.message.filter(F.chat.type == "private")

BTN_SEND_LOCATION = N_("📍 Send my current location")


class Usulan(StatesGroup):
    kategori = State()
    judul = State()
    uraian = State()
    lokasi = State()
    alamat = State()
    rab = State()
    rab_edit = State()
    rab_qty = State()
    rab_price = State()
    foto = State()
    bukti = State()
    peserta = State()
    ringkasan = State()


ORDER = [
    Usulan.kategori,
    Usulan.judul,
    Usulan.uraian,
    Usulan.lokasi,
    Usulan.alamat,
    Usulan.rab,
    Usulan.foto,
    Usulan.bukti,
    Usulan.peserta,
    Usulan.ringkasan,
]
BY_NAME = {s.state: s for s in ORDER}
# The steps of each part an officer can flag and the RT head can jump to from the summary.
PART_STEPS = {
    svc.PART_URAIAN: [Usulan.kategori, Usulan.judul, Usulan.uraian],
    svc.PART_LOKASI: [Usulan.lokasi, Usulan.alamat],
    svc.PART_ANGGARAN: [Usulan.rab],
    svc.PART_FOTO: [Usulan.foto],
    svc.PART_MUSYAWARAH: [Usulan.bukti, Usulan.peserta],
}


def local_today(settings: Settings) -> dt.date:
    return dt.datetime.now(settings.tz).date()


# --- loading the draft of this dialog ----------------------------------------------------------


async def _program(session: AsyncSession, proposal: Proposal) -> Program:
    program = await programs.by_id(session, proposal.program_id)
    assert program is not None  # a proposal's programme is never deleted (foreign key)
    return program


async def load(session: AsyncSession, state: FSMContext, user: User, roles: Roles) -> Proposal | None:
    data = await state.get_data()
    pid = data.get("proposal_id")
    if pid is None or roles.rt_head is None:
        return None
    try:
        return await svc.get_for_rt_head(session, pid, user.id, roles.rt_head.rt_id)
    except (svc.ProposalNotFound, Forbidden):
        return None


async def remaining_for(session: AsyncSession, proposal: Proposal, program: Program) -> int:
    position = await svc.budget_position(session, proposal.rt_id, program, exclude_proposal_id=proposal.id)
    return position.remaining


def next_step(current: State, part: str | None) -> State:
    if part is not None and PART_STEPS[part][-1] == current:
        return Usulan.ringkasan
    return ORDER[min(ORDER.index(current) + 1, len(ORDER) - 1)]


def previous_step(current: State, part: str | None) -> State | None:
    if part is not None:
        steps = PART_STEPS[part]
        if current in steps and steps.index(current) > 0:
            return steps[steps.index(current) - 1]
        return Usulan.ringkasan
    i = ORDER.index(current)
    return ORDER[i - 1] if i > 0 else None


# --- asking each step -------------------------------------------------------------------------


def _inline(*rows: list[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[*rows, nav_row()])


def _button(text: str, action: str, proposal: Proposal, arg: str = "") -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=text, callback_data=PropCb(action=action, id=proposal.id, v=proposal.version, arg=arg).pack()
    )


async def ask(
    step: State, message: Message, state: FSMContext, session: AsyncSession, proposal: Proposal, settings: Settings
) -> None:
    """Ask the question of ``step`` for ``proposal`` and remember the step (FSM and draft)."""
    await state.set_state(step)
    if proposal.wizard_step != step.state and proposal.status in ("draf", "perlu_revisi"):
        proposal = await svc.update_fields(session, proposal, wizard_step=step.state)
    program = await _program(session, proposal)
    if step == Usulan.kategori:
        buttons = [_button(c.name, "cat", proposal, c.code) for c in program.categories]
        await message.answer(_("Which <b>category</b> is this proposal?"), reply_markup=_inline(*chunk(buttons, 1)))
    elif step == Usulan.judul:
        current = _("\nNow: <i>{title}</i>").format(title=escape_html(proposal.title)) if proposal.title else ""
        await message.answer(
            _("Type a short <b>title</b>, e.g. <i>Semenisasi jalan gang RT 05</i>.") + current,
            reply_markup=_inline(),
        )
    elif step == Usulan.uraian:
        await message.answer(
            _("Describe it in a few sentences: what will be done, and why the residents need it."),
            reply_markup=_inline(),
        )
    elif step == Usulan.lokasi:
        physical = next((c.is_physical for c in program.categories if c.code == proposal.category_code), False)
        text = _(
            "Send the <b>location</b> of the work: tap <b>📍 Send my current location</b> while at the site, "
            "or 📎 → Location to pick it on the map."
        )
        keyboard = nav_reply_keyboard([KeyboardButton(text=_(BTN_SEND_LOCATION), request_location=True)])
        await message.answer(text, reply_markup=keyboard)
        if not physical:
            await message.answer(
                _("For this category the location is optional."),
                reply_markup=InlineKeyboardMarkup(inline_keyboard=[[_button(_("Skip ➡️"), "skip", proposal)]]),
            )
    elif step == Usulan.alamat:
        await message.answer(_("Thank you."), reply_markup=ReplyKeyboardRemove())
        await message.answer(
            _("Optional: type the address or a landmark (e.g. <i>Gang Mawar, depan masjid</i>), or tap Skip."),
            reply_markup=_inline([_button(_("Skip ➡️"), "skip", proposal)]),
        )
    elif step == Usulan.rab:
        remaining = await remaining_for(session, proposal, program)
        lines = [
            _(
                "<b>Budget (RAB)</b>: send one item per line, e.g.\n"
                "<code>Semen 50 sak x 65.000</code>\n<code>Tukang 10 hari @150rb</code>"
            ),
        ]
        if proposal.lines:
            lines.append("")
            lines += [render.rab_line(i, x) for i, x in enumerate(proposal.lines, 1)]
        lines.append(render.budget_line(proposal.rt.label(), remaining, proposal.total_amount))
        await message.answer("\n".join(lines), reply_markup=_rab_keyboard(proposal))
    elif step == Usulan.foto:
        n = len(proposal.media_of(MEDIA_FOTO_AWAL))
        await message.answer(
            _(
                "Send <b>1 to 10 photos</b> of the site as it is now (several at once is fine). Photos so far: {n}."
            ).format(n=n),
            reply_markup=_inline([_button(_("➡️ Next"), "done", proposal)]) if n else _inline(),
        )
    elif step == Usulan.bukti:
        n = len(proposal.media_of(MEDIA_BUKTI_MUSYAWARAH))
        await message.answer(
            _(
                "Send the <b>musyawarah minutes</b> (berita acara): a photo of it, or a PDF file. Files so far: {n}."
            ).format(n=n),
            reply_markup=_inline([_button(_("➡️ Next"), "done", proposal)]) if n else _inline(),
        )
    elif step == Usulan.peserta:
        await message.answer(
            _("How many residents attended the musyawarah? Type the number, e.g. <b>25</b>."), reply_markup=_inline()
        )
    elif step == Usulan.ringkasan:
        await show_summary(message, session, proposal, program)


def _rab_keyboard(proposal: Proposal) -> InlineKeyboardMarkup:
    rows = []
    if proposal.lines:
        rows.append([_button(_("✅ Done, next"), "done", proposal), _button(_("✏️ Change a line"), "lines", proposal)])
    return _inline(*rows)


async def show_summary(message: Message, session: AsyncSession, proposal: Proposal, program: Program) -> None:
    remaining = await remaining_for(session, proposal, program)
    rows = [
        [_button(_("📨 Send"), "send", proposal)],
        [_button(_("✏️ Change…"), "edit", proposal)],
        [_button(_("💾 Save draft"), "save", proposal)],
    ]
    if proposal.status == "draf":
        rows[-1].append(_button(_("🗑 Delete draft"), "drop", proposal))
    events = list(await svc.timeline(session, proposal.id))
    await message.answer(
        render.summary(proposal, program, remaining, events), reply_markup=InlineKeyboardMarkup(inline_keyboard=rows)
    )


async def stage(state: FSMContext, current: State) -> State:
    """Move the dialog to the step after ``current`` *before* the service call that saves the answer,
    so the new step is committed in the service's transaction (with the answer and the update's
    handled mark: one write per step, not two). A handler whose service refuses the answer calls
    ``unstage``; an error rolls the whole update back, the step included."""
    following = next_step(current, (await state.get_data()).get("part"))
    await state.set_state(following)
    return following


async def unstage(state: FSMContext, current: State) -> None:
    await state.set_state(current)  # back to what is stored: nothing is written


async def advance(
    message: Message, state: FSMContext, session: AsyncSession, proposal: Proposal, settings: Settings, current: State
) -> None:
    data = await state.get_data()
    await ask(next_step(current, data.get("part")), message, state, session, proposal, settings)


# --- entry ---------------------------------------------------------------------------------------


async def require_rt_head(message: Message, roles: Roles) -> bool:
    if roles.rt_head is not None:
        return True
    if roles.pending is not None:
        text = _(
            "Proposals can be made once your Ketua RT registration is verified. It is still waiting for "
            "the officer; I will tell you here."
        )
    else:
        text = _("Only a verified Ketua RT can make proposals. Are you the Ketua RT? Register with /daftar.")
    await message.answer(text, reply_markup=main_menu(roles))
    return False


@router.message(Command("usulan"))
@router.message(Label(BTN_NEW_PROPOSAL))
async def usulan(
    message: Message, state: FSMContext, session: AsyncSession, user: User, roles: Roles, settings: Settings
) -> None:
    if not await require_rt_head(message, roles):
        return
    await state.clear()
    program = await programs.ensure(session, settings, settings.current_fiscal_year())
    window = budget.window_violation(svc.rules_for(program), local_today(settings))
    if window is not None:
        await message.answer(render.violation(window, roles.rt_head.rt.label()), reply_markup=main_menu(roles))
        return
    position = await svc.budget_position(session, roles.rt_head.rt_id, program)
    intro = _("{program} {year} for {rt}: ceiling {ceiling}, already proposed {used}, remaining <b>{remaining}</b>.")
    intro = intro.format(
        program=escape_html(program.name),
        year=program.fiscal_year,
        rt=roles.rt_head.rt.label(),
        ceiling=format_rupiah(position.ceiling),
        used=format_rupiah(position.counted_total),
        remaining=format_rupiah(position.remaining),
    )
    if position.remaining <= 0:
        await message.answer(
            intro + "\n" + _("The whole ceiling is already proposed, so no new proposal can be added. See /usulanku."),
            reply_markup=main_menu(roles),
        )
        return
    drafts = [p for p in await svc.drafts_of(session, roles.rt_head.rt_id, program.fiscal_year) if p.status == "draf"]
    if drafts:
        rows = [
            [
                InlineKeyboardButton(
                    text=_("Continue: {title}").format(title=(d.title or _("(untitled)"))[:40]),
                    callback_data=PropCb(action="open", id=d.id).pack(),
                )
            ]
            for d in drafts[:3]
        ]
        rows.append(
            [InlineKeyboardButton(text=_("➕ Start a new proposal"), callback_data=PropCb(action="new").pack())]
        )
        await message.answer(
            intro
            + "\n\n"
            + _("You have {n} unfinished draft(s). Continue one, or start a new one?").format(n=len(drafts)),
            reply_markup=InlineKeyboardMarkup(inline_keyboard=rows),
        )
        return
    await message.answer(
        intro + "\n" + _("Let's make the proposal. Your answers are saved as you go."),
        reply_markup=ReplyKeyboardRemove(),
    )
    await start_new(message, state, session, user, roles, settings, program)


async def start_new(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    roles: Roles,
    settings: Settings,
    program: Program,
) -> None:
    proposal = await svc.create_draft(session, user.id, roles.rt_head.rt_id, program)
    await state.set_data({"proposal_id": proposal.id})
    await ask(Usulan.kategori, message, state, session, proposal, settings)


@router.callback_query(PropCb.filter(F.action == "new"))
async def new_button(
    query: CallbackQuery, state: FSMContext, session: AsyncSession, user: User, roles: Roles, settings: Settings
) -> None:
    if roles.rt_head is None:
        await stale_button(query, session)
        return
    await query.answer()
    await drop_buttons(query.message)
    program = await programs.ensure(session, settings, settings.current_fiscal_year())
    await start_new(query.message, state, session, user, roles, settings, program)


async def open_proposal(
    message: Message, state: FSMContext, session: AsyncSession, proposal: Proposal, settings: Settings
) -> None:
    """Resume a draft where it was left, or open a proposal to revise at its summary."""
    await state.set_data({"proposal_id": proposal.id})
    if proposal.status == "perlu_revisi":
        step = Usulan.ringkasan
    else:
        step = BY_NAME.get(proposal.wizard_step or "", Usulan.kategori)
    await ask(step, message, state, session, proposal, settings)


@router.callback_query(PropCb.filter(F.action == "open"))
async def open_button(
    query: CallbackQuery,
    callback_data: PropCb,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    roles: Roles,
    settings: Settings,
) -> None:
    if roles.rt_head is None:
        await stale_button(query, session)
        return
    try:
        proposal = await svc.get_for_rt_head(session, callback_data.id, user.id, roles.rt_head.rt_id)
    except (svc.ProposalNotFound, Forbidden):
        await stale_button(query, session)
        return
    if proposal.status not in ("draf", "perlu_revisi"):
        await query.answer(
            _("This proposal is {status}; it cannot be changed now.").format(
                status=render.status_label(proposal.status)
            ),
            show_alert=True,
        )
        return
    await query.answer()
    await open_proposal(query.message, state, session, proposal, settings)


# --- navigation ------------------------------------------------------------------------------------


async def _go_back(
    message: Message, state: FSMContext, session: AsyncSession, user: User, roles: Roles, settings: Settings
) -> None:
    proposal = await load(session, state, user, roles)
    if proposal is None:
        await lost(message, state, roles)
        return
    name = await state.get_state() or ""
    if name in (Usulan.rab_edit.state, Usulan.rab_qty.state, Usulan.rab_price.state):
        # Back from correcting or building a budget line: to the budget question itself.
        await ask(Usulan.rab, message, state, session, proposal, settings)
        return
    current = BY_NAME.get(name, Usulan.ringkasan)
    data = await state.get_data()
    previous = previous_step(current, data.get("part"))
    if previous is None:
        await message.answer(_("This is the first question. To stop, tap ✖️ Cancel; the draft is kept."))
        return
    if previous == Usulan.ringkasan:
        await state.update_data(part=None)
    await ask(previous, message, state, session, proposal, settings)


@router.message(StateFilter(Usulan), Label(BTN_BACK))
@router.message(StateFilter(Usulan), F.text.lower().in_(BACK_WORDS))
async def back_text(
    message: Message, state: FSMContext, session: AsyncSession, user: User, roles: Roles, settings: Settings
) -> None:
    await _go_back(message, state, session, user, roles, settings)


@router.callback_query(StateFilter(Usulan), NavCb.filter(F.action == "back"))
async def back_button(
    query: CallbackQuery, state: FSMContext, session: AsyncSession, user: User, roles: Roles, settings: Settings
) -> None:
    await query.answer()
    await drop_buttons(query.message)
    await _go_back(query.message, state, session, user, roles, settings)


async def lost(message: Message, state: FSMContext, roles: Roles) -> None:
    await state.clear()
    await message.answer(
        _("I could not find that draft any more. Open your drafts with /draf."), reply_markup=main_menu(roles)
    )


async def _current(
    query: CallbackQuery, callback_data: PropCb, state: FSMContext, session: AsyncSession, user: User, roles: Roles
) -> Proposal | None:
    """The dialog's proposal, if the button belongs to it; otherwise the button is refused."""
    proposal = await load(session, state, user, roles)
    if proposal is None or proposal.id != callback_data.id:
        await stale_button(query, session)
        return None
    return proposal


# --- kategori, judul, uraian ---------------------------------------------------------------------


@router.callback_query(Usulan.kategori, PropCb.filter(F.action == "cat"))
async def category_chosen(
    query: CallbackQuery,
    callback_data: PropCb,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    roles: Roles,
    settings: Settings,
) -> None:
    proposal = await _current(query, callback_data, state, session, user, roles)
    if proposal is None:
        return
    following = await stage(state, Usulan.kategori)
    try:
        proposal = await svc.update_fields(
            session, proposal, category_code=callback_data.arg, actor_id=user.id, wizard_step=following.state
        )
    except svc.InvalidField:
        await unstage(state, Usulan.kategori)
        await stale_button(query, session)
        return
    program = await _program(session, proposal)
    await query.answer()
    await edit_or_send(
        query.message,
        _("Category: <b>{name}</b>").format(name=escape_html(render.category_name(program, proposal.category_code))),
    )
    await ask(following, query.message, state, session, proposal, settings)


async def _save_text(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    roles: Roles,
    settings: Settings,
    field: str,
    step: State,
) -> None:
    proposal = await load(session, state, user, roles)
    if proposal is None:
        await lost(message, state, roles)
        return
    following = await stage(state, step)
    try:
        # The answer, the step the draft is now at and the dialog's step, in one write.
        proposal = await svc.update_fields(
            session, proposal, actor_id=user.id, wizard_step=following.state, **{field: message.text}
        )
    except svc.InvalidField as exc:
        await unstage(state, step)
        if exc.reason == "too_long":
            await message.answer(_("That is too long: at most {max} characters, please.").format(max=exc.maximum))
        elif exc.reason == "too_short":
            await message.answer(_("That is too short: at least {min} characters, please.").format(min=exc.minimum))
        else:
            await message.answer(_("Please type it as text."))
        return
    except svc.NotEditable:
        await unstage(state, step)
        await message.answer(_("This part cannot be changed now."))
        return
    await ask(following, message, state, session, proposal, settings)


@router.message(Usulan.judul, *TEXT_ANSWER)
async def title_given(
    message: Message, state: FSMContext, session: AsyncSession, user: User, roles: Roles, settings: Settings
) -> None:
    await _save_text(message, state, session, user, roles, settings, "title", Usulan.judul)


@router.message(Usulan.uraian, *TEXT_ANSWER)
async def description_given(
    message: Message, state: FSMContext, session: AsyncSession, user: User, roles: Roles, settings: Settings
) -> None:
    await _save_text(message, state, session, user, roles, settings, "description", Usulan.uraian)


# --- lokasi, alamat ----------------------------------------------------------------------------------


@router.message(Usulan.lokasi, F.location)
async def location_given(
    message: Message, state: FSMContext, session: AsyncSession, user: User, roles: Roles, settings: Settings
) -> None:
    proposal = await load(session, state, user, roles)
    if proposal is None:
        await lost(message, state, roles)
        return
    following = await stage(state, Usulan.lokasi)
    proposal = await svc.set_location(
        session, proposal, message.location.latitude, message.location.longitude, actor_id=user.id,
        wizard_step=following.state,
    )  # fmt: skip
    await ask(following, message, state, session, proposal, settings)


@router.message(Usulan.lokasi, *NOT_FOR_STEP)
async def location_wrong(message: Message) -> None:
    await message.answer(
        _(
            "Please send the location as a map pin, not as text: tap <b>📍 Send my current location</b> at the "
            "bottom, or 📎 → Location. (If you cannot see the button, tap the keyboard icon ⌨️.)"
        ),
        reply_markup=nav_reply_keyboard([KeyboardButton(text=_(BTN_SEND_LOCATION), request_location=True)]),
    )


@router.message(Usulan.alamat, *TEXT_ANSWER)
async def address_given(
    message: Message, state: FSMContext, session: AsyncSession, user: User, roles: Roles, settings: Settings
) -> None:
    await _save_text(message, state, session, user, roles, settings, "address", Usulan.alamat)


@router.callback_query(StateFilter(Usulan.lokasi, Usulan.alamat), PropCb.filter(F.action == "skip"))
async def skip_location(
    query: CallbackQuery,
    callback_data: PropCb,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    roles: Roles,
    settings: Settings,
) -> None:
    proposal = await _current(query, callback_data, state, session, user, roles)
    if proposal is None:
        return
    current = BY_NAME[await state.get_state()]
    program = await _program(session, proposal)
    physical = next((c.is_physical for c in program.categories if c.code == proposal.category_code), False)
    if current == Usulan.lokasi and physical and proposal.latitude is None:
        await query.answer(_("For physical work the location is required."), show_alert=True)
        return
    await query.answer()
    await drop_buttons(query.message)
    await advance(query.message, state, session, proposal, settings, current)


# --- RAB ----------------------------------------------------------------------------------------------


# Amounts written in words ("lima puluh ribu") are not guessed at: the user is asked for digits.
NUMBER_WORDS = {
    "ribu",
    "juta",
    "miliar",
    "rupiah",
    "rp",
    "satu",
    "dua",
    "tiga",
    "empat",
    "lima",
    "enam",
    "tujuh",
    "delapan",
    "sembilan",
    "sepuluh",
    "seratus",
    "seribu",
    "sejuta",
    "puluh",
    "ratus",
    "belas",
}


def rab_error_text(exc: rab.RabError) -> str:
    """The explanation of a line that could not be read; formatted with ``line`` and ``example``."""
    if exc.kind == "no_price":
        return _("I could not find the price in “{line}”. Write it like {example}.")
    if exc.kind in ("no_volume", "bad_volume"):
        return _("I could not find how many (volume) in “{line}”. Write it like {example}.")
    if exc.kind == "volume_too_large":
        return _("The volume in “{line}” is too large. Please check it.")
    if exc.kind in ("bad_price", "bad_total"):
        return _("The price in “{line}” is not a valid amount (e.g. 65.000, 150rb, 1,5 jt). Write it like {example}.")
    if exc.kind == "total_mismatch":
        return _("In “{line}” the total does not match volume × price. Leave the total out, I will count it.")
    if exc.kind == "too_long":
        return _("The line “{line}” is too long; please shorten the description.")
    return _("I could not read “{line}”. Write it like {example}.")


@router.message(Usulan.rab, *TEXT_ANSWER)
@router.message(Usulan.rab_edit, *TEXT_ANSWER)
async def rab_lines_given(
    message: Message, state: FSMContext, session: AsyncSession, user: User, roles: Roles, settings: Settings
) -> None:
    proposal = await load(session, state, user, roles)
    if proposal is None:
        await lost(message, state, roles)
        return
    texts = [t for t in (message.text or "").splitlines() if t.strip()][: svc.MAX_LINES]
    if len(texts) == 1 and not any(ch.isdigit() for ch in texts[0]):
        if set(texts[0].lower().replace(".", " ").split()) & NUMBER_WORDS:
            await message.answer(
                _("Please write amounts with digits, e.g. <b>50.000</b> or <b>50rb</b> (not in words).")
            )
            return
        # Only a description: build the line step by step (how many, then the price).
        try:
            description = clean_text(texts[0], svc.LINE_DESCRIPTION_MAX)
        except TextError:
            await message.answer(_("The description is too long; please shorten it."))
            return
        await state.update_data(rab_desc=description, rab_return=await state.get_state())
        await state.set_state(Usulan.rab_qty)
        await message.answer(
            _("How many of “{desc}”, and in what unit? E.g. <b>50 sak</b>, <b>10 hari</b>, <b>1 paket</b>.").format(
                desc=escape_html(description)
            )
        )
        return
    editing = await state.get_state() == Usulan.rab_edit.state
    data = await state.get_data()
    example = "<code>Semen 50 sak x 65.000</code>"
    added: list[str] = []
    problems: list[str] = []
    parsed: list[tuple[str, rab.RabLine]] = []
    for text in texts:
        try:
            line = rab.parse_rab_line(text)
            svc.check_line(line)
        except rab.RabError as exc:
            problems.append(rab_error_text(exc).format(line=escape_html(text.strip()[:60]), example=example))
            continue
        except svc.InvalidField:
            problems.append(
                rab_error_text(rab.RabError("invalid")).format(line=escape_html(text.strip()[:60]), example=example)
            )
            continue
        parsed.append((text, line))
    try:
        if editing and parsed:  # the first line replaces the one being edited; the others are added
            text, line = parsed.pop(0)
            await state.set_state(Usulan.rab)
            try:
                await svc.replace_line(session, proposal, data["line_id"], line, actor_id=user.id)
                added.append(text)
            except svc.LineNotFound:
                problems.append(_("That line was already removed."))
        if parsed:  # all the new lines of the message in one write
            saved = await svc.add_lines(session, proposal, [line for _text, line in parsed], actor_id=user.id)
            added += [text for text, _line in parsed[: len(saved)]]
            if len(saved) < len(parsed):
                problems.append(_("At most {limit} lines per proposal.").format(limit=svc.MAX_LINES))
    except svc.TooManyLines as exc:
        problems.append(_("At most {limit} lines per proposal.").format(limit=exc.limit))
    except svc.NotEditable:
        await message.answer(_("The budget cannot be changed now."))
        return
    proposal = await svc.get(session, proposal.id)
    program = await _program(session, proposal)
    remaining = await remaining_for(session, proposal, program)
    lines = []
    if added:
        lines.append(_("✅ Saved. Budget so far:"))
        lines += [render.rab_line(i, x) for i, x in enumerate(proposal.lines, 1)]
        lines.append(render.budget_line(proposal.rt.label(), remaining, proposal.total_amount))
    lines += problems
    if added:
        lines.append(_("Send the next item, or tap <b>✅ Done, next</b>."))
    await message.answer("\n".join(lines), reply_markup=_rab_keyboard(proposal))


@router.message(Usulan.rab_qty, *TEXT_ANSWER)
async def rab_quantity_given(message: Message, state: FSMContext) -> None:
    data = await state.get_data()
    try:
        rab.parse_rab_line(f"{data['rab_desc']} {message.text.strip()} x 1")
    except (rab.RabError, KeyError):
        await message.answer(_("Please type the amount and unit, e.g. <b>50 sak</b> or <b>2,5 m3</b>."))
        return
    await state.update_data(rab_qty=message.text.strip())
    await state.set_state(Usulan.rab_price)
    await message.answer(_("And the price per unit? E.g. <b>65.000</b> or <b>150rb</b>."))


@router.message(Usulan.rab_price, *TEXT_ANSWER)
async def rab_price_given(
    message: Message, state: FSMContext, session: AsyncSession, user: User, roles: Roles, settings: Settings
) -> None:
    data = await state.get_data()
    line_text = f"{data.get('rab_desc', '')} {data.get('rab_qty', '')} x {message.text.strip()}"
    try:
        rab.parse_rab_line(line_text)
    except rab.RabError:
        await message.answer(_("That is not a valid price. Type it like <b>65.000</b>, <b>150rb</b> or <b>1,5 jt</b>."))
        return
    await state.set_state(data.get("rab_return") or Usulan.rab.state)
    message_text = message.model_copy(update={"text": line_text})
    await rab_lines_given(message_text, state, session, user, roles, settings)


@router.callback_query(StateFilter(Usulan.rab, Usulan.rab_edit), PropCb.filter(F.action == "lines"))
async def rab_line_menu(
    query: CallbackQuery, callback_data: PropCb, state: FSMContext, session: AsyncSession, user: User, roles: Roles
) -> None:
    proposal = await _current(query, callback_data, state, session, user, roles)
    if proposal is None:
        return
    await query.answer()
    rows = []
    for i, line in enumerate(proposal.lines, 1):
        rows.append(
            [
                InlineKeyboardButton(
                    text=_("✏️ {n}. {desc}").format(n=i, desc=line.description[:24]),
                    callback_data=PropCb(action="line", id=proposal.id, arg=str(line.id)).pack(),
                ),
                InlineKeyboardButton(
                    text=_("🗑 Delete {n}").format(n=i),
                    callback_data=PropCb(action="line_del", id=proposal.id, arg=str(line.id)).pack(),
                ),
            ]
        )
    await query.message.answer(_("Which line? ✏️ to retype it, 🗑 to delete it."), reply_markup=_inline(*rows))


@router.callback_query(StateFilter(Usulan.rab, Usulan.rab_edit), PropCb.filter(F.action == "line"))
async def rab_line_edit(
    query: CallbackQuery, callback_data: PropCb, state: FSMContext, session: AsyncSession, user: User, roles: Roles
) -> None:
    proposal = await _current(query, callback_data, state, session, user, roles)
    if proposal is None:
        return
    line = next((x for x in proposal.lines if str(x.id) == callback_data.arg), None)
    if line is None:
        await stale_button(query, session)
        return
    await query.answer()
    await state.set_state(Usulan.rab_edit)
    await state.update_data(line_id=line.id)
    await query.message.answer(
        _("Type line {n} again, corrected. Now it is: <code>{line}</code>").format(
            n=line.position,
            line=escape_html(
                rab.format_rab_line(
                    rab.RabLine(
                        description=line.description, volume=line.volume, unit=line.unit, unit_price=line.unit_price
                    )
                )
            ),
        )
    )


@router.callback_query(StateFilter(Usulan.rab, Usulan.rab_edit), PropCb.filter(F.action == "line_del"))
async def rab_line_delete(
    query: CallbackQuery,
    callback_data: PropCb,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    roles: Roles,
    settings: Settings,
) -> None:
    proposal = await _current(query, callback_data, state, session, user, roles)
    if proposal is None:
        return
    try:
        await svc.remove_line(session, proposal, int(callback_data.arg or 0), actor_id=user.id)
    except (svc.LineNotFound, ValueError):
        await query.answer(_("That line was already removed."), show_alert=True)
        return
    except svc.NotEditable:
        await query.answer(_("The budget cannot be changed now."), show_alert=True)
        return
    await query.answer(_("Deleted."))
    await drop_buttons(query.message)
    await state.set_state(Usulan.rab)
    proposal = await svc.get(session, proposal.id)
    await ask(Usulan.rab, query.message, state, session, proposal, settings)


# --- photos and musyawarah evidence --------------------------------------------------------------------


def _media_kind(step: State) -> str:
    return MEDIA_FOTO_AWAL if step == Usulan.foto else MEDIA_BUKTI_MUSYAWARAH


@router.message(StateFilter(Usulan.foto, Usulan.bukti), F.photo | F.document)
async def media_given(
    message: Message,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    roles: Roles,
    settings: Settings,
    media_store: media_service.MediaStore,
    album_replies: Debouncer,
    sessionmaker: async_sessionmaker[AsyncSession],
    i18n: I18n,
) -> None:
    proposal = await load(session, state, user, roles)
    if proposal is None:
        await lost(message, state, roles)
        return
    step = BY_NAME[await state.get_state()]
    kind = _media_kind(step)
    item = incoming_file(message)
    actor_id, language = user.id, user.language  # plain values, read before any write
    problem = None
    try:
        media = await fetch(bot, session, media_store, item, kind="photo" if step == Usulan.foto else "document")
        await svc.attach_media(session, proposal, media, kind, item.file_id, item.file_unique_id, actor_id=actor_id)
    except media_service.FileTooLarge as exc:
        problem = _(
            "This file is {size} MB; the limit is 20 MB. Please send a smaller one (a photo, or a compressed PDF)."
        ).format(size=round(exc.size / 1_000_000, 1))
    except media_service.ImageTooLarge as exc:
        problem = too_many_pixels_text(exc)
    except media_service.NotAnImage:
        problem = _("That file is not a photo. Please send a photo (📎 → Gallery).")
    except (media_service.UnsupportedFile, media_service.EmptyFile):
        problem = _("I can only accept a photo or a PDF file here.")
    except svc.TooManyPhotos as exc:
        problem = _("At most {limit} files here; {current} are already saved. Extra ones were not added.").format(
            limit=exc.limit, current=exc.current
        )
    except svc.NotEditable:
        problem = _("This part cannot be changed now.")
    if problem is not None:
        await message.answer(problem)
        return
    if message.media_group_id:
        # Each photo of an album is saved as it comes; the album is answered once, shortly after
        # its last photo.
        album_replies.touch(
            (message.chat.id, message.media_group_id),
            _album_reply(message, proposal.id, kind, sessionmaker, i18n, language),
        )
        return
    await _media_reply(message, await svc.get(session, proposal.id), kind)


def _album_reply(
    message: Message,
    proposal_id: int,
    kind: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    i18n: I18n,
    language: str,
) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        async with sessionmaker() as session:
            proposal = await svc.get(session, proposal_id)
            with i18n.context(), i18n.use_locale(language):
                await _media_reply(message, proposal, kind)

    return run


async def _media_reply(message: Message, proposal: Proposal, kind: str) -> None:
    n = len(proposal.media_of(kind))
    if kind == MEDIA_FOTO_AWAL:
        text = _("📷 Photos saved: {n} of at most {max}. Send more, or tap <b>➡️ Next</b>.").format(
            n=n, max=svc.MAX_PHOTOS
        )
    else:
        text = _("📄 Minutes saved: {n} file(s). Send another page, or tap <b>➡️ Next</b>.").format(n=n)
    await message.answer(text, reply_markup=_inline([_button(_("➡️ Next"), "done", proposal)]))


@router.message(Usulan.foto, *NOT_FOR_STEP)
async def photo_wrong(message: Message) -> None:
    await message.answer(_("Please send a photo (📎 → Gallery or Camera), or tap ➡️ Next if you have sent them all."))


@router.message(Usulan.bukti, *NOT_FOR_STEP)
async def evidence_wrong(message: Message) -> None:
    await message.answer(_("Please send a photo of the minutes or a PDF file (📎 → File)."))


@router.callback_query(
    StateFilter(Usulan.foto, Usulan.bukti, Usulan.rab, Usulan.rab_edit), PropCb.filter(F.action == "done")
)
async def step_done(
    query: CallbackQuery,
    callback_data: PropCb,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    roles: Roles,
    settings: Settings,
) -> None:
    proposal = await _current(query, callback_data, state, session, user, roles)
    if proposal is None:
        return
    current = BY_NAME.get(await state.get_state(), Usulan.rab)
    if current == Usulan.rab_edit:
        current = Usulan.rab
    if current == Usulan.rab and not proposal.lines:
        await query.answer(_("Add at least one budget line first."), show_alert=True)
        return
    if current in (Usulan.foto, Usulan.bukti) and not proposal.media_of(_media_kind(current)):
        await query.answer(_("Send at least one file first."), show_alert=True)
        return
    await query.answer()
    await drop_buttons(query.message)
    await advance(query.message, state, session, proposal, settings, current)


# --- peserta -------------------------------------------------------------------------------------


@router.message(Usulan.peserta, *TEXT_ANSWER)
async def attendees_given(
    message: Message, state: FSMContext, session: AsyncSession, user: User, roles: Roles, settings: Settings
) -> None:
    proposal = await load(session, state, user, roles)
    if proposal is None:
        await lost(message, state, roles)
        return
    text = message.text.strip().lower().removesuffix("orang").strip()
    if not text.isdigit() or not svc.ATTENDEES_MIN <= int(text) <= svc.ATTENDEES_MAX:
        await message.answer(_("Please type only the number of residents present, e.g. <b>25</b>."))
        return
    following = await stage(state, Usulan.peserta)
    proposal = await svc.set_musyawarah(session, proposal, int(text), actor_id=user.id, wizard_step=following.state)
    await ask(following, message, state, session, proposal, settings)


# --- summary: send, change, save, delete -------------------------------------------------------------


@router.callback_query(Usulan.ringkasan, PropCb.filter(F.action == "send"))
async def send(
    query: CallbackQuery,
    callback_data: PropCb,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    roles: Roles,
    settings: Settings,
) -> None:
    proposal = await _current(query, callback_data, state, session, user, roles)
    if proposal is None:
        return
    program = await _program(session, proposal)
    try:
        proposal = await svc.submit(
            session, user.id, proposal.id, callback_data.v, local_today(settings), admin_ids=settings.admin_ids
        )
    except svc.StaleVersion:
        await query.answer(_("This summary is out of date; here is the current one."), show_alert=True)
        await show_summary(query.message, session, await svc.get(session, proposal.id), program)
        return
    except TransitionError:
        await query.answer(_("This proposal was already sent."), show_alert=True)
        await drop_buttons(query.message)
        return
    except svc.NotReady as exc:
        await query.answer()
        await query.message.answer(render.not_ready(exc.missing, exc.violations, proposal.rt.label()))
        return
    except Forbidden:
        await stale_button(query, session)
        return
    await state.clear()
    await query.answer(_("Sent."))
    await drop_buttons(query.message)
    remaining = (await svc.budget_position(session, proposal.rt_id, program)).remaining
    await query.message.answer(
        _(
            "📨 Proposal sent. Code: <b>{code}</b>\n{title} — {amount}\n"
            "Status: waiting for review by the kelurahan officer. I will tell you here when it is decided.\n"
            "Remaining ceiling of {rt}: {remaining}."
        ).format(
            code=proposal.code,
            title=escape_html(proposal.title),
            amount=format_rupiah(proposal.total_amount),
            rt=proposal.rt.label(),
            remaining=format_rupiah(remaining),
        ),
        reply_markup=main_menu(roles),
    )


@router.callback_query(Usulan.ringkasan, PropCb.filter(F.action == "edit"))
async def change_menu(
    query: CallbackQuery, callback_data: PropCb, state: FSMContext, session: AsyncSession, user: User, roles: Roles
) -> None:
    proposal = await _current(query, callback_data, state, session, user, roles)
    if proposal is None:
        return
    await query.answer()
    parts = svc.editable_parts(proposal)
    rows = [[_button(_(render.PART_LABELS[p]), "part", proposal, p)] for p in parts]
    await query.message.answer(_("What would you like to change?"), reply_markup=_inline(*rows))


@router.callback_query(Usulan.ringkasan, PropCb.filter(F.action == "part"))
async def change_part(
    query: CallbackQuery,
    callback_data: PropCb,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    roles: Roles,
    settings: Settings,
) -> None:
    proposal = await _current(query, callback_data, state, session, user, roles)
    if proposal is None:
        return
    part = callback_data.arg
    if part not in svc.editable_parts(proposal):
        await query.answer(_("This part cannot be changed now."), show_alert=True)
        return
    await query.answer()
    await drop_buttons(query.message)
    await state.update_data(part=part)
    await ask(PART_STEPS[part][0], query.message, state, session, proposal, settings)


@router.callback_query(Usulan.ringkasan, PropCb.filter(F.action == "save"))
async def save_draft(
    query: CallbackQuery, callback_data: PropCb, state: FSMContext, session: AsyncSession, user: User, roles: Roles
) -> None:
    proposal = await _current(query, callback_data, state, session, user, roles)
    if proposal is None:
        return
    await state.clear()
    await query.answer(_("Saved."))
    await drop_buttons(query.message)
    await query.message.answer(_("💾 The draft is saved. Continue any time with /draf."), reply_markup=main_menu(roles))


@router.callback_query(Usulan.ringkasan, PropCb.filter(F.action == "drop"))
async def drop_ask(
    query: CallbackQuery, callback_data: PropCb, state: FSMContext, session: AsyncSession, user: User, roles: Roles
) -> None:
    proposal = await _current(query, callback_data, state, session, user, roles)
    if proposal is None:
        return
    await query.answer()
    await query.message.answer(
        _("Delete this draft? This cannot be undone."),
        reply_markup=InlineKeyboardMarkup(
            inline_keyboard=[
                [_button(_("🗑 Yes, delete"), "drop_ok", proposal), _button(_("No, keep it"), "save", proposal)]
            ]
        ),
    )


@router.callback_query(Usulan.ringkasan, PropCb.filter(F.action == "drop_ok"))
async def drop(
    query: CallbackQuery,
    callback_data: PropCb,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    roles: Roles,
    settings: Settings,
) -> None:
    proposal = await _current(query, callback_data, state, session, user, roles)
    if proposal is None:
        return
    try:
        await svc.withdraw(session, user.id, proposal.id, "draft deleted by the RT head", admin_ids=settings.admin_ids)
    except TransitionError:
        await stale_button(query, session)
        return
    await state.clear()
    await query.answer(_("Deleted."))
    await edit_or_send(query.message, _("🗑 The draft was deleted."))
    await query.message.answer(_("What next? Use the menu below."), reply_markup=main_menu(roles))


# --- anything else in the wizard -----------------------------------------------------------------------


@router.message(StateFilter(Usulan.kategori, Usulan.ringkasan), *NOT_FOR_STEP)
async def use_buttons(message: Message) -> None:
    await message.answer(_("Please choose with the buttons above. Your draft is kept; /draf opens it later."))


@router.message(
    StateFilter(
        Usulan.judul,
        Usulan.uraian,
        Usulan.alamat,
        Usulan.rab,
        Usulan.rab_edit,
        Usulan.rab_qty,
        Usulan.rab_price,
        Usulan.peserta,
    ),
    *NOT_FOR_STEP,
)
async def type_text(message: Message) -> None:
    await message.answer(_("Please answer by typing text (not a photo or sticker)."))


@router.callback_query(PropCb.filter())
async def prop_stale(query: CallbackQuery, session: AsyncSession) -> None:
    await stale_button(query, session)
