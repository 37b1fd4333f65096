"""Middleware on the Bot API client (``bot.session.middleware``): calls whose failure must not undo an update."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.methods import (
    AnswerCallbackQuery,
    CopyMessage,
    EditMessageCaption,
    EditMessageMedia,
    EditMessageReplyMarkup,
    EditMessageText,
    ForwardMessage,
    SendAnimation,
    SendAudio,
    SendContact,
    SendDice,
    SendDocument,
    SendLocation,
    SendMediaGroup,
    SendMessage,
    SendPhoto,
    SendPoll,
    SendSticker,
    SendVenue,
    SendVideo,
    SendVoice,
    TelegramMethod,
)
from aiogram.methods.base import Response, TelegramType

from bot import metrics
from bot.domain.delivery import SendLimiter

log = logging.getLogger("prolita.requests")

# Telegram's answer when a callback query was already answered or is older than about 15 seconds.
STALE_QUERY = ("query is too old", "query id is invalid")
EDITS = (EditMessageText, EditMessageCaption, EditMessageReplyMarkup)
NOT_MODIFIED = "message is not modified"


class KeepResponseTypes(BaseRequestMiddleware):
    """Keep aiogram's ``Response[...]`` model of each method's answer alive.

    aiogram parses every answer with ``Response[method.__returning__]``. pydantic caches such
    parametrised models only weakly, and under load the cyclic garbage collector frees them, so
    they were built again (schema and validator, several ms of CPU) for many requests: the surge
    benchmark's profile showed it among the largest costs of a step. Holding a reference here (one
    per answer type, built on first use, as aiogram would) keeps pydantic's cache warm.
    """

    def __init__(self) -> None:
        self.kept: dict[Any, Any] = {}

    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot, method: TelegramMethod[TelegramType]
    ) -> Any:
        returning = type(method).__returning__
        if returning not in self.kept:
            self.kept[returning] = Response[returning]  # type: ignore[valid-type]
        return await make_request(bot, method)


class StaleCallbackAnswer(BaseRequestMiddleware):
    """Answering a button press only stops the spinner (or shows a toast); when Telegram refuses it
    because the query was already answered or is too old, the update's work goes on. That happens
    when Telegram sends an update again after the database or Redis failed mid-update (the first try
    had answered it), or when a handler was slow: failing there would roll the whole update back.
    Likewise an edit that Telegram refuses as "message is not modified": the message already shows
    what was wanted (the first try of a retried update made that very edit)."""

    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot, method: TelegramMethod[TelegramType]
    ) -> Any:
        try:
            return await make_request(bot, method)
        except TelegramBadRequest as exc:
            message = exc.message.lower()
            if isinstance(method, AnswerCallbackQuery) and any(s in message for s in STALE_QUERY):
                log.info("callback query %s was already answered or is too old; going on", method.callback_query_id)
                return False
            if isinstance(method, EDITS) and NOT_MODIFIED in message:
                return True
            raise


# Methods that Telegram counts against its flood limits (a new message, or an edit, in a chat).
FLOOD_LIMITED = (
    SendMessage, SendPhoto, SendDocument, SendMediaGroup, SendLocation, SendVenue, SendContact, SendPoll,
    SendDice, SendAnimation, SendAudio, SendVideo, SendVoice, SendSticker, CopyMessage, ForwardMessage,
    EditMessageText, EditMessageCaption, EditMessageReplyMarkup, EditMessageMedia,
)  # fmt: skip
FLOOD_RETRIES = 4  # a reply met with 429 is tried again this many times
FLOOD_MAX_WAIT = 30.0  # seconds a reply may wait for Telegram's flood limits in all; then it fails
_PACED: ContextVar[bool] = ContextVar("prolita_paced", default=False)


@contextmanager
def paced_elsewhere() -> Iterator[None]:
    """Requests made inside this block are already paced by their caller (the outbox sender), which
    also handles their 429s itself: :class:`FloodControl` lets them through untouched."""
    token = _PACED.set(True)
    try:
        yield
    finally:
        _PACED.reset(token)


class FloodControl(BaseRequestMiddleware):
    """Handlers' replies within Telegram's flood limits (about 30 messages a second per bot, about 1
    a second per chat, short bursts allowed), on the limiter the outbox sender also uses.

    A reply is sent at once. When Telegram answers 429 ``retry_after``, that chat (or, when the bot
    as a whole is over the limit, every reply and notice) waits as long as Telegram asks and the
    reply is sent again: at most ``FLOOD_RETRIES`` times and ``FLOOD_MAX_WAIT`` seconds in all, so a
    user is answered a moment later instead of never (60 simultaneous /start used to leave 19 users
    without an answer). While a pause is in force, other replies wait for its end instead of
    drawing another 429. Every reply counts against the limiter's buckets, so the queue of notices
    gives way to people being answered.
    """

    def __init__(self, limiter: SendLimiter, *, retries: int = FLOOD_RETRIES, max_wait: float = FLOOD_MAX_WAIT) -> None:
        self.limiter = limiter
        self.retries = retries
        self.max_wait = max_wait

    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot, method: TelegramMethod[TelegramType]
    ) -> Any:
        if _PACED.get() or not isinstance(method, FLOOD_LIMITED):
            return await make_request(bot, method)
        chat = getattr(method, "chat_id", None)
        chat_id = chat if isinstance(chat, int) else None
        cost = len(method.media) if isinstance(method, SendMediaGroup) else 1
        waited = 0.0
        attempt = 0
        while True:
            pause = self.limiter.paused_for(chat_id)
            if pause > 0:
                if waited + pause > self.max_wait:
                    raise FloodWaitTooLong(pause)
                await asyncio.sleep(pause)
                waited += pause
            try:
                result = await make_request(bot, method)
            except TelegramRetryAfter as exc:
                metrics.RETRY_AFTER.inc()
                scope = self.limiter.on_retry_after(chat_id, exc.retry_after)
                attempt += 1
                if attempt > self.retries or waited + exc.retry_after > self.max_wait:
                    raise
                log.info(
                    "429 on %s to chat %s: waiting %ss (%s), then sending again",
                    type(method).__name__, chat_id, exc.retry_after, "this chat" if scope == "chat" else "every chat",
                )
                continue
            self.limiter.note_sent(chat_id, cost)
            return result


class FloodWaitTooLong(Exception):
    """Telegram asked the bot to wait longer than a reply may wait (``FLOOD_MAX_WAIT``)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"Telegram's flood limit asks for {seconds:.0f} s more; the reply was not sent")
        self.seconds = seconds


def flood_limiter(bot: Bot) -> SendLimiter | None:
    """The limiter of the bot's :class:`FloodControl` (the outbox sender shares it)."""
    for middleware in bot.session.middleware:
        if isinstance(middleware, FloodControl):
            return middleware.limiter
    return None
