"""Middleware on the Bot API client (``bot.session.middleware``): calls whose failure must not undo an update."""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageCaption,
    EditMessageReplyMarkup,
    EditMessageText,
    TelegramMethod,
)
from aiogram.methods.base import Response, TelegramType

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
