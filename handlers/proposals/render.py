"""Texts of the proposal wizard: the summary card, budget lines, and explanations of what is
missing or breaks the programme's rules — always with the numbers."""

from __future__ import annotations

from aiogram.utils.i18n import gettext as _

from bot.domain import budget
from bot.domain.money import format_rupiah
from bot.domain.rab import format_volume
from bot.domain.text import escape_html
from bot.domain.timefmt import format_date
from bot.services import progress as progress_svc
from bot.services import proposals as svc
from handlers.common import N_, rt_place, short_day, when
from storage.models import MEDIA_BUKTI_MUSYAWARAH, MEDIA_FOTO_AWAL, Program, Proposal, ProposalEvent, RabLine

STATUS_LABELS = {
    "draf": N_("draft"),
    "diajukan": N_("submitted, waiting for review"),
    "perlu_revisi": N_("revision requested"),
    "disetujui": N_("approved"),
    "ditolak": N_("rejected"),
    "ditarik": N_("withdrawn"),
    "pelaksanaan": N_("in progress"),
    "menunggu_verifikasi_selesai": N_("completion awaiting verification"),
    "selesai": N_("completed"),
}

PART_LABELS = {
    svc.PART_URAIAN: N_("Category, title and description"),
    svc.PART_LOKASI: N_("Location"),
    svc.PART_ANGGARAN: N_("Budget (RAB)"),
    svc.PART_FOTO: N_("Photos of the current condition"),
    svc.PART_MUSYAWARAH: N_("Musyawarah evidence"),
}

MISSING_LABELS = {
    svc.MISSING_CATEGORY: N_("the category"),
    svc.MISSING_TITLE: N_("the title"),
    svc.MISSING_DESCRIPTION: N_("the short description"),
    svc.MISSING_LOCATION: N_("the location pin (required for physical work)"),
    svc.MISSING_RAB: N_("at least one budget line"),
    svc.MISSING_PHOTOS: N_("1 to 10 photos of the current condition"),
    svc.MISSING_EVIDENCE: N_("the musyawarah minutes (photo or PDF)"),
    svc.MISSING_ATTENDEES: N_("the number of residents at the musyawarah"),
}


def status_label(status: str) -> str:
    return _(STATUS_LABELS.get(status, status))


def category_name(program: Program, code: str | None) -> str:
    return next((c.name for c in program.categories if c.code == code), code or "-")


def rab_line(n: int, line: RabLine) -> str:
    unit = f" {escape_html(line.unit)}" if line.unit else ""
    return (
        f"{n}. {escape_html(line.description)} — {format_volume(line.volume)}{unit} × "
        f"{format_rupiah(line.unit_price)} = <b>{format_rupiah(line.total)}</b>"
    )


def budget_line(rt_label: str, remaining: int, amount: int) -> str:
    """``remaining``: the RT's ceiling left before this proposal."""
    if amount > remaining:
        return _(
            "⚠️ Remaining ceiling of {rt}: {remaining}; this proposal: {amount}, {over} too much. "
            "Please reduce it before sending."
        ).format(
            rt=rt_label,
            remaining=format_rupiah(remaining),
            amount=format_rupiah(amount),
            over=format_rupiah(amount - remaining),
        )
    return _("Total: <b>{total}</b>. Ceiling of {rt} left after this proposal: {left}.").format(
        total=format_rupiah(amount), rt=rt_label, left=format_rupiah(remaining - amount)
    )


def violation(v: budget.Violation, rt_label: str) -> str:
    if v.kind == budget.WINDOW_NOT_OPEN:
        return _("Proposals can be sent from {opens} to {closes}; the window is not open yet.").format(
            opens=format_date(v.opens), closes=format_date(v.closes)
        )
    if v.kind == budget.WINDOW_CLOSED:
        return _("The submission window closed on {closes}.").format(closes=format_date(v.closes))
    if v.kind == budget.OVER_CEILING:
        return _("Remaining ceiling of {rt}: {remaining}; this proposal: {amount}.").format(
            rt=rt_label, remaining=format_rupiah(v.remaining), amount=format_rupiah(v.amount)
        )
    if v.kind == budget.CATEGORY_MAX:
        return _(
            "{category} may use at most {pct}% of the ceiling ({limit}); with this proposal it would be {total}."
        ).format(
            category=escape_html(v.category_name or v.category or ""),
            pct=v.share_pct,
            limit=format_rupiah(v.limit),
            total=format_rupiah(v.category_total),
        )
    if v.kind == budget.EMPTY_BUDGET:
        return _("The budget is empty: add at least one line.")
    return _("The category is not part of this year's programme; please choose another.")


def not_ready(missing: list[str], violations: list[budget.Violation], rt_label: str) -> str:
    lines = [_("The proposal cannot be sent yet:")]
    if missing:
        lines.append(_("Still missing:"))
        lines += [f"• {_(MISSING_LABELS.get(m, m))}" for m in missing]
    for v in violations:
        lines.append(f"• {violation(v, rt_label)}")
    lines.append(_("Tap <b>✏️ Change…</b> to complete it."))
    return "\n".join(lines)


EVENT_LABELS = {
    "buat": N_("draft started"),
    "ajukan": N_("sent"),
    "setujui": N_("approved"),
    "tolak": N_("rejected"),
    "minta_revisi": N_("revision requested"),
    "tarik": N_("withdrawn"),
    "lapor_progres": N_("progress reported"),
    "lapor_selesai": N_("work reported complete"),
    "verifikasi_selesai": N_("completion verified"),
    "tolak_selesai": N_("completion not yet accepted"),
}

REPORT_STATUS_MARKS = {
    "menunggu": N_("⏳ awaiting verification"),
    "terverifikasi": N_("✅ verified"),
    "perlu_bukti": N_("⚠️ more evidence asked"),
}


def progress_lines(
    entries: list[progress_svc.TimelineEntry],
    approved: int,
    completion: object | None = None,
    *,
    show_flags: bool = False,
) -> list[str]:
    """The progress timeline of a proposal card: percent, date, photos, realised amount per report.

    Nothing personal (no reporter, no notes), so the same lines serve the RT head, officers and
    residents; ``show_flags`` adds the evidence-flag count (officers only). ``completion`` is the
    :class:`~storage.models.ProposalCompletion` once the proposal is selesai.
    """
    lines = [_("<b>Progress</b>")]
    if not entries:
        lines.append(_("No progress report yet."))
    for e in entries:
        line = _("• {date} — <b>{percent}%</b> · 📷 {photos} · spent {spent}").format(
            date=short_day(e.at), percent=e.percent, photos=e.photos, spent=format_rupiah(e.spent_total)
        )
        mark = REPORT_STATUS_MARKS.get(e.status)
        if mark:
            line += f" · {_(mark)}"
        if show_flags and e.flags:
            line += " · " + _("🚩 {count} flag(s)").format(count=e.flags)
        lines.append(line)
    if completion is not None:
        lines.append(
            _("🏁 Completed on {date}: realised {realised} of {approved}; unspent {unspent}.").format(
                date=short_day(completion.completed_at),
                realised=format_rupiah(completion.realised_amount),
                approved=format_rupiah(approved),
                unspent=format_rupiah(completion.unspent),
            )
        )
    elif entries:
        latest = entries[-1]
        lines.append(
            _("Realised so far: {spent} of {approved} ({share}%).").format(
                spent=format_rupiah(latest.spent_total),
                approved=format_rupiah(approved),
                share=round(100 * latest.spent_total / approved) if approved else 0,
            )
        )
    return lines


def timeline(events: list[ProposalEvent]) -> list[str]:
    lines = [_("<b>History</b>")]
    for e in events:
        text = f"• {when(e.at)} — {_(EVENT_LABELS.get(e.action, e.action))}"
        if e.note and e.action != "tarik":
            text += f": <i>{escape_html(e.note)}</i>"
        lines.append(text)
    return lines


def summary(proposal: Proposal, program: Program, remaining: int, events: list[ProposalEvent] | None = None) -> str:
    """The summary card the RT head checks before sending."""
    rt = proposal.rt
    title = escape_html(proposal.title or "-")
    lines = [
        _("<b>Proposal summary</b>") + (f" · <code>{proposal.code}</code>" if proposal.code else ""),
        _("Status: {status}").format(status=status_label(proposal.status)),
        _("RT: {place}").format(place=rt_place(rt)),
        _("Category: {category}").format(category=escape_html(category_name(program, proposal.category_code))),
        _("Title: {title}").format(title=title),
        _("Description: {text}").format(text=escape_html(proposal.description or "-")),
    ]
    if proposal.latitude is not None:
        lines.append(
            _("Location: pin sent ({lat:.5f}, {lon:.5f})").format(lat=proposal.latitude, lon=proposal.longitude)
        )
    else:
        lines.append(_("Location: not sent"))
    if proposal.address:
        lines.append(_("Address: {address}").format(address=escape_html(proposal.address)))
    lines.append("")
    lines.append(_("<b>Budget (RAB)</b>"))
    if proposal.lines:
        lines += [rab_line(i, line) for i, line in enumerate(proposal.lines, 1)]
    else:
        lines.append(_("(no lines yet)"))
    lines.append(budget_line(rt.label(), remaining, proposal.total_amount))
    lines.append("")
    lines.append(
        _("Photos: {n} of at most {max}").format(n=len(proposal.media_of(MEDIA_FOTO_AWAL)), max=svc.MAX_PHOTOS)
    )
    evidence = len(proposal.media_of(MEDIA_BUKTI_MUSYAWARAH))
    lines.append(
        _("Musyawarah minutes: {n} file(s); residents present: {people}").format(
            n=evidence, people=proposal.attendees if proposal.attendees else "-"
        )
    )
    if proposal.status == "perlu_revisi":
        lines.append("")
        lines.append(
            _("🔁 <b>Revision requested</b>: {parts}").format(
                parts=", ".join(_(PART_LABELS[p]) for p in (proposal.revision_parts or []) if p in PART_LABELS)
            )
        )
        if proposal.revision_note:
            lines.append(_("Officer's note: {note}").format(note=escape_html(proposal.revision_note)))
    if events and any(e.action != "buat" for e in events):
        lines.append("")
        lines += timeline(events)
    return "\n".join(lines)
