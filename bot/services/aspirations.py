"""Aspirasi warga: a resident sends an idea to their RT's Ketua RT, who marks it "will be discussed
at the musyawarah", "became a proposal" (with the proposal's code) or "cannot be followed up"
(with a reason); the resident is told of each decision.

Rules (pure functions below, unit-tested with tables): at most ``DAILY_LIMIT`` ideas per resident in
any rolling 24 hours (``next_allowed_at``), text at most ``TEXT_MAX`` characters, the same text to
the same RT within the window is not stored twice, the status transitions (``next_status``), and
who may decide (``may_decide``: the verified Ketua RT of the idea's RT).

Writes are one transaction each (``begin_write``): the row, the audit record and the notice. The
limit is re-checked inside the write transaction with the resident's user row locked (PostgreSQL)
or under the database write lock (SQLite), so a flood of parallel sends cannot exceed it.

Privacy: the RT head sees the resident's first name only, unless the resident chose to share their
contact (then the full name and a Telegram link). The resident never sees who the RT head is.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.permissions import Forbidden
from bot.domain.text import clean_text
from bot.services import audit, follows, outbox, registration
from bot.services import proposals as proposals_svc
from bot.services.users import Roles
from storage.db import begin_write, release
from storage.models import (
    ASPIRASI_BARU,
    ASPIRASI_DIBAHAS,
    ASPIRASI_DITOLAK,
    ASPIRASI_DIUSULKAN,
    RT,
    Aspiration,
    Follow,
    Proposal,
    User,
    utcnow,
)

TEXT_MAX = 1000
REASON_MAX = 500
DAILY_LIMIT = 3
WINDOW = dt.timedelta(hours=24)  # rolling: "3 in any 24 hours", the same rule at any time of day
PAGE_SIZE = 5

NOTICE_NEW = "aspiration.new"
NOTICE_DECIDED = "aspiration.decided"

# Decision actions (callback data) -> the status they lead to.
BAHAS = "bahas"
USULKAN = "usulkan"
TOLAK = "tolak"
ACTIONS = {BAHAS: ASPIRASI_DIBAHAS, USULKAN: ASPIRASI_DIUSULKAN, TOLAK: ASPIRASI_DITOLAK}
STATUSES = (ASPIRASI_BARU, ASPIRASI_DIBAHAS, ASPIRASI_DIUSULKAN, ASPIRASI_DITOLAK)

# A new idea may go to any decision; one to be discussed may still become a proposal or be declined
# after the musyawarah; "became a proposal" and "cannot be followed up" are final.
TRANSITIONS: dict[str, frozenset[str]] = {
    ASPIRASI_BARU: frozenset({ASPIRASI_DIBAHAS, ASPIRASI_DIUSULKAN, ASPIRASI_DITOLAK}),
    ASPIRASI_DIBAHAS: frozenset({ASPIRASI_DIUSULKAN, ASPIRASI_DITOLAK}),
    ASPIRASI_DIUSULKAN: frozenset(),
    ASPIRASI_DITOLAK: frozenset(),
}


# --- errors ----------------------------------------------------------------------------------------


class LimitReached(Exception):
    """The resident sent ``DAILY_LIMIT`` ideas in the last 24 hours; ``next_at`` is when one more fits."""

    def __init__(self, next_at: dt.datetime, limit: int = DAILY_LIMIT) -> None:
        super().__init__(next_at.isoformat())
        self.next_at = next_at
        self.limit = limit


class AlreadySent(Exception):
    """The same text went to the same RT within the window (a double tap, or a flood): not stored twice."""

    def __init__(self, aspiration: Aspiration) -> None:
        super().__init__(aspiration.id)
        self.aspiration = aspiration


class UnknownRT(LookupError):
    pass


class AspirationNotFound(LookupError):
    def __init__(self, aspiration_id: int) -> None:
        super().__init__(aspiration_id)
        self.aspiration_id = aspiration_id


class AlreadyDecided(Exception):
    """The idea is already in a status from which ``action`` is not possible (final, or the same)."""

    def __init__(self, aspiration: Aspiration) -> None:
        super().__init__(aspiration.status)
        self.aspiration = aspiration
        self.status = aspiration.status


class InvalidProposalCode(ValueError):
    """``kind``: "not_found" (no such proposal) or "other_rt" (a proposal of another RT)."""

    def __init__(self, kind: str, code: str) -> None:
        super().__init__(kind)
        self.kind = kind
        self.code = code


class BadLocation(ValueError):
    pass


# --- pure rules ------------------------------------------------------------------------------------


def clean_idea(text: str | None) -> str:
    """The idea as stored: cleaned (``clean_text``), at most TEXT_MAX characters. Raises TextError."""
    return clean_text(text or "", TEXT_MAX)


def clean_reason(text: str | None) -> str:
    return clean_text(text or "", REASON_MAX)


def next_allowed_at(
    sent_at: Iterable[dt.datetime], now: dt.datetime, *, limit: int = DAILY_LIMIT, window: dt.timedelta = WINDOW
) -> dt.datetime | None:
    """None if one more idea may be sent at ``now``; otherwise the moment the next one fits."""
    recent = sorted(t for t in sent_at if now - window < t <= now)
    if len(recent) < limit:
        return None
    # One more fits once all but ``limit - 1`` of the recent ones have left the window.
    return recent[len(recent) - limit] + window


def next_status(current: str, action: str) -> str:
    """The status ``action`` leads to from ``current``. Raises ValueError for an unknown action and
    KeyError for a transition that is not allowed (the idea is already decided that way, or final)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown aspiration action {action!r}")
    target = ACTIONS[action]
    if target not in TRANSITIONS.get(current, frozenset()):
        raise KeyError((current, action))
    return target


def allowed_actions(status: str) -> tuple[str, ...]:
    """The decision buttons to show for an idea in ``status`` (in display order)."""
    return tuple(a for a in (BAHAS, USULKAN, TOLAK) if ACTIONS[a] in TRANSITIONS.get(status, frozenset()))


def may_decide(head_rt_id: int | None, aspiration_rt_id: int) -> bool:
    """Only the verified Ketua RT of the idea's own RT decides on it."""
    return head_rt_id is not None and head_rt_id == aspiration_rt_id


def valid_location(latitude: float | None, longitude: float | None) -> bool:
    if latitude is None and longitude is None:
        return True
    if latitude is None or longitude is None:
        return False
    if not all(math.isfinite(v) for v in (latitude, longitude)):
        return False
    return -90 <= latitude <= 90 and -180 <= longitude <= 180


@dataclass(frozen=True)
class Aspirant:
    """What the RT head sees of the sender: ``name`` (first name only, or the full name when the
    resident shared their contact) and ``user_id`` (only when shared, for a Telegram link)."""

    name: str | None  # None: the resident erased their data
    user_id: int | None


def aspirant_view(user: User | None, share_contact: bool) -> Aspirant:
    if user is None or user.erased_at is not None:
        return Aspirant(None, None)
    if share_contact:
        return Aspirant(user.display_name(), user.id)
    return Aspirant((user.first_name or "").strip() or None, None)


# --- reads -----------------------------------------------------------------------------------------


async def _sent_times(session: AsyncSession, user_id: int, now: dt.datetime) -> list[dt.datetime]:
    rows = await session.scalars(
        select(Aspiration.created_at).where(Aspiration.user_id == user_id, Aspiration.created_at > now - WINDOW)
    )
    return list(rows.all())


async def limit_reached(session: AsyncSession, user_id: int, now: dt.datetime | None = None) -> dt.datetime | None:
    """When the resident may send again, if they are at the limit now; else None (checked at the start)."""
    now = now or utcnow()
    return next_allowed_at(await _sent_times(session, user_id, now), now)


async def followed_rts(session: AsyncSession, user_id: int) -> Sequence[RT]:
    return (
        await session.scalars(
            select(RT).join(Follow, Follow.rt_id == RT.id).where(Follow.user_id == user_id).order_by(RT.id)
        )
    ).all()


async def head_user_id(session: AsyncSession, rt_id: int) -> int | None:
    head = await registration.current_head(session, rt_id)
    return head.user_id if head is not None else None


@dataclass
class Inbox:
    items: Sequence[Aspiration]
    total: int
    counts: dict[str, int]
    page: int
    pages: int


async def inbox(session: AsyncSession, rt_id: int, page: int = 0, page_size: int = PAGE_SIZE) -> Inbox:
    """The RT's ideas, newest first, one page; with the number in each status."""
    counts = {s: 0 for s in STATUSES}
    for status, n in (
        await session.execute(
            select(Aspiration.status, func.count()).where(Aspiration.rt_id == rt_id).group_by(Aspiration.status)
        )
    ).all():
        counts[status] = n
    total = sum(counts.values())
    pages = max(1, -(-total // page_size))
    page = min(max(page, 0), pages - 1)
    items = (
        await session.scalars(
            select(Aspiration)
            .where(Aspiration.rt_id == rt_id)
            .order_by(Aspiration.created_at.desc(), Aspiration.id.desc())
            .limit(page_size)
            .offset(page * page_size)
        )
    ).all()
    return Inbox(items, total, counts, page, pages)


async def get(session: AsyncSession, aspiration_id: int) -> Aspiration | None:
    return await session.get(Aspiration, aspiration_id, populate_existing=True)


async def get_for_head(session: AsyncSession, actor_id: int, roles: Roles | None, aspiration_id: int) -> Aspiration:
    """An idea for the RT head's card; Forbidden("not_your_rt") (audited) for another RT's idea."""
    row = await get(session, aspiration_id)
    if row is None:
        raise AspirationNotFound(aspiration_id)
    head_rt = roles.rt_head.rt_id if roles is not None and roles.rt_head is not None else None
    if not may_decide(head_rt, row.rt_id):
        await release(session)
        await registration.deny(session, actor_id, "aspiration.open", "aspiration", aspiration_id, "not_your_rt")
        raise Forbidden("not_your_rt")
    return row


async def sender_of(session: AsyncSession, row: Aspiration) -> Aspirant:
    user = await session.get(User, row.user_id) if row.user_id is not None else None
    return aspirant_view(user, row.share_contact)


# --- writes ----------------------------------------------------------------------------------------


@dataclass
class Sent:
    aspiration: Aspiration
    head_known: bool  # False: the RT has no verified Ketua RT yet; the idea waits for one


async def submit(
    session: AsyncSession,
    user_id: int,
    rt_id: int,
    text: str,
    *,
    media_id: int | None = None,
    telegram_file_id: str | None = None,
    latitude: float | None = None,
    longitude: float | None = None,
    share_contact: bool = False,
    now: dt.datetime | None = None,
) -> Sent:
    """Store a resident's idea and tell the RT head (if there is a verified one).

    Raises TextError (empty / too long), BadLocation, UnknownRT, LimitReached, AlreadySent.
    """
    cleaned = clean_idea(text)
    if not valid_location(latitude, longitude):
        raise BadLocation((latitude, longitude))
    await begin_write(session)
    # Serialise one resident's sends (PostgreSQL row lock; SQLite holds the write lock already).
    user = await session.scalar(
        select(User).where(User.id == user_id).with_for_update().execution_options(populate_existing=True)
    )
    rt = await session.get(RT, rt_id)
    if user is None or rt is None:
        await release(session)
        raise UnknownRT(rt_id)
    now = now or utcnow()
    recent = (
        await session.scalars(
            select(Aspiration).where(Aspiration.user_id == user_id, Aspiration.created_at > now - WINDOW)
        )
    ).all()
    same = next((a for a in recent if a.rt_id == rt_id and a.text == cleaned), None)
    if same is not None:
        await release(session)
        raise AlreadySent(same)
    next_at = next_allowed_at([a.created_at for a in recent], now)
    if next_at is not None:
        await release(session)
        raise LimitReached(next_at)
    row = Aspiration(
        user_id=user_id,
        rt_id=rt_id,
        text=cleaned,
        media_id=media_id,
        telegram_file_id=telegram_file_id if media_id is not None else None,
        latitude=latitude,
        longitude=longitude,
        share_contact=bool(share_contact),
        status=ASPIRASI_BARU,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    audit.record(
        session,
        user_id,
        "aspiration.create",
        "aspiration",
        row.id,
        after={
            "rt_id": rt_id,
            "photo": media_id is not None,
            "location": latitude is not None,
            "share_contact": bool(share_contact),
            "length": len(cleaned),
        },
    )
    head = await head_user_id(session, rt_id)
    if head is not None and head != user_id:
        outbox.enqueue(session, head, NOTICE_NEW, aspiration_id=row.id)
    await session.commit()
    return Sent(row, head is not None)


async def decide(
    session: AsyncSession,
    actor_id: int,
    roles: Roles | None,
    aspiration_id: int,
    action: str,
    *,
    proposal_code: str | None = None,
    code_prefix: str | None = None,
    reason: str | None = None,
) -> Aspiration:
    """The RT head's decision: BAHAS, USULKAN (``proposal_code`` of a proposal of the same RT) or
    TOLAK (``reason``). The resident is told through the outbox in the same transaction.

    Raises Forbidden("not_your_rt") (audited), AspirationNotFound, AlreadyDecided,
    InvalidProposalCode, TextError (reason empty / too long), ValueError (unknown action).
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown aspiration action {action!r}")
    clean = clean_reason(reason) if action == TOLAK else None
    await begin_write(session)
    row = await session.scalar(
        select(Aspiration)
        .where(Aspiration.id == aspiration_id)
        .with_for_update(of=Aspiration)
        .execution_options(populate_existing=True)
    )
    if row is None:
        await release(session)
        raise AspirationNotFound(aspiration_id)
    head_rt = roles.rt_head.rt_id if roles is not None and roles.rt_head is not None else None
    if not may_decide(head_rt, row.rt_id):
        await release(session)
        await registration.deny(session, actor_id, "aspiration." + action, "aspiration", aspiration_id, "not_your_rt")
        raise Forbidden("not_your_rt")
    try:
        status = next_status(row.status, action)
    except KeyError:
        await release(session)
        raise AlreadyDecided(row) from None
    proposal: Proposal | None = None
    if action == USULKAN:
        code = (proposal_code or "").strip()
        proposal = await proposals_svc.find_by_code(session, code, code_prefix or "") if code_prefix else None
        if proposal is None:
            await release(session)
            raise InvalidProposalCode("not_found", code)
        if proposal.rt_id != row.rt_id:
            await release(session)
            await registration.deny(
                session, actor_id, "aspiration.usulkan", "aspiration", aspiration_id, f"other_rt:{proposal.id}"
            )
            raise InvalidProposalCode("other_rt", code)
    before = {"status": row.status}
    row.status = status
    row.proposal_id = proposal.id if proposal is not None else None
    row.reason = clean
    row.decided_by = actor_id
    row.decided_at = utcnow()
    after = {"status": status}
    if proposal is not None:
        after["proposal_id"] = proposal.id
    audit.record(
        session, actor_id, "aspiration." + action, "aspiration", row.id, before=before, after=after, reason=clean
    )
    if row.user_id is not None:
        prefs = (await follows.delivery_prefs(session, [row.user_id]))[row.user_id]
        not_before = follows.send_time(row.decided_at, prefs)
        outbox.enqueue(session, row.user_id, NOTICE_DECIDED, not_before=not_before, aspiration_id=row.id, status=status)
    await session.commit()
    return row


async def answer_held(session: AsyncSession, aspiration_id: int, now: dt.datetime | None = None) -> bool:
    """Whether the resident's notice of the decision waits for the end of their quiet hours."""
    return await outbox.held(session, NOTICE_DECIDED, "aspiration_id", aspiration_id, now) > 0


async def proposal_code_of(session: AsyncSession, row: Aspiration) -> str | None:
    if row.proposal_id is None:
        return None
    proposal = await session.get(Proposal, row.proposal_id)
    return proposal.code if proposal is not None else None
