"""Stored photos whose Telegram file id no longer works (a file id belongs to one bot: after the token
changed, or with data another bot stored, Telegram answers 400 "wrong file identifier/HTTP URL
specified"): the bot uploads its stored copy instead and remembers the new file id, so the next
showing is sent by file id again."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, update

from fakeapi.media import make_scene_jpeg
from storage.models import ProgressMedia
from tests.e2e.conftest import t
from tests.e2e.test_progress_verify import NEAR, approved, now_wita, reported
from tests.e2e.test_public import approve, report
from tests.e2e.test_review import seed, start_chat, submitted

pytestmark = pytest.mark.e2e

WRONG_FILE = "Bad Request: wrong file identifier/HTTP URL specified"
# Shaped like a photo's file id, but of another bot: this one's Telegram does not know it.
FOREIGN = "AgACAgUAAxkBAAIC{n}WZmb3JlaWduLWJvdC1maWxlAAJ5ugAC"


async def _make_file_ids_foreign(db, url: str) -> list[str]:
    async with db(url) as s:
        rows = (await s.scalars(select(ProgressMedia).order_by(ProgressMedia.id))).all()
        for n, row in enumerate(rows):
            await s.execute(
                update(ProgressMedia).where(ProgressMedia.id == row.id).values(telegram_file_id=FOREIGN.format(n=n))
            )
        await s.commit()
        return [FOREIGN.format(n=n) for n in range(len(rows))]


async def _file_ids(db, url: str) -> list[str | None]:
    async with db(url) as s:
        return list((await s.scalars(select(ProgressMedia.telegram_file_id).order_by(ProgressMedia.id))).all())


async def _kept_file_ids(db, url: str, foreign: list[str]) -> list[str | None]:
    """The rows' file ids once none is a foreign one any more (the bot writes them after sending)."""
    for _ in range(100):
        kept = await _file_ids(db, url)
        if not set(kept) & set(foreign):
            return kept
        await asyncio.sleep(0.05)
    return kept


async def _calls(tg, after: int, *methods: str) -> list:
    """The calls of ``methods`` after ``after``, once answered (a message reaches the user just
    before its call's answer is recorded)."""
    for _ in range(100):
        calls = [c for c in tg.calls if c.seq > after and c.method in methods]
        if all(c.done for c in calls):
            return calls
        await asyncio.sleep(0.02)
    return calls


def _uploads(call) -> bool:
    """Whether a send call carried files rather than file ids."""
    media = call.params.get("media")
    if isinstance(media, list):
        return all(str(item["media"]).startswith("attach://") for item in media)
    value = call.params.get("photo") or call.params.get("document")
    return isinstance(value, dict) or str(value).startswith("attach://")


async def test_public_card_album_with_foreign_file_ids_is_uploaded_and_the_new_ids_kept(
    tg, launch, sqlite_url, db, tmp_path
):
    await launch(sqlite_url)
    officer = tg.user("Rina", "Petugas", language_code="id")
    head = tg.user("Budi", language_code="id")
    warga = tg.user("Siti", language_code="id")
    await start_chat(officer, head, warga)
    w = await seed(db, sqlite_url, tmp_path, officer, head)
    p = await submitted(db, tg, w, "Semenisasi gang Mawar")
    await approve(db, w, officer, p.id)
    await report(db, tg, w, p.id, 40, 1_500_000, photos=2, note="Tahap 1")
    foreign = await _make_file_ids_foreign(db, sqlite_url)

    after = tg.calls[-1].seq
    await warga.send(p.code)
    await warga.wait_message([p.code, "Semenisasi gang Mawar"])
    album = await warga.wait_messages(2)
    assert all(m.photo for m in album) and album[0].media_group_id == album[1].media_group_id
    groups = await _calls(tg, after, "sendMediaGroup")
    assert [c.status for c in groups] == [400, 200]
    assert groups[0].description == WRONG_FILE
    assert _uploads(groups[1])  # the stored copies
    kept = await _kept_file_ids(db, sqlite_url, foreign)
    assert kept == [m.photo[-1]["file_id"] for m in album]

    # Shown again: by the remembered file ids, without a 400.
    after = tg.calls[-1].seq
    await warga.send(p.code)
    await warga.wait_message([p.code, "Semenisasi gang Mawar"])
    again = await warga.wait_messages(2)
    assert all(m.photo for m in again)
    groups = await _calls(tg, after, "sendMediaGroup")
    assert [c.status for c in groups] == [200] and not _uploads(groups[0])


async def test_progress_verify_photos_and_receipt_with_foreign_file_ids_are_uploaded(
    tg, launch, sqlite_url, db, tmp_path
):
    await launch(sqlite_url)
    officer = tg.user("Rina", language_code="id")
    head = tg.user("Budi", language_code="id")
    await start_chat(officer, head)
    w = await seed(db, sqlite_url, tmp_path, officer, head)
    p = await approved(db, tg, w, officer, "Semenisasi gang Mawar")
    photos = [make_scene_jpeg(n, taken_at=now_wita(), gps=NEAR) for n in (1, 2)]
    await reported(db, tg, w, p, 30, 1_000_000, photos, location=NEAR, receipts=[make_scene_jpeg(50)])
    await officer.wait_message([p.code, t("🔎 Check the report")], timeout=15)
    foreign = await _make_file_ids_foreign(db, sqlite_url)

    await officer.send("/verifikasi_progres")
    card = await officer.wait_message([p.code, "30%", t("✅ Verified")])
    after = tg.calls[-1].seq
    await officer.press(t("🖼 Photos ({count})").format(count=2), message=card)
    album = [await officer.wait_message(predicate=lambda m: bool(m.photo) and bool(m.media_group_id)) for _ in range(2)]
    assert p.code in (album[0].caption or "")
    groups = await _calls(tg, after, "sendMediaGroup")
    assert [c.status for c in groups] == [400, 200] and groups[0].description == WRONG_FILE
    assert _uploads(groups[1])

    after = tg.calls[-1].seq
    await officer.press(t("🧾 Receipts ({count})").format(count=1), message=card)
    receipt = await officer.wait_message(predicate=lambda m: m.photo is not None and not m.media_group_id)
    assert p.code in (receipt.caption or "")
    sends = await _calls(tg, after, "sendPhoto", "sendDocument")
    assert [c.status for c in sends] == [400, 200] and sends[0].description == WRONG_FILE
    assert sends[1].method == "sendPhoto" and _uploads(sends[1])

    kept = await _kept_file_ids(db, sqlite_url, foreign)
    assert None not in kept and not set(kept) & set(foreign)
    assert kept[:2] == [m.photo[-1]["file_id"] for m in album] and kept[2] == receipt.photo[-1]["file_id"]
