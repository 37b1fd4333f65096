"""The notification outbox: rows written in the same transaction as the change they report.

The sender in ``bot/notifier.py`` delivers them; committing a session that enqueued something
wakes the sender at once instead of waiting for its next poll.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from storage.models import OUTBOX_PENDING, Outbox, utcnow

_listeners: list[Callable[[], None]] = []


def on_enqueued(callback: Callable[[], None]) -> Callable[[], None]:
    """Register a callback run after a commit that enqueued notifications; returns an unsubscriber."""
    _listeners.append(callback)
    return lambda: _listeners.remove(callback)


def enqueue(
    session: AsyncSession,
    chat_id: int,
    kind: str,
    *,
    not_before: dt.datetime | None = None,
    **payload: Any,
) -> Outbox:
    row = Outbox(chat_id=chat_id, kind=kind, payload=payload, next_attempt_at=not_before or utcnow())
    session.add(row)
    session.info["outbox_enqueued"] = True
    return row


async def held(session: AsyncSession, kind: str, key: str, value: int, now: dt.datetime | None = None) -> int:
    """How many ``kind`` notices whose payload has ``key`` = ``value`` wait, unsent and untried,
    for a later time (the end of their recipient's quiet hours)."""
    n = await session.scalar(
        select(func.count())
        .select_from(Outbox)
        .where(
            Outbox.kind == kind,
            Outbox.status == OUTBOX_PENDING,
            Outbox.attempts == 0,
            Outbox.next_attempt_at > (now or utcnow()),
            Outbox.payload[key].as_integer() == value,
        )
    )
    return n or 0


@event.listens_for(Session, "after_commit")
def _wake_sender(session: Session) -> None:
    if session.info.pop("outbox_enqueued", False):
        for callback in list(_listeners):
            callback()


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop("outbox_enqueued", None)
