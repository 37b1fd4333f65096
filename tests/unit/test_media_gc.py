"""Stored files nothing refers to (a cancelled report's photos, a deleted draft's) are deleted after
MEDIA_ORPHAN_DAYS, on SQLite and PostgreSQL; files of the record, young files and files an open dialog
(in the database or in Redis) still holds are kept."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from aiogram.fsm.storage.base import StorageKey
from sqlalchemy import func, select, update

from bot.services import aspirations, media, progress, proposals
from bot.services.media_gc import draft_media_ids, prune
from fakeapi.media import make_jpeg, make_scene_jpeg
from storage.db import begin_write
from storage.fsm import SQLStorage
from storage.models import Media, ProposalMedia
from tests.unit.test_progress_service import approved_proposal, good_photo
from tests.unit.test_proposals_service import setup_world
from tests.unit.test_redis_storage import TEST_REDIS_URL, _redis_reason

DAYS = dt.timedelta(days=30)


def test_draft_media_ids_reads_the_dialogs_keys():
    assert draft_media_ids({"media_id": 7, "file_id": "AgAD"}) == {7}
    report = {"photos": [[3, "AgAD-3", "uq-3"], [4, "AgAD-4", "uq-4"]], "receipts": [[5, "BQ", "uq"]]}
    assert draft_media_ids(report) == {3, 4, 5}
    # Anything else is not a media id: absent, None, a bool, a string, malformed lists.
    assert draft_media_ids({"media_id": None, "photos": [], "receipts": None}) == set()
    assert draft_media_ids({"media_id": True, "photos": ["3", [], ["x"]], "proposal_id": 9}) == set()


async def _age(sessionmaker, media_ids, days: int) -> None:
    async with sessionmaker() as s:
        await begin_write(s)
        when = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
        await s.execute(update(Media).where(Media.id.in_(list(media_ids))).values(created_at=when))
        await s.commit()


async def _ids(sessionmaker) -> set[int]:
    async with sessionmaker() as s:
        return set((await s.scalars(select(Media.id))).all())


async def test_orphans_go_record_files_young_files_and_drafts_stay(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    head = w.heads[0]
    p = await approved_proposal(sessionmaker, w)  # its photo and musyawarah PDF are the record
    async with sessionmaker() as s:
        reported = await good_photo(s, w, 1)
        await progress.report(s, head, p.id, percent=30, spent_total=1_000_000, photos=[reported])
        aspiration_photo = await media.save_media(s, w.store, make_jpeg(color=(10, 200, 10)), "image/jpeg")
        await aspirations.submit(s, head, w.rt_ids[0], "Lampu jalan gang 3 mati.", media_id=aspiration_photo.id)
        cancelled = [await media.save_media(s, w.store, make_scene_jpeg(seed), "image/jpeg") for seed in (40, 41)]
        in_draft = await media.save_media(s, w.store, make_scene_jpeg(42), "image/jpeg")
        fresh = await media.save_media(s, w.store, make_scene_jpeg(43), "image/jpeg")
        draft_proposal = await proposals.create_draft(s, head, w.rt_ids[0], w.program)
        removed_photo = await media.save_media(s, w.store, make_scene_jpeg(44), "image/jpeg")
        link = await proposals.attach_media(s, draft_proposal, removed_photo, "foto_awal", "AgAD-44", "uq-44")
        await proposals.remove_media(s, draft_proposal, link.id)  # "🗑" on a draft's photo
        record = set((await s.scalars(select(ProposalMedia.media_id))).all()) | {reported.media.id, aspiration_photo.id}
    everything = await _ids(sessionmaker)
    await _age(sessionmaker, everything - {fresh.id}, days=31)
    # A report left half-way keeps its photos in the dialog data, however long it waits.
    fsm = SQLStorage(sessionmaker)
    key = StorageKey(bot_id=1, chat_id=head, user_id=head)
    await fsm.set_data(key, {"proposal_id": p.id, "photos": [[in_draft.id, "AgAD-42", "uq-42"]], "receipts": []})
    orphaned = [*cancelled, removed_photo]
    files = [m.path for m in orphaned] + [m.thumb_path for m in orphaned]
    assert all(w.store.exists(f) for f in files)

    result = await prune(sessionmaker, w.store, dt.datetime.now(dt.UTC), DAYS)

    assert (result.rows, result.files) == (3, 6)  # each file and its thumbnail
    assert result.bytes == sum(m.size for m in orphaned)
    assert await _ids(sessionmaker) == everything - {m.id for m in orphaned}
    assert not any(w.store.exists(f) for f in files)
    async with sessionmaker() as s:
        for kept in (*record, in_draft.id, fresh.id):
            row = await s.get(Media, kept)
            assert row is not None and w.store.exists(row.path), kept
    # Nothing more to do; once the dialog is cancelled its photo goes too.
    assert (await prune(sessionmaker, w.store, dt.datetime.now(dt.UTC), DAYS)).rows == 0
    await fsm.set_data(key, {})
    assert (await prune(sessionmaker, w.store, dt.datetime.now(dt.UTC), DAYS)).rows == 1
    assert not w.store.exists(in_draft.path)
    # 31 days on, the file that was fresh is an orphan as well.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
    assert (await prune(sessionmaker, w.store, later, DAYS)).rows == 1
    assert await _ids(sessionmaker) == record


async def test_a_path_named_again_keeps_its_file_and_batches_are_limited(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    async with sessionmaker() as s:
        old = [await media.save_media(s, w.store, make_scene_jpeg(seed), "image/jpeg") for seed in (50, 51, 52)]
        # The same content stored again under a new row (as save_media would after the row went):
        # the file is named by a row that stays, so it must stay.
        await begin_write(s)
        s.add(Media(sha256="f" * 64, path=old[0].path, mime="image/jpeg", size=old[0].size, thumb_path=None))
        await s.commit()
        again = await s.scalar(select(Media).where(Media.sha256 == "f" * 64))
        await proposals.attach_media(
            s, await proposals.create_draft(s, w.heads[0], w.rt_ids[0], w.program), again, "foto_awal", "AgAD", "uq"
        )
    await _age(sessionmaker, [m.id for m in old] + [again.id], days=40)
    first = await prune(sessionmaker, w.store, dt.datetime.now(dt.UTC), DAYS, limit=2)
    assert first.rows == 2
    assert first.files == 3  # old[0]'s thumbnail, but not its file, and old[1]'s file and thumbnail
    assert w.store.exists(old[0].path) and not w.store.exists(old[0].thumb_path)
    second = await prune(sessionmaker, w.store, dt.datetime.now(dt.UTC), DAYS, limit=2)
    assert (second.rows, second.files) == (1, 2)
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Media)) == 1 + 2  # `again` and the world's two


async def test_dialogs_kept_in_redis_keep_their_files(sessionmaker, tmp_path):
    reason = await _redis_reason()
    if reason:
        pytest.skip(reason)
    from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisStorage

    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    async with sessionmaker() as s:
        held = await media.save_media(s, w.store, make_scene_jpeg(60), "image/jpeg")
        loose = await media.save_media(s, w.store, make_scene_jpeg(61), "image/jpeg")
    await _age(sessionmaker, [held.id, loose.id], days=31)
    # Written exactly as the bot writes dialog data with REDIS_URL (bot/app.build_storage).
    storage = RedisStorage.from_url(TEST_REDIS_URL, key_builder=DefaultKeyBuilder(with_destiny=True))
    key = StorageKey(bot_id=random.randrange(10**9, 2 * 10**9), chat_id=77, user_id=77)
    try:
        await storage.set_data(key, {"media_id": held.id, "file_id": "AgAD-60"})
        result = await prune(sessionmaker, w.store, dt.datetime.now(dt.UTC), DAYS, redis=storage.redis)
        assert result.rows == 1
        assert await _ids(sessionmaker) >= {held.id} and loose.id not in await _ids(sessionmaker)
    finally:
        await storage.set_data(key, {})
        await storage.close()


async def test_the_nightly_job_follows_the_settings(sessionmaker, tmp_path):
    from bot.clock import FakeClock
    from bot.config import Settings
    from bot.scheduler import media_gc_job

    w = await setup_world(sessionmaker, tmp_path, n_rts=1)  # stores a photo and a PDF nothing uses yet
    async with sessionmaker() as s:
        orphan = await media.save_media(s, w.store, make_scene_jpeg(70), "image/jpeg")
    settings = Settings(bot_token=None, media_dir=tmp_path / "media", media_orphan_days=30)
    now = dt.datetime.now(dt.UTC)
    assert await media_gc_job(sessionmaker, settings, FakeClock(now + dt.timedelta(days=29))) == 0
    assert w.store.exists(orphan.path)
    assert await media_gc_job(sessionmaker, settings, FakeClock(now + dt.timedelta(days=31))) == 3
    assert not w.store.exists(orphan.path) and await _ids(sessionmaker) == set()
