"""Locale from the user's stored preference (``/bahasa``), falling back to Indonesian."""

from __future__ import annotations

from typing import Any

from aiogram.types import TelegramObject
from aiogram.utils.i18n import I18nMiddleware

from bot.i18n import DEFAULT_LOCALE


class UserLocaleMiddleware(I18nMiddleware):
    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        user = data.get("user")
        lang = getattr(user, "language", None)
        return lang if lang in self.i18n.available_locales else DEFAULT_LOCALE
