"""Stored files nothing refers to any more are deleted after ``MEDIA_ORPHAN_DAYS`` (default 30).

A photo or file is stored (row in ``media``, file in the media store) the moment it arrives, before
the dialog it belongs to is finished: so a report the Ketua RT cancels, a photo they remove from
a draft proposal, or an aspiration never sent leaves stored files behind. Files of the record (a
proposal's photos and musyawarah evidence, also of a withdrawn one; a report's site photos and
receipts; an aspiration's photo) are never touched. A file counts as an orphan when

* it is older than the retention (``created_at``; drafts are not hurried),
* no proposal, progress report or aspiration refers to it, and
* no open dialog refers to it: the dialog data of every user (the ``fsm_states`` table and, with
  ``REDIS_URL``, Redis) is read first, so a report left half-way on Friday keeps its photos however
  long it waits (:data:`DRAFT_MEDIA_KEYS`, :data:`DRAFT_FILE_LIST_KEYS`: where dialogs keep ids).

Rows go first, in one write transaction whose ``DELETE`` repeats the "nothing refers to it" test
(and the foreign keys refuse a row that a new reference claimed meanwhile); the files go after the
commit, each only if no row names its path by then (the same content stored again since gets the
same content-addressed path).

Left as it is: a month-old orphan whose very content is sent again in the same instant as its
deletion can lose its row or file under the new dialog. A progress report then asks for that photo
again (``handlers/progress/report.MediaGone``); an aspiration's send fails with the general error
message, and its dialog stays to be sent again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.services.media import MediaStore
from storage.db import begin_write
from storage.models import Aspiration, FSMRecord, Media, ProgressMedia, ProposalMedia

log = logging.getLogger("prolita.media")

# Keys of dialog data holding one media id (the aspiration dialog's photo) or a list of
# ``[media_id, file_id, file_unique_id]`` (the progress report's site photos and receipts).
DRAFT_MEDIA_KEYS = ("media_id",)
DRAFT_FILE_LIST_KEYS = ("photos", "receipts")
BATCH = 500
REDIS_MATCH = "fsm:*:data"  # aiogram's DefaultKeyBuilder: fsm:<bot>:<chat>:<user>:<destiny>:data


@dataclass(frozen=True)
class Pruned:
    rows: int
    files: int
    bytes: int


def draft_media_ids(data: Mapping[str, Any]) -> set[int]:
    """The media ids one dialog's data refers to."""
    ids: set[int] = set()
    for key in DRAFT_MEDIA_KEYS:
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            ids.add(value)
    for key in DRAFT_FILE_LIST_KEYS:
        items = data.get(key)
        if isinstance(items, list):
            for item in items:
                if isinstance(item, list | tuple) and item and isinstance(item[0], int):
                    ids.add(item[0])
    return ids


async def drafts_in_database(session: AsyncSession) -> set[int]:
    ids: set[int] = set()
    for data in (await session.scalars(select(FSMRecord.data))).all():
        if isinstance(data, Mapping):
            ids |= draft_media_ids(data)
    return ids


async def drafts_in_redis(redis: Any) -> set[int]:
    """Media ids in the dialog data kept in Redis (``redis.asyncio.Redis``)."""
    ids: set[int] = set()
    async for key in redis.scan_iter(match=REDIS_MATCH, count=500):
        raw = await redis.get(key)
        if not raw:
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        if isinstance(data, Mapping):
            ids |= draft_media_ids(data)
    return ids


def _unreferenced() -> Any:
    return ~or_(
        exists().where(ProposalMedia.media_id == Media.id),
        exists().where(ProgressMedia.media_id == Media.id),
        exists().where(Aspiration.media_id == Media.id),
    )


async def orphans(session: AsyncSession, before: dt.datetime, keep: Iterable[int], limit: int = BATCH) -> list[Media]:
    """Media rows created before ``before`` that nothing refers to, except the ids in ``keep``."""
    keep = set(keep)
    query = select(Media).where(Media.created_at < before, _unreferenced()).order_by(Media.id)
    rows = (await session.scalars(query.limit(limit + len(keep)))).all()
    return [m for m in rows if m.id not in keep][:limit]


async def prune(
    sessionmaker: async_sessionmaker[AsyncSession],
    store: MediaStore,
    now: dt.datetime,
    older_than: dt.timedelta,
    *,
    redis: Any = None,
    limit: int = BATCH,
) -> Pruned:
    """Delete up to ``limit`` orphaned files older than ``older_than`` (rows, then files)."""
    async with sessionmaker() as session:
        keep = await drafts_in_database(session)
        if redis is not None:
            keep |= await drafts_in_redis(redis)
        await begin_write(session)
        found = await orphans(session, now - older_than, keep, limit)
        if not found:
            await session.rollback()
            return Pruned(0, 0, 0)
        ids = [m.id for m in found]
        paths = {m.id: [p for p in (m.path, m.thumb_path) if p] for m in found}
        sizes = {m.id: m.size for m in found}
        gone = (
            await session.scalars(delete(Media).where(Media.id.in_(ids), _unreferenced()).returning(Media.id))
        ).all()
        await session.commit()
    files = size = 0
    async with sessionmaker() as session:
        for media_id in gone:
            for path in paths[media_id]:
                named = await session.scalar(
                    select(Media.id).where(or_(Media.path == path, Media.thumb_path == path)).limit(1)
                )
                if named is not None:  # the same content was stored again meanwhile
                    continue
                if await asyncio.to_thread(store.delete, path):
                    files += 1
            size += sizes[media_id]
    if gone:
        log.info(
            "media: deleted %d stored file(s) nothing referred to for %d days (%d files with thumbnails, %.1f MB)",
            len(gone), older_than.days, files, size / 1_000_000,
        )  # fmt: skip
    return Pruned(len(gone), files, size)
