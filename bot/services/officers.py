"""Officer (petugas) appointments by admins: one active scope per person; revocations kept."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.permissions import Forbidden, Scope
from bot.services import audit, outbox
from bot.services.users import ensure_placeholder
from storage.db import begin_write, release
from storage.models import SCOPE_KECAMATAN, SCOPE_KELURAHAN, Kelurahan, Officer, utcnow


class NotFound(Exception):
    pass


def _snapshot(o: Officer) -> dict[str, object]:
    return {"user_id": o.user_id, "scope": o.scope, "kecamatan_id": o.kecamatan_id, "kelurahan_id": o.kelurahan_id}


async def appoint(
    session: AsyncSession,
    admin_id: int,
    admin_ids: tuple[int, ...],
    user_id: int,
    scope: Scope,
    first_name: str = "",
) -> Officer:
    """Appoint (or re-scope) an officer; the appointee is told through the outbox."""
    if admin_id not in admin_ids:
        await record_denied(session, admin_id, "officer.appoint", user_id)
        raise Forbidden("not_admin")
    await begin_write(session)
    if scope.level == SCOPE_KELURAHAN:
        kel = await session.get(Kelurahan, scope.kelurahan_id)
        if kel is None:
            await release(session)
            raise NotFound("kelurahan")
        scope = Scope(level=SCOPE_KELURAHAN, kecamatan_id=kel.kecamatan_id, kelurahan_id=kel.id)
    await ensure_placeholder(session, user_id, first_name)
    current = await session.scalar(select(Officer).where(Officer.user_id == user_id, Officer.revoked_at.is_(None)))
    before = None
    if current is not None:
        before = _snapshot(current)
        current.revoked_at, current.revoked_by = utcnow(), admin_id
        await session.flush()
    officer = Officer(
        user_id=user_id,
        scope=scope.level,
        kecamatan_id=scope.kecamatan_id if scope.level in (SCOPE_KECAMATAN, SCOPE_KELURAHAN) else None,
        kelurahan_id=scope.kelurahan_id if scope.level == SCOPE_KELURAHAN else None,
        appointed_by=admin_id,
    )
    session.add(officer)
    await session.flush()
    audit.record(session, admin_id, "officer.appoint", "officer", officer.id, before=before, after=_snapshot(officer))
    outbox.enqueue(session, user_id, "officer.appointed", officer_id=officer.id)
    await session.commit()
    return officer


async def revoke(session: AsyncSession, admin_id: int, admin_ids: tuple[int, ...], officer_id: int) -> Officer:
    if admin_id not in admin_ids:
        await record_denied(session, admin_id, "officer.revoke", officer_id)
        raise Forbidden("not_admin")
    await begin_write(session)
    officer = await session.get(Officer, officer_id, populate_existing=True)
    if officer is None or officer.revoked_at is not None:
        await release(session)
        raise NotFound("officer")
    before = _snapshot(officer) | {"revoked": False}
    officer.revoked_at, officer.revoked_by = utcnow(), admin_id
    audit.record(
        session,
        admin_id,
        "officer.revoke",
        "officer",
        officer.id,
        before=before,
        after=_snapshot(officer) | {"revoked": True},
    )
    outbox.enqueue(session, officer.user_id, "officer.revoked", officer_id=officer.id)
    await session.commit()
    return officer


async def list_active(session: AsyncSession) -> Sequence[Officer]:
    return (
        await session.scalars(select(Officer).where(Officer.revoked_at.is_(None)).order_by(Officer.appointed_at))
    ).all()


async def record_denied(session: AsyncSession, actor_id: int, action: str, entity_id: object = None) -> None:
    """Audit an attempt by a non-admin (e.g. a forged or stale admin button)."""
    await begin_write(session)
    audit.record(session, actor_id, "denied." + action, "officer", entity_id, reason="not_admin")
    await session.commit()
