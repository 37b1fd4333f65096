"""Deprecated Bot API parameters: the fake answers them as Telegram does (it still honours them)
but records their use, so tests can tell the bot still sends them; the bot sends none."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import LinkPreviewOptions

from bot.app import build_bot
from bot.config import load_settings
from fakeapi import FakeTelegram
from fakeapi.params import DEPRECATED_PARAMS

SPEC = Path("/work/shared/telegram-bot-api-spec/api.json")
LINK = "See https://example.org/rab for the budget."


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


async def _send(tg: FakeTelegram, bot: Bot) -> None:
    user = tg.user("Budi", bot=tg.bot(bot.token))
    await user.send("/start")
    try:
        message = await bot.send_message(user.id, LINK)
        await bot.edit_message_text(LINK + " (edited)", chat_id=user.id, message_id=message.message_id)
    finally:
        await bot.session.close()


async def test_a_deprecated_parameter_is_answered_as_telegram_does_and_recorded(tg: FakeTelegram) -> None:
    token = tg.new_bot_token()
    bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(tg.base_url)))
    user = tg.user("Budi", bot=token)
    await user.send("/start")
    try:
        await bot.send_message(user.id, LINK, disable_web_page_preview=True)
        await bot.send_message(user.id, LINK, link_preview_options=LinkPreviewOptions(is_disabled=True))
    finally:
        await bot.session.close()
    old, new = tg.calls_of("sendMessage")
    assert old.ok and old.result["link_preview_options"] == {"is_disabled": True}  # still honoured
    assert old.deprecated == ["disable_web_page_preview"]
    assert new.ok and new.deprecated == []
    assert tg.deprecated_calls() == [old]


async def test_aiogram_link_preview_is_disabled_default_sends_the_deprecated_parameter(tg: FakeTelegram) -> None:
    """Why build_bot uses ``link_preview=``: aiogram fills ``disable_web_page_preview`` from
    ``link_preview_is_disabled`` (besides ``link_preview_options``)."""
    token = tg.new_bot_token()
    bot = Bot(
        token,
        session=AiohttpSession(api=TelegramAPIServer.from_base(tg.base_url)),
        default=DefaultBotProperties(link_preview_is_disabled=True),
    )
    await _send(tg, bot)
    assert {name for c in tg.deprecated_calls() for name in c.deprecated} == {"disable_web_page_preview"}


async def test_the_bot_disables_link_previews_without_deprecated_parameters(tg: FakeTelegram) -> None:
    token = tg.new_bot_token()
    bot = build_bot(load_settings(bot_token=token, telegram_api_url=tg.base_url))
    await _send(tg, bot)
    sent, edited = tg.calls_of("sendMessage")[-1], tg.calls_of("editMessageText")[-1]
    for call in (sent, edited):
        assert call.ok and call.params["link_preview_options"] == {"is_disabled": True}
        assert call.result["link_preview_options"] == {"is_disabled": True}
    assert tg.deprecated_calls() == []


@pytest.mark.skipif(not SPEC.exists(), reason="the Bot API spec (api.json) is not available")
def test_deprecated_parameters_are_the_ones_the_spec_replaced() -> None:
    methods = json.loads(SPEC.read_text())["methods"]
    documented = {f["name"] for m in methods.values() for f in m.get("fields", [])}
    send_message = {f["name"] for f in methods["sendMessage"]["fields"]}
    for name, replacement in DEPRECATED_PARAMS.items():
        assert name not in documented, f"{name} is documented again"
        assert replacement in send_message
