"""Getting a user's photo or document from the Bot API into the content-addressed media store."""

from __future__ import annotations

import io

from aiogram import Bot
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services import media as media_service
from storage.models import Media

# getFile serves files up to 20 MB (a Bot API limit); Telegram tells us the size up front.
MAX_DOWNLOAD = 20 * 1024 * 1024


class Incoming:
    """The file of a message that carries a photo or a document."""

    def __init__(self, file_id: str, file_unique_id: str, size: int | None, mime: str | None, kind: str) -> None:
        self.file_id = file_id
        self.file_unique_id = file_unique_id
        self.size = size
        self.mime = mime
        self.kind = kind  # "photo" | "document"


def incoming_file(message: Message) -> Incoming | None:
    if message.photo:
        biggest = message.photo[-1]
        return Incoming(biggest.file_id, biggest.file_unique_id, biggest.file_size, "image/jpeg", "photo")
    if message.document:
        d = message.document
        return Incoming(d.file_id, d.file_unique_id, d.file_size, d.mime_type, "document")
    return None


async def fetch(
    bot: Bot, session: AsyncSession, store: media_service.MediaStore, item: Incoming, *, kind: str
) -> Media:
    """Download through getFile and store (deduplicated by content).

    ``kind`` is what the step accepts: "photo" (any image, also sent as a file) or "document"
    (image or PDF). Raises media_service.FileTooLarge / NotAnImage / UnsupportedFile / EmptyFile.
    """
    if item.size is not None and item.size > MAX_DOWNLOAD:
        raise media_service.FileTooLarge(item.size, MAX_DOWNLOAD)
    file = await bot.get_file(item.file_id)
    buf = io.BytesIO()
    await bot.download_file(file.file_path, destination=buf)
    return await media_service.save_media(
        session, store, buf.getvalue(), item.mime or "", kind=kind, max_bytes=MAX_DOWNLOAD
    )
