"""Texts of outbox notifications, rendered at send time in the recipient's language from ids
(so a notice always shows current data, and the outbox never stores personal text twice)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, ReplyKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.money import format_rupiah
from bot.domain.text import escape_html
from bot.domain.workflow import MENUNGGU_VERIFIKASI_SELESAI
from bot.services import progress, proposals, users
from handlers.common import main_menu, rt_place
from handlers.progress.callbacks import ProgCb
from handlers.progress.verify_render import VerifyProgressCb
from handlers.proposals.callbacks import PropCb
from handlers.review.callbacks import ReviewCb
from handlers.review.render import parts_label
from handlers.verification import VerifyCb
from storage.models import (
    REPORT_NEEDS_EVIDENCE,
    REPORT_PENDING,
    REPORT_VERIFIED,
    Officer,
    Outbox,
    ProgressReport,
    Proposal,
    ProposalEvent,
    RTHead,
)


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
            "👮 You have been appointed as an officer for {scope}. Use /tinjau to review proposals and "
            "/verifikasi to verify Ketua RT registrations."
        ).format(scope=scope_label(officer)),
        await _menu(session, officer.user_id, admin_ids),
    )


@renderer("officer.revoked")
async def _officer_revoked(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    officer = await session.get(Officer, row.payload["officer_id"])
    if officer is None:
        return None
    return Notice(_("Your officer role has ended. Thank you!"), await _menu(session, officer.user_id, admin_ids))


# --- proposals: officers are told of submissions, RT heads of decisions ---------------------------


async def _proposal_event(session: AsyncSession, row: Outbox) -> tuple[Proposal, ProposalEvent] | None:
    proposal = await session.get(Proposal, row.payload.get("proposal_id"))
    event = await session.get(ProposalEvent, row.payload.get("event_id"))
    if proposal is None or event is None or event.proposal_id != proposal.id:
        return None
    return proposal, event


async def _is_latest(session: AsyncSession, proposal: Proposal, event: ProposalEvent) -> bool:
    """Whether ``event`` is still the proposal's latest event of its kind (else the notice is obsolete)."""
    events = await proposals.timeline(session, proposal.id)
    latest = next((e for e in reversed(events) if e.action == event.action), None)
    return latest is not None and latest.id == event.id


def _what(proposal: Proposal) -> dict[str, str]:
    return {
        "code": escape_html(proposal.code or "-"),
        "title": escape_html(proposal.title or "-"),
        "amount": format_rupiah(proposal.total_amount),
        "place": rt_place(proposal.rt),
    }


@renderer("proposal.submitted")
async def _proposal_submitted(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    found = await _proposal_event(session, row)
    if found is None:
        return None
    proposal, event = found
    if proposal.status != "diajukan" or not await _is_latest(session, proposal, event):
        return None  # decided, withdrawn or submitted again since: nothing to ask any more
    if row.payload.get("resubmission"):
        text = _("📥 Revised proposal <b>{code}</b> from {place}: {title}, {amount}. Please review it in /tinjau.")
    else:
        text = _("📥 New proposal <b>{code}</b> from {place}: {title}, {amount}. Please review it in /tinjau.")
    kb = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("🔎 Open the proposal"), callback_data=ReviewCb(action="open", id=proposal.id).pack()
                )
            ]
        ]
    )
    return Notice(text.format(**_what(proposal)), kb)


@renderer("proposal.withdrawn")
async def _proposal_withdrawn(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    found = await _proposal_event(session, row)
    if found is None or found[0].status != "ditarik":
        return None
    proposal, event = found
    text = _("↩️ Proposal <b>{code}</b> from {place} ({title}) was withdrawn by the Ketua RT; no review is needed.")
    text = text.format(**_what(proposal))
    if event.note:
        text += "\n" + _("Reason: {reason}").format(reason=escape_html(event.note))
    return Notice(text)


@renderer("proposal.approved")
async def _proposal_approved(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    found = await _proposal_event(session, row)
    if found is None:
        return None
    proposal, event = found
    text = _("✅ Good news! Your proposal <b>{code}</b> ({title}, {amount}) has been approved by the kelurahan.")
    text = text.format(**_what(proposal))
    if event.note:
        text += "\n" + _("Officer's note: {note}").format(note=escape_html(event.note))
    return Notice(text)


@renderer("proposal.rejected")
async def _proposal_rejected(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    found = await _proposal_event(session, row)
    if found is None:
        return None
    proposal, event = found
    text = _(
        "❌ Your proposal <b>{code}</b> ({title}, {amount}) was not approved.\nReason: {reason}\n\n"
        "Its amount no longer counts against your RT's ceiling. You may make a new proposal with /usulan."
    ).format(**_what(proposal), reason=escape_html(event.note or "-"))
    return Notice(text)


@renderer("proposal.revision_requested")
async def _proposal_revision_requested(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    found = await _proposal_event(session, row)
    if found is None:
        return None
    proposal, event = found
    if proposal.status != "perlu_revisi" or not await _is_latest(session, proposal, event):
        return None  # already sent again, withdrawn, or asked again since
    parts = row.payload.get("parts") or (event.data or {}).get("parts") or ()
    text = _(
        "🔁 Your proposal <b>{code}</b> ({title}) needs some changes before it can be approved.\n"
        "Please fix: {parts}\nOfficer's note: {note}\n\n"
        "Press the button below (or use /draf), fix these parts and send it again."
    ).format(**_what(proposal), parts=parts_label(parts), note=escape_html(event.note or "-"))
    kb = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=_("✏️ Fix it now"), callback_data=PropCb(action="open", id=proposal.id).pack())]
        ]
    )
    return Notice(text, kb)


# --- progress reports: officers are told of new reports, RT heads of the verification --------------


async def _report_of(session: AsyncSession, row: Outbox) -> ProgressReport | None:
    report = await session.get(ProgressReport, row.payload.get("report_id"))
    if report is None or report.proposal_id != row.payload.get("proposal_id"):
        return None
    return report


@renderer(progress.NOTICE_REPORTED)
async def _progress_reported(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    report = await _report_of(session, row)
    if report is None or report.status != REPORT_PENDING:
        return None  # already verified (or more evidence asked): nothing to check any more
    proposal = report.proposal
    text = _("📸 New progress report on <b>{code}</b> from {place} ({title}): <b>{percent}%</b>.").format(
        **_what(proposal), percent=report.percent
    )
    flags = len(report.flags or ())
    if flags:
        text += "\n" + _("🚩 {count} evidence check(s) to look at.").format(count=flags)
    text += "\n" + _("Please check it in /verifikasi_progres.")
    kb = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("🔎 Check the report"), callback_data=VerifyProgressCb(action="open", id=report.id).pack()
                )
            ]
        ]
    )
    return Notice(text, kb)


@renderer(progress.NOTICE_MORE_EVIDENCE)
async def _progress_more_evidence(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    report = await _report_of(session, row)
    if report is None or report.status != REPORT_NEEDS_EVIDENCE:
        return None
    proposal = report.proposal
    text = _(
        "📝 The kelurahan asks for more evidence on your progress report for <b>{code}</b> ({title}, {percent}%).\n"
        "Officer's note: {note}\n\n"
        "Please send a new progress report with the extra photos or receipts."
    ).format(
        **_what(proposal),
        percent=report.percent,
        note=escape_html(row.payload.get("note") or report.officer_note or "-"),
    )
    kb = None
    if proposal.status in progress.REPORTABLE:
        kb = InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    InlineKeyboardButton(
                        text=_("📈 Send a new report"), callback_data=ProgCb(action="start", id=proposal.id).pack()
                    )
                ]
            ]
        )
    elif proposal.status == MENUNGGU_VERIFIKASI_SELESAI:
        # An earlier report was questioned while the 100% one waits: no new report until that is decided.
        text += "\n" + _(
            "Your 100% report is being verified now; you can send the new report once the kelurahan has "
            "decided on it."
        )
    return Notice(text, kb)


@renderer(progress.NOTICE_VERIFIED)
async def _progress_verified(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    report = await _report_of(session, row)
    if report is None or report.status != REPORT_VERIFIED:
        return None
    proposal = report.proposal
    if row.payload.get("completed"):
        completion = await progress.completion_of(session, proposal.id)
        if completion is None:
            return None
        text = _(
            "🏁 Your proposal <b>{code}</b> ({title}) is now completed: the kelurahan has verified the 100% report.\n"
            "Realised: {realised} of {amount}. Unspent: {unspent}.\n\nThank you for your work!"
        ).format(
            **_what(proposal),
            realised=format_rupiah(completion.realised_amount),
            unspent=format_rupiah(completion.unspent),
        )
        return Notice(text)
    text = _(
        "✅ Your progress report on <b>{code}</b> ({title}, {percent}%) has been verified by the kelurahan."
    ).format(**_what(proposal), percent=report.percent)
    return Notice(text)


# Renderers of other features register themselves on import.
from bot import (  # noqa: E402,F401
    notices_aspirations,
    notices_broadcast,
    notices_digests,
    notices_escalations,
    notices_follow,
    notices_reminders,
    notices_votes,
)
