"""/progres: the Ketua RT's progress report on an approved proposal.

One short question per step, buttons where possible, Kembali and Batal always there: the proposal
(when there are several), the percentage done, a reason when it went down, 1–10 site photos, an
optional location pin, a short note, the spending so far (realisasi), an explanation when that is
above the approved amount, the receipts (nota/kuitansi), then a summary with "Send report".

Nothing is written to the report until "Send report": the dialog keeps what was collected in the
FSM data (ids of the stored files, numbers, texts), so it survives a restart, and
``bot.services.progress.report`` writes the whole report in one transaction at the end. Files are
stored (content-addressed ``Media`` rows) as they arrive; a file that is refused is not stored.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

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
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.debounce import Debouncer
from bot.domain import evidence
from bot.domain.money import MoneyError, format_rupiah, parse_rupiah
from bot.domain.permissions import Forbidden
from bot.domain.text import TextError, clean_text, escape_html
from bot.domain.workflow import (
    DIAJUKAN,
    DITARIK,
    DITOLAK,
    DRAF,
    MENUNGGU_VERIFIKASI_SELESAI,
    PELAKSANAAN,
    PERLU_REVISI,
    SELESAI,
    TransitionError,
)
from bot.services import media as media_service
from bot.services import progress, registration
from bot.services import proposals as proposals_service
from bot.services.users import Roles
from handlers.common import (
    BACK_WORDS,
    BTN_BACK,
    BTN_CANCEL,
    BTN_PROGRESS,
    MENU_LABELS,
    N_,
    Label,
    NavCb,
    drop_buttons,
    edit_or_send,
    main_menu,
    nav_reply_keyboard,
    nav_row,
    parse_cb_int,
    stale_button,
    when,
)
from handlers.media import fetch, incoming_file, too_many_pixels_text
from handlers.progress.callbacks import ProgCb
from handlers.proposals import render
from handlers.proposals.wizard import require_rt_head
from storage.models import Media, Proposal, User

router = Router(name=__name__)
router.message.filter(F.chat.type == "private")

PERCENT_BUTTONS = (0, 25, 50, 75, 100)
MAX_PHOTOS = progress.MAX_PHOTOS
MAX_RECEIPTS = progress.MAX_RECEIPTS
TEXT_MAX = progress.NOTE_MAX

BTN_SEND_LOCATION = N_("📍 Send my current location")
BTN_SKIP = N_("Skip ➡️")
BTN_NEXT = N_("➡️ Next")
BTN_SEND_REPORT = N_("📨 Send report")

# Menu buttons and commands typed in the middle of the dialog are not answers: their own handlers run.
ANSWER_TEXT = (F.text, ~F.text.startswith("/"), ~Label(*MENU_LABELS, BTN_CANCEL))
NOT_FOR_OTHERS = (~F.text.startswith("/"), ~Label(*MENU_LABELS, BTN_CANCEL))


class Laporan(StatesGroup):
    pilih = State()  # which proposal
    persen = State()  # percentage done
    alasan = State()  # why it went down
    foto = State()  # site photos
    lokasi = State()  # optional location pin
    catatan = State()  # short note
    biaya = State()  # spending so far (realisasi)
    lebih = State()  # explanation of spending above the approved amount
    nota = State()  # receipts
    ringkasan = State()  # summary


BY_NAME = {s.state: s for s in Laporan.__states__}
# The step to ask again when the service refuses a field (InvalidField.field).
FIELD_STEPS = {
    "note": Laporan.catatan,
    "backwards_reason": Laporan.alasan,
    "over_budget_note": Laporan.lebih,
    "spent_total": Laporan.biaya,
    "location": Laporan.lokasi,
}


# --- small helpers ---------------------------------------------------------------------------------


def _button(text: str, action: str, proposal_id: int, arg: str = "") -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=ProgCb(action=action, id=proposal_id, arg=arg).pack())


def _inline(*rows: list[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[*rows, nav_row()])


def parse_percent(text: str) -> int | None:
    """``60``, ``60%``, ``60 %``, ``60 persen`` → 60; anything else (also 3+ digit noise) → None.

    The range is not checked here, so that ``120`` can be explained as out of range."""
    s = " ".join((text or "").strip().lower().split())
    for suffix in ("persen", "percent", "%"):
        s = s.removesuffix(suffix).strip()
    if not re.fullmatch(r"[0-9]{1,4}", s):
        return None
    return int(s)


_ZERO_RE = re.compile(r"(?:rp\.?\s*)?0+(?:[.,]0+)*(?:\s*[.,]?\s*-+)?")


def parse_spending(text: str) -> int:
    """Cumulative spending as typed: ``parse_rupiah``'s forgiving forms, and also 0 (nothing spent
    yet). Raises :class:`MoneyError`."""
    s = " ".join((text or "").strip().lower().split())
    if _ZERO_RE.fullmatch(s):
        return 0
    return parse_rupiah(text)


def _files(items: list[Any]) -> list[list[Any]]:
    return [list(x) for x in items or ()]


# --- loading the dialog's proposal ----------------------------------------------------------------------


async def _load(session: AsyncSession, state: FSMContext, roles: Roles) -> Proposal | None:
    """The proposal of the dialog, if it is still one of this RT head's RT."""
    data = await state.get_data()
    pid = data.get("pid")
    if pid is None or roles.rt_head is None:
        return None
    try:
        proposal = await proposals_service.get(session, pid)
    except proposals_service.ProposalNotFound:
        return None
    return proposal if proposal.rt_id == roles.rt_head.rt_id else None


async def lost(message: Message, state: FSMContext, roles: Roles) -> None:
    await state.clear()
    await message.answer(
        _("I could not find the proposal of this report any more. Start again with /progres."),
        reply_markup=main_menu(roles),
    )


async def _current(
    query: CallbackQuery, callback_data: ProgCb, state: FSMContext, session: AsyncSession, roles: Roles
) -> Proposal | None:
    """The dialog's proposal, if the button belongs to it; otherwise the button is refused."""
    proposal = await _load(session, state, roles)
    if proposal is None or proposal.id != callback_data.id:
        await stale_button(query, session)
        return None
    return proposal


def _refusal(proposal: Proposal) -> str | None:
    """Why no report can be made on the proposal now (None: it can take one)."""
    if proposal.status in progress.REPORTABLE:
        return None
    code = proposal.code or escape_html(proposal.title or "")
    if proposal.status == MENUNGGU_VERIFIKASI_SELESAI:
        return _(
            "{code}: the 100 % report is with the officer for verification. I will tell you here when it is checked."
        ).format(code=code)
    if proposal.status == DITOLAK:
        return _("{code} was rejected, so there is no work to report on.").format(code=code)
    if proposal.status == SELESAI:
        return _("{code} is already completed and verified. No more reports are needed.").format(code=code)
    if proposal.status == DITARIK:
        return _("{code} was withdrawn, so there is no work to report on.").format(code=code)
    if proposal.status in (DRAF, DIAJUKAN, PERLU_REVISI):
        return _("{code} is not approved yet. Progress can be reported once it is approved; see /usulanku.").format(
            code=code
        )
    return _("{code} cannot take a progress report now ({status}).").format(
        code=code, status=render.status_label(proposal.status)
    )


async def _last_report(session: AsyncSession, proposal_id: int) -> progress.TimelineEntry | None:
    entries = await progress.timeline(session, proposal_id)
    return entries[-1] if entries else None


# --- entry ------------------------------------------------------------------------------------------


async def _reportable(session: AsyncSession, roles: Roles, settings: Settings) -> list[Proposal]:
    """This year's (and last year's, still running) approved proposals of the head's RT."""
    year = settings.current_fiscal_year()
    found: list[Proposal] = []
    for y in (year, year - 1):
        found += list(await progress.approved_proposals_of(session, roles.rt_head.rt_id, y))
    return found


@router.message(Command("progres"))
@router.message(Label(BTN_PROGRESS))
async def progres(message: Message, state: FSMContext, session: AsyncSession, roles: Roles, settings: Settings) -> None:
    if not await require_rt_head(message, roles):
        return
    await state.clear()
    reportable = await _reportable(session, roles, settings)
    year = settings.current_fiscal_year()
    waiting = [
        p
        for y in (year, year - 1)
        for p in await proposals_service.list_for_rt(session, roles.rt_head.rt_id, y)
        if p.status == MENUNGGU_VERIFIKASI_SELESAI
    ]
    waiting_lines = [_refusal(p) for p in waiting]
    if not reportable:
        lines = waiting_lines or [
            _(
                "There is no approved proposal to report on yet. Progress can be reported once an officer "
                "approves a proposal; see /usulanku."
            )
        ]
        await message.answer("\n".join(lines), reply_markup=main_menu(roles))
        return
    if len(reportable) == 1:
        if waiting_lines:
            await message.answer("\n".join(waiting_lines))
        await begin(message, state, session, reportable[0], several=False)
        return
    rows = []
    for p in reportable[:20]:
        last = await _last_report(session, p.id)
        rows.append(
            [
                _button(
                    f"{p.code or ''} · {(p.title or '')[:28]} · {last.percent if last else 0}%",
                    "pick",
                    p.id,
                )
            ]
        )
    text = "\n".join([*waiting_lines, _("Which proposal is this progress report for?")])
    await message.answer(text, reply_markup=_inline(*rows))
    await state.set_state(Laporan.pilih)
    await state.set_data({"several": True})


async def begin(
    message: Message, state: FSMContext, session: AsyncSession, proposal: Proposal, *, several: bool
) -> None:
    """Start the report on ``proposal`` (already checked: this RT's, reportable)."""
    last = await _last_report(session, proposal.id)
    await state.set_data(
        {
            "pid": proposal.id,
            "several": several,
            "prev": last.percent if last else None,
            "prev_spent": last.spent_total if last else 0,
            "photos": [],
            "receipts": [],
        }
    )
    lines = [
        _("📈 Progress report for <b>{code}</b> · {title}").format(
            code=proposal.code or "", title=escape_html(proposal.title or "")
        ),
        _("Approved amount: {amount}.").format(amount=format_rupiah(proposal.total_amount)),
    ]
    if last is None:
        lines.append(_("No report yet: this is the first one."))
    else:
        lines.append(
            _("Last report: {percent}% on {date}; spending so far {spent}.").format(
                percent=last.percent, date=when(last.at), spent=format_rupiah(last.spent_total)
            )
        )
    await message.answer("\n".join(lines), reply_markup=ReplyKeyboardRemove())
    await ask(Laporan.persen, message, state, proposal)


async def _check_choice(
    query: CallbackQuery, callback_data: ProgCb, session: AsyncSession, user_id: int, roles: Roles
) -> Proposal | None:
    """The proposal of a start/pick button, checked on the server: it exists, it is of the head's RT
    (else audited) and it can take a report (else the reason is shown)."""
    if roles.rt_head is None:
        await stale_button(query, session)
        return None
    try:
        proposal = await proposals_service.get(session, callback_data.id)
    except proposals_service.ProposalNotFound:
        await stale_button(query, session)
        return None
    if proposal.rt_id != roles.rt_head.rt_id:
        await registration.deny(session, user_id, "progress.lapor", "proposal", proposal.id, "not_your_rt")
        await query.answer(
            _("This proposal is not of your RT; you can only report on your own RT's work. The attempt was recorded."),
            show_alert=True,
        )
        return None
    refusal = _refusal(proposal)
    if refusal is not None:
        await query.answer(refusal[:200], show_alert=True)
        return None
    return proposal


@router.callback_query(ProgCb.filter(F.action == "start"), StateFilter("*"))
async def start_button(
    query: CallbackQuery, callback_data: ProgCb, state: FSMContext, session: AsyncSession, roles: Roles
) -> None:
    """ "Report progress" on a proposal card or on the officer's "more evidence needed" notice."""
    proposal = await _check_choice(query, callback_data, session, query.from_user.id, roles)
    if proposal is None:
        return
    await query.answer()
    await state.clear()
    await begin(query.message, state, session, proposal, several=False)


@router.callback_query(Laporan.pilih, ProgCb.filter(F.action == "pick"))
async def pick(
    query: CallbackQuery, callback_data: ProgCb, state: FSMContext, session: AsyncSession, roles: Roles
) -> None:
    proposal = await _check_choice(query, callback_data, session, query.from_user.id, roles)
    if proposal is None:
        return
    await query.answer()
    await drop_buttons(query.message)
    await begin(query.message, state, session, proposal, several=True)


# --- asking each step ------------------------------------------------------------------------------


async def ask(step: State, message: Message, state: FSMContext, proposal: Proposal) -> None:
    """Ask the question of ``step`` and remember the step."""
    await state.set_state(step)
    data = await state.get_data()
    pid = proposal.id
    if step == Laporan.persen:
        buttons = [_button(f"{n}%", "pct", pid, str(n)) for n in PERCENT_BUTTONS]
        await message.answer(
            _("How much of the work is done now? Tap a button, or type the percentage (e.g. <b>60</b>)."),
            reply_markup=_inline(buttons),
        )
    elif step == Laporan.alasan:
        await message.answer(
            _(
                "The last report said {previous}%, now {percent}%: lower than before. Is that right? Please type "
                "the reason (e.g. part of the work had to be redone), or tap ⬅️ Back to change the percentage."
            ).format(previous=data.get("prev"), percent=data.get("pct")),
            reply_markup=_inline(),
        )
    elif step == Laporan.foto:
        n = len(data.get("photos") or [])
        text = _(
            "Send <b>1 to 10 photos</b> of the work site now. Photos so far: {n}.\n"
            "💡 Send them as a <b>File</b> (📎 → File) to keep the time and place they were taken; photos sent "
            "the normal way lose them."
        ).format(n=n)
        await message.answer(text, reply_markup=_inline([_button(_(BTN_NEXT), "next", pid)]) if n else _inline())
    elif step == Laporan.lokasi:
        keyboard = nav_reply_keyboard(
            [KeyboardButton(text=_(BTN_SEND_LOCATION), request_location=True)], [KeyboardButton(text=_(BTN_SKIP))]
        )
        await message.answer(
            _(
                "Optional: send the <b>location</b> of the work. At the site, tap <b>📍 Send my current "
                "location</b>; or tap <b>Skip ➡️</b>."
            ),
            reply_markup=keyboard,
        )
    elif step == Laporan.catatan:
        await message.answer(
            _("Type a short <b>note</b> on the work done (e.g. <i>Pengecoran 30 meter selesai</i>), or tap Skip."),
            reply_markup=_inline([_button(_(BTN_SKIP), "skip", pid)]),
        )
    elif step == Laporan.biaya:
        prev_spent = int(data.get("prev_spent") or 0)
        lines = [
            _(
                "How much has been <b>spent so far in total</b> (realisasi)? Type the amount, e.g. "
                "<b>1.250.000</b> or <b>1,25 jt</b>."
            ),
            _("Approved: {approved}. Last report: {spent}.").format(
                approved=format_rupiah(proposal.total_amount), spent=format_rupiah(prev_spent)
            ),
        ]
        if prev_spent:
            row = [_button(_("Same as last report: {amount}").format(amount=format_rupiah(prev_spent)), "spent", pid)]
        else:
            row = [_button(_("Nothing spent yet (Rp 0)"), "spent", pid)]
        await message.answer("\n".join(lines), reply_markup=_inline(row))
    elif step == Laporan.lebih:
        spent = int(data.get("spent") or 0)
        await message.answer(
            _(
                "{spent} is {over} more than the approved {approved}. Please type a short explanation; the report "
                "will be marked for the officer to check."
            ).format(
                spent=format_rupiah(spent),
                over=format_rupiah(spent - proposal.total_amount),
                approved=format_rupiah(proposal.total_amount),
            ),
            reply_markup=_inline(),
        )
    elif step == Laporan.nota:
        n = len(data.get("receipts") or [])
        required = _receipts_required(data)
        if required:
            text = _(
                "Send photos of the <b>receipts</b> (nota/kuitansi) for the spending since the last report: "
                "photos or PDF files. Files so far: {n}."
            ).format(n=n)
        else:
            text = _(
                "Optional: send photos of new <b>receipts</b> (nota/kuitansi), or PDF files. Files so far: {n}."
            ).format(n=n)
        rows = []
        if n:
            rows.append([_button(_(BTN_NEXT), "next", pid)])
        elif not required:
            rows.append([_button(_(BTN_SKIP), "skip", pid)])
        await message.answer(text, reply_markup=_inline(*rows))
    elif step == Laporan.ringkasan:
        await message.answer(
            summary(proposal, data),
            reply_markup=_inline([_button(_(BTN_SEND_REPORT), "send", pid)]),
        )


def _receipts_required(data: dict[str, Any]) -> bool:
    return int(data.get("spent") or 0) > int(data.get("prev_spent") or 0)


def summary(proposal: Proposal, data: dict[str, Any]) -> str:
    pct, prev = data.get("pct"), data.get("prev")
    spent = int(data.get("spent") or 0)
    lines = [
        _("<b>Progress report — {code}</b>").format(code=proposal.code or ""),
        escape_html(proposal.title or ""),
        "",
        _("📈 Progress: <b>{percent}%</b> (last report: {previous})").format(
            percent=pct, previous=f"{prev}%" if prev is not None else "—"
        ),
    ]
    if data.get("reason"):
        lines.append(_("Why it is lower: {reason}").format(reason=escape_html(data["reason"])))
    lines.append(_("📷 Site photos: {n}").format(n=len(data.get("photos") or [])))
    lines.append(_("📍 Location pin: yes") if data.get("loc") else _("📍 Location pin: no"))
    lines.append(_("📝 Note: {note}").format(note=escape_html(data["note"]) if data.get("note") else "—"))
    lines.append(
        _("💰 Spending so far: {spent} of {approved} approved").format(
            spent=format_rupiah(spent), approved=format_rupiah(proposal.total_amount)
        )
    )
    if spent > proposal.total_amount:
        lines.append(
            _("⚠️ Over the approved amount by {over}: {note}").format(
                over=format_rupiah(spent - proposal.total_amount), note=escape_html(data.get("over_note") or "")
            )
        )
    lines.append(_("🧾 Receipts: {n}").format(n=len(data.get("receipts") or [])))
    lines.append("")
    if pct == 100:
        lines.append(_("At 100 % the officer will check that the work is complete."))
    lines.append(_("Check it, then tap <b>📨 Send report</b>."))
    return "\n".join(lines)


# --- navigation ------------------------------------------------------------------------------------


def previous_step(current: State, data: dict[str, Any], total: int) -> State | None:
    backwards = data.get("prev") is not None and data.get("pct") is not None and data["pct"] < data["prev"]
    over = int(data.get("spent") or 0) > total
    order = [Laporan.persen]
    if backwards:
        order.append(Laporan.alasan)
    order += [Laporan.foto, Laporan.lokasi, Laporan.catatan, Laporan.biaya]
    if over:
        order.append(Laporan.lebih)
    order += [Laporan.nota, Laporan.ringkasan]
    if current not in order:  # alasan/lebih left behind by a change: back to the step before them
        current = {Laporan.alasan: Laporan.foto, Laporan.lebih: Laporan.nota}.get(current, Laporan.ringkasan)
        return order[order.index(current) - 1]
    i = order.index(current)
    return order[i - 1] if i > 0 else None


async def _go_back(
    message: Message, state: FSMContext, session: AsyncSession, roles: Roles, settings: Settings
) -> None:
    name = await state.get_state() or ""
    if name == Laporan.pilih.state:
        await message.answer(_("This is the first question. To stop, tap ✖️ Cancel."))
        return
    proposal = await _load(session, state, roles)
    if proposal is None:
        await lost(message, state, roles)
        return
    data = await state.get_data()
    current = BY_NAME.get(name, Laporan.ringkasan)
    previous = previous_step(current, data, proposal.total_amount)
    if current == Laporan.lokasi:
        await message.answer("⬅️", reply_markup=ReplyKeyboardRemove())
    if previous is None:
        if data.get("several"):
            await state.clear()
            await progres(message, state, session, roles, settings)
            return
        await message.answer(_("This is the first question. To stop, tap ✖️ Cancel."))
        return
    await ask(previous, message, state, proposal)


@router.message(StateFilter(Laporan), Label(BTN_BACK))
@router.message(StateFilter(Laporan), F.text.lower().in_(BACK_WORDS))
async def back_text(
    message: Message, state: FSMContext, session: AsyncSession, roles: Roles, settings: Settings
) -> None:
    await _go_back(message, state, session, roles, settings)


@router.callback_query(StateFilter(Laporan), NavCb.filter(F.action == "back"))
async def back_button(
    query: CallbackQuery, state: FSMContext, session: AsyncSession, roles: Roles, settings: Settings
) -> None:
    await query.answer()
    await drop_buttons(query.message)
    await _go_back(query.message, state, session, roles, settings)


@router.message(StateFilter(Laporan), Label(BTN_CANCEL))
async def cancel_label(message: Message, state: FSMContext, roles: Roles) -> None:
    await state.clear()
    await message.answer(_("Cancelled. Nothing was saved."), reply_markup=main_menu(roles))


# --- percentage ------------------------------------------------------------------------------------


async def _set_percent(message: Message, state: FSMContext, proposal: Proposal, percent: int) -> None:
    data = await state.get_data()
    prev = data.get("prev")
    await state.update_data(pct=percent)
    if prev is not None and percent < prev:
        await ask(Laporan.alasan, message, state, proposal)
        return
    await state.update_data(reason=None)
    await ask(Laporan.foto, message, state, proposal)


@router.callback_query(Laporan.persen, ProgCb.filter(F.action == "pct"))
async def percent_button(
    query: CallbackQuery, callback_data: ProgCb, state: FSMContext, session: AsyncSession, roles: Roles
) -> None:
    proposal = await _current(query, callback_data, state, session, roles)
    if proposal is None:
        return
    percent = parse_cb_int(callback_data.arg)
    if percent not in PERCENT_BUTTONS:
        await stale_button(query, session)
        return
    await query.answer()
    await edit_or_send(query.message, _("Progress: <b>{percent}%</b>").format(percent=percent))
    await _set_percent(query.message, state, proposal, percent)


@router.message(Laporan.persen, *ANSWER_TEXT)
async def percent_typed(message: Message, state: FSMContext, session: AsyncSession, roles: Roles) -> None:
    proposal = await _load(session, state, roles)
    if proposal is None:
        await lost(message, state, roles)
        return
    percent = parse_percent(message.text)
    if percent is None:
        await message.answer(_("Please type only a number from 0 to 100, e.g. <b>60</b>, or tap a button."))
        return
    if percent > 100:
        await message.answer(
            _("{percent}% is not possible: the progress is from 0 to 100 %. Please type it again.").format(
                percent=percent
            )
        )
        return
    await _set_percent(message, state, proposal, percent)


@router.message(Laporan.alasan, *ANSWER_TEXT)
async def reason_typed(message: Message, state: FSMContext, session: AsyncSession, roles: Roles) -> None:
    proposal = await _load(session, state, roles)
    if proposal is None:
        await lost(message, state, roles)
        return
    text = await _clean(message)
    if text is None:
        return
    await state.update_data(reason=text)
    await ask(Laporan.foto, message, state, proposal)


async def _clean(message: Message) -> str | None:
    try:
        return clean_text(message.text or "", TEXT_MAX)
    except TextError as exc:
        if exc.kind == "too_long":
            await message.answer(_("That is too long: at most {max} characters, please.").format(max=TEXT_MAX))
        else:
            await message.answer(_("Please answer by typing text (not a photo or sticker)."))
        return None


# --- photos and receipts ------------------------------------------------------------------------------


@router.message(StateFilter(Laporan.foto, Laporan.nota), F.photo | F.document)
async def file_given(
    message: Message,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    roles: Roles,
    user: User,
    media_store: media_service.MediaStore,
    album_replies: Debouncer,
    i18n: I18n,
) -> None:
    proposal = await _load(session, state, roles)
    if proposal is None:
        await lost(message, state, roles)
        return
    receipts = await state.get_state() == Laporan.nota.state
    key, limit = ("receipts", MAX_RECEIPTS) if receipts else ("photos", MAX_PHOTOS)
    data = await state.get_data()
    files = _files(data.get(key))
    item = incoming_file(message)
    problem = None
    over_limit = len(files) >= limit
    album = (message.chat.id, message.media_group_id) if message.media_group_id else None
    if album is not None and files:
        # Restart the album's quiet time now, not only once this file is stored: a slow download
        # must not let the album be answered before its last file.
        album_replies.touch(album, _album_reply(message, proposal.id, receipts, len(files), False, i18n, user.language))
    if not over_limit:
        try:
            media = await fetch(bot, session, media_store, item, kind="document" if receipts else "photo")
        except media_service.FileTooLarge as exc:
            problem = _(
                "This file is {size} MB; the limit is 20 MB. Please send a smaller one (a photo, or a compressed PDF)."
            ).format(size=round(exc.size / 1_000_000, 1))
        except media_service.ImageTooLarge as exc:
            problem = too_many_pixels_text(exc)
        except media_service.NotAnImage:
            problem = _("That file is not a photo. Please send a photo of the work site.")
        except (media_service.UnsupportedFile, media_service.EmptyFile):
            problem = _("I can only accept a photo or a PDF file here.")
        if problem is not None:
            await message.answer(problem)
            return
        if all(f[0] != media.id for f in files):
            files.append([media.id, item.file_id, item.file_unique_id])
            await state.update_data({key: files})
    if album is not None:
        # Each file of an album is kept as it comes; the album is answered once, after its last file.
        album_replies.touch(
            album, _album_reply(message, proposal.id, receipts, len(files), over_limit, i18n, user.language)
        )
        return
    await _files_reply(message, proposal.id, receipts, len(files), over_limit)


def _album_reply(
    message: Message, proposal_id: int, receipts: bool, n: int, over_limit: bool, i18n: I18n, language: str
) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        with i18n.context(), i18n.use_locale(language):
            await _files_reply(message, proposal_id, receipts, n, over_limit)

    return run


async def _files_reply(message: Message, proposal_id: int, receipts: bool, n: int, over_limit: bool) -> None:
    lines = []
    if over_limit:
        lines.append(
            _("At most {limit} files here; the extra ones were not added.").format(
                limit=MAX_RECEIPTS if receipts else MAX_PHOTOS
            )
        )
    if receipts:
        lines.append(_("🧾 Receipts saved: {n}. Send another, or tap <b>➡️ Next</b>.").format(n=n))
    else:
        lines.append(
            _("📷 Photos saved: {n} of at most {max}. Send more, or tap <b>➡️ Next</b>.").format(n=n, max=MAX_PHOTOS)
        )
    await message.answer("\n".join(lines), reply_markup=_inline([_button(_(BTN_NEXT), "next", proposal_id)]))


@router.callback_query(StateFilter(Laporan.foto, Laporan.nota), ProgCb.filter(F.action.in_({"next", "skip"})))
async def files_done(
    query: CallbackQuery, callback_data: ProgCb, state: FSMContext, session: AsyncSession, roles: Roles
) -> None:
    proposal = await _current(query, callback_data, state, session, roles)
    if proposal is None:
        return
    data = await state.get_data()
    if await state.get_state() == Laporan.foto.state:
        if not data.get("photos"):
            await query.answer(_("Please send at least one photo of the work site first."), show_alert=True)
            return
        await query.answer()
        await drop_buttons(query.message)
        await ask(Laporan.lokasi, query.message, state, proposal)
        return
    if not data.get("receipts") and _receipts_required(data):
        await query.answer(
            _("The spending went up since the last report: please send at least one receipt (nota/kuitansi)."),
            show_alert=True,
        )
        return
    await query.answer()
    await drop_buttons(query.message)
    await ask(Laporan.ringkasan, query.message, state, proposal)


@router.message(Laporan.foto, *NOT_FOR_OTHERS)
async def photo_wrong(message: Message) -> None:
    await message.answer(
        _("Please send a photo of the work site (📎 → File keeps its location), or tap ➡️ Next when all are sent.")
    )


@router.message(Laporan.nota, *NOT_FOR_OTHERS)
async def receipt_wrong(message: Message) -> None:
    await message.answer(_("Please send a photo or a PDF of the receipt (nota/kuitansi), or tap the button above."))


# --- location ----------------------------------------------------------------------------------------


@router.message(Laporan.lokasi, F.location)
async def location_given(message: Message, state: FSMContext, session: AsyncSession, roles: Roles) -> None:
    proposal = await _load(session, state, roles)
    if proposal is None:
        await lost(message, state, roles)
        return
    await state.update_data(loc=[message.location.latitude, message.location.longitude])
    await message.answer(_("📍 Location saved."), reply_markup=ReplyKeyboardRemove())
    await ask(Laporan.catatan, message, state, proposal)


@router.message(Laporan.lokasi, Label(BTN_SKIP))
@router.message(Laporan.lokasi, F.text.lower().in_({"lewati", "skip"}))
async def location_skipped(message: Message, state: FSMContext, session: AsyncSession, roles: Roles) -> None:
    proposal = await _load(session, state, roles)
    if proposal is None:
        await lost(message, state, roles)
        return
    await state.update_data(loc=None)
    await message.answer(_("No location this time."), reply_markup=ReplyKeyboardRemove())
    await ask(Laporan.catatan, message, state, proposal)


@router.message(Laporan.lokasi, *NOT_FOR_OTHERS)
async def location_wrong(message: Message) -> None:
    await message.answer(
        _(
            "Please send the location as a map pin: tap <b>📍 Send my current location</b> at the bottom, or "
            "<b>Skip ➡️</b>. (If you cannot see the buttons, tap the keyboard icon ⌨️.)"
        ),
        reply_markup=nav_reply_keyboard(
            [KeyboardButton(text=_(BTN_SEND_LOCATION), request_location=True)], [KeyboardButton(text=_(BTN_SKIP))]
        ),
    )


# --- note ------------------------------------------------------------------------------------------


@router.message(Laporan.catatan, *ANSWER_TEXT)
async def note_typed(message: Message, state: FSMContext, session: AsyncSession, roles: Roles) -> None:
    proposal = await _load(session, state, roles)
    if proposal is None:
        await lost(message, state, roles)
        return
    text = await _clean(message)
    if text is None:
        return
    await state.update_data(note=text)
    await ask(Laporan.biaya, message, state, proposal)


@router.callback_query(Laporan.catatan, ProgCb.filter(F.action == "skip"))
async def note_skipped(
    query: CallbackQuery, callback_data: ProgCb, state: FSMContext, session: AsyncSession, roles: Roles
) -> None:
    proposal = await _current(query, callback_data, state, session, roles)
    if proposal is None:
        return
    await query.answer()
    await drop_buttons(query.message)
    await state.update_data(note=None)
    await ask(Laporan.biaya, query.message, state, proposal)


# --- spending ---------------------------------------------------------------------------------------


async def _set_spent(message: Message, state: FSMContext, proposal: Proposal, spent: int) -> None:
    await state.update_data(spent=spent)
    if spent > proposal.total_amount:
        await ask(Laporan.lebih, message, state, proposal)
        return
    await state.update_data(over_note=None)
    await ask(Laporan.nota, message, state, proposal)


def money_error_text(exc: MoneyError) -> str:
    if exc.kind == "negative":
        return _("The amount cannot be negative. Type it like <b>1.250.000</b>.")
    if exc.kind == "too_large":
        return _("That amount is far too large. Please check it and type it like <b>1.250.000</b>.")
    if exc.kind == "fraction":
        return _("Please type whole rupiah, like <b>1.250.000</b>.")
    return _("I could not read that amount. Type it like <b>1.250.000</b>, <b>1,25 jt</b> or <b>500rb</b>.")


@router.message(Laporan.biaya, *ANSWER_TEXT)
async def spending_typed(message: Message, state: FSMContext, session: AsyncSession, roles: Roles) -> None:
    proposal = await _load(session, state, roles)
    if proposal is None:
        await lost(message, state, roles)
        return
    try:
        spent = parse_spending(message.text)
    except MoneyError as exc:
        await message.answer(money_error_text(exc))
        return
    await _set_spent(message, state, proposal, spent)


@router.callback_query(Laporan.biaya, ProgCb.filter(F.action == "spent"))
async def spending_button(
    query: CallbackQuery, callback_data: ProgCb, state: FSMContext, session: AsyncSession, roles: Roles
) -> None:
    proposal = await _current(query, callback_data, state, session, roles)
    if proposal is None:
        return
    spent = int((await state.get_data()).get("prev_spent") or 0)
    await query.answer()
    await drop_buttons(query.message)
    await _set_spent(query.message, state, proposal, spent)


@router.message(Laporan.lebih, *ANSWER_TEXT)
async def over_note_typed(message: Message, state: FSMContext, session: AsyncSession, roles: Roles) -> None:
    proposal = await _load(session, state, roles)
    if proposal is None:
        await lost(message, state, roles)
        return
    text = await _clean(message)
    if text is None:
        return
    await state.update_data(over_note=text)
    await ask(Laporan.nota, message, state, proposal)


# --- summary and sending ------------------------------------------------------------------------------


class MediaGone(Exception):
    """A stored file of the dialog is missing (row or file)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


async def _evidence(
    session: AsyncSession, store: media_service.MediaStore, items: list[list[Any]], key: str
) -> list[progress.EvidenceFile]:
    files = []
    for media_id, file_id, unique_id in items:
        media = await session.get(Media, media_id)
        if media is None:
            raise MediaGone(key)
        try:
            data = await asyncio.to_thread(store.open, media.path)
        except (OSError, ValueError):
            raise MediaGone(key) from None
        exif, phash = await progress.analyse_photo(data)
        files.append(progress.EvidenceFile(media, file_id, unique_id, exif, phash))
    return files


def _percent_refused_text(exc: progress.PercentRefused) -> str:
    if exc.kind == evidence.PERCENT_BACKWARDS_NEEDS_REASON:
        return _("The last report now says {previous}%, more than {percent}%. Please type the reason.").format(
            previous=exc.previous, percent=exc.new
        )
    if exc.kind == evidence.PERCENT_COMPLETE_NEEDS_PHOTO:
        return _("A 100 % report needs at least one photo of the finished work. Please send it.")
    return _("Please type only a number from 0 to 100, e.g. <b>60</b>, or tap a button.")


@router.callback_query(Laporan.ringkasan, ProgCb.filter(F.action == "send"))
async def send(
    query: CallbackQuery,
    callback_data: ProgCb,
    state: FSMContext,
    session: AsyncSession,
    user: User,
    roles: Roles,
    settings: Settings,
    media_store: media_service.MediaStore,
) -> None:
    proposal = await _current(query, callback_data, state, session, roles)
    if proposal is None:
        return
    data = await state.get_data()
    message = query.message
    try:
        photos = await _evidence(session, media_store, _files(data.get("photos")), "photos")
        receipts = await _evidence(session, media_store, _files(data.get("receipts")), "receipts")
    except MediaGone as exc:
        await query.answer()
        await state.update_data({exc.key: []})
        await message.answer(_("Some files could not be read any more. Please send them again."))
        await ask(Laporan.foto if exc.key == "photos" else Laporan.nota, message, state, proposal)
        return
    loc = data.get("loc")
    try:
        row = await progress.report(
            session,
            user.id,
            proposal.id,
            percent=int(data["pct"]),
            spent_total=int(data["spent"]),
            note=data.get("note"),
            location=(float(loc[0]), float(loc[1])) if loc else None,
            over_budget_note=data.get("over_note"),
            photos=photos,
            receipts=receipts,
            backwards_reason=data.get("reason"),
            admin_ids=settings.admin_ids,
        )
    except Forbidden:
        await state.clear()
        await query.answer(
            _("This proposal is not of your RT; you can only report on your own RT's work. The attempt was recorded."),
            show_alert=True,
        )
        await drop_buttons(message)
        return
    except (TransitionError, proposals_service.ProposalNotFound):
        await state.clear()
        await query.answer()
        await drop_buttons(message)
        try:
            fresh = await proposals_service.get(session, proposal.id)
        except proposals_service.ProposalNotFound:
            fresh = None
        text = (_refusal(fresh) if fresh is not None else None) or _("This report can no longer be sent.")
        await message.answer(text + "\n" + _("Nothing was saved."), reply_markup=main_menu(roles))
        return
    except progress.PercentRefused as exc:
        await query.answer()
        await message.answer(_percent_refused_text(exc))
        if exc.kind == evidence.PERCENT_BACKWARDS_NEEDS_REASON:
            await state.update_data(prev=exc.previous)
            await ask(Laporan.alasan, message, state, proposal)
        elif exc.kind == evidence.PERCENT_COMPLETE_NEEDS_PHOTO:
            await ask(Laporan.foto, message, state, proposal)
        else:
            await ask(Laporan.persen, message, state, proposal)
        return
    except progress.OverBudgetNeedsNote:
        await query.answer()
        await ask(Laporan.lebih, message, state, proposal)
        return
    except proposals_service.InvalidField as exc:
        await query.answer()
        step = FIELD_STEPS.get(exc.field, Laporan.ringkasan)
        if exc.reason == "too_long":
            await message.answer(_("That is too long: at most {max} characters, please.").format(max=exc.maximum))
        else:
            await message.answer(_("Please check this answer again."))
        await ask(step, message, state, proposal)
        return
    except proposals_service.TooManyPhotos as exc:
        await query.answer()
        await message.answer(_("At most {limit} files here; the extra ones were not added.").format(limit=exc.limit))
        return
    await state.clear()
    await query.answer(_("Sent."))
    await drop_buttons(message)
    status = PELAKSANAAN if row.percent < 100 else MENUNGGU_VERIFIKASI_SELESAI
    lines = [
        _("📨 Progress report sent: <b>{code}</b> {percent}%.").format(code=proposal.code or "", percent=row.percent),
        _("Status: {status}.").format(status=render.status_label(status)),
    ]
    if status == MENUNGGU_VERIFIKASI_SELESAI:
        lines.append(_("The kelurahan officer will check that the work is complete; I will tell you here."))
    else:
        lines.append(_("The kelurahan officer will check it; I will tell you here."))
    if any(f["kind"] == evidence.OVER_BUDGET for f in row.flags or ()):
        lines.append(_("The spending above the approved amount is marked for the officer, with your explanation."))
    if any(p.exif is None or not p.exif.has_gps for p in photos):
        lines.append("")
        lines.append(
            _(
                "💡 Tip for next time: send the site photos as a <b>File</b> (📎 → File). Then the time and place "
                "they were taken are kept, and the officer can check them faster."
            )
        )
    await message.answer("\n".join(lines), reply_markup=main_menu(roles))


# --- anything else in the dialog ---------------------------------------------------------------------------


@router.message(StateFilter(Laporan.pilih, Laporan.ringkasan), *NOT_FOR_OTHERS)
async def use_buttons(message: Message, state: FSMContext) -> None:
    if await state.get_state() == Laporan.ringkasan.state:
        await message.answer(_("Please check the summary above and tap 📨 Send report, or ✖️ Cancel."))
    else:
        await message.answer(_("Please choose a proposal with the buttons above, or tap ✖️ Cancel."))


@router.message(Laporan.persen, *NOT_FOR_OTHERS)
async def percent_wrong(message: Message) -> None:
    await message.answer(_("Please type only a number from 0 to 100, e.g. <b>60</b>, or tap a button."))


@router.message(Laporan.biaya, *NOT_FOR_OTHERS)
async def spending_wrong(message: Message) -> None:
    await message.answer(_("Please type the amount spent so far, e.g. <b>1.250.000</b>."))


@router.message(StateFilter(Laporan.alasan, Laporan.catatan, Laporan.lebih), *NOT_FOR_OTHERS)
async def type_text(message: Message) -> None:
    await message.answer(_("Please answer by typing text (not a photo or sticker)."))


@router.callback_query(ProgCb.filter())
async def prog_stale(query: CallbackQuery, session: AsyncSession) -> None:
    await stale_button(query, session)
