"""Users and their roles: warga by default; Ketua RT once verified; petugas by appointment; admins
are the ``ADMIN_IDS``. Roles are looked up on every update; the user row is written only when new
or when their Telegram name changed (never a write just to "touch" the user)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.permissions import ADMIN, CITY_SCOPE, KETUA_RT, PETUGAS, WARGA, Scope
from storage.db import begin_write
from storage.models import REG_PENDING, REG_VERIFIED, HandledUpdate, Officer, RTHead, User

SUPPORTED_LANGUAGES = ("id", "en")


@dataclass(frozen=True)
class Roles:
    is_admin: bool
    officer: Officer | None
    rt_head: RTHead | None  # the verified registration, if any
    pending: RTHead | None  # a registration waiting for verification, if any

    @property
    def names(self) -> set[str]:
        names = {WARGA}
        if self.rt_head is not None:
            names.add(KETUA_RT)
        if self.officer is not None or self.is_admin:
            names.add(PETUGAS)
        if self.is_admin:
            names.add(ADMIN)
        return names

    @property
    def primary(self) -> str:
        for role in (ADMIN, PETUGAS, KETUA_RT):
            if role in self.names:
                return role
        return WARGA

    @property
    def scope(self) -> Scope | None:
        """The officer's scope; admins act with city scope."""
        if self.is_admin:
            return CITY_SCOPE
        if self.officer is not None:
            return officer_scope(self.officer)
        return None


def officer_scope(officer: Officer) -> Scope:
    return Scope(level=officer.scope, kecamatan_id=officer.kecamatan_id, kelurahan_id=officer.kelurahan_id)


async def ensure_user(
    session: AsyncSession, user_id: int, first_name: str, last_name: str | None, username: str | None
) -> User:
    user = await session.get(User, user_id)
    changed = (
        user is None
        or user.blocked_bot  # they wrote to the bot again: they can be reached again
        or (user.first_name, user.last_name, user.username) != (first_name, last_name, username)
    )
    if not changed:
        return user
    await begin_write(session)
    user = await session.get(User, user_id, populate_existing=True)
    if user is None:
        user = User(id=user_id, first_name=first_name, last_name=last_name, username=username)
        try:
            # A savepoint: a new user's two first updates at the same moment (PostgreSQL) both insert;
            # the second meets the first's row, and only the savepoint is rolled back.
            async with session.begin_nested():
                session.add(user)
        except IntegrityError:
            user = await session.get(User, user_id, populate_existing=True)
            if user is None:
                raise
    user.first_name, user.last_name, user.username = first_name, last_name, username
    if user.blocked_bot:
        user.blocked_bot = False
    await session.commit()
    return user


@dataclass(frozen=True)
class UpdateContext:
    handled: bool  # the update's effects are committed already (a re-delivered update)
    user: User | None  # None only when ``handled``
    roles: Roles | None


async def load_for_update(
    session: AsyncSession,
    update_id: int,
    user_id: int,
    first_name: str,
    last_name: str | None,
    username: str | None,
    admin_ids: tuple[int, ...],
) -> UpdateContext:
    """What every update needs before its handler, in one query: whether the update was handled
    already, the user, their active officer appointment and their pending or verified Ketua RT
    registrations. A new user, or one whose Telegram name changed, is written (``ensure_user``)."""
    handled_already = (
        select(HandledUpdate.update_id).where(HandledUpdate.update_id == update_id).exists().label("handled")
    )
    rows = (
        await session.execute(
            select(User, Officer, RTHead, handled_already)
            .select_from(User)
            .outerjoin(Officer, and_(Officer.user_id == User.id, Officer.revoked_at.is_(None)))
            .outerjoin(RTHead, and_(RTHead.user_id == User.id, RTHead.status.in_((REG_PENDING, REG_VERIFIED))))
            .where(User.id == user_id)
            .order_by(Officer.id, RTHead.id)
        )
    ).all()
    if not rows:  # a new user (or one erased and gone): no roles yet
        if await session.scalar(select(handled_already)):
            return UpdateContext(True, None, None)
        user = await ensure_user(session, user_id, first_name, last_name, username)
        roles = Roles(is_admin=user_id in admin_ids, officer=None, rt_head=None, pending=None)
        return UpdateContext(False, user, roles)
    if rows[0].handled:
        return UpdateContext(True, None, None)
    user = rows[0].User
    officer = next((r.Officer for r in rows if r.Officer is not None), None)
    heads = list({r.RTHead.id: r.RTHead for r in rows if r.RTHead is not None}.values())
    verified = next((h for h in heads if h.status == REG_VERIFIED), None)
    pending = next((h for h in heads if h.status == REG_PENDING), None)
    if user.blocked_bot or (user.first_name, user.last_name, user.username) != (first_name, last_name, username):
        user = await ensure_user(session, user_id, first_name, last_name, username)
    roles = Roles(is_admin=user_id in admin_ids, officer=officer, rt_head=verified, pending=pending)
    return UpdateContext(False, user, roles)


async def load_roles(session: AsyncSession, user_id: int, admin_ids: tuple[int, ...]) -> Roles:
    officer = await session.scalar(select(Officer).where(Officer.user_id == user_id, Officer.revoked_at.is_(None)))
    heads = (
        await session.scalars(
            select(RTHead).where(RTHead.user_id == user_id, RTHead.status.in_((REG_PENDING, REG_VERIFIED)))
        )
    ).all()
    verified = next((h for h in heads if h.status == REG_VERIFIED), None)
    pending = next((h for h in heads if h.status == REG_PENDING), None)
    return Roles(is_admin=user_id in admin_ids, officer=officer, rt_head=verified, pending=pending)


async def set_language(session: AsyncSession, user: User, language: str) -> User:
    if language not in SUPPORTED_LANGUAGES:
        raise ValueError(language)
    await begin_write(session)
    row = await session.get(User, user.id, populate_existing=True)
    row.language = language
    row.language_chosen = True
    await session.commit()
    return row


async def ensure_placeholder(session: AsyncSession, user_id: int, first_name: str = "") -> User:
    """A user row for someone appointed before they ever opened the bot (caller holds the write tx)."""
    user = await session.get(User, user_id)
    if user is None:
        user = User(id=user_id, first_name=first_name)
        session.add(user)
        await session.flush()
    return user
