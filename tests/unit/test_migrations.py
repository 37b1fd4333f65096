from sqlalchemy import func, select

from storage.migrate import current_revision, upgrade
from storage.models import Kecamatan, Kelurahan


async def test_migrations_seed_bontang_and_are_idempotent(engine, sessionmaker):
    # The fixture already upgraded once; a second upgrade must change nothing.
    await upgrade(engine)
    assert await current_revision(engine) is not None
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Kecamatan)) == 3
        assert await s.scalar(select(func.count()).select_from(Kelurahan)) == 15
        names = set((await s.scalars(select(Kelurahan.name))).all())
        assert {"Api-Api", "Tanjung Laut Indah", "Kanaan", "Gunung Telihan"} <= names
