"""UU PDP No. 27/2022: what is stored about a user (/dataku) and erasing it (/hapusdata).

:func:`collect` gathers everything stored about one user as plain, JSON-ready data. Telegram ids of
other people never appear in it: who decided on a registration is given by role (``petugas``), not
by id; audit entries and dialog data are reduced to what cannot carry someone else's data.

:func:`erase` deletes or anonymises, in one write transaction, what the programme does not have to
keep; what the programme's audit must keep stays, without the person's name:

deleted
    follows, notice settings, vote answers and the record of vote polls sent to them, every notice
    addressed to them (outbox), the record of reminders given to them, their dialog state, a
    registration still waiting for verification.
anonymised
    the user row (names and username cleared, ``erased_at`` set; the language stays so the bot can
    still answer in it), full name and phone of their rejected or replaced Ketua RT registrations
    (also in those registrations' audit snapshots), aspirations (kept for the RT's musyawarah
    record, without the link to the person and without their contact-sharing choice).
kept
    consent records (proof of the lawful basis; marked withdrawn), proposals, progress reports,
    proposal timelines, past officer appointments, the officers' decisions, the record of which
    officers were alerted to overdue work (escalations), broadcasts an admin sent and the audit log:
    the programme's public record under the regional finance rules, linked to a Telegram id only.

:data:`USER_COLUMNS` names every column that holds a Telegram user id and what happens to it;
a test compares it with the schema, so a new table with user ids cannot be forgotten here.

A verified Ketua RT, an active officer or an admin cannot erase while holding the role.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.spreadsheet import neutralise_strings
from bot.services import audit
from storage.db import begin_write, release
from storage.models import (
    OUTBOX_PENDING,
    REG_PENDING,
    REG_REJECTED,
    REG_REPLACED,
    REG_VERIFIED,
    ROLE_ADMIN,
    ROLE_KETUA_RT,
    ROLE_PETUGAS,
    RT,
    Aspiration,
    AuditLog,
    Broadcast,
    Consent,
    Escalation,
    Follow,
    FSMRecord,
    MusyawarahVote,
    NotificationPrefs,
    Officer,
    Outbox,
    ProgressReport,
    Proposal,
    ProposalEvent,
    ReminderSent,
    RTHead,
    User,
    VoteAnswer,
    VotePoll,
    utcnow,
)

# Every column holding a Telegram user id: shown by /dataku (collect) and what /hapusdata (erase) does.
USER_COLUMNS: dict[str, str] = {
    "users.id": "shown; names cleared",
    "consents.user_id": "shown; kept, marked withdrawn",
    "rt_heads.user_id": "shown; a pending one deleted, others' name and phone cleared",
    "rt_heads.decided_by": "kept (officer's decision; the officer sees it as an audit entry)",
    "officers.user_id": "shown; kept (past appointments)",
    "officers.appointed_by": "kept (admin's action; an audit entry)",
    "officers.revoked_by": "kept (admin's action; an audit entry)",
    "proposals.created_by": "shown; kept",
    "proposals.decided_by": "kept (officer's decision; an audit entry)",
    "proposal_events.actor_id": "counted; kept",
    "progress_reports.reporter_id": "shown; kept",
    "progress_reports.verified_by": "kept (officer's decision; an audit entry)",
    "proposal_completions.verified_by": "kept (officer's decision; an audit entry)",
    "follows.user_id": "shown; deleted",
    "notification_prefs.user_id": "shown; deleted",
    "aspirations.user_id": "shown; unlinked",
    "aspirations.decided_by": "kept (Ketua RT's decision; an audit entry)",
    "votes.created_by": "shown; kept",
    "vote_answers.user_id": "shown; deleted",
    "vote_polls.user_id": "counted; deleted",
    "outbox.chat_id": "shown; deleted",
    "reminders_sent.user_id": "shown; deleted",
    "escalations.recipients": "shown; kept (who was alerted to overdue work)",
    "broadcasts.admin_id": "shown; kept",
    "broadcasts.progress_chat_id": "kept (the sending admin's chat, as admin_id)",
    "audit_log.actor_id": "shown; kept",
}

HIDDEN = "***"  # stands for someone else's Telegram id in dialog data and audit entity ids
PERSONAL_KEYS = ("full_name", "phone", "first_name", "last_name", "username")


class HoldsRole(Exception):
    """The user holds a role for which the kelurahan needs their name and phone (``role``, ``detail``)."""

    def __init__(self, role: str, detail: RTHead | Officer | None = None) -> None:
        super().__init__(role)
        self.role = role
        self.detail = detail


class AlreadyErased(Exception):
    """The data was already erased after the confirmation was shown (a double tap)."""

    def __init__(self, erased_at: dt.datetime) -> None:
        super().__init__("already erased")
        self.erased_at = erased_at


class UnknownUser(LookupError):
    pass


@dataclass
class Erasure:
    erased_at: dt.datetime
    counts: dict[str, int] = field(default_factory=dict)


# --- /dataku --------------------------------------------------------------------------------------


def _place(rt: RT) -> dict[str, Any]:
    kel = rt.kelurahan
    return {"rt": rt.number, "kelurahan": kel.name, "kecamatan": kel.kecamatan.name}


def _scrub(value: Any, foreign: set[int]) -> Any:
    """``value`` with every occurrence of a foreign Telegram id (int or digit string) hidden."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return HIDDEN if value in foreign else value
    if isinstance(value, str):
        digits = value.removeprefix("-")
        if digits.isdigit() and len(digits) < 20 and int(value) in foreign:
            return HIDDEN
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, foreign) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v, foreign) for v in value]
    return value


def fsm_key_owner(key: str) -> tuple[str, str] | None:
    """(chat id, user id) of an ``SQLKeyBuilder`` key ``fsm:<bot>:<chat>:<user>:...``; None if hashed."""
    parts = key.split(":")
    if len(parts) < 4 or parts[0] == "sha256":
        return None
    return parts[2], parts[3]


async def _fsm_rows(session: AsyncSession, user_id: int) -> list[FSMRecord]:
    uid = str(user_id)
    rows = (await session.scalars(select(FSMRecord).where(FSMRecord.key.like(f"%:{uid}:%")))).all()
    return [r for r in rows if (owner := fsm_key_owner(r.key)) is not None and uid in owner]


def _mode_time(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


async def collect(session: AsyncSession, user_id: int) -> dict[str, Any]:
    """Everything stored about ``user_id``, as JSON-ready data (datetimes stay datetimes; see
    :func:`to_json`). Read-only; ends its read transaction."""
    user = await session.get(User, user_id, populate_existing=True)
    if user is None:
        await release(session)
        raise UnknownUser(user_id)
    foreign = set((await session.scalars(select(User.id).where(User.id != user_id))).all())

    consents = (await session.scalars(select(Consent).where(Consent.user_id == user_id).order_by(Consent.id))).all()
    regs = (await session.scalars(select(RTHead).where(RTHead.user_id == user_id).order_by(RTHead.id))).all()
    offs = (await session.scalars(select(Officer).where(Officer.user_id == user_id).order_by(Officer.id))).all()
    props = (await session.scalars(select(Proposal).where(Proposal.created_by == user_id).order_by(Proposal.id))).all()
    reports = (
        await session.scalars(
            select(ProgressReport).where(ProgressReport.reporter_id == user_id).order_by(ProgressReport.id)
        )
    ).all()
    events = await session.scalar(select(func.count()).where(ProposalEvent.actor_id == user_id)) or 0
    follows = (await session.scalars(select(Follow).where(Follow.user_id == user_id).order_by(Follow.id))).all()
    follow_targets: list[dict[str, Any]] = []
    for f in follows:
        if f.rt_id is not None:
            rt = await session.get(RT, f.rt_id)
            follow_targets.append({"rt": _place(rt) if rt else None, "since": f.created_at})
        else:
            p = await session.get(Proposal, f.proposal_id)
            follow_targets.append(
                {
                    "proposal": (p.code or f"#{p.id}") if p else None,
                    "title": p.title if p else None,
                    "since": f.created_at,
                }
            )
    prefs = await session.get(NotificationPrefs, user_id)
    aspirations = (
        await session.scalars(select(Aspiration).where(Aspiration.user_id == user_id).order_by(Aspiration.id))
    ).all()
    asp_out = []
    for a in aspirations:
        rt = await session.get(RT, a.rt_id)
        code = None
        if a.proposal_id is not None:
            code = await session.scalar(select(Proposal.code).where(Proposal.id == a.proposal_id))
        asp_out.append(
            {
                "id": a.id,
                "rt": _place(rt) if rt else None,
                "text": a.text,
                "photo": a.media_id is not None or a.telegram_file_id is not None,
                "location": [a.latitude, a.longitude] if a.latitude is not None else None,
                "share_contact": a.share_contact,
                "status": a.status,
                "reason": a.reason,
                "proposal": code,
                "decided_at": a.decided_at,
                "created_at": a.created_at,
            }
        )
    answers = (
        await session.execute(
            select(VoteAnswer, MusyawarahVote)
            .join(MusyawarahVote, MusyawarahVote.id == VoteAnswer.vote_id)
            .where(VoteAnswer.user_id == user_id)
            .order_by(VoteAnswer.answered_at)
        )
    ).all()
    votes_out = []
    for ans, vote in answers:
        options = list(vote.options or [])
        chosen = [options[i] if 0 <= i < len(options) else i for i in (ans.option_ids or [])]
        votes_out.append(
            {"vote_id": vote.id, "question": vote.question, "chosen": chosen, "answered_at": ans.answered_at}
        )
    polls = await session.scalar(select(func.count()).where(VotePoll.user_id == user_id)) or 0
    created_votes = (await session.scalars(select(MusyawarahVote).where(MusyawarahVote.created_by == user_id))).all()
    notices = (await session.scalars(select(Outbox).where(Outbox.chat_id == user_id).order_by(Outbox.id))).all()
    reminders = (
        await session.scalars(select(ReminderSent).where(ReminderSent.user_id == user_id).order_by(ReminderSent.id))
    ).all()
    escalated = []
    for e in (await session.scalars(select(Escalation).order_by(Escalation.id))).all():
        if user_id in (e.recipients or []):
            code = None
            if e.item_type == "proposal":
                code = await session.scalar(select(Proposal.code).where(Proposal.id == e.item_id))
            else:
                code = await session.scalar(
                    select(Proposal.code)
                    .join(ProgressReport, ProgressReport.proposal_id == Proposal.id)
                    .where(ProgressReport.id == e.item_id)
                )
            escalated.append(
                {
                    "item": e.item_type,
                    "proposal": code,
                    "level": e.scope_level,
                    "working_days_waited": e.age_days,
                    "at": e.created_at,
                }
            )
    broadcasts = (
        await session.scalars(select(Broadcast).where(Broadcast.admin_id == user_id).order_by(Broadcast.id))
    ).all()
    fsm_rows = await _fsm_rows(session, user_id)
    audit_rows = (
        await session.scalars(select(AuditLog).where(AuditLog.actor_id == user_id).order_by(AuditLog.id))
    ).all()

    export: dict[str, Any] = {
        "generated_at": utcnow(),
        "user": {
            "telegram_id": user.id,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "username": user.username,
            "language": user.language,
            "language_chosen": user.language_chosen,
            "blocked_bot": user.blocked_bot,
            "first_seen": user.created_at,
            "updated_at": user.updated_at,
            "erased_at": user.erased_at,
        },
        "consents": [
            {"purpose": c.purpose, "version": c.version, "given_at": c.given_at, "withdrawn_at": c.withdrawn_at}
            for c in consents
        ],
        "rt_registrations": [
            {
                "id": r.id,
                "place": _place(r.rt),
                "full_name": r.full_name,
                "phone": r.phone,
                "status": r.status,
                "reason": r.reason,
                "decided_by": ROLE_PETUGAS if r.decided_by is not None else None,
                "decided_at": r.decided_at,
                "created_at": r.created_at,
            }
            for r in regs
        ],
        "officer_roles": [
            {
                "scope": o.scope,
                "kecamatan": o.kecamatan.name if o.kecamatan else None,
                "kelurahan": o.kelurahan.name if o.kelurahan else None,
                "appointed_by": ROLE_ADMIN,
                "appointed_at": o.appointed_at,
                "revoked_at": o.revoked_at,
                "active": o.revoked_at is None,
            }
            for o in offs
        ],
        "proposals": [
            {
                "code": p.code,
                "fiscal_year": p.fiscal_year,
                "place": _place(p.rt),
                "title": p.title,
                "status": p.status,
                "total_amount": p.total_amount,
                "created_at": p.created_at,
                "submitted_at": p.submitted_at,
            }
            for p in props
        ],
        "proposal_actions": events,
        "progress_reports": [
            {
                "proposal": r.proposal.code,
                "percent": r.percent,
                "spent_total": r.spent_total,
                "note": r.note,
                "status": r.status,
                "created_at": r.created_at,
            }
            for r in reports
        ],
        "follows": follow_targets,
        "notification_settings": None
        if prefs is None
        else {
            "mode": prefs.mode,
            "quiet_start": _mode_time(prefs.quiet_start),
            "quiet_end": _mode_time(prefs.quiet_end),
            "updated_at": prefs.updated_at,
        },
        "aspirations": asp_out,
        "votes_answered": votes_out,
        "vote_polls_received": polls,
        "votes_created": [
            {"id": v.id, "question": v.question, "status": v.status, "created_at": v.created_at} for v in created_votes
        ],
        "notices": [
            {"kind": n.kind, "status": n.status, "created_at": n.created_at, "sent_at": n.sent_at} for n in notices
        ],
        "pending_notices": sum(1 for n in notices if n.status == OUTBOX_PENDING),
        "reminders_received": [
            {"kind": r.kind, "occurrence": r.occurrence, "date": r.local_date} for r in reminders
        ],
        "escalations_received": escalated,
        "broadcasts_sent": [
            {"audience": b.audience, "recipients": b.total, "text": b.text, "created_at": b.created_at}
            for b in broadcasts
        ],
        "dialogs": [
            {"step": r.state, "data": _scrub(dict(r.data or {}), foreign), "updated_at": r.updated_at} for r in fsm_rows
        ],
        "audit_entries": [
            {"at": a.at, "action": a.action, "entity": a.entity, "entity_id": _scrub(a.entity_id, foreign)}
            for a in audit_rows
        ],
    }
    await release(session)
    return export


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)


def to_json(export: dict[str, Any]) -> str:
    """The /dataku file. Every string in it goes through :func:`neutralise_strings` (CWE-1236): the
    file is often opened in a spreadsheet (Excel's "From JSON", or an online JSON-to-CSV converter
    first), where a title or an idea typed as ``=HYPERLINK(...)``, ``+1+1`` or ``@SUM(A1)`` would
    become a live formula; with OWASP's single quote in front it stays text. Only values that start
    like a formula change, and the text after the quote is exactly what is stored. Numbers, booleans
    and dates are not strings here and stay as they are; the chat summary shows the raw values."""
    return json.dumps(neutralise_strings(export), ensure_ascii=False, indent=2, default=_json_default)


# --- /hapusdata -----------------------------------------------------------------------------------


async def blocking_role(session: AsyncSession, user_id: int, admin_ids: Iterable[int] = ()) -> HoldsRole | None:
    """Why the user cannot erase now (a role the kelurahan needs their data for), or None."""
    if user_id in set(admin_ids):
        return HoldsRole(ROLE_ADMIN)
    head = await session.scalar(select(RTHead).where(RTHead.user_id == user_id, RTHead.status == REG_VERIFIED))
    if head is not None:
        return HoldsRole(ROLE_KETUA_RT, head)
    officer = await session.scalar(select(Officer).where(Officer.user_id == user_id, Officer.revoked_at.is_(None)))
    if officer is not None:
        return HoldsRole(ROLE_PETUGAS, officer)
    return None


def _strip_personal(snapshot: dict[str, Any] | None) -> dict[str, Any] | None:
    if not snapshot or not any(k in snapshot for k in PERSONAL_KEYS):
        return snapshot
    return {k: ("" if k in PERSONAL_KEYS else v) for k, v in snapshot.items()}


async def erase(
    session: AsyncSession,
    user_id: int,
    *,
    admin_ids: Iterable[int] = (),
    confirmed_after: dt.datetime | None = None,
) -> Erasure:
    """Delete or anonymise the user's data (see the module docstring), in one write transaction.

    ``confirmed_after``: when the confirmation was shown; if the data was erased since, this is a
    repeated press and nothing is done (:class:`AlreadyErased`). Raises :class:`HoldsRole` while
    the user is a verified Ketua RT, an active officer or an admin.
    """
    await begin_write(session)
    user = await session.scalar(
        select(User).where(User.id == user_id).with_for_update().execution_options(populate_existing=True)
    )
    if user is None:
        await release(session)
        raise UnknownUser(user_id)
    if user.erased_at is not None and confirmed_after is not None and user.erased_at >= confirmed_after:
        await release(session)
        raise AlreadyErased(user.erased_at)
    blocked = await blocking_role(session, user_id, admin_ids)
    if blocked is not None:
        await release(session)
        raise blocked

    now = utcnow()
    counts: dict[str, int] = {}

    async def run(name: str, stmt: Any) -> None:
        counts[name] = (await session.execute(stmt)).rowcount or 0

    await run("follows", delete(Follow).where(Follow.user_id == user_id))
    await run("notification_prefs", delete(NotificationPrefs).where(NotificationPrefs.user_id == user_id))
    await run("vote_answers", delete(VoteAnswer).where(VoteAnswer.user_id == user_id))
    await run("vote_polls", delete(VotePoll).where(VotePoll.user_id == user_id))
    await run("notices", delete(Outbox).where(Outbox.chat_id == user_id))
    await run("reminders", delete(ReminderSent).where(ReminderSent.user_id == user_id))
    fsm_keys = [r.key for r in await _fsm_rows(session, user_id)]
    counts["dialogs"] = 0
    if fsm_keys:
        await run("dialogs", delete(FSMRecord).where(FSMRecord.key.in_(fsm_keys)))
    await run(
        "aspirations_unlinked",
        update(Aspiration).where(Aspiration.user_id == user_id).values(user_id=None, share_contact=False),
    )

    regs = (
        await session.scalars(
            select(RTHead).where(
                RTHead.user_id == user_id, RTHead.status.in_((REG_PENDING, REG_REJECTED, REG_REPLACED))
            )
        )
    ).all()
    counts["registrations_withdrawn"] = counts["registrations_anonymised"] = 0
    for reg in regs:
        if reg.status == REG_PENDING:
            await session.delete(reg)  # not decided yet: withdrawn
            counts["registrations_withdrawn"] += 1
        else:
            reg.full_name, reg.phone = "", ""
            counts["registrations_anonymised"] += 1
    counts["audit_snapshots_anonymised"] = 0
    if regs:
        snapshots = (
            await session.scalars(
                select(AuditLog).where(
                    AuditLog.entity == "rt_head",
                    AuditLog.entity_id.in_([str(r.id) for r in regs]),
                    or_(AuditLog.before.is_not(None), AuditLog.after.is_not(None)),
                )
            )
        ).all()
        for row in snapshots:
            before, after = _strip_personal(row.before), _strip_personal(row.after)
            if before is not row.before or after is not row.after:
                row.before, row.after = before, after
                counts["audit_snapshots_anonymised"] += 1

    await run(
        "consents_withdrawn",
        update(Consent).where(Consent.user_id == user_id, Consent.withdrawn_at.is_(None)).values(withdrawn_at=now),
    )
    user.first_name, user.last_name, user.username = "", None, None
    user.erased_at = now
    # The row itself carries no personal data: who is the actor id; what was removed are counts.
    audit.record(session, user_id, "privacy.erase", "user", None, after=dict(counts))
    await session.commit()
    return Erasure(erased_at=now, counts=counts)
