"""The officer's review of submitted proposals: the queue in scope, and the decision.

A decision is one write transaction: the proposal row is re-read under a row lock (PostgreSQL) or
the database write lock (SQLite, ``begin_write``), so of two officers acting at once exactly one
wins and the other gets :class:`AlreadyDecided`. The status change, its timeline event, the audit
row and the RT head's notice commit together.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.permissions import Forbidden, Scope, covers
from bot.domain.workflow import DIAJUKAN, MINTA_REVISI, SETUJUI, TOLAK, TransitionError, next_status
from bot.services import follows, outbox, registration
from bot.services.proposals import (
    PARTS,
    InvalidField,
    ProposalNotFound,
    StaleVersion,
    diff_snapshots,
    record_transition,
    snapshot,
)
from bot.services.users import Roles
from storage.db import begin_write, release
from storage.models import Proposal, utcnow
from storage.repositories import proposals as repo

ACTIONS = (SETUJUI, TOLAK, MINTA_REVISI)
NOTICE_KIND = {
    SETUJUI: "proposal.approved",
    TOLAK: "proposal.rejected",
    MINTA_REVISI: "proposal.revision_requested",
}
NOTE_MAX = 1000


class AlreadyDecided(Exception):
    """Someone else decided first (or the proposal left the queue); ``status`` is the current one."""

    def __init__(self, proposal: Proposal) -> None:
        super().__init__(proposal.status)
        self.proposal = proposal
        self.status = proposal.status


class DecisionIncomplete(ValueError):
    """What the decision still needs: ``missing`` ⊆ {"reason", "parts", "note"}; ``unknown_parts``."""

    def __init__(self, missing: Sequence[str], unknown_parts: Sequence[str] = ()) -> None:
        super().__init__(", ".join([*missing, *unknown_parts]))
        self.missing = tuple(missing)
        self.unknown_parts = tuple(unknown_parts)


def in_scope(scope: Scope | None, proposal: Proposal) -> bool:
    if scope is None:
        return False
    kel = proposal.rt.kelurahan
    return covers(scope, kel.kecamatan_id, kel.id)


async def queue(
    session: AsyncSession, scope: Scope, *, limit: int = 5, offset: int = 0
) -> tuple[Sequence[Proposal], int]:
    """Submitted proposals of RTs in the officer's scope, oldest submission first, and their total."""
    return await repo.in_status_for_scope(session, DIAJUKAN, scope, limit=limit, offset=offset)


async def get_in_scope(session: AsyncSession, actor_id: int, roles: Roles, proposal_id: int) -> Proposal:
    """A proposal for the officer's card; Forbidden("out_of_scope") (audited) outside the scope."""
    proposal = await repo.get(session, proposal_id, fresh=True)
    if proposal is None:
        raise ProposalNotFound(proposal_id)
    if not in_scope(roles.scope, proposal):
        await release(session)
        await registration.deny(session, actor_id, "proposal.view", "proposal", proposal_id, "out_of_scope")
        raise Forbidden("out_of_scope")
    return proposal


def _clean_parts(parts: Iterable[str] | None) -> tuple[list[str], list[str]]:
    given = list(dict.fromkeys(parts or ()))
    return [p for p in PARTS if p in given], [p for p in given if p not in PARTS]


async def decide(
    session: AsyncSession,
    actor_id: int,
    roles: Roles,
    proposal_id: int,
    action: str,
    *,
    note: str | None = None,
    parts: Iterable[str] | None = None,
    expected_version: int | None = None,
) -> Proposal:
    """Approve ("setujui", optional note), reject ("tolak", reason required in ``note``) or send
    back ("minta_revisi", at least one of PARTS and a note).

    Raises Forbidden("out_of_scope") (audited as "denied.proposal.<action>"), AlreadyDecided,
    StaleVersion, DecisionIncomplete, InvalidField("note", "too_long"), ProposalNotFound.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown review action {action!r}")
    await begin_write(session)
    proposal = await repo.get_for_update(session, proposal_id)
    if proposal is None:
        await release(session)
        raise ProposalNotFound(proposal_id)
    if not in_scope(roles.scope, proposal):
        await release(session)
        await registration.deny(session, actor_id, "proposal." + action, "proposal", proposal_id, "out_of_scope")
        raise Forbidden("out_of_scope")
    from_status = proposal.status
    try:
        to_status = next_status(from_status, action)
    except TransitionError:
        await release(session)
        raise AlreadyDecided(proposal) from None
    if expected_version is not None and proposal.version != expected_version:
        await release(session)
        raise StaleVersion(expected_version, proposal.version)
    note = (note or "").strip() or None
    wanted, unknown = _clean_parts(parts)
    missing: list[str] = []
    if action == TOLAK and note is None:
        missing.append("reason")
    if action == MINTA_REVISI:
        if not wanted:
            missing.append("parts")
        if note is None:
            missing.append("note")
    if missing or unknown:
        await release(session)
        raise DecisionIncomplete(missing, unknown)
    if note is not None and len(note) > NOTE_MAX:
        await release(session)
        raise InvalidField("note", "too_long", maximum=NOTE_MAX)

    now = utcnow()
    proposal.status = to_status
    proposal.decided_at, proposal.decided_by, proposal.decision_note = now, actor_id, note
    proposal.updated_at = now
    data: dict[str, Any] | None = None
    if action == MINTA_REVISI:
        proposal.revision_parts, proposal.revision_note = wanted, note
        data = {"parts": wanted}
    event = await record_transition(
        session, proposal, actor_id, action, from_status, at=now, note=note, data=data, audit_after=data
    )
    head = await registration.current_head(session, proposal.rt_id)
    recipient = head.user_id if head is not None else proposal.created_by
    payload: dict[str, Any] = {"proposal_id": proposal.id, "event_id": event.id}
    if action == MINTA_REVISI:
        payload["parts"] = wanted
    outbox.enqueue(session, recipient, NOTICE_KIND[action], **payload)
    await follows.notify(
        session, proposal, follows.EVENT_OF_ACTION[action], actor_id=actor_id, event_id=event.id, at=now
    )
    await session.commit()
    return proposal


async def changes_since_last_submission(session: AsyncSession, proposal: Proposal) -> dict[str, Any] | None:
    """What changed since the previous submission, for the officer's card (None on a first submission).

    While the proposal is submitted this is the summary stored with its latest submission; while it
    is being revised, the difference between the last submitted state and the current one.
    Keys: total_before, total_after, lines_added, lines_removed, lines_changed ([{before, after}]),
    fields ({name: [before, after]}).
    """
    last = await repo.last_event(session, proposal.id, "ajukan")
    if last is None or not last.data:
        return None
    if proposal.status == DIAJUKAN:
        return last.data.get("changes")
    if "snapshot" not in last.data:
        return None
    return diff_snapshots(last.data["snapshot"], snapshot(proposal))
