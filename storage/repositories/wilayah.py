"""Read queries over the kecamatan → kelurahan → RT master data."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.permissions import LEVEL_KECAMATAN, LEVEL_KOTA, Scope
from storage.models import RT, Kecamatan, Kelurahan


async def list_kecamatan(session: AsyncSession) -> Sequence[Kecamatan]:
    return (await session.scalars(select(Kecamatan).order_by(Kecamatan.name))).all()


async def list_kelurahan(session: AsyncSession, kecamatan_id: int) -> Sequence[Kelurahan]:
    return (
        await session.scalars(select(Kelurahan).where(Kelurahan.kecamatan_id == kecamatan_id).order_by(Kelurahan.name))
    ).all()


async def list_rts(session: AsyncSession, kelurahan_id: int) -> Sequence[RT]:
    return (await session.scalars(select(RT).where(RT.kelurahan_id == kelurahan_id).order_by(RT.number))).all()


async def get_kecamatan(session: AsyncSession, kecamatan_id: int) -> Kecamatan | None:
    return await session.get(Kecamatan, kecamatan_id)


async def get_kelurahan(session: AsyncSession, kelurahan_id: int) -> Kelurahan | None:
    return await session.get(Kelurahan, kelurahan_id)


async def get_rt(session: AsyncSession, rt_id: int) -> RT | None:
    return await session.get(RT, rt_id)


async def find_rt(session: AsyncSession, kelurahan_id: int, number: int) -> RT | None:
    return await session.scalar(select(RT).where(RT.kelurahan_id == kelurahan_id, RT.number == number))


async def count_rts(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(RT)) or 0


def scope_filter(scope: Scope) -> ColumnElement[bool]:
    """WHERE clause on ``Kelurahan`` (joined) limiting rows to an officer's scope."""
    if scope.level == LEVEL_KOTA:
        return true()
    if scope.level == LEVEL_KECAMATAN:
        return Kelurahan.kecamatan_id == scope.kecamatan_id
    return Kelurahan.id == scope.kelurahan_id
