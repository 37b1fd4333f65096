"""Stored files (photos, berita acara, receipts): content-addressed by SHA-256, one row each.

The handler downloads the bytes from Telegram (getFile) and passes them in; :func:`save_media`
checks the size and the content (images are read with Pillow; a "photo" must be an image),
writes the file once per distinct content, writes a small JPEG thumbnail next to it for images,
and returns its :class:`~storage.models.Media` row. The limits (file size, pixels, formats) are in
:mod:`bot.domain.uploads`, and every image is opened through its ``open_image``: an image declaring
more pixels than allowed is refused from its header, before anything is decoded or stored.

Where the bytes live is behind :class:`MediaStore` (put / open / exists / delete by a relative path). The
only implementation today is :class:`LocalMediaStore` (a folder, ``MEDIA_DIR``); an object store
(S3, MinIO, GCS) implements the same four calls with the path as its object key, and nothing else
changes: rows keep the relative path, never a local file name.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import uploads
from bot.domain.uploads import ImageTooLarge, open_image
from storage.db import begin_write, release
from storage.models import Media
from storage.repositories import proposals as repo

log = logging.getLogger("prolita.media")

if TYPE_CHECKING:  # Pillow is imported where an image is read or drawn, not at start (memory)
    from PIL import ImageDraw

DEFAULT_MAX_BYTES = uploads.MAX_FILE_BYTES  # the Bot API's getFile limit
KIND_PHOTO = "photo"
KIND_DOCUMENT = "document"
PDF_MIME = "application/pdf"
SUFFIXES = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/gif": ".gif", PDF_MIME: ".pdf"}
THUMB_SIZE = 320  # longest side of a thumbnail, in pixels
THUMB_QUALITY = 70
_PIL_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}


class FileTooLarge(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size} > {limit} bytes")
        self.size = size
        self.limit = limit


class EmptyFile(Exception):
    pass


class NotAnImage(Exception):
    """A photo was asked for but the content is not a readable image (``mime`` as declared)."""

    def __init__(self, mime: str | None) -> None:
        super().__init__(mime)
        self.mime = mime


class UnsupportedFile(Exception):
    """A document that is neither an image nor a PDF (``mime`` as declared)."""

    def __init__(self, mime: str | None) -> None:
        super().__init__(mime)
        self.mime = mime


class MediaStore(Protocol):
    def put(self, data: bytes, suffix: str = "") -> tuple[str, str]:
        """Store ``data``; return ``(sha256 hex, path relative to the store's root)``."""
        ...

    def open(self, path: str) -> bytes: ...

    def exists(self, path: str) -> bool: ...

    def delete(self, path: str) -> bool:
        """Remove a stored file; False when it was not there."""
        ...


class LocalMediaStore:
    """Files under ``<root>/<aa>/<bb>/<sha256><suffix>``; the same content is written once."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _full(self, path: str) -> Path:
        full = (self.root / path).resolve()
        if not full.is_relative_to(self.root.resolve()):
            raise ValueError(f"path outside the media store: {path!r}")
        return full

    def put(self, data: bytes, suffix: str = "") -> tuple[str, str]:
        sha = hashlib.sha256(data).hexdigest()
        rel = f"{sha[:2]}/{sha[2:4]}/{sha}{suffix}"
        full = self._full(rel)
        if full.exists() and full.stat().st_size == len(data):
            return sha, rel
        full.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=full.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, full)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha, rel

    def open(self, path: str) -> bytes:
        return self._full(path).read_bytes()

    def exists(self, path: str) -> bool:
        return self._full(path).is_file()

    def delete(self, path: str) -> bool:
        full = self._full(path)
        try:
            full.unlink()
        except FileNotFoundError:
            return False
        return True


def inspect_image(data: bytes) -> tuple[str, int, int] | None:
    """``(mime, width, height)`` if Pillow can read ``data`` as an image, else None; reads the header
    and checks the file's structure without decoding its pixels. Raises ImageTooLarge for an image
    with more than ``uploads.MAX_IMAGE_PIXELS``."""
    try:
        with open_image(data) as img:
            fmt, (width, height) = img.format, img.size
            img.verify()
    except ImageTooLarge:
        raise
    except Exception:
        return None
    return _PIL_MIME.get(fmt or "", f"image/{(fmt or 'unknown').lower()}"), width, height


def make_thumbnail(data: bytes, size: int = THUMB_SIZE) -> bytes | None:
    """A JPEG no larger than ``size`` on its longest side, upright (EXIF orientation applied) and
    without metadata (no GPS in thumbnails); None if ``data`` is not a readable image or has more
    pixels than allowed.

    Memory: a JPEG is decoded at a reduced scale (never below twice ``size``), and any image is
    first brought down to four times ``size`` before it is turned upright or converted, so only the
    decode itself is full-size."""
    from PIL import Image, ImageOps

    try:
        with open_image(data) as img:
            img.draft("RGB", (2 * size, 2 * size))
            img.thumbnail((4 * size, 4 * size))  # in place: the EXIF orientation stays readable
            upright = ImageOps.exif_transpose(img)
        if upright.mode not in ("RGB", "L"):
            upright = upright.convert("RGBA")
            background = Image.new("RGB", upright.size, (255, 255, 255))
            background.paste(upright, mask=upright.getchannel("A"))
            upright = background
        upright.thumbnail((size, size))
        out = io.BytesIO()
        upright.convert("RGB").save(out, "JPEG", quality=THUMB_QUALITY, optimize=True)
        return out.getvalue()
    except Exception:
        return None


def _store_thumbnail(store: MediaStore, data: bytes) -> str | None:
    thumb = make_thumbnail(data)
    if thumb is None:
        return None
    return store.put(thumb, ".jpg")[1]


async def thumbnail(store: MediaStore, media: Media) -> bytes | None:
    """The thumbnail of a stored image (made from the original if it has none yet); None for PDFs
    and unreadable files."""

    def work() -> bytes | None:
        if media.thumb_path:
            try:
                return store.open(media.thumb_path)
            except (OSError, ValueError):
                pass
        try:
            return make_thumbnail(store.open(media.path))
        except (OSError, ValueError):
            return None

    if not media.mime.startswith("image/"):
        return None
    return await asyncio.to_thread(work)


SHEET_CELL = 240
SHEET_GAP = 8
FLAG_RED = (220, 38, 38)


def _columns(n: int) -> int:
    return 1 if n == 1 else 2 if n <= 4 else 3 if n <= 9 else 4


def _badge(draw: ImageDraw.ImageDraw, x: int, y: int, text: str, fill: tuple[int, int, int]) -> None:
    from PIL import ImageFont

    font = ImageFont.load_default(size=26)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 16, bottom - top + 12
    draw.rounded_rectangle((x, y, x + w, y + h), radius=8, fill=fill)
    draw.text((x + 8 - left, y + 6 - top), text, font=font, fill=(255, 255, 255))


def make_contact_sheet(thumbs: Sequence[bytes | None], flagged: Collection[int] = ()) -> bytes | None:
    """One JPEG showing the thumbnails in a grid, numbered 1..n in order; flagged positions (0-based)
    get a red frame and a "!" badge. Unreadable entries become a grey cell with their number, so the
    numbering always matches the photos. None when there is nothing to show."""
    if not thumbs:
        return None
    from PIL import Image, ImageDraw

    cols = _columns(len(thumbs))
    rows = (len(thumbs) + cols - 1) // cols
    cell, gap = SHEET_CELL, SHEET_GAP
    sheet = Image.new("RGB", (cols * cell + (cols + 1) * gap, rows * cell + (rows + 1) * gap), (245, 245, 245))
    draw = ImageDraw.Draw(sheet)
    shown = 0
    for i, data in enumerate(thumbs):
        x = gap + (i % cols) * (cell + gap)
        y = gap + (i // cols) * (cell + gap)
        image = None
        if data:
            try:
                with open_image(data) as opened:
                    image = opened.convert("RGB")
                image.thumbnail((cell, cell))
            except Exception:
                image = None
        if image is None:
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=(200, 200, 200))
        else:
            shown += 1
            sheet.paste(image, (x + (cell - image.width) // 2, y + (cell - image.height) // 2))
        if i in flagged:
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), outline=FLAG_RED, width=7)
            _badge(draw, x + 8, y + 8, f"{i + 1} !", FLAG_RED)
        else:
            _badge(draw, x + 8, y + 8, str(i + 1), (30, 30, 30))
    if shown == 0:
        return None
    out = io.BytesIO()
    sheet.save(out, "JPEG", quality=80, optimize=True)
    return out.getvalue()


async def contact_sheet(store: MediaStore, files: Sequence[Media], flagged: Collection[int] = ()) -> bytes | None:
    """An overview image of ``files`` from their thumbnails (see :func:`make_contact_sheet`)."""
    thumbs = [await thumbnail(store, media) for media in files]
    return await asyncio.to_thread(make_contact_sheet, thumbs, frozenset(flagged))


async def save_media(
    session: AsyncSession,
    store: MediaStore,
    data: bytes,
    mime: str | None,
    *,
    kind: str = KIND_PHOTO,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Media:
    """Check and store a file; the same content twice gives the same row (and one file).

    ``kind="photo"`` needs an image; ``kind="document"`` accepts an image or a PDF (stored as it
    is: nothing parses or decompresses a PDF). Raises FileTooLarge(size, limit), EmptyFile,
    ImageTooLarge(pixels, limit), NotAnImage(mime), UnsupportedFile(mime); nothing is stored then.
    """
    if kind not in (KIND_PHOTO, KIND_DOCUMENT):
        raise ValueError(f"unknown media kind {kind!r}")
    if len(data) > max_bytes:
        raise FileTooLarge(len(data), max_bytes)
    if not data:
        raise EmptyFile()
    image = await asyncio.to_thread(inspect_image, data)
    width = height = None
    if image is not None:
        real_mime, width, height = image
    elif kind == KIND_PHOTO:
        raise NotAnImage(mime)
    elif data.startswith(b"%PDF-"):
        real_mime = PDF_MIME
    else:
        raise UnsupportedFile(mime)

    sha = hashlib.sha256(data).hexdigest()
    existing = await repo.media_by_sha256(session, sha)
    if existing is not None and await asyncio.to_thread(store.exists, existing.path):
        return existing
    _, path = await asyncio.to_thread(store.put, data, SUFFIXES.get(real_mime, ""))
    thumb_path = await asyncio.to_thread(_store_thumbnail, store, data) if image is not None else None
    await begin_write(session)
    row = await repo.media_by_sha256(session, sha)
    if row is not None:  # stored meanwhile, or its file had gone missing and is back now
        if row.thumb_path is None and thumb_path is not None:
            row.thumb_path = thumb_path
            await session.commit()
        else:
            await release(session)
        return row
    row = Media(
        sha256=sha, path=path, mime=real_mime, size=len(data), width=width, height=height, thumb_path=thumb_path
    )
    # The same content saved at the same moment by another update (PostgreSQL; on SQLite the write
    # lock queues us behind it) meets a unique violation on sha256. The INSERT runs in a SAVEPOINT,
    # so only the savepoint is rolled back: the caller's transaction and the objects it loaded (the
    # handler's user and proposal) stay as they were, and the other update's row is used instead.
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        row = await repo.media_by_sha256(session, sha)
        if row is None:
            raise
        if row.thumb_path is None and thumb_path is not None:
            row.thumb_path = thumb_path
    await session.commit()
    return row


async def keep_file_ids(session: AsyncSession, changes: Sequence[tuple[Any, str, str]]) -> None:
    """Store the Telegram file ids a stored copy got when it was uploaded again (``(link, file_id,
    file_unique_id)``; a link is a ProposalMedia, ProgressMedia or Aspiration row of ``session``).

    Committed at once, so the SQLite write turn is not held while more is sent; a failure only costs
    an upload next time, so it is logged, not raised."""
    try:
        await begin_write(session)
        for link, file_id, unique_id in changes:
            link.telegram_file_id = file_id
            if hasattr(link, "telegram_file_unique_id"):
                link.telegram_file_unique_id = unique_id
        await session.commit()
    except Exception as exc:
        await session.rollback()
        log.warning("could not keep %d new file id(s): %s: %s", len(changes), type(exc).__name__, exc)
