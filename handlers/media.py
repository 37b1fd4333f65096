"""Files between Telegram and the content-addressed media store: getting a user's photo or document
in (getFile), and sending stored photos and documents out again (by Telegram file id first, our
stored copy when Telegram no longer knows the id)."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Sequence
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BufferedInputFile, InputMediaPhoto, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession, async_object_session

from bot.domain import uploads
from bot.services import media as media_service
from storage.models import Media

log = logging.getLogger("prolita.media")

# getFile serves files up to 20 MB (a Bot API limit); Telegram tells us the size up front. The limits
# are in bot/domain/uploads.py.
MAX_DOWNLOAD = uploads.MAX_FILE_BYTES


class Incoming:
    """The file of a message that carries a photo or a document."""

    def __init__(
        self,
        file_id: str,
        file_unique_id: str,
        size: int | None,
        mime: str | None,
        kind: str,
        width: int | None = None,
        height: int | None = None,
    ) -> None:
        self.file_id = file_id
        self.file_unique_id = file_unique_id
        self.size = size
        self.mime = mime
        self.kind = kind  # "photo" | "document"
        self.width = width  # as Telegram declares it (photos only)
        self.height = height


def incoming_file(message: Message) -> Incoming | None:
    if message.photo:
        biggest = message.photo[-1]
        return Incoming(
            biggest.file_id,
            biggest.file_unique_id,
            biggest.file_size,
            "image/jpeg",
            "photo",
            biggest.width,
            biggest.height,
        )
    if message.document:
        d = message.document
        return Incoming(d.file_id, d.file_unique_id, d.file_size, d.mime_type, "document")
    return None


async def fetch(
    bot: Bot, session: AsyncSession, store: media_service.MediaStore, item: Incoming, *, kind: str
) -> Media:
    """Download through getFile and store (deduplicated by content).

    ``kind`` is what the step accepts: "photo" (any image, also sent as a file) or "document"
    (image or PDF). Raises media_service.FileTooLarge / ImageTooLarge / NotAnImage /
    UnsupportedFile / EmptyFile.

    The size is checked before the download (as the message and getFile declare it) and during it
    (never more than MAX_DOWNLOAD bytes are held), a photo's pixels before the download too (Telegram
    gives its width and height); the content is checked by ``save_media`` before it is stored.
    """
    try:
        if item.size is not None and item.size > MAX_DOWNLOAD:
            raise media_service.FileTooLarge(item.size, MAX_DOWNLOAD)
        if uploads.too_many_pixels(item.width, item.height):
            raise media_service.ImageTooLarge(item.width * item.height)
        file = await bot.get_file(item.file_id)
        if file.file_size is not None and file.file_size > MAX_DOWNLOAD:
            raise media_service.FileTooLarge(file.file_size, MAX_DOWNLOAD)
        buf = _CappedBuffer(MAX_DOWNLOAD)
        await bot.download_file(file.file_path, destination=buf)
        return await media_service.save_media(
            session, store, buf.getvalue(), item.mime or "", kind=kind, max_bytes=MAX_DOWNLOAD
        )
    except media_service.ImageTooLarge as exc:
        log.info("refused a %s: %s pixels, the limit is %d", item.kind, exc.pixels or "too many", exc.limit)
        raise


def too_many_pixels_text(exc: media_service.ImageTooLarge) -> str:
    """The refusal of an image over the pixel limit, for a step that stays where it is."""
    return _(
        "This picture is too large to process (at most {limit} megapixels). Please send a smaller one, "
        "or send it as a normal photo instead of a file."
    ).format(limit=exc.limit // 1_000_000)


class _CappedBuffer(io.BytesIO):
    """A download destination that refuses to grow past ``limit`` bytes (a server that sends more
    than it declared, or declared nothing)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def write(self, chunk: Any) -> int:
        size = self.tell() + len(chunk)
        if size > self.limit:
            raise media_service.FileTooLarge(size, self.limit)
        return super().write(chunk)


# --- sending stored files ---------------------------------------------------------------------------
# ``link``: a row that points at a stored file (ProposalMedia, ProgressMedia, Aspiration): it has
# ``file`` (the Media row) and ``telegram_file_id`` (ProposalMedia and ProgressMedia also
# ``telegram_file_unique_id``).
#
# A file id works only for the bot that received it: after the token changed (a new bot), with data
# another bot stored (the sandbox), or once Telegram dropped it, a send by file id is answered 400
# "wrong file identifier/HTTP URL specified" (or "wrong remote file identifier specified: ..." for a
# malformed one). Then our stored copy is uploaded instead and the file id Telegram gives it is kept
# on the row, so the next showing goes by file id again instead of failing first every time.

# Telegram's texts for a file id it does not accept (lower case): unknown or malformed, expired, of
# another type ("type of file mismatch": a photo sent to us as a file is a document id), and a media
# group's way of saying one of its items is one of those.
_FILE_REJECTED = (
    "wrong file identifier",
    "remote file id",  # "wrong remote file identifier specified: ...", "wrong remote file id specified: ..."
    "file reference",
    "file_reference",
    "type of file",
    "file of type",
    "wrong file type",
    "media_empty",
    "wrong type of the web page content",
)
_WRONG_TYPE = ("type of file", "file of type", "wrong file type")


def file_rejected(exc: TelegramBadRequest) -> bool:
    """Whether Telegram refused the file id itself (so sending our stored copy instead will do)."""
    text = str(exc.message).lower()
    return any(part in text for part in _FILE_REJECTED)


def _wrong_type(exc: TelegramBadRequest) -> bool:
    text = str(exc.message).lower()
    return any(part in text for part in _WRONG_TYPE)


async def stored_bytes(store: media_service.MediaStore, link: Any) -> bytes | None:
    if link.file is None:
        return None
    try:
        return await asyncio.to_thread(store.open, link.file.path)
    except (OSError, ValueError):
        return None


def _upload(link: Any, data: bytes) -> BufferedInputFile:
    return BufferedInputFile(data, filename=link.file.path.rsplit("/", 1)[-1] or "file")


def _sent_file(message: Message) -> tuple[str, str] | None:
    """(file_id, file_unique_id) of what a sent message carries: the largest photo or the document."""
    if message.photo:
        return message.photo[-1].file_id, message.photo[-1].file_unique_id
    if message.document:
        return message.document.file_id, message.document.file_unique_id
    return None


async def remember_file_ids(pairs: Sequence[tuple[Any, Message]]) -> None:
    """Keep on each row the file id of the message its stored copy was just uploaded in."""
    changes = []
    for link, message in pairs:
        ids = _sent_file(message)
        if ids is not None and ids[0] != link.telegram_file_id:
            changes.append((link, *ids))
    session = async_object_session(changes[0][0]) if changes else None
    if session is not None:  # rows of a live session (the update's): written there
        await media_service.keep_file_ids(session, changes)


async def send_photos(
    bot: Bot, chat_id: int, store: media_service.MediaStore, links: Sequence[Any], caption: str
) -> bool:
    """Send photos as one album (one photo: a photo) with the caption; False if nothing was sent.

    By file id while every row has one; if Telegram refuses one of them (see :func:`file_rejected`),
    the stored copies are uploaded and their new file ids kept."""
    if not links:
        return False

    async def send(sources: list[Any]) -> list[Message]:
        if len(sources) == 1:
            return [await bot.send_photo(chat_id, sources[0], caption=caption)]
        return await bot.send_media_group(
            chat_id,
            [InputMediaPhoto(media=src, caption=caption if i == 0 else None) for i, src in enumerate(sources)],
        )

    if all(link.telegram_file_id for link in links):
        try:
            await send([link.telegram_file_id for link in links])
            return True
        except TelegramBadRequest as exc:
            if not file_rejected(exc):
                raise
            log.info("sending stored copies of %d photo(s): %s", len(links), exc.message)
    uploaded = []
    for link in links:
        data = await stored_bytes(store, link)
        if data is not None:
            uploaded.append((link, _upload(link, data)))
    if not uploaded:
        return False
    messages = await send([upload for _, upload in uploaded])
    await remember_file_ids([(link, message) for (link, _), message in zip(uploaded, messages, strict=False)])
    return True


async def send_file(bot: Bot, chat_id: int, store: media_service.MediaStore, link: Any, caption: str) -> bool:
    """Send one stored file: an image as a photo (or as a document if it came as one), a PDF as a
    document; False if it is not available any more. A file id Telegram refuses: the stored copy is
    uploaded and its new file id kept."""
    is_image = link.file is not None and link.file.mime.startswith("image/")
    senders = (bot.send_photo, bot.send_document) if is_image else (bot.send_document,)
    if link.telegram_file_id:
        for send in senders:
            try:
                await send(chat_id, link.telegram_file_id, caption=caption)
                return True
            except TelegramBadRequest as exc:
                if not file_rejected(exc):
                    raise
                if not _wrong_type(exc):
                    break  # unknown to Telegram (not just another kind of file): no sender will do
                # sent to us as a file, not a photo: try it as a document
        log.info("sending the stored copy of a file: its file id was refused")
    data = await stored_bytes(store, link)
    if data is None:
        return False
    message = await senders[0](chat_id, _upload(link, data), caption=caption)
    await remember_file_ids([(link, message)])
    return True
