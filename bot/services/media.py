"""Stored files (photos, berita acara): content-addressed by SHA-256 under MEDIA_DIR, one row each.

The handler downloads the bytes from Telegram (getFile) and passes them in; :func:`save_media`
checks the size and the content (images are decoded with Pillow; a "photo" must be an image),
writes the file once per distinct content and returns its :class:`~storage.models.Media` row.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Protocol

from PIL import Image
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import begin_write, release
from storage.models import Media
from storage.repositories import proposals as repo

DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # the Bot API's getFile limit
KIND_PHOTO = "photo"
KIND_DOCUMENT = "document"
PDF_MIME = "application/pdf"
SUFFIXES = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/gif": ".gif", PDF_MIME: ".pdf"}
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


def inspect_image(data: bytes) -> tuple[str, int, int] | None:
    """``(mime, width, height)`` if Pillow can read ``data`` as an image, else None."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, (width, height) = img.format, img.size
            img.verify()
    except Exception:
        return None
    return _PIL_MIME.get(fmt or "", f"image/{(fmt or 'unknown').lower()}"), width, height


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

    ``kind="photo"`` needs an image; ``kind="document"`` accepts an image or a PDF. Raises
    FileTooLarge(size, limit), EmptyFile, NotAnImage(mime), UnsupportedFile(mime).
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
    await begin_write(session)
    row = await repo.media_by_sha256(session, sha)
    if row is not None:  # stored meanwhile, or its file had gone missing and is back now
        await release(session)
        return row
    row = Media(sha256=sha, path=path, mime=real_mime, size=len(data), width=width, height=height)
    session.add(row)
    try:
        await session.commit()
    except IntegrityError:  # the same content saved at the same moment by another update
        await session.rollback()
        row = await repo.media_by_sha256(session, sha)
        if row is None:
            raise
    return row
