"""For every resident: /cek (a proposal's public card by its code — or just a code sent as text)
and /jelajah (kecamatan → kelurahan → RT → the RT's proposals this year, with the money).

Thin: parse, call ``bot.services.public`` (pure reads), render. The public card never shows a
person: no RT head, officer, phone number or Telegram id, and no free-text notes. Everything a
user typed is escaped before it is shown back.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.filters.callback_data import CallbackData
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
from bot.domain.codes import format_code
from bot.domain.money import format_rupiah
from bot.domain.text import escape_html
from bot.services import programs
from bot.services import public as svc
from bot.services.media import MediaStore
from handlers.common import (
    BTN_BACK,
    BTN_BROWSE,
    BTN_CHECK_CODE,
    CbInt,
    Label,
    cancel_row,
    chunk,
    rt_place,
    short_day,
    stale_button,
)
from handlers.follow import follow_proposal_button, follow_rt_button
from handlers.media import send_photos
from handlers.proposals.render import EVENT_LABELS, progress_lines, status_label
from storage.models import Program

__all__ = ["PubCb", "card_text", "router"]

router = Router(name=__name__)
router.message.filter(F.chat.type == "private")

RT_PAGE = 24  # RT buttons per page (a Bontang kelurahan has up to ~60 RTs)
RT_COLUMNS = 4
LIST_SHOWN = 30  # proposals listed for one RT
TEXT_SHOWN = 40  # characters of a non-code text quoted back


class PubCb(CallbackData, prefix="pub"):
    """``action``: kec (kecamatan list), kel (kelurahan of kecamatan ``id``), rts (RTs of
    kelurahan ``id``, ``page``), rt (RT ``id``'s proposals), card (public card of proposal ``id``;
    ``page`` 1 = shown in place of the RT's list, 0 = as a new message)."""

    action: str
    id: CbInt = 0
    page: CbInt = 0


class Cek(StatesGroup):
    code = State()


# --- photos (shared with the RT head's card) ---------------------------------------------------------


# --- the public card -----------------------------------------------------------------------------------


def card_text(c: svc.PublicCard) -> str:
    p = c.proposal
    lines = [
        f"🔍 <b>{escape_html(p.code or '')}</b> — {escape_html(p.title or '-')}",
        f"📍 {rt_place(p.rt)}",
        _("Category: {category}").format(category=escape_html(c.category or "-")),
    ]
    if c.approved:
        lines.append(_("Approved amount: <b>{amount}</b>").format(amount=format_rupiah(p.total_amount)))
    else:
        lines.append(_("Amount requested: {amount}").format(amount=format_rupiah(p.total_amount)))
    lines.append(_("Status: {status}").format(status=f"<b>{status_label(p.status)}</b>"))
    if c.events:
        lines.append("")
        lines.append(_("<b>History</b>"))
        lines += [f"• {short_day(e.at)} — {_(EVENT_LABELS.get(e.action, e.action))}" for e in c.events]
    if c.approved:
        lines.append("")
        lines += progress_lines(c.progress, p.total_amount, c.completion)
    if c.photos_kind == svc.PHOTOS_PROGRESS and c.photos_at is not None:
        lines.append("")
        lines.append(_("📷 Below: photos of the latest progress report ({date}).").format(date=short_day(c.photos_at)))
    elif c.photos_kind == svc.PHOTOS_INITIAL:
        lines.append("")
        lines.append(_("📷 Below: photos of the site before the work."))
    return "\n".join(lines)


def card_keyboard(c: svc.PublicCard, in_place: bool) -> InlineKeyboardMarkup:
    rt = c.proposal.rt
    if in_place:
        button = InlineKeyboardButton(text=_(BTN_BACK), callback_data=PubCb(action="rt", id=rt.id).pack())
    else:
        button = InlineKeyboardButton(
            text=_("🗺 All proposals of {rt}").format(rt=rt.label()), callback_data=PubCb(action="rt", id=rt.id).pack()
        )
    return InlineKeyboardMarkup(inline_keyboard=[[follow_proposal_button(c.proposal.id)], [button]])


async def _send_card_photos(bot: Bot, chat_id: int, store: MediaStore, c: svc.PublicCard) -> None:
    if c.photos:
        await send_photos(bot, chat_id, store, c.photos, _("Photos of {code}").format(code=c.proposal.code))


async def _current_program(session: AsyncSession, settings: Settings) -> Program:
    return await programs.ensure(session, settings, settings.current_fiscal_year())


async def answer_code(
    bot: Bot, chat_id: int, session: AsyncSession, settings: Settings, store: MediaStore, text: str
) -> bool:
    """Answer a code as typed: its card, or why not. True once the text was read as a code."""
    program = await _current_program(session, settings)
    found = await svc.lookup(session, text, program.code_prefix, program.fiscal_year)
    example = f"<code>{escape_html(found.example)}</code>"
    if found.outcome == svc.FOUND:
        c = await svc.card(session, found.proposal.id)
        await bot.send_message(chat_id, card_text(c), reply_markup=card_keyboard(c, in_place=False))
        await _send_card_photos(bot, chat_id, store, c)
        return True
    if found.outcome == svc.NOT_FOUND:
        lines = [_("No proposal has the code <code>{code}</code>.").format(code=escape_html(found.code or ""))]
        if not found.year_known:
            lines.append(_("There are no proposals from {year}.").format(year=found.year))
        markup = None
        s = found.suggestion
        if s is not None:
            lines.append(
                _("Did you mean <code>{code}</code> — {title} ({rt})?").format(
                    code=escape_html(s.code or ""), title=escape_html(s.title or "-"), rt=rt_place(s.rt)
                )
            )
            markup = InlineKeyboardMarkup(
                inline_keyboard=[
                    [
                        InlineKeyboardButton(
                            text=_("🔍 Open {code}").format(code=s.code),
                            callback_data=PubCb(action="card", id=s.id).pack(),
                        )
                    ]
                ]
            )
        else:
            lines.append(_("Please check the code, or browse the RTs with /jelajah."))
        await bot.send_message(chat_id, "\n".join(lines), reply_markup=markup)
        return True
    if found.outcome == svc.MALFORMED:
        await bot.send_message(
            chat_id,
            _(
                "That code is not complete. A proposal code has the letters, the year and the number, "
                "like {example}. Please type it again, or /batal to stop."
            ).format(example=example),
        )
        return False
    quoted = " ".join(text.split())
    quoted = quoted[:TEXT_SHOWN] + ("…" if len(quoted) > TEXT_SHOWN else "")
    await bot.send_message(
        chat_id,
        _(
            "“{text}” is not a proposal code. Codes look like {example}. Please type it again, or /batal to stop."
        ).format(text=escape_html(quoted), example=example),
    )
    return False


# --- /cek ------------------------------------------------------------------------------------------------


@router.message(Command("cek"))
@router.message(Label(BTN_CHECK_CODE))
async def cek(
    message: Message,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    settings: Settings,
    media_store: MediaStore,
    command: CommandObject | None = None,
) -> None:
    await state.clear()
    if command is not None and command.args and command.args.strip():
        if not await answer_code(bot, message.chat.id, session, settings, media_store, command.args):
            await state.set_state(Cek.code)
        return
    program = await _current_program(session, settings)
    example = format_code(program.code_prefix, program.fiscal_year, 1)
    await state.set_state(Cek.code)
    await message.answer(
        _("Please type the proposal code, for example <code>{example}</code>.").format(example=example),
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[cancel_row()]),
    )


@router.message(Command("jelajah"))
@router.message(Label(BTN_BROWSE))
async def jelajah(message: Message, state: FSMContext, session: AsyncSession, settings: Settings) -> None:
    await state.clear()
    program = await _current_program(session, settings)
    text, markup = await _kecamatan_view(session, program.fiscal_year)
    await message.answer(text, reply_markup=markup)


# Registered after /jelajah and /cek: in the dialog, those still work; any other text is the code.
@router.message(Cek.code, F.text, ~F.text.startswith("/"))
async def cek_code(
    message: Message, bot: Bot, state: FSMContext, session: AsyncSession, settings: Settings, media_store: MediaStore
) -> None:
    if await answer_code(bot, message.chat.id, session, settings, media_store, message.text or ""):
        await state.clear()


@router.message(Cek.code)
async def cek_not_text(message: Message) -> None:
    await message.answer(_("Please type the proposal code as text, or /batal to stop."))


async def _looks_like_code(message: Message, session: AsyncSession, settings: Settings) -> bool:
    text = message.text or ""
    if not text or text.startswith("/") or len(text) > 60:
        return False
    program = await _current_program(session, settings)
    known = await svc.prefixes(session, program.code_prefix)
    return svc.looks_like_any(text, known) or svc.parse_any(text, known) is not None


@router.message(StateFilter(None), F.text, _looks_like_code)
async def code_as_text(
    message: Message, bot: Bot, state: FSMContext, session: AsyncSession, settings: Settings, media_store: MediaStore
) -> None:
    """A code sent on its own (``prl 2026 1``, ``PRL20260001``) outside any dialog."""
    if not await answer_code(bot, message.chat.id, session, settings, media_store, message.text or ""):
        await state.set_state(Cek.code)  # an incomplete code: the next text is taken as the code


# --- /jelajah ----------------------------------------------------------------------------------------


def _back(data: PubCb) -> list[InlineKeyboardButton]:
    return [InlineKeyboardButton(text=_(BTN_BACK), callback_data=data.pack())]


async def _kecamatan_view(session: AsyncSession, year: int) -> tuple[str, InlineKeyboardMarkup]:
    rows = await svc.kecamatan_list(session)
    text = _("<b>Proposals of {year}, by place</b>\nChoose a kecamatan:").format(year=year)
    buttons = [InlineKeyboardButton(text=k.name, callback_data=PubCb(action="kel", id=k.id).pack()) for k in rows]
    return text, InlineKeyboardMarkup(inline_keyboard=chunk(buttons, 2))


def _totals_line(t: svc.KelurahanTotals) -> str:
    return _(
        "{rts} RT · {proposals} proposal(s), {approved} approved · approved {approved_total} · realised {realised}"
    ).format(
        rts=t.rts,
        proposals=t.proposals,
        approved=t.approved,
        approved_total=format_rupiah(t.approved_total),
        realised=format_rupiah(t.realised_total),
    )


async def _kelurahan_view(session: AsyncSession, kecamatan_id: int, year: int):
    kec = await svc.get_kecamatan(session, kecamatan_id)
    if kec is None:
        return None
    totals = await svc.kelurahan_totals(session, kec.id, year)
    lines = [_("<b>Kec. {kecamatan}</b> — {year}").format(kecamatan=escape_html(kec.name), year=year), ""]
    for t in totals:
        lines.append(f"<b>{escape_html(t.kelurahan.name)}</b>")
        lines.append(_totals_line(t))
    lines.append("")
    lines.append(_("Choose a kelurahan:"))
    buttons = [
        InlineKeyboardButton(text=t.kelurahan.name, callback_data=PubCb(action="rts", id=t.kelurahan.id).pack())
        for t in totals
    ]
    keyboard = [*chunk(buttons, 2), _back(PubCb(action="kec"))]
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=keyboard)


async def _rts_view(session: AsyncSession, kelurahan_id: int, page: int, year: int):
    total = await svc.kelurahan_total(session, kelurahan_id, year)
    if total is None:
        return None
    kel = total.kelurahan
    rts = await svc.rts_of(session, kel.id, year)
    pages = max((len(rts) + RT_PAGE - 1) // RT_PAGE, 1)
    page = min(max(page, 0), pages - 1)
    shown = rts[page * RT_PAGE : (page + 1) * RT_PAGE]
    lines = [
        _("<b>Kel. {kelurahan}, Kec. {kecamatan}</b> — {year}").format(
            kelurahan=escape_html(kel.name), kecamatan=escape_html(kel.kecamatan.name), year=year
        ),
        _totals_line(total),
        "",
        _("Choose an RT (the number of proposals is in brackets):"),
    ]
    if pages > 1:
        lines.append(_("Page {page} of {pages}.").format(page=page + 1, pages=pages))
    buttons = [
        InlineKeyboardButton(
            text=f"{e.rt.label()} ({e.proposals})" if e.proposals else e.rt.label(),
            callback_data=PubCb(action="rt", id=e.rt.id).pack(),
        )
        for e in shown
    ]
    keyboard = chunk(buttons, RT_COLUMNS)
    pager = []
    if page > 0:
        pager.append(
            InlineKeyboardButton(
                text=_("◀ Previous"), callback_data=PubCb(action="rts", id=kel.id, page=page - 1).pack()
            )
        )
    if page + 1 < pages:
        pager.append(
            InlineKeyboardButton(text=_("Next ▶"), callback_data=PubCb(action="rts", id=kel.id, page=page + 1).pack())
        )
    if pager:
        keyboard.append(pager)
    keyboard.append(_back(PubCb(action="kel", id=kel.kecamatan_id)))
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=keyboard)


async def _rt_view(session: AsyncSession, rt_id: int, program: Program):
    summary = await svc.rt_summary(session, rt_id, program)
    if summary is None:
        return None
    rt = summary.rt
    lines = [
        f"<b>{rt_place(rt)}</b> — {summary.year}",
        _("Ceiling: {amount}").format(amount=format_rupiah(summary.ceiling)),
        _("Approved: {amount}").format(amount=format_rupiah(summary.approved_total)),
    ]
    if summary.waiting_total:
        lines.append(_("Waiting for a decision: {amount}").format(amount=format_rupiah(summary.waiting_total)))
    lines.append(_("Remaining: <b>{amount}</b>").format(amount=format_rupiah(summary.remaining)))
    if summary.realised_total:
        lines.append(_("Realised so far: {amount}").format(amount=format_rupiah(summary.realised_total)))
    lines.append("")
    if not summary.proposals:
        lines.append(_("No proposals from this RT in {year} yet.").format(year=summary.year))
    shown = summary.proposals[:LIST_SHOWN]
    for p in shown:
        lines.append(
            f"• <code>{escape_html(p.code or '')}</code> {escape_html(p.title or '-')} — "
            f"{format_rupiah(p.total_amount)} — {status_label(p.status)}"
        )
    if len(summary.proposals) > LIST_SHOWN:
        lines.append(_("…and {count} more.").format(count=len(summary.proposals) - LIST_SHOWN))
    if shown:
        lines.append("")
        lines.append(_("Tap a proposal to see its card."))
    buttons = [
        [
            InlineKeyboardButton(
                text=f"{p.code} · {(p.title or '-')[:28]}", callback_data=PubCb(action="card", id=p.id, page=1).pack()
            )
        ]
        for p in shown
    ]
    rts = await svc.rts_of(session, rt.kelurahan_id, program.fiscal_year)
    index = next((i for i, e in enumerate(rts) if e.rt.id == rt.id), 0)
    buttons.append([follow_rt_button(rt.id)])
    buttons.append(_back(PubCb(action="rts", id=rt.kelurahan_id, page=index // RT_PAGE)))
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=buttons)


async def _show(query: CallbackQuery, bot: Bot, text: str, markup: InlineKeyboardMarkup) -> None:
    """Replace the pressed message (browsing happens in place); a new message if it cannot be edited."""
    message = query.message
    if isinstance(message, Message) and message.text is not None:
        try:
            await message.edit_text(text, reply_markup=markup)
            return
        except TelegramBadRequest as exc:
            if "not modified" in str(exc):
                return
    await bot.send_message(query.from_user.id, text, reply_markup=markup)


@router.callback_query(PubCb.filter(F.action.in_({"kec", "kel", "rts", "rt"})))
async def browse(
    query: CallbackQuery, callback_data: PubCb, bot: Bot, session: AsyncSession, settings: Settings
) -> None:
    program = await _current_program(session, settings)
    year = program.fiscal_year
    if callback_data.action == "kec":
        view = await _kecamatan_view(session, year)
    elif callback_data.action == "kel":
        view = await _kelurahan_view(session, callback_data.id, year)
    elif callback_data.action == "rts":
        view = await _rts_view(session, callback_data.id, callback_data.page, year)
    else:
        view = await _rt_view(session, callback_data.id, program)
    if view is None:  # an id that does not exist: forged or from a removed place
        await stale_button(query, session)
        return
    await query.answer()
    await _show(query, bot, *view)


@router.callback_query(PubCb.filter(F.action == "card"))
async def open_card(
    query: CallbackQuery, callback_data: PubCb, bot: Bot, session: AsyncSession, media_store: MediaStore
) -> None:
    c = await svc.card(session, callback_data.id)
    if c is None:  # no such proposal, or not public (a draft): forged data
        await stale_button(query, session)
        return
    await query.answer()
    in_place = callback_data.page == 1
    text, markup = card_text(c), card_keyboard(c, in_place=in_place)
    if in_place:
        await _show(query, bot, text, markup)
    else:
        await bot.send_message(query.from_user.id, text, reply_markup=markup)
    await _send_card_photos(bot, query.from_user.id, media_store, c)
