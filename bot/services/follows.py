"""Residents following an RT or a single proposal, their notice settings, and the follow notices.

Follow notices are written to the outbox by :func:`notify`, called by the services that make the
change (``review.decide``, ``progress.report``, ``progress.verify``) in their own transaction. Each
follower gets at most one notice per event (following both the RT and the proposal counts once),
shaped by their settings (``bot.domain.follow``):

- "semua": every event; "keputusan": decisions only (no progress reports); "mati": nothing;
- quiet hours (local time, default 21.00–06.00): the notice is due at the end of the window;
- "mingguan": the event is added to the user's one pending "follow.weekly" row, due next Monday
  07.00 local; the row is locked while it is extended, so an event lands either in the summary
  being sent or in the next one, never in none.

Nobody is told of their own action, and the Ketua RT of the proposal's RT (who gets the direct
notices of decisions, and makes the progress reports) is not told as a follower. Notices carry
ids only; their text is rendered at send time (``bot/notices_follow.py``) from public data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import follow as rules
from bot.domain.follow import (
    EV_APPROVED,
    EV_COMPLETED,
    EV_PROGRESS,
    EV_PROGRESS_VERIFIED,
    EV_REJECTED,
    EV_REVISION,
)
from bot.domain.timefmt import DEFAULT_TZ
from bot.domain.workflow import DRAF, MINTA_REVISI, SETUJUI, TOLAK
from bot.services import audit, outbox
from storage.db import begin_write, release
from storage.models import (
    DIGEST_DAILY,
    DIGEST_MODES,
    NOTIFY_MODES,
    OUTBOX_PENDING,
    QUIET_END_DEFAULT,
    QUIET_START_DEFAULT,
    RT,
    Follow,
    MusyawarahVote,
    NotificationPrefs,
    Outbox,
    Proposal,
    RTHead,
    User,
    utcnow,
)
from storage.models import REG_VERIFIED as _REG_VERIFIED

__all__ = [
    "EVENT_OF_ACTION",
    "EV_APPROVED",
    "EV_COMPLETED",
    "EV_PROGRESS",
    "EV_PROGRESS_VERIFIED",
    "EV_REJECTED",
    "EV_REVISION",
    "MAX_FOLLOWS",
    "NOTICE_EVENT",
    "NOTICE_WEEKLY",
    "FollowView",
    "TooManyFollows",
    "follow_proposal",
    "follow_rt",
    "list_follows",
    "notify",
    "prefs_of",
    "set_mode",
    "set_quiet",
    "unfollow",
    "verify_event",
]

MAX_FOLLOWS = 20
NOTICE_EVENT = "follow.event"
# Held until the end of the recipient's quiet hours when made inside them, and moved when those
# change, with the reminders to Ketua RT ("reminder.*"). Escalations are made by
# bot/services/escalations.py, aspiration answers by bot/services/aspirations.py, vote polls by
# bot/services/votes.py (never so late that the vote closes first).
QUIET_HELD_KINDS = (NOTICE_EVENT, "escalation.officer", "aspiration.decided")
NOTICE_WEEKLY = "follow.weekly"
WEEKLY_MAX_EVENTS = 200  # events kept in one pending summary (a summary shows far fewer)

EVENT_OF_ACTION = {SETUJUI: EV_APPROVED, TOLAK: EV_REJECTED, MINTA_REVISI: EV_REVISION}

_tz: dt.tzinfo = ZoneInfo(DEFAULT_TZ)


def configure(tz: dt.tzinfo) -> None:
    """The zone quiet hours and the weekly summary are counted in (``TIMEZONE``); set at start-up."""
    global _tz
    _tz = tz


def display_tz() -> dt.tzinfo:
    return _tz


class TooManyFollows(Exception):
    """The user already follows ``limit`` RTs and proposals."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class FollowTargetNotFound(LookupError):
    """No such RT, or no such proposal visible to residents (a draft)."""


@dataclass(frozen=True)
class FollowView:
    follow: Follow
    rt: RT | None
    proposal: Proposal | None


def verify_event(action: str, completed: bool) -> str | None:
    """The follow event of a progress verification ("terverifikasi"): the proposal completed, or a
    verified report; None for a request for more evidence (followers are not told of it)."""
    if action != "terverifikasi":  # progress.ACTION_TERVERIFIKASI (progress imports this module)
        return None
    return EV_COMPLETED if completed else EV_PROGRESS_VERIFIED


# --- following ----------------------------------------------------------------------------------------


async def list_follows(session: AsyncSession, user_id: int) -> list[FollowView]:
    """What the user follows, oldest first, with the RT or proposal (RT joined)."""
    rows = (await session.scalars(select(Follow).where(Follow.user_id == user_id).order_by(Follow.id))).all()
    out = []
    for f in rows:
        rt = await session.get(RT, f.rt_id) if f.rt_id is not None else None
        proposal = await session.get(Proposal, f.proposal_id) if f.proposal_id is not None else None
        out.append(FollowView(f, rt, proposal))
    return out


async def _follow(
    session: AsyncSession, user_id: int, *, rt_id: int | None, proposal_id: int | None
) -> tuple[Follow, bool]:
    await begin_write(session)
    if rt_id is not None:
        target: Any = await session.get(RT, rt_id)
        where = Follow.rt_id == rt_id
        entity, entity_id = "rt", rt_id
    else:
        target = await session.get(Proposal, proposal_id)
        if target is not None and (target.status == DRAF or target.code is None):
            target = None
        where = Follow.proposal_id == proposal_id
        entity, entity_id = "proposal", proposal_id
    if target is None:
        await release(session)
        raise FollowTargetNotFound(entity_id)
    existing = await session.scalar(select(Follow).where(Follow.user_id == user_id, where))
    if existing is not None:
        await release(session)
        return existing, False
    count = await session.scalar(select(func.count()).select_from(Follow).where(Follow.user_id == user_id)) or 0
    if count >= MAX_FOLLOWS:
        await release(session)
        raise TooManyFollows(MAX_FOLLOWS)
    row = Follow(user_id=user_id, rt_id=rt_id, proposal_id=proposal_id, created_at=utcnow())
    try:
        # A savepoint, so that a unique violation rolls back only this insert, not the update's
        # transaction (a rollback would expire the objects the handler loaded, e.g. its user).
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:  # the same follow committed meanwhile (a double tap on another instance)
        existing = await session.scalar(select(Follow).where(Follow.user_id == user_id, where))
        if existing is None:
            raise
        await release(session)
        return existing, False
    audit.record(session, user_id, "follow.add", entity, entity_id)
    await session.commit()
    return row, True


async def follow_rt(session: AsyncSession, user_id: int, rt_id: int) -> tuple[Follow, bool]:
    """Follow an RT (all its proposals). Returns (follow, created); following again changes nothing.
    Raises FollowTargetNotFound, TooManyFollows."""
    return await _follow(session, user_id, rt_id=rt_id, proposal_id=None)


async def follow_proposal(session: AsyncSession, user_id: int, proposal_id: int) -> tuple[Follow, bool]:
    """Follow one proposal (not a draft). Returns (follow, created). Raises FollowTargetNotFound,
    TooManyFollows."""
    return await _follow(session, user_id, rt_id=None, proposal_id=proposal_id)


async def unfollow(session: AsyncSession, user_id: int, follow_id: int) -> FollowView | None:
    """Stop one of the user's follows; None when it is not (or no longer) theirs."""
    await begin_write(session)
    row = await session.get(Follow, follow_id)
    if row is None or row.user_id != user_id:
        await release(session)
        return None
    view = FollowView(
        row,
        await session.get(RT, row.rt_id) if row.rt_id is not None else None,
        await session.get(Proposal, row.proposal_id) if row.proposal_id is not None else None,
    )
    entity, entity_id = ("rt", row.rt_id) if row.rt_id is not None else ("proposal", row.proposal_id)
    await session.execute(delete(Follow).where(Follow.id == follow_id))
    audit.record(session, user_id, "follow.remove", entity, entity_id)
    await session.commit()
    return view


async def is_following(session: AsyncSession, user_id: int, proposal: Proposal) -> bool:
    """Whether the user follows the proposal or its RT."""
    found = await session.scalar(
        select(Follow.id)
        .where(Follow.user_id == user_id, or_(Follow.rt_id == proposal.rt_id, Follow.proposal_id == proposal.id))
        .limit(1)
    )
    return found is not None


# --- settings -----------------------------------------------------------------------------------------


async def prefs_of(session: AsyncSession, user_id: int) -> NotificationPrefs:
    """The user's settings; the defaults (not stored) for someone who never changed them."""
    prefs = await session.get(NotificationPrefs, user_id)
    if prefs is None:
        prefs = NotificationPrefs(
            user_id=user_id,
            mode=rules.NOTIFY_ALL,
            quiet_start=QUIET_START_DEFAULT,
            quiet_end=QUIET_END_DEFAULT,
            digest=DIGEST_DAILY,
        )
    return prefs


async def _prefs_for_update(session: AsyncSession, user_id: int) -> tuple[NotificationPrefs, dict[str, Any]]:
    await begin_write(session)
    prefs = await session.get(NotificationPrefs, user_id, with_for_update=True)
    if prefs is None:
        prefs = NotificationPrefs(
            user_id=user_id,
            mode=rules.NOTIFY_ALL,
            quiet_start=QUIET_START_DEFAULT,
            quiet_end=QUIET_END_DEFAULT,
            digest=DIGEST_DAILY,
        )
        session.add(prefs)
    before = {
        "mode": prefs.mode,
        "quiet_start": prefs.quiet_start,
        "quiet_end": prefs.quiet_end,
        "digest": prefs.digest or DIGEST_DAILY,
    }
    return prefs, before


async def set_mode(session: AsyncSession, user_id: int, mode: str) -> NotificationPrefs:
    """Notices: "semua", "keputusan", "mingguan" or "mati" (ValueError otherwise)."""
    if mode not in NOTIFY_MODES:
        raise ValueError(f"unknown notice mode {mode!r}")
    prefs, before = await _prefs_for_update(session, user_id)
    prefs.mode = mode
    prefs.updated_at = utcnow()
    audit.record(session, user_id, "prefs.mode", "notification_prefs", user_id, before=before, after={"mode": mode})
    await session.commit()
    return prefs


async def set_digest(session: AsyncSession, user_id: int, mode: str) -> NotificationPrefs:
    """Officers' morning digest: "harian", "mingguan" or "mati" (ValueError otherwise)."""
    if mode not in DIGEST_MODES:
        raise ValueError(f"unknown digest mode {mode!r}")
    prefs, before = await _prefs_for_update(session, user_id)
    prefs.digest = mode
    prefs.updated_at = utcnow()
    audit.record(session, user_id, "prefs.digest", "notification_prefs", user_id, before=before, after={"digest": mode})
    await session.commit()
    return prefs


async def set_quiet(session: AsyncSession, user_id: int, start: int, end: int) -> NotificationPrefs:
    """Quiet hours from ``start`` to ``end`` (local minutes; equal: none). Notices already held
    for this user (follow notices, answers to their ideas, vote polls, reminders, escalations) are
    rescheduled to the new window (sent at once when it no longer covers now, or when a vote would
    close too soon after it)."""
    from bot.services import votes  # votes uses this module

    vote_kinds = (votes.NOTICE_INTRO, votes.NOTICE_POLL)
    for value in (start, end):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < rules.DAY:
            raise ValueError(f"minute of the day out of range: {value!r}")
    prefs, before = await _prefs_for_update(session, user_id)
    if start == end:
        start = end = 0
    prefs.quiet_start, prefs.quiet_end = start, end
    prefs.updated_at = now = utcnow()
    held = (
        await session.scalars(
            select(Outbox)
            .where(
                Outbox.chat_id == user_id,
                or_(Outbox.kind.in_((*QUIET_HELD_KINDS, *vote_kinds)), Outbox.kind.like("reminder.%")),
                Outbox.status == OUTBOX_PENDING,
                Outbox.attempts == 0,  # held for quiet hours, not waiting to be retried
            )
            .with_for_update(skip_locked=True)
        )
    ).all()
    due = rules.quiet_until(now, start, end, _tz)
    closing: dict[int, dt.datetime] = {}
    for row in held:
        row.next_attempt_at = due
        if row.kind in vote_kinds:  # never so late that the vote closes before they can answer
            vote_id = (row.payload or {}).get("vote_id")
            if vote_id not in closing:
                closing[vote_id] = await session.scalar(
                    select(MusyawarahVote.closes_at).where(MusyawarahVote.id == vote_id)
                )
            closes_at = closing[vote_id]
            if closes_at is not None and due >= closes_at - votes.MIN_TIME_TO_VOTE:
                row.next_attempt_at = now
    if held:
        session.info["outbox_enqueued"] = True  # wake the sender: some may be due now
    audit.record(
        session,
        user_id,
        "prefs.quiet",
        "notification_prefs",
        user_id,
        before=before,
        after={"quiet_start": start, "quiet_end": end},
    )
    await session.commit()
    return prefs


# --- notices ------------------------------------------------------------------------------------------


async def delivery_prefs(session: AsyncSession, user_ids: Sequence[int]) -> dict[int, tuple[str, int, int]]:
    """(notice mode, quiet start, quiet end) of each user: what they chose in /pengaturan, else
    the defaults (every notice; quiet 21:00-06:00 WITA)."""
    found = {
        uid: (mode, start, end)
        for uid, mode, start, end in (
            await session.execute(
                select(
                    NotificationPrefs.user_id,
                    NotificationPrefs.mode,
                    NotificationPrefs.quiet_start,
                    NotificationPrefs.quiet_end,
                ).where(NotificationPrefs.user_id.in_(list(user_ids)))
            )
        ).all()
    }
    default = (rules.NOTIFY_ALL, QUIET_START_DEFAULT, QUIET_END_DEFAULT)
    return {uid: found.get(uid, default) for uid in user_ids}


def send_time(at: dt.datetime, prefs: tuple[str, int, int]) -> dt.datetime:
    """When a notice made at ``at`` may reach a user with these delivery prefs (after their quiet hours)."""
    return rules.quiet_until(at, prefs[1], prefs[2], _tz)


async def _followers(session: AsyncSession, proposal: Proposal) -> Sequence[Any]:
    """(user_id, mode, quiet_start, quiet_end) of everyone following the proposal or its RT, once each."""
    return (
        await session.execute(
            select(
                Follow.user_id,
                func.coalesce(NotificationPrefs.mode, rules.NOTIFY_ALL),
                func.coalesce(NotificationPrefs.quiet_start, QUIET_START_DEFAULT),
                func.coalesce(NotificationPrefs.quiet_end, QUIET_END_DEFAULT),
            )
            .join(User, User.id == Follow.user_id)
            .outerjoin(NotificationPrefs, NotificationPrefs.user_id == Follow.user_id)
            .where(
                or_(Follow.rt_id == proposal.rt_id, Follow.proposal_id == proposal.id),
                User.blocked_bot.is_(False),
            )
            .distinct()
            .order_by(Follow.user_id)
        )
    ).all()


async def _add_to_weekly(
    session: AsyncSession, user_id: int, entry: dict[str, Any], at: dt.datetime, start: int, end: int
) -> None:
    row = await session.scalar(
        select(Outbox)
        .where(Outbox.chat_id == user_id, Outbox.kind == NOTICE_WEEKLY, Outbox.status == OUTBOX_PENDING)
        .order_by(Outbox.id)
        .limit(1)
        .with_for_update()
    )
    if row is None:
        outbox.enqueue(
            session,
            user_id,
            NOTICE_WEEKLY,
            not_before=rules.next_weekly(at, start, end, _tz),
            since=at.astimezone(dt.UTC).isoformat(),
            events=[entry],
        )
        return
    events = list(row.payload.get("events") or [])
    if len(events) >= WEEKLY_MAX_EVENTS:
        events = events[1:]
    row.payload = {**row.payload, "events": [*events, entry]}  # a new dict: JSON columns track assignment


async def notify(
    session: AsyncSession,
    proposal: Proposal,
    event: str | None,
    *,
    actor_id: int | None = None,
    event_id: int | None = None,
    report_id: int | None = None,
    percent: int | None = None,
    at: dt.datetime | None = None,
) -> int:
    """Enqueue the follow notices of ``event`` on ``proposal`` in the caller's transaction (the
    caller commits). ``event`` None does nothing. Returns how many followers were told (now, later
    or in their weekly summary)."""
    if event is None:
        return 0
    if event not in rules.EVENTS:
        raise ValueError(f"unknown follow event {event!r}")
    at = at or utcnow()
    head_id = await session.scalar(
        select(RTHead.user_id).where(RTHead.rt_id == proposal.rt_id, RTHead.status == _REG_VERIFIED)
    )
    skip = {actor_id, head_id if head_id is not None else proposal.created_by}
    told = 0
    entry: dict[str, Any] = {"proposal_id": proposal.id, "event": event}
    if event_id is not None:
        entry["event_id"] = event_id
    if report_id is not None:
        entry["report_id"] = report_id
    if percent is not None:
        entry["percent"] = percent
    for user_id, mode, start, end in await _followers(session, proposal):
        if user_id in skip:
            continue
        how = rules.route(mode, event) if mode in NOTIFY_MODES else None
        if how is None:
            continue
        if how == rules.WEEKLY:
            await _add_to_weekly(session, user_id, {**entry, "at": at.astimezone(dt.UTC).isoformat()}, at, start, end)
        else:
            outbox.enqueue(session, user_id, NOTICE_EVENT, not_before=rules.quiet_until(at, start, end, _tz), **entry)
        told += 1
    return told
