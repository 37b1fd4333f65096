"""Files between Telegram and the content-addressed media store: getting a user's photo or document
in (getFile), and sending stored photos and documents out again (by Telegram file id first, our
stored copy when Telegram no longer knows the id)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BufferedInputFile, InputMediaPhoto, Message
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


# --- sending stored files ---------------------------------------------------------------------------
# ``link``: a row that points at a stored file (ProposalMedia, ProgressMedia, Aspiration): it has
# ``file`` (the Media row) and ``telegram_file_id``.


async def stored_bytes(store: media_service.MediaStore, link: Any) -> bytes | None:
    try:
        return await asyncio.to_thread(store.open, link.file.path)
    except (OSError, ValueError):
        return None


def _upload(link: Any, data: bytes) -> BufferedInputFile:
    return BufferedInputFile(data, filename=link.file.path.rsplit("/", 1)[-1] or "file")


async def send_photos(
    bot: Bot, chat_id: int, store: media_service.MediaStore, links: Sequence[Any], caption: str
) -> bool:
    """Send photos as one album (one photo: a photo) with the caption; False if nothing was sent."""
    if not links:
        return False

    async def send(sources: list[Any]) -> None:
        if len(sources) == 1:
            await bot.send_photo(chat_id, sources[0], caption=caption)
        else:
            await bot.send_media_group(
                chat_id,
                [InputMediaPhoto(media=src, caption=caption if i == 0 else None) for i, src in enumerate(sources)],
            )

    if all(link.telegram_file_id for link in links):
        try:
            await send([link.telegram_file_id for link in links])
            return True
        except TelegramBadRequest:
            pass  # a file id Telegram no longer knows: send our stored copies instead
    uploads = []
    for link in links:
        data = await stored_bytes(store, link)
        if data is not None:
            uploads.append(_upload(link, data))
    if not uploads:
        return False
    await send(uploads)
    return True


async def send_file(bot: Bot, chat_id: int, store: media_service.MediaStore, link: Any, caption: str) -> bool:
    """Send one stored file: an image as a photo (or as a document if it came as one), a PDF as a
    document; False if it is not available any more."""
    is_image = link.file.mime.startswith("image/")
    senders = (bot.send_photo, bot.send_document) if is_image else (bot.send_document,)
    if link.telegram_file_id:
        for send in senders:
            try:
                await send(chat_id, link.telegram_file_id, caption=caption)
                return True
            except TelegramBadRequest:
                continue  # sent to us as a file (not a photo), or no longer known to Telegram
    data = await stored_bytes(store, link)
    if data is None:
        return False
    await senders[0](chat_id, _upload(link, data), caption=caption)
    return True
