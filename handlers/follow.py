"""For every resident: /ikuti (follow an RT, picked kecamatan → kelurahan → RT, or one proposal by its
code), /berhenti (stop following) and /pengaturan (which notices, and quiet hours).

Thin: parse, call ``bot.services.follows``, render. Other screens put a "🔔 Follow" button on an RT
or a proposal with :func:`follow_rt_button` / :func:`follow_proposal_button` (``FollowCb`` actions
"rt" and "prop"); pressing it answers in a new message, leaving that screen as it is.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain import follow as rules
from bot.domain.codes import format_code
from bot.domain.text import escape_html
from bot.domain.timefmt import tz_abbreviation
from bot.services import follows, programs
from bot.services.proposals import find_by_code
from bot.services.users import Roles
from handlers.common import (
    BTN_BACK,
    BTN_FOLLOW,
    BTN_SETTINGS,
    N_,
    CbInt,
    Label,
    cancel_row,
    chunk,
    rt_place,
    stale_button,
)
from storage.models import DIGEST_DAILY, DIGEST_OFF, DIGEST_WEEKLY, RT, NotificationPrefs, Proposal
from storage.repositories import wilayah

__all__ = ["FollowCb", "SettingsCb", "follow_proposal_button", "follow_rt_button", "router"]

router = Router(name=__name__)
router.message.filter(F.chat.type == "private")

RT_PAGE = 40  # RT buttons per page (a Bontang kelurahan has up to ~60 RTs)
RT_COLUMNS = 5


class FollowCb(CallbackData, prefix="fl"):
    """``action``: rt (follow RT ``id``), prop (follow proposal ``id``), unf (stop follow ``id``),
    kec (kecamatan list), kel (kelurahan of kecamatan ``id``), rts (RTs of kelurahan ``id``, ``page``),
    code (type a proposal code), home (the /ikuti overview). For rt/prop, ``page`` 1 means the
    answer replaces the pressed message (the picker's own buttons), 0 a new message."""

    action: str
    id: CbInt = 0
    page: CbInt = 0


class SettingsCb(CallbackData, prefix="ns"):
    """``action``: mode (``value`` one of the notice modes), quiet (``value`` "start-end" in
    minutes; "0-0" none), custom (type the hours)."""

    action: str
    value: str = ""


class FollowForm(StatesGroup):
    code = State()
    quiet = State()


def follow_rt_button(rt_id: int) -> InlineKeyboardButton:
    """ "🔔 Follow this RT", for the RT view of other screens."""
    return InlineKeyboardButton(text=_("🔔 Follow this RT"), callback_data=FollowCb(action="rt", id=rt_id).pack())


def follow_proposal_button(proposal_id: int) -> InlineKeyboardButton:
    """ "🔔 Follow this proposal", for the public proposal card."""
    return InlineKeyboardButton(
        text=_("🔔 Follow this proposal"), callback_data=FollowCb(action="prop", id=proposal_id).pack()
    )


MODE_LABELS = {
    rules.NOTIFY_ALL: N_("🔔 Everything"),
    rules.NOTIFY_DECISIONS: N_("✅ Decisions only"),
    rules.NOTIFY_WEEKLY: N_("🗓 Weekly summary"),
    rules.NOTIFY_OFF: N_("🔕 Off"),
}
QUIET_PRESETS = ((21 * 60, 6 * 60), (22 * 60, 5 * 60))
DIGEST_LABELS = {
    DIGEST_DAILY: N_("☀️ Daily"),
    DIGEST_WEEKLY: N_("🗓 Mondays"),
    DIGEST_OFF: N_("🔕 None"),
}


# --- rendering -----------------------------------------------------------------------------------------


def _rt_short(rt: RT) -> str:
    return f"{rt.label()} {rt.kelurahan.name}"


def target_label(view: follows.FollowView) -> str:
    """What a follow is about, for a list (HTML)."""
    if view.rt is not None:
        return "🏘 " + rt_place(view.rt)
    p = view.proposal
    if p is None:
        return "-"
    return f"📄 <b>{escape_html(p.code or '-')}</b> {escape_html(p.title or '-')} ({rt_place(p.rt)})"


def _button_label(view: follows.FollowView) -> str:
    if view.rt is not None:
        what = _rt_short(view.rt)
    else:
        what = (view.proposal.code if view.proposal is not None else None) or "-"
    return _("✖️ Stop: {what}").format(what=what)


def _unfollow_rows(views: list[follows.FollowView]) -> list[list[InlineKeyboardButton]]:
    return [
        [InlineKeyboardButton(text=_button_label(v), callback_data=FollowCb(action="unf", id=v.follow.id).pack())]
        for v in views
    ]


async def _example(session: AsyncSession, settings: Settings) -> str:
    program = await programs.ensure(session, settings, settings.current_fiscal_year())
    return format_code(program.code_prefix, program.fiscal_year, 1)


async def _overview(session: AsyncSession, settings: Settings, user_id: int) -> tuple[str, InlineKeyboardMarkup]:
    views = await follows.list_follows(session, user_id)
    lines = [
        _("🔔 <b>Follow an RT or a proposal</b>"),
        _(
            "You get a short notice when a proposal is approved, rejected, sent back for changes or "
            "completed, and when work progress is reported. Notices never show anyone's name or phone number."
        ),
        "",
    ]
    if views:
        lines.append(_("<b>You follow:</b>"))
        lines += [f"• {target_label(v)}" for v in views]
    else:
        lines.append(_("You do not follow anything yet."))
    lines.append("")
    lines.append(
        _(
            "To follow an RT, choose its kecamatan below. To follow one proposal, type /ikuti and its code, "
            "e.g. <code>/ikuti {example}</code>."
        ).format(example=escape_html(await _example(session, settings)))
    )
    kecs = await wilayah.list_kecamatan(session)
    buttons = [InlineKeyboardButton(text=k.name, callback_data=FollowCb(action="kel", id=k.id).pack()) for k in kecs]
    rows = chunk(buttons, 2)
    rows.append(
        [InlineKeyboardButton(text=_("🔢 Follow a proposal by its code"), callback_data=FollowCb(action="code").pack())]
    )
    rows += _unfollow_rows(views)
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows)


async def _stop_list(session: AsyncSession, user_id: int, first: str | None = None) -> tuple[str, InlineKeyboardMarkup]:
    views = await follows.list_follows(session, user_id)
    lines = [first, ""] if first else []
    if not views:
        lines.append(_("You are not following anything. To follow an RT or a proposal, use /ikuti."))
        return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=[])
    lines.append(_("<b>You follow:</b>"))
    lines += [f"• {target_label(v)}" for v in views]
    lines += ["", _("Tap what you want to stop following.")]
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=_unfollow_rows(views))


def _back(data: FollowCb) -> list[InlineKeyboardButton]:
    return [InlineKeyboardButton(text=_(BTN_BACK), callback_data=data.pack())]


async def _kelurahan_view(session: AsyncSession, kecamatan_id: int):
    kec = await wilayah.get_kecamatan(session, kecamatan_id)
    if kec is None:
        return None
    kels = await wilayah.list_kelurahan(session, kec.id)
    buttons = [InlineKeyboardButton(text=k.name, callback_data=FollowCb(action="rts", id=k.id).pack()) for k in kels]
    rows = [*chunk(buttons, 2), _back(FollowCb(action="home"))]
    text = _("Kec. {kecamatan}: choose the <b>kelurahan</b>:").format(kecamatan=escape_html(kec.name))
    return text, InlineKeyboardMarkup(inline_keyboard=rows)


async def _rts_view(session: AsyncSession, user_id: int, kelurahan_id: int, page: int):
    kel = await wilayah.get_kelurahan(session, kelurahan_id)
    if kel is None:
        return None
    rts = list(await wilayah.list_rts(session, kel.id))
    followed = {v.rt.id for v in await follows.list_follows(session, user_id) if v.rt is not None}
    pages = max(1, -(-len(rts) // RT_PAGE))
    page = min(max(page, 0), pages - 1)
    shown = rts[page * RT_PAGE : (page + 1) * RT_PAGE]
    buttons = [
        InlineKeyboardButton(
            text=("✓ " if r.id in followed else "") + f"{r.number:02d}",
            callback_data=FollowCb(action="rt", id=r.id, page=1).pack(),
        )
        for r in shown
    ]
    rows = chunk(buttons, RT_COLUMNS)
    pager = []
    if page > 0:
        pager.append(
            InlineKeyboardButton(text="◀️", callback_data=FollowCb(action="rts", id=kel.id, page=page - 1).pack())
        )
    if page < pages - 1:
        pager.append(
            InlineKeyboardButton(text="▶️", callback_data=FollowCb(action="rts", id=kel.id, page=page + 1).pack())
        )
    if pager:
        rows.append(pager)
    rows.append(_back(FollowCb(action="kel", id=kel.kecamatan_id)))
    if rts:
        text = _("Which <b>RT</b> of Kel. {kelurahan} do you want to follow? Tap its number.")
    else:
        text = _("No RT of Kel. {kelurahan} is on file yet. Please go back and choose another kelurahan.")
    return text.format(kelurahan=escape_html(kel.name)), InlineKeyboardMarkup(inline_keyboard=rows)


def _mode_note(prefs: NotificationPrefs) -> str | None:
    if prefs.mode == rules.NOTIFY_OFF:
        return _("Your notices are turned off now; turn them on with /pengaturan.")
    if prefs.mode == rules.NOTIFY_WEEKLY:
        return _("You get one summary a week, on Monday morning (change it with /pengaturan).")
    if prefs.mode == rules.NOTIFY_DECISIONS:
        return _("You get decisions only, no progress reports (change it with /pengaturan).")
    return _("Notice settings and quiet hours: /pengaturan.")


def _is_officer(roles: Roles | None) -> bool:
    return roles is not None and roles.officer is not None


def _settings_view(
    prefs: NotificationPrefs, settings: Settings, officer: bool = False
) -> tuple[str, InlineKeyboardMarkup]:
    quiet = rules.format_quiet(prefs.quiet_start, prefs.quiet_end)
    lines = [
        _("⚙️ <b>Notice settings</b>"),
        _("Notices: <b>{mode}</b>").format(mode=_(MODE_LABELS.get(prefs.mode, prefs.mode))),
    ]
    if quiet is None:
        lines.append(_("Quiet hours: <b>off</b> — notices come at any time."))
    else:
        lines.append(
            _("Quiet hours: <b>{hours} {zone}</b> — notices that come then are held until the end.").format(
                hours=quiet, zone=tz_abbreviation(settings.timezone)
            )
        )
    if officer:
        digest = prefs.digest or DIGEST_DAILY
        lines.append(_("Officers' morning summary: <b>{mode}</b>").format(mode=_(DIGEST_LABELS.get(digest, digest))))
    lines += [
        "",
        _("🔔 Everything — every decision and progress report"),
        _("✅ Decisions only — approved, rejected, sent back, completed"),
        _("🗓 Weekly summary — one message on Monday morning"),
        _("🔕 Off — no notices, and no musyawarah vote polls"),
    ]
    if officer:
        lines += [
            "",
            _("Morning summary (07:00, working days only):"),
            _("☀️ Daily — every working day · 🗓 Mondays — once a week · 🔕 None"),
        ]
    lines += [
        "",
        _("Choose below."),
    ]
    mode_buttons = [
        InlineKeyboardButton(
            text=("✓ " if mode == prefs.mode else "") + _(label),
            callback_data=SettingsCb(action="mode", value=mode).pack(),
        )
        for mode, label in MODE_LABELS.items()
    ]
    current = (prefs.quiet_start, prefs.quiet_end)
    quiet_buttons = [
        InlineKeyboardButton(
            text=("✓ " if (start, end) == current else "") + "🌙 " + (rules.format_quiet(start, end) or ""),
            callback_data=SettingsCb(action="quiet", value=f"{start}-{end}").pack(),
        )
        for start, end in QUIET_PRESETS
    ]
    rows = [
        *chunk(mode_buttons, 2),
        quiet_buttons,
        [
            InlineKeyboardButton(
                text=("✓ " if quiet is None else "") + _("☀️ No quiet hours"),
                callback_data=SettingsCb(action="quiet", value="0-0").pack(),
            ),
            InlineKeyboardButton(text=_("✏️ Other hours"), callback_data=SettingsCb(action="custom").pack()),
        ],
    ]
    if officer:
        current_digest = prefs.digest or DIGEST_DAILY
        rows.append(
            [
                InlineKeyboardButton(
                    text=("✓ " if mode == current_digest else "") + _(label),
                    callback_data=SettingsCb(action="digest", value=mode).pack(),
                )
                for mode, label in DIGEST_LABELS.items()
            ]
        )
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows)


async def _show(query: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None) -> None:
    """Replace the pressed message; a new message if it cannot be edited."""
    message = query.message
    if isinstance(message, Message) and message.text is not None:
        try:
            await message.edit_text(text, reply_markup=markup)
            return
        except TelegramBadRequest as exc:
            if "not modified" in str(exc):
                return
    if query.bot is not None:
        await query.bot.send_message(query.from_user.id, text, reply_markup=markup)


# --- following ------------------------------------------------------------------------------------------


async def _followed_text(session: AsyncSession, user_id: int, what: str, created: bool) -> str:
    if not created:
        return _("You already follow {what}.").format(what=what)
    lines = [
        _("🔔 You now follow {what}. You will get a short notice on each decision and progress report.").format(
            what=what
        )
    ]
    note = _mode_note(await follows.prefs_of(session, user_id))
    if note:
        lines.append(note)
    lines.append(_("To stop: /berhenti."))
    return "\n".join(lines)


async def _follow_and_answer(
    session: AsyncSession, user_id: int, *, rt_id: int | None = None, proposal_id: int | None = None
) -> tuple[str, bool] | None:
    """Follow; (text, created) to show, or None when the target does not exist."""
    try:
        if rt_id is not None:
            row, created = await follows.follow_rt(session, user_id, rt_id)
        else:
            row, created = await follows.follow_proposal(session, user_id, proposal_id or 0)
    except follows.FollowTargetNotFound:
        return None
    except follows.TooManyFollows as exc:
        return (
            _(
                "You already follow {limit} RTs and proposals, the most allowed, so that the notices stay "
                "easy to read. Please stop following one with /berhenti first."
            ).format(limit=exc.limit),
            False,
        )
    if row.rt_id is not None:
        rt = await session.get(RT, row.rt_id)
        what = rt_place(rt) if rt is not None else "-"
    else:
        proposal = await session.get(Proposal, row.proposal_id)
        what = _("proposal <b>{code}</b>").format(code=escape_html((proposal.code if proposal else None) or "-"))
    return await _followed_text(session, user_id, what, created), created


async def _follow_code(
    message: Message, state: FSMContext, session: AsyncSession, settings: Settings, text: str
) -> None:
    program = await programs.ensure(session, settings, settings.current_fiscal_year())
    proposal = await find_by_code(session, text, program.code_prefix)
    if proposal is None or proposal.code is None or proposal.status == "draf":
        example = format_code(program.code_prefix, program.fiscal_year, 1)
        await state.set_state(FollowForm.code)
        await message.answer(
            _(
                "No proposal has the code <code>{code}</code>. Codes look like <code>{example}</code>. "
                "Please type it again, or /batal to stop."
            ).format(code=escape_html(" ".join(text.split())[:40]), example=example)
        )
        return
    result = await _follow_and_answer(session, message.from_user.id, proposal_id=proposal.id)
    await state.clear()
    if result is not None:
        await message.answer(result[0])


@router.message(Command("ikuti"))
@router.message(Label(BTN_FOLLOW))
async def ikuti(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    settings: Settings,
    command: CommandObject | None = None,
) -> None:
    await state.clear()
    if command is not None and command.args and command.args.strip():
        await _follow_code(message, state, session, settings, command.args.strip())
        return
    text, markup = await _overview(session, settings, message.from_user.id)
    await message.answer(text, reply_markup=markup)


@router.message(Command("berhenti"))
async def berhenti(message: Message, state: FSMContext, session: AsyncSession) -> None:
    await state.clear()
    text, markup = await _stop_list(session, message.from_user.id)
    await message.answer(text, reply_markup=markup)


@router.callback_query(FollowCb.filter(F.action.in_({"home", "kel", "rts"})))
async def browse(
    query: CallbackQuery, callback_data: FollowCb, state: FSMContext, session: AsyncSession, settings: Settings
) -> None:
    if callback_data.action == "home":
        view = await _overview(session, settings, query.from_user.id)
    elif callback_data.action == "kel":
        view = await _kelurahan_view(session, callback_data.id)
    else:
        view = await _rts_view(session, query.from_user.id, callback_data.id, callback_data.page)
    if view is None:
        await stale_button(query, session)
        return
    await query.answer()
    await _show(query, *view)


@router.callback_query(FollowCb.filter(F.action.in_({"rt", "prop"})))
async def follow_pressed(query: CallbackQuery, callback_data: FollowCb, session: AsyncSession) -> None:
    if callback_data.action == "rt":
        result = await _follow_and_answer(session, query.from_user.id, rt_id=callback_data.id)
    else:
        result = await _follow_and_answer(session, query.from_user.id, proposal_id=callback_data.id)
    if result is None:
        await stale_button(query, session)
        return
    text, created = result
    await query.answer(_("🔔 Following.") if created else None)
    if callback_data.page == 1:
        back = FollowCb(action="home")
        await _show(query, text, InlineKeyboardMarkup(inline_keyboard=[_back(back)]))
    elif query.bot is not None:
        await query.bot.send_message(query.from_user.id, text)


@router.callback_query(FollowCb.filter(F.action == "code"))
async def code_pressed(query: CallbackQuery, state: FSMContext, session: AsyncSession, settings: Settings) -> None:
    await state.set_state(FollowForm.code)
    await query.answer()
    if query.bot is not None:
        await query.bot.send_message(
            query.from_user.id,
            _("Please type the code of the proposal to follow, for example <code>{example}</code>.").format(
                example=escape_html(await _example(session, settings))
            ),
            reply_markup=InlineKeyboardMarkup(inline_keyboard=[cancel_row()]),
        )


@router.message(FollowForm.code, F.text)
async def code_typed(message: Message, state: FSMContext, session: AsyncSession, settings: Settings) -> None:
    await _follow_code(message, state, session, settings, message.text or "")


@router.message(FollowForm.code)
async def code_not_text(message: Message) -> None:
    await message.answer(_("Please type the proposal code as text, or /batal to stop."))


@router.callback_query(FollowCb.filter(F.action == "unf"))
async def unfollow_pressed(query: CallbackQuery, callback_data: FollowCb, session: AsyncSession) -> None:
    view = await follows.unfollow(session, query.from_user.id, callback_data.id)
    if view is None:
        await query.answer(_("You have already stopped following this."))
        first = None
    else:
        if view.rt is not None:
            what = rt_place(view.rt)
        else:
            code = view.proposal.code if view.proposal is not None else None
            what = _("proposal <b>{code}</b>").format(code=escape_html(code or "-"))
        first = _("🔕 You no longer follow {what}.").format(what=what)
        await query.answer()
    text, markup = await _stop_list(session, query.from_user.id, first)
    await _show(query, text, markup)


@router.callback_query(FollowCb.filter())
async def follow_stale(query: CallbackQuery, session: AsyncSession) -> None:
    await stale_button(query, session)


# --- settings ---------------------------------------------------------------------------------------------


@router.message(Command("pengaturan"))
@router.message(Label(BTN_SETTINGS))
async def pengaturan(
    message: Message, state: FSMContext, session: AsyncSession, settings: Settings, roles: Roles
) -> None:
    await state.clear()
    prefs = await follows.prefs_of(session, message.from_user.id)
    text, markup = _settings_view(prefs, settings, _is_officer(roles))
    await message.answer(text, reply_markup=markup)


def _parse_preset(value: str) -> tuple[int, int] | None:
    try:
        start, end = (int(v) for v in value.split("-"))
    except ValueError:
        return None
    if (start, end) not in (*QUIET_PRESETS, (0, 0)):
        return None
    return start, end


@router.callback_query(SettingsCb.filter(F.action.in_({"mode", "quiet", "digest"})))
async def setting_pressed(
    query: CallbackQuery,
    callback_data: SettingsCb,
    state: FSMContext,
    session: AsyncSession,
    settings: Settings,
    roles: Roles,
) -> None:
    user_id = query.from_user.id
    if callback_data.action == "digest":
        if callback_data.value not in DIGEST_LABELS or not _is_officer(roles):
            await stale_button(query, session)  # forged, or no longer an officer
            return
        prefs = await follows.set_digest(session, user_id, callback_data.value)
        toast = _("Morning summary: {mode}").format(mode=_(DIGEST_LABELS[prefs.digest]))
    elif callback_data.action == "mode":
        if callback_data.value not in MODE_LABELS:
            await stale_button(query, session)
            return
        prefs = await follows.set_mode(session, user_id, callback_data.value)
        toast = _("Notices: {mode}").format(mode=_(MODE_LABELS[prefs.mode]))
    else:
        preset = _parse_preset(callback_data.value)
        if preset is None:
            await stale_button(query, session)
            return
        prefs = await follows.set_quiet(session, user_id, *preset)
        quiet = rules.format_quiet(prefs.quiet_start, prefs.quiet_end)
        toast = _("Quiet hours: {hours}").format(hours=quiet) if quiet else _("No quiet hours.")
    await state.clear()
    await query.answer(toast)
    await _show(query, *_settings_view(prefs, settings, _is_officer(roles)))


@router.callback_query(SettingsCb.filter(F.action == "custom"))
async def custom_pressed(query: CallbackQuery, state: FSMContext) -> None:
    await state.set_state(FollowForm.quiet)
    await query.answer()
    if query.bot is not None:
        await query.bot.send_message(
            query.from_user.id,
            _(
                "Please type your quiet hours as start-end, for example <code>22:00-05:30</code>. "
                "Notices that come then are held until the end."
            ),
            reply_markup=InlineKeyboardMarkup(inline_keyboard=[cancel_row()]),
        )


@router.message(FollowForm.quiet, F.text)
async def quiet_typed(
    message: Message, state: FSMContext, session: AsyncSession, settings: Settings, roles: Roles
) -> None:
    parsed = rules.parse_quiet(message.text or "")
    if parsed is None:
        await message.answer(
            _("I could not read that. Please type it like <code>22:00-05:30</code> (hours 00–23), or /batal to stop.")
        )
        return
    prefs = await follows.set_quiet(session, message.from_user.id, *parsed)
    await state.clear()
    text, markup = _settings_view(prefs, settings, _is_officer(roles))
    await message.answer(text, reply_markup=markup)


@router.message(FollowForm.quiet)
async def quiet_not_text(message: Message) -> None:
    await message.answer(_("Please type the quiet hours as text, like <code>22:00-05:30</code>, or /batal to stop."))


@router.callback_query(SettingsCb.filter())
async def settings_stale(query: CallbackQuery, session: AsyncSession) -> None:
    await stale_button(query, session)


# --- start-up -------------------------------------------------------------------------------------------


@router.startup()
async def _configure(router: Router) -> None:
    """Quiet hours and the weekly summary count in ``TIMEZONE`` (the dispatcher's settings)."""
    top = router
    while top.parent_router is not None:
        top = top.parent_router
    settings = getattr(top, "workflow_data", {}).get("settings")
    if isinstance(settings, Settings):
        follows.configure(settings.tz)
