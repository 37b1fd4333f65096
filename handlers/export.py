"""/ekspor: an officer gets the Excel recap (XLSX) of their area for a fiscal year — proposals, RAB
lines and a recap per kelurahan, with the totals in the caption. ``/ekspor 2025`` exports another year.

Thin: check the year, call ``bot.services.export`` (which refuses non-officers and revoked officers,
audited, and writes the workbook in a worker thread), send the file.
"""

from __future__ import annotations

import io

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.money import format_rupiah
from bot.domain.permissions import Forbidden
from bot.domain.text import escape_html
from bot.domain.timefmt import format_date
from bot.services import export
from bot.services.users import Roles
from handlers.common import BTN_EXPORT, Label, main_menu
from storage.models import User

router = Router(name=__name__)
router.message.filter(F.chat.type == "private")

FIRST_YEAR = 2000
LAST_YEAR = 2100


def caption(summary: export.Summary) -> str:
    t = summary.total
    lines = [
        _("📊 <b>{program} {year}</b> — {area}").format(
            program=escape_html(summary.meta.program_name),
            year=summary.meta.year,
            area=escape_html(summary.meta.scope_label),
        ),
        _("Proposals: {listed} listed, {counted} counted (rejected and withdrawn are not counted)").format(
            listed=t.listed, counted=t.counted
        ),
        _("RTs with proposals: {with_} of {rts}").format(with_=t.rts_with_proposals, rts=t.rts),
        _("Ceiling: {ceiling}").format(ceiling=format_rupiah(t.ceiling)),
        _("Proposed: {proposed}").format(proposed=format_rupiah(t.proposed)),
        _("Approved: {approved}").format(approved=format_rupiah(t.approved)),
        _("Realised: {realised}").format(realised=format_rupiah(t.realised)),
    ]
    if t.absorption is not None:
        lines.append(_("Absorption: {pct} % of the ceiling").format(pct=f"{t.absorption * 100:.1f}".replace(".", ",")))
    return "\n".join(lines)


@router.message(Command("ekspor"))
@router.message(Label(BTN_EXPORT))
async def ekspor(
    message: Message,
    session: AsyncSession,
    user: User,
    roles: Roles,
    settings: Settings,
    command: CommandObject | None = None,
) -> None:
    try:
        scope = await export.officer_scope(session, user.id, roles)
    except export.ScopeRevoked as exc:
        await message.answer(
            _(
                "Your officer appointment was revoked on {date}, so you can no longer export recaps. "
                "If this is a mistake, please contact the programme admin."
            ).format(date=format_date(exc.revoked_at.astimezone(settings.tz).date())),
            reply_markup=main_menu(roles),
        )
        return
    except Forbidden:
        await message.answer(
            _("The Excel recap is for kelurahan, kecamatan and city officers only."), reply_markup=main_menu(roles)
        )
        return

    year = settings.current_fiscal_year()
    args = (command.args or "").strip() if command is not None else ""
    if args:
        if not args.isdigit() or not FIRST_YEAR <= int(args) <= LAST_YEAR:
            await message.answer(
                _("Please give a fiscal year as four digits, e.g. /ekspor {year}.").format(year=year - 1)
            )
            return
        year = int(args)

    await message.answer(_("⏳ Preparing the Excel recap of {year}…").format(year=year))
    buffer = io.BytesIO()
    try:
        summary = await export.export(session, scope, year, buffer, tz=settings.timezone)
    except export.NoProgram:
        await message.answer(
            _("There is no programme for the fiscal year {year}, so there is nothing to export.").format(year=year)
        )
        return
    await export.record(session, user.id, summary, via="telegram")
    await message.answer_document(
        BufferedInputFile(buffer.getvalue(), filename=summary.meta.filename), caption=caption(summary)
    )
