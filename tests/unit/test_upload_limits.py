"""Upload limits (issue 18): an image declaring more pixels than allowed is refused from its header,
before anything decodes it (upload check, thumbnail, EXIF, perceptual hash), with nothing stored and
the process's memory hardly moving; a PDF is stored as it came, never inflated; a download stops at
the size limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from bot.domain import evidence, uploads
from bot.services import media
from handlers.media import Incoming, fetch
from storage.models import Media
from tests.hostile_files import gif_declaring, jpeg_declaring, pdf_flate_bomb, png_bomb, png_text_bomb

ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024

# 400 MP: over twice the limit, so Pillow's own DecompressionBombError fires while opening.
# 81 MP: between the limit and twice it (under Pillow's default limit of 89 MP, which only warns
# above): Pillow's warning, made an error, and the header check.
BOMBS = {
    "png-20000x20000": lambda: png_bomb(20_000, 20_000),
    "png-9000x9000": lambda: png_bomb(9_000, 9_000),
    "jpeg-header-40000x40000": lambda: jpeg_declaring(40_000, 40_000),
    "gif-header-30000x30000": lambda: gif_declaring(30_000, 30_000),
}


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_the_limits_are_explicit_and_pillow_is_held_to_them():
    assert uploads.MAX_FILE_BYTES == 20 * MB == media.DEFAULT_MAX_BYTES
    assert uploads.MAX_IMAGE_PIXELS == 50_000_000
    assert not uploads.too_many_pixels(8160, 6120)  # a 50 MP phone original sent as a file
    assert uploads.too_many_pixels(8200, 6200)
    media.inspect_image(png_bomb(16, 16))
    from PIL import Image, PngImagePlugin

    assert Image.MAX_IMAGE_PIXELS == uploads.MAX_IMAGE_PIXELS
    assert PngImagePlugin.MAX_TEXT_MEMORY == uploads.MAX_PNG_TEXT_BYTES


@pytest.mark.parametrize("name", list(BOMBS))
def test_an_image_over_the_pixel_limit_is_refused_by_every_reader(name):
    data = BOMBS[name]()
    assert len(data) < 64 * 1024  # a few KB on disk
    with pytest.raises(uploads.ImageTooLarge) as refused:
        media.inspect_image(data)
    assert refused.value.limit == uploads.MAX_IMAGE_PIXELS
    assert media.make_thumbnail(data) is None
    assert media.make_contact_sheet([data]) is None
    assert evidence.read_exif(data) == evidence.NO_INFO
    assert evidence.perceptual_hash(data) is None


@pytest.mark.parametrize("kind", [media.KIND_PHOTO, media.KIND_DOCUMENT])
@pytest.mark.parametrize("name", ["png-20000x20000", "png-9000x9000"])
async def test_save_media_refuses_it_and_stores_nothing(session, tmp_path, kind, name):
    store = media.LocalMediaStore(tmp_path / "m")
    with pytest.raises(media.ImageTooLarge):
        await media.save_media(session, store, BOMBS[name](), "image/png", kind=kind)
    assert files_under(tmp_path / "m") == []
    assert await session.scalar(select(func.count()).select_from(Media)) == 0
    ok = await media.save_media(session, store, png_bomb(640, 480), "image/png", kind=kind)  # still works after
    assert (ok.width, ok.height, ok.mime) == (640, 480, "image/png") and ok.thumb_path


# How much a fresh process's peak memory (VmHWM, reset just before) rises above what it held while every
# reader of uploaded images runs on one file: the upload check, the thumbnail, the overview sheet,
# EXIF and the perceptual hash. In a subprocess: Pillow's pixels are not Python objects (tracemalloc
# does not see them), and this process's peak is already whatever earlier tests reached.
MEASURE = r"""
import json, re, sys
import imagehash, numpy, scipy.fftpack  # the libraries are loaded before the baseline
from PIL import Image, ImageOps
from bot.domain import evidence
from bot.services import media
from tests.hostile_files import png_bomb

def status_kb(field):
    with open("/proc/self/status") as f:
        return int(re.search(field + r":\s+(\d+)", f.read()).group(1))

width, height = int(sys.argv[1]), int(sys.argv[2])
data = png_bomb(width, height)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak to what is resident now
before = status_kb("VmRSS")
outcome = {}
for name, read in [("inspect", media.inspect_image), ("thumbnail", media.make_thumbnail),
                   ("sheet", lambda d: media.make_contact_sheet([media.make_thumbnail(d)])),
                   ("exif", evidence.read_exif), ("phash", evidence.perceptual_hash)]:
    try:
        result = read(data)
        outcome[name] = "none" if result is None else "ok"
    except Exception as exc:
        outcome[name] = type(exc).__name__
grew = (status_kb("VmHWM") - before) / 1024
print(json.dumps({"outcome": outcome, "grew_mb": round(grew, 1), "file_kb": round(len(data) / 1024, 1)}))
"""
needs_proc = pytest.mark.skipif(
    not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux's /proc/self/clear_refs to reset the peak"
)


def _measure(width: int, height: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(width), str(height)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "DecompressionBomb" not in done.stderr, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_proc
@pytest.mark.parametrize(("width", "height"), [(20_000, 20_000), (9_000, 9_000)])
def test_refusing_a_bomb_keeps_memory_bounded(width, height):
    measured = _measure(width, height)
    print(f"{width}x{height}: {measured}")
    assert measured["outcome"]["inspect"] == "ImageTooLarge"
    assert {measured["outcome"][k] for k in ("thumbnail", "sheet", "phash")} == {"none"}
    assert measured["grew_mb"] < 100, measured  # 400 MB to 1.6 GB had the pixels been decoded


@needs_proc
def test_an_image_just_under_the_limit_is_read_within_a_bound():
    # 7,000 × 7,000 = 49 MP, a 6 KB file: accepted, and decoded once at full size (49 MB for this
    # 1-bit image); the thumbnail is reduced before it is turned upright or made RGBA (which took
    # 470 MB before the limits), the hash goes through greyscale first.
    measured = _measure(7_000, 7_000)
    print(f"7000x7000: {measured}")
    assert measured["outcome"] == {"inspect": "ok", "thumbnail": "ok", "sheet": "ok", "exif": "ok", "phash": "ok"}
    assert measured["grew_mb"] < 220, measured


def test_png_text_chunks_are_not_inflated_past_the_limit():
    data = png_text_bomb(chunks=48)  # 48 MB of text: under Pillow's own 64 MB, over our 4 MB
    tracemalloc.start()
    try:
        assert media.inspect_image(data) is None
        assert media.make_thumbnail(data) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"PNG text bomb: Python memory peak {peak / MB:.1f} MB")
    assert peak < 16 * MB, peak
    assert media.inspect_image(png_text_bomb(chunks=2)) is not None  # a little text is fine


async def test_a_pdf_is_stored_as_it_came_and_never_inflated(session, tmp_path):
    data = pdf_flate_bomb(512)  # a content stream that inflates to 512 MB
    assert len(data) < 1 * MB
    store = media.LocalMediaStore(tmp_path / "m")
    tracemalloc.start()
    try:
        row = await media.save_media(session, store, data, "application/pdf", kind=media.KIND_DOCUMENT)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"storing a PDF bomb: Python memory peak {peak / MB:.1f} MB")
    assert peak < 100 * MB, peak
    assert (row.mime, row.size, row.thumb_path, row.width) == ("application/pdf", len(data), None, None)
    assert store.open(row.path) == data
    assert await media.thumbnail(store, row) is None
    with pytest.raises(media.NotAnImage):  # and it is no photo
        await media.save_media(session, store, data, "application/pdf", kind=media.KIND_PHOTO)


# --- before and while downloading (handlers/media.fetch) ------------------------------------------------


class FakeDownloads:
    """The two Bot API calls fetch makes: getFile (declaring ``declared`` bytes) and the download,
    which sends ``chunks``; records what was asked and the most bytes the destination held."""

    def __init__(self, declared: int | None, chunks: list[bytes]) -> None:
        self.declared = declared
        self.chunks = chunks
        self.calls: list[str] = []
        self.held = 0

    async def get_file(self, file_id: str):
        self.calls.append("getFile")
        return SimpleNamespace(file_id=file_id, file_path="documents/file_1.png", file_size=self.declared)

    async def download_file(self, file_path, destination):
        self.calls.append("download")
        for chunk in self.chunks:
            destination.write(chunk)
            self.held = max(self.held, destination.tell())
        destination.seek(0)
        return destination


async def test_a_photo_declared_over_the_pixel_limit_is_not_downloaded(tmp_path):
    bot = FakeDownloads(1000, [b"x"])
    item = Incoming("f1", "u1", 40_000, "image/jpeg", "photo", width=10_000, height=10_000)
    with pytest.raises(media.ImageTooLarge):
        await fetch(bot, None, media.LocalMediaStore(tmp_path), item, kind="photo")
    assert bot.calls == []


async def test_a_file_declared_too_big_by_getfile_is_not_downloaded(tmp_path):
    bot = FakeDownloads(30 * MB, [b"x"])
    item = Incoming("f1", "u1", None, "application/pdf", "document")  # the message said nothing
    with pytest.raises(media.FileTooLarge) as refused:
        await fetch(bot, None, media.LocalMediaStore(tmp_path), item, kind="document")
    assert refused.value.size == 30 * MB and bot.calls == ["getFile"]


async def test_a_download_stops_at_the_size_limit(tmp_path):
    bot = FakeDownloads(None, [bytes(MB)] * 30)  # nothing declared, 30 MB sent
    item = Incoming("f1", "u1", None, "application/pdf", "document")
    with pytest.raises(media.FileTooLarge):
        await fetch(bot, None, media.LocalMediaStore(tmp_path), item, kind="document")
    assert bot.held <= uploads.MAX_FILE_BYTES
    assert files_under(tmp_path) == []
