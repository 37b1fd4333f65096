"""Handled update ids, recorded in the same transaction as the update's effects.

``track(session, update_id)`` arms the session: the first commit that writes anything also
inserts the update id, so a re-delivered update (after a crash, or from Telegram retrying a
webhook) is recognised by :func:`is_handled` and changes nothing twice. An update that wrote
nothing is not recorded: running it again only repeats a reply.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from storage import fsm
from storage.models import HandledUpdate, utcnow

_KEY = "handled_update_id"
_WROTE = "handled_wrote"


def track(session: AsyncSession, update_id: int) -> None:
    session.info[_KEY] = update_id


def untrack(session: AsyncSession) -> int | None:
    return session.info.pop(_KEY, None)


def record_now(session: AsyncSession) -> bool:
    """Write the armed update id with the session's next commit even if nothing else is written."""
    update_id = session.info.pop(_KEY, None)
    if update_id is None:
        return False
    session.add(HandledUpdate(update_id=update_id))
    return True


def pending(session: AsyncSession) -> bool:
    return _KEY in session.info


async def is_handled(session: AsyncSession, update_id: int) -> bool:
    return (
        await session.scalar(select(HandledUpdate.update_id).where(HandledUpdate.update_id == update_id))
    ) is not None


async def prune(session: AsyncSession, older_than: dt.timedelta = dt.timedelta(days=3)) -> int:
    """Telegram keeps undelivered updates for 24 hours; older ids can never come back."""
    result = await session.execute(delete(HandledUpdate).where(HandledUpdate.handled_at < utcnow() - older_than))
    return result.rowcount or 0


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _ctx: object) -> None:
    if _KEY in session.info:
        session.info[_WROTE] = True


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    # On SQLite, only a write transaction (begin_write) may write: a read snapshot turning into a
    # writer could fail with "database is locked". Buffered FSM changes then wait for the next one.
    can_write = session.info.get("write_tx") or session.get_bind().dialect.name != "sqlite"
    wrote_fsm = can_write and fsm.flush_into(session)
    update_id = session.info.get(_KEY)
    if update_id is None:
        return
    if wrote_fsm or session.info.get(_WROTE) or session.new or session.dirty or session.deleted:
        session.info.pop(_KEY)
        session.add(HandledUpdate(update_id=update_id))


@event.listens_for(Session, "after_transaction_end")
def _reset(session: Session, transaction: object) -> None:
    if getattr(transaction, "parent", None) is None:
        session.info.pop(_WROTE, None)
