"""Media storage: content-addressed files under MEDIA_DIR, one row per content (SQLite and
PostgreSQL), photos verified with Pillow, documents limited to images and PDFs, size limit."""

from __future__ import annotations

import asyncio
import hashlib
import io

import pytest
from PIL import Image
from sqlalchemy import func, select

from bot.services import media
from storage.models import Media


def png(color=(200, 10, 10), size=(12, 7)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def jpeg(size=(30, 20)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buf, format="JPEG")
    return buf.getvalue()


PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n%%EOF\n"


def files_under(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


async def test_same_content_is_one_row_and_one_file(session, tmp_path):
    store = media.LocalMediaStore(tmp_path / "m")
    data = png()
    sha = hashlib.sha256(data).hexdigest()
    first = await media.save_media(session, store, data, "image/png")
    again = await media.save_media(session, store, data, "application/octet-stream")
    assert first.id == again.id
    assert (first.sha256, first.path, first.mime, first.size, first.width, first.height) == (
        sha,
        f"{sha[:2]}/{sha[2:4]}/{sha}.png",
        "image/png",
        len(data),
        12,
        7,
    )
    assert files_under(tmp_path / "m") == sorted([first.path, first.thumb_path])  # the original and its thumbnail
    assert store.open(first.path) == data and store.exists(first.path)
    other = await media.save_media(session, store, png(color=(0, 0, 255)), "image/png")
    assert other.id != first.id
    assert await session.scalar(select(func.count()).select_from(Media)) == 2


async def test_missing_file_is_written_again(session, tmp_path):
    store = media.LocalMediaStore(tmp_path / "m")
    row = await media.save_media(session, store, png(), "image/png")
    (tmp_path / "m" / row.path).unlink()
    again = await media.save_media(session, store, png(), "image/png")
    assert again.id == row.id and store.exists(row.path)


@pytest.mark.parametrize(
    ("data", "declared", "kind", "error", "mime", "size"),
    [
        (b"GIF89a not really", "image/gif", "photo", media.NotAnImage, None, None),
        (PDF, "application/pdf", "photo", media.NotAnImage, None, None),
        (b"\x00\x01 sticker bytes", "image/webp", "photo", media.NotAnImage, None, None),
        (b"PK\x03\x04 a zip", "application/zip", "document", media.UnsupportedFile, None, None),
        (b"", "image/png", "photo", media.EmptyFile, None, None),
        (PDF, "application/pdf", "document", None, "application/pdf", None),
        (jpeg(), "image/jpeg", "document", None, "image/jpeg", (30, 20)),
        (jpeg(), "application/octet-stream", "photo", None, "image/jpeg", (30, 20)),
    ],
)
async def test_content_is_checked(session, tmp_path, data, declared, kind, error, mime, size):
    store = media.LocalMediaStore(tmp_path / "m")
    if error is not None:
        with pytest.raises(error) as e:
            await media.save_media(session, store, data, declared, kind=kind)
        if hasattr(e.value, "mime"):
            assert e.value.mime == declared
        assert not (tmp_path / "m").exists() or files_under(tmp_path / "m") == []
        assert await session.scalar(select(func.count()).select_from(Media)) == 0
        return
    row = await media.save_media(session, store, data, declared, kind=kind)
    assert row.mime == mime
    assert (row.width, row.height) == (size or (None, None))
    assert row.path.endswith({"application/pdf": ".pdf", "image/jpeg": ".jpg"}[mime])


async def test_oversize_is_refused_with_its_size(session, tmp_path):
    store = media.LocalMediaStore(tmp_path / "m")
    data = png(size=(200, 200))
    with pytest.raises(media.FileTooLarge) as e:
        await media.save_media(session, store, data, "image/png", max_bytes=100)
    assert (e.value.size, e.value.limit) == (len(data), 100)
    assert media.DEFAULT_MAX_BYTES == 20 * 1024 * 1024
    with pytest.raises(media.FileTooLarge):
        await media.save_media(session, store, b"x" * (media.DEFAULT_MAX_BYTES + 1), "image/png")
    assert not (tmp_path / "m").exists()


async def test_same_photo_saved_at_once_by_two_updates(sessionmaker, tmp_path):
    store = media.LocalMediaStore(tmp_path / "m")
    data = jpeg()

    async def save():
        async with sessionmaker() as s:
            return (await media.save_media(s, store, data, "image/jpeg")).id

    ids = await asyncio.gather(save(), save(), save())
    assert len(set(ids)) == 1
    async with sessionmaker() as s:
        row = await s.get(Media, ids[0])
    assert files_under(tmp_path / "m") == sorted([row.path, row.thumb_path])  # once each


def test_local_store_is_atomic_and_stays_inside_its_root(tmp_path):
    store = media.LocalMediaStore(tmp_path)
    sha, rel = store.put(b"hello", ".txt")
    assert rel == f"{sha[:2]}/{sha[2:4]}/{sha}.txt"
    assert store.put(b"hello", ".txt") == (sha, rel)
    assert files_under(tmp_path) == [rel]  # no temp files left behind
    with pytest.raises(ValueError):
        store.open("../../etc/passwd")


# --- thumbnails and the overview sheet --------------------------------------------------------------


def test_thumbnail_is_small_upright_and_carries_no_gps():
    from fakeapi.media import make_jpeg

    original = make_jpeg(1600, 900, gps=(0.1335, 117.4988), taken_at="2026:05:01 10:00:00")
    thumb = media.make_thumbnail(original)
    with Image.open(io.BytesIO(thumb)) as img:
        assert img.format == "JPEG"
        assert max(img.size) == media.THUMB_SIZE
        assert img.size == (media.THUMB_SIZE, 180)  # aspect ratio kept
        assert not img.getexif()  # no location leaks through a thumbnail
    assert len(thumb) < len(original)
    assert media.make_thumbnail(b"%PDF-1.4 not an image") is None


def test_thumbnail_applies_exif_orientation():
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    Image.new("RGB", (400, 200), (10, 200, 10)).save(buf, "JPEG", exif=exif)
    with Image.open(io.BytesIO(media.make_thumbnail(buf.getvalue()))) as img:
        assert img.size[1] > img.size[0]  # portrait once upright


async def test_save_media_stores_a_thumbnail_next_to_the_original(session, tmp_path):
    from fakeapi.media import make_jpeg

    store = media.LocalMediaStore(tmp_path)
    row = await media.save_media(session, store, make_jpeg(1200, 800), "image/jpeg")
    assert row.thumb_path and row.thumb_path != row.path
    assert store.exists(row.thumb_path)
    assert await media.thumbnail(store, row) == store.open(row.thumb_path)
    pdf = await media.save_media(session, store, b"%PDF-1.4\n%%EOF\n", "application/pdf", kind="document")
    assert pdf.thumb_path is None
    assert await media.thumbnail(store, pdf) is None


async def test_thumbnail_is_made_from_the_original_when_missing(session, tmp_path):
    from fakeapi.media import make_jpeg

    store = media.LocalMediaStore(tmp_path)
    row = await media.save_media(session, store, make_jpeg(900, 900), "image/jpeg")
    (tmp_path / row.thumb_path).unlink()
    with Image.open(io.BytesIO(await media.thumbnail(store, row))) as img:
        assert img.size == (media.THUMB_SIZE, media.THUMB_SIZE)


def _pixel(sheet: bytes, xy: tuple[int, int]) -> tuple[int, int, int]:
    with Image.open(io.BytesIO(sheet)) as img:
        return img.convert("RGB").getpixel(xy)


def test_contact_sheet_grid_numbers_and_red_frames():
    from fakeapi.media import make_scene_jpeg

    thumbs = [media.make_thumbnail(make_scene_jpeg(seed)) for seed in range(5)]
    sheet = media.make_contact_sheet(thumbs, flagged={1})
    cell, gap = media.SHEET_CELL, media.SHEET_GAP
    with Image.open(io.BytesIO(sheet)) as img:
        assert img.size == (3 * cell + 4 * gap, 2 * cell + 3 * gap)  # 5 photos: 3 columns, 2 rows
    # the frame of photo 2 (flagged) is red; photo 1's edge is not
    r, g, b = _pixel(sheet, (gap + cell + gap + 2, gap + cell // 2))
    assert r > 180 and g < 90 and b < 90
    r, g, b = _pixel(sheet, (gap + 2, gap + cell // 2))
    assert not (r > 180 and g < 90 and b < 90)


def test_contact_sheet_keeps_numbering_when_a_thumbnail_is_missing():
    from fakeapi.media import make_scene_jpeg

    thumbs = [media.make_thumbnail(make_scene_jpeg(1)), None]
    sheet = media.make_contact_sheet(thumbs)
    assert sheet is not None
    # the missing one is a grey cell in its place
    assert _pixel(sheet, (media.SHEET_GAP * 2 + media.SHEET_CELL + media.SHEET_CELL // 2, media.SHEET_CELL - 10)) == (
        200,
        200,
        200,
    )
    assert media.make_contact_sheet([]) is None
    assert media.make_contact_sheet([None, None]) is None


async def test_contact_sheet_from_the_store(session, tmp_path):
    from fakeapi.media import make_scene_jpeg

    store = media.LocalMediaStore(tmp_path)
    rows = [await media.save_media(session, store, make_scene_jpeg(s), "image/jpeg") for s in range(3)]
    sheet = await media.contact_sheet(store, rows, flagged=[2])
    with Image.open(io.BytesIO(sheet)) as img:
        assert img.format == "JPEG"
        assert img.size == (2 * media.SHEET_CELL + 3 * media.SHEET_GAP, 2 * media.SHEET_CELL + 3 * media.SHEET_GAP)
