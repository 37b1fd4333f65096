"""The reused-photo check reads only the stored photos that can be near a new one: each 64-bit
perceptual hash is kept as four indexed 16-bit bands, and a stored hash within 6 bits of a new one
always shares a band within 1 bit (pigeonhole). On SQLite and PostgreSQL, with the migration that
fills in the bands of rows stored before it."""

from __future__ import annotations

import random

from alembic import command
from sqlalchemy import select, update

from bot.domain.evidence import HASH_DISTANCE, hamming
from bot.services import progress
from storage.migrate import alembic_config
from storage.models import ProgressMedia, phash_bands
from storage.repositories import progress as repo
from tests.unit.test_progress_service import approved_proposal, good_photo
from tests.unit.test_proposals_service import setup_world


def _flip(phash: str, bits: int, rng: random.Random) -> str:
    value = int(phash, 16)
    for bit in rng.sample(range(64), bits):
        value ^= 1 << bit
    return f"{value:016x}"


def test_bands_and_neighbourhoods():
    assert phash_bands("0123456789abcdef") == (0x0123, 0x4567, 0x89AB, 0xCDEF)
    assert phash_bands(None) is None and phash_bands("") is None
    assert phash_bands("abc") is None and phash_bands("zz23456789abcdef") is None  # another length; not hex
    near1 = repo.band_neighbourhood(0x00FF, 1)
    assert len(near1) == 17 and near1[0] == 0x00FF and len(set(near1)) == 17
    assert all((v ^ 0x00FF).bit_count() <= 1 for v in near1)
    near2 = repo.band_neighbourhood(0x1234, 2)
    assert len(set(near2)) == 1 + 16 + 120 and all((v ^ 0x1234).bit_count() <= 2 for v in near2)


def test_pigeonhole_every_hash_within_the_distance_shares_a_near_band():
    rng = random.Random(7)
    for _ in range(3000):
        new = f"{rng.getrandbits(64):016x}"
        stored = _flip(new, rng.randint(0, HASH_DISTANCE), rng)
        radius = HASH_DISTANCE // 4
        pairs = zip(phash_bands(new), phash_bands(stored), strict=True)
        assert any(s in repo.band_neighbourhood(n, radius) for n, s in pairs), (new, stored)


async def _stored_hashes(sessionmaker, tmp_path, hashes: list[str]) -> None:
    """Progress photo rows with these hashes (on one report; only the hashes matter here)."""
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    p = await approved_proposal(sessionmaker, w)
    async with sessionmaker() as s:
        photo = await good_photo(s, w, 1)
        report = await progress.report(s, w.heads[0], p.id, percent=10, spent_total=0, photos=[photo])
        for position, phash in enumerate(hashes, 1):
            s.add(ProgressMedia(report_id=report.id, media_id=photo.media.id, kind="foto_progres",
                                position=position, phash=phash))  # fmt: skip
        await s.commit()


async def test_only_rows_that_can_be_near_are_read_and_none_that_is_near_is_missed(sessionmaker, tmp_path):
    rng = random.Random(11)
    target = f"{rng.getrandbits(64):016x}"
    near = [_flip(target, rng.randint(0, HASH_DISTANCE), rng) for _ in range(60)]
    far = [f"{rng.getrandbits(64):016x}" for _ in range(400)]
    odd = "abc123"  # a hash of another length has no bands: always compared
    await _stored_hashes(sessionmaker, tmp_path, near + far + [odd])
    async with sessionmaker() as s:
        everything = {h.phash for h in await repo.photo_hashes(s, "foto_progres")}
        found = {h.phash for h in await repo.photo_hashes(s, "foto_progres", near=[target], distance=HASH_DISTANCE)}
        assert everything >= set(near + far) | {odd}
        assert set(near) <= found and odd in found
        read_far = [h for h in found if h in far]
        assert len(read_far) <= 5, len(read_far)  # ~4 × 17 / 65536 of random hashes
        assert all(hamming(target, h) > HASH_DISTANCE for h in read_far)
        # Nothing new to compare: nothing read. A distance past the bands' reach: every row.
        assert await repo.photo_hashes(s, "foto_progres", near=[], distance=HASH_DISTANCE) == []
        wide = {h.phash for h in await repo.photo_hashes(s, "foto_progres", near=[target], distance=12)}
        assert wide == everything
        # A new hash of another length cannot be cut in bands: every row is compared.
        assert {h.phash for h in await repo.photo_hashes(s, "foto_progres", near=["abc"], distance=6)} == everything


async def test_the_migration_fills_in_the_bands_of_earlier_rows(engine, sessionmaker, tmp_path):
    hashes = ["0123456789abcdef", "fedcba9876543210", "abc123"]
    await _stored_hashes(sessionmaker, tmp_path, hashes)
    async with sessionmaker() as s:  # as rows stored before migration 0010 were
        await s.execute(update(ProgressMedia).values(phash_b0=None, phash_b1=None, phash_b2=None, phash_b3=None))
        await s.commit()

    def migrate(connection, revision: str, down: bool) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(migrate, "0009", True)
    async with engine.begin() as conn:
        await conn.run_sync(migrate, "head", False)
    async with sessionmaker() as s:
        rows = (await s.execute(select(ProgressMedia.phash, ProgressMedia.phash_b0, ProgressMedia.phash_b1,
                                       ProgressMedia.phash_b2, ProgressMedia.phash_b3))).all()  # fmt: skip
    by_hash = {r[0]: tuple(r[1:]) for r in rows}
    assert by_hash["0123456789abcdef"] == (0x0123, 0x4567, 0x89AB, 0xCDEF)
    assert by_hash["fedcba9876543210"] == (0xFEDC, 0xBA98, 0x7654, 0x3210)
    assert by_hash["abc123"] == (None, None, None, None)
    assert all(v == phash_bands(h) for h, v in by_hash.items() if len(h) == 16)
