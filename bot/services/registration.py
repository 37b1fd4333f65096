"""Ketua RT registration: submit (with UU PDP consent), and the officer's verification decision."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.permissions import Forbidden, Scope, covers
from bot.services import audit, outbox
from bot.services.users import Roles
from storage.db import begin_write, release
from storage.models import (
    REG_PENDING,
    REG_REJECTED,
    REG_REPLACED,
    REG_VERIFIED,
    RT,
    SCOPE_KECAMATAN,
    SCOPE_KELURAHAN,
    SCOPE_KOTA,
    Consent,
    Kelurahan,
    Officer,
    RTHead,
    utcnow,
)
from storage.repositories.wilayah import scope_filter

CONSENT_PURPOSE = "rt_head_registration"
CONSENT_VERSION = "pdp-2026.1"


class AlreadyRegistered(Exception):
    def __init__(self, registration: RTHead) -> None:
        super().__init__(registration.status)
        self.registration = registration


class AlreadyDecided(Exception):
    def __init__(self, registration: RTHead | None) -> None:
        super().__init__("already decided")
        self.registration = registration


class UnknownRT(Exception):
    pass


@dataclass(frozen=True)
class Decision:
    registration: RTHead
    replaced: RTHead | None


def _snapshot(reg: RTHead) -> dict[str, object]:
    return {"status": reg.status, "rt_id": reg.rt_id, "user_id": reg.user_id, "full_name": reg.full_name}


async def submit(
    session: AsyncSession, user_id: int, full_name: str, phone: str, rt_id: int, admin_ids: tuple[int, ...]
) -> RTHead:
    """Create a pending registration with the user's recorded consent; officers in scope are told."""
    await begin_write(session)
    existing = await session.scalar(
        select(RTHead).where(RTHead.user_id == user_id, RTHead.status.in_((REG_PENDING, REG_VERIFIED)))
    )
    if existing is not None:
        await release(session)
        raise AlreadyRegistered(existing)
    rt = await session.get(RT, rt_id)
    if rt is None:
        await release(session)
        raise UnknownRT(rt_id)
    session.add(Consent(user_id=user_id, purpose=CONSENT_PURPOSE, version=CONSENT_VERSION))
    reg = RTHead(user_id=user_id, rt=rt, full_name=full_name, phone=phone, status=REG_PENDING)
    session.add(reg)
    await session.flush()
    audit.record(session, user_id, "registration.submit", "rt_head", reg.id, after=_snapshot(reg))
    for officer_id in await officers_for(session, rt, admin_ids):
        outbox.enqueue(session, officer_id, "registration.new", registration_id=reg.id)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        existing = await session.scalar(
            select(RTHead).where(RTHead.user_id == user_id, RTHead.status.in_((REG_PENDING, REG_VERIFIED)))
        )
        if existing is None:
            raise
        raise AlreadyRegistered(existing) from None
    return reg


async def officers_for(session: AsyncSession, rt: RT, admin_ids: tuple[int, ...]) -> list[int]:
    """Officers whose scope covers this RT, nearest first; the admins when nobody covers it."""
    kel: Kelurahan = rt.kelurahan
    rows = (
        await session.scalars(
            select(Officer).where(
                Officer.revoked_at.is_(None),
                or_(
                    and_(Officer.scope == SCOPE_KELURAHAN, Officer.kelurahan_id == kel.id),
                    and_(Officer.scope == SCOPE_KECAMATAN, Officer.kecamatan_id == kel.kecamatan_id),
                ),
            )
        )
    ).all()
    ids = [o.user_id for o in sorted(rows, key=lambda o: o.scope != SCOPE_KELURAHAN)]
    if not ids:
        city = (
            await session.scalars(
                select(Officer.user_id).where(Officer.revoked_at.is_(None), Officer.scope == SCOPE_KOTA)
            )
        ).all()
        ids = list(city) or list(admin_ids)
    return list(dict.fromkeys(ids))


def in_scope(scope: Scope, reg: RTHead) -> bool:
    kel = reg.rt.kelurahan
    return covers(scope, kel.kecamatan_id, kel.id)


async def pending_in_scope(
    session: AsyncSession, scope: Scope, *, limit: int = 5, offset: int = 0
) -> tuple[Sequence[RTHead], int]:
    """Pending registrations the officer may decide, oldest first, with the total count."""
    base = (
        select(RTHead)
        .join(RT, RTHead.rt_id == RT.id)
        .join(Kelurahan, RT.kelurahan_id == Kelurahan.id)
        .where(RTHead.status == REG_PENDING, scope_filter(scope))
    )
    total = await session.scalar(select(func.count()).select_from(base.subquery()))
    rows = (await session.scalars(base.order_by(RTHead.created_at, RTHead.id).limit(limit).offset(offset))).all()
    return rows, total or 0


async def current_head(session: AsyncSession, rt_id: int) -> RTHead | None:
    return await session.scalar(select(RTHead).where(RTHead.rt_id == rt_id, RTHead.status == REG_VERIFIED))


async def get(session: AsyncSession, registration_id: int) -> RTHead | None:
    return await session.get(RTHead, registration_id)


async def deny(session: AsyncSession, actor_id: int, action: str, entity: str, entity_id: object, why: str) -> None:
    """Write a refused attempt to the audit log in its own transaction."""
    await begin_write(session)
    audit.record(session, actor_id, "denied." + action, entity, entity_id, reason=why)
    await session.commit()


async def decide(
    session: AsyncSession, actor_id: int, roles: Roles, registration_id: int, approve: bool, reason: str | None
) -> Decision:
    """Approve or reject a pending registration. Exactly one decision wins; others get AlreadyDecided."""
    action = "registration.approve" if approve else "registration.reject"
    await begin_write(session)
    reg = await session.scalar(
        select(RTHead)
        .where(RTHead.id == registration_id)
        .with_for_update(of=RTHead)
        .execution_options(populate_existing=True)
    )
    scope = roles.scope
    if reg is None:
        await release(session)
        raise AlreadyDecided(None)
    if scope is None or not in_scope(scope, reg):
        await release(session)
        await deny(session, actor_id, action, "rt_head", registration_id, "out_of_scope")
        raise Forbidden("out_of_scope")
    if reg.status != REG_PENDING:
        await release(session)
        raise AlreadyDecided(reg)
    if not approve and not (reason or "").strip():
        await release(session)
        raise ValueError("reason required")
    before = _snapshot(reg)
    replaced = None
    now = utcnow()
    if approve:
        replaced = await current_head(session, reg.rt_id)
        if replaced is not None:
            old = _snapshot(replaced)
            replaced.status = REG_REPLACED
            replaced.decided_by, replaced.decided_at = actor_id, now
            replaced.reason = f"replaced by registration {reg.id}"
            await session.flush()
            audit.record(
                session, actor_id, "registration.replace", "rt_head", replaced.id, before=old, after=_snapshot(replaced)
            )
            outbox.enqueue(session, replaced.user_id, "registration.replaced", registration_id=replaced.id)
        reg.status = REG_VERIFIED
    else:
        reg.status = REG_REJECTED
        reg.reason = reason.strip()
    reg.decided_by, reg.decided_at = actor_id, now
    audit.record(session, actor_id, action, "rt_head", reg.id, before=before, after=_snapshot(reg), reason=reason)
    outbox.enqueue(
        session, reg.user_id, "registration.approved" if approve else "registration.rejected", registration_id=reg.id
    )
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise AlreadyDecided(await session.get(RTHead, registration_id, populate_existing=True)) from None
    return Decision(registration=reg, replaced=replaced)
