"""Broadcasts (/siaran): an admin's message to a role or an area, one outbox row per recipient.

The audience is a short code: ``heads`` (verified Ketua RT), ``officers`` (active petugas), ``all``
(everyone who has used the bot), ``rt:ID`` (the RT's followers and its Ketua RT), ``kel:ID`` /
``kec:ID`` (the Ketua RT and RT followers of every RT in the kelurahan / kecamatan). Users who
blocked the bot or erased their data are left out (blocked ones are counted as skipped).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.permissions import Forbidden
from bot.services import audit, outbox
from storage.db import begin_write
from storage.models import (
    OUTBOX_FAILED,
    OUTBOX_SENT,
    REG_VERIFIED,
    RT,
    Broadcast,
    Follow,
    Kelurahan,
    Officer,
    Outbox,
    RTHead,
    User,
    utcnow,
)

MAX_TEXT = 3500
KIND = "broadcast"
BLOCKED_PREFIX = "blocked: "  # bot/notifier.py BLOCKED


class BadAudience(ValueError):
    pass


def _rt_ids(audience: str) -> Select[tuple[int]] | None:
    kind, _sep, raw = audience.partition(":")
    if kind not in ("rt", "kel", "kec"):
        return None
    try:
        ident = int(raw)
    except ValueError:
        raise BadAudience(audience) from None
    if not 0 < ident <= 2**31 - 1:  # not an id of the database's integer columns
        raise BadAudience(audience)
    if kind == "rt":
        return select(RT.id).where(RT.id == ident)
    if kind == "kel":
        return select(RT.id).where(RT.kelurahan_id == ident)
    return select(RT.id).join(Kelurahan, RT.kelurahan_id == Kelurahan.id).where(Kelurahan.kecamatan_id == ident)


def _member_ids(audience: str) -> Select[tuple[int]]:
    heads = select(RTHead.user_id).where(RTHead.status == REG_VERIFIED)
    if audience == "heads":
        return heads
    if audience == "officers":
        return select(Officer.user_id).where(Officer.revoked_at.is_(None))
    if audience == "all":
        return select(User.id)
    rts = _rt_ids(audience)
    if rts is None:
        raise BadAudience(audience)
    return heads.where(RTHead.rt_id.in_(rts)).union(select(Follow.user_id).where(Follow.rt_id.in_(rts)))


@dataclass(frozen=True)
class Recipients:
    ids: list[int]
    blocked: int  # members who blocked the bot: not sent to


async def recipients(session: AsyncSession, audience: str) -> Recipients:
    members = _member_ids(audience).subquery()
    rows = (
        await session.execute(
            select(User.id, User.blocked_bot)
            .where(User.id.in_(select(members.c[0])), User.erased_at.is_(None))
            .order_by(User.id)
        )
    ).all()
    return Recipients([uid for uid, blocked in rows if not blocked], sum(1 for _uid, blocked in rows if blocked))


async def create(
    session: AsyncSession,
    admin_id: int,
    admin_ids: tuple[int, ...],
    audience: str,
    text: str,
    *,
    progress_chat_id: int,
    progress_message_id: int,
) -> Broadcast:
    """Write the broadcast and one outbox row per recipient in one transaction, with its audit row."""
    if admin_id not in admin_ids:
        await audit.record_refused(session, admin_id, "broadcast", audience)
        raise Forbidden("broadcasts are for admins")
    text = text.strip()
    if not text or len(text) > MAX_TEXT:
        raise ValueError("text must be 1 to 3500 characters")
    await begin_write(session)
    found = await recipients(session, audience)
    row = Broadcast(
        admin_id=admin_id,
        audience=audience,
        text=text,
        total=len(found.ids),
        skipped_blocked=found.blocked,
        progress_chat_id=progress_chat_id,
        progress_message_id=progress_message_id,
    )
    session.add(row)
    await session.flush()
    now = utcnow()
    for user_id in found.ids:
        item = outbox.enqueue(session, user_id, KIND, not_before=now, broadcast_id=row.id)
        item.broadcast_id = row.id
    if not found.ids:
        row.finished_at = now
    audit.record(
        session, admin_id, "broadcast.send", "broadcast", row.id,
        after={"audience": audience, "recipients": len(found.ids), "skipped_blocked": found.blocked,
               "chars": len(text)},
    )
    await session.commit()
    return row


@dataclass(frozen=True)
class Progress:
    total: int
    sent: int
    failed: int
    blocked: int
    waiting: int

    @property
    def done(self) -> bool:
        return self.waiting == 0


async def progress(session: AsyncSession, broadcast: Broadcast) -> Progress:
    """Counted from the outbox rows (so it is right after a restart)."""
    is_blocked = func.coalesce(func.substr(Outbox.last_error, 1, len(BLOCKED_PREFIX)), "") == BLOCKED_PREFIX
    inner = (
        select(Outbox.status.label("status"), is_blocked.label("blocked"))
        .where(Outbox.broadcast_id == broadcast.id)
        .subquery()
    )
    rows = (
        await session.execute(
            select(inner.c.status, inner.c.blocked, func.count()).group_by(inner.c.status, inner.c.blocked)
        )
    ).all()

    sent = failed = blocked = waiting = 0
    for status, is_blocked, count in rows:
        if status == OUTBOX_SENT:
            sent += count
        elif status == OUTBOX_FAILED:
            failed += count
            if is_blocked:
                blocked += count
        else:  # pending or sending
            waiting += count
    return Progress(broadcast.total, sent, failed, blocked, waiting)


async def unfinished(session: AsyncSession) -> list[Broadcast]:
    return list(
        (await session.scalars(select(Broadcast).where(Broadcast.finished_at.is_(None)).order_by(Broadcast.id))).all()
    )


async def mark_finished(session: AsyncSession, broadcast_id: int) -> None:
    await begin_write(session)
    row = await session.get(Broadcast, broadcast_id)
    if row is not None and row.finished_at is None:
        row.finished_at = utcnow()
    await session.commit()
