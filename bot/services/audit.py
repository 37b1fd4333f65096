"""The audit log: who did what, when, with the state before and after."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditLog


def record(
    session: AsyncSession,
    actor_id: int | None,
    action: str,
    entity: str,
    entity_id: object | None = None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> AuditLog:
    """Add an audit row to the session; it commits with the change it describes."""
    row = AuditLog(
        actor_id=actor_id,
        action=action,
        entity=entity,
        entity_id=None if entity_id is None else str(entity_id),
        before=before,
        after=after,
        reason=reason,
    )
    session.add(row)
    return row


async def record_refused(session: AsyncSession, actor_id: int | None, what: str, detail: str | None) -> None:
    """Audit a refused button press (stale or forged callback data) in its own transaction."""
    from storage.db import begin_write

    await begin_write(session)
    record(session, actor_id, "denied." + what, "callback", None, reason=storable(detail or "")[:200])
    await session.commit()


def storable(text: str) -> str:
    """Text as a database can keep it: NUL, which a forged button's data may carry and PostgreSQL's
    text refuses, written as ``\\x00``."""
    return text.replace("\x00", "\\x00")
