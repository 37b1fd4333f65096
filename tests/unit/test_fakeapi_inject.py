"""The fake's raw update injection and forged button presses (used by tests/e2e/test_fuzz.py),
read back with the real aiogram client over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import InaccessibleMessage, Message

from fakeapi import FakeTelegram


class QuickSession(AiohttpSession):
    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    client = Bot(tg.new_bot_token(), session=QuickSession(api=TelegramAPIServer.from_base(tg.base_url)))
    yield client
    await client.session.close()


async def test_an_injected_update_respects_allowed_updates_unless_created_before(tg: FakeTelegram, bot: Bot) -> None:
    siti = tg.user("Siti")
    await bot.get_updates(allowed_updates=["message", "callback_query"])
    query = {"id": "77", "from": siti.to_json(), "query": "rt 05", "offset": ""}
    assert tg.inject_update("inline_query", query) is None  # not asked for: Telegram makes no update
    queued = tg.inject_update("inline_query", query, ignore_allowed_updates=True)  # made before the call
    assert queued is not None and queued["inline_query"] == query
    [update] = await bot.get_updates()
    assert update.update_id == queued["update_id"] and update.inline_query.query == "rt 05"
    with pytest.raises(ValueError, match="not an update type"):
        tg.inject_update("reaction", {})


async def test_a_forged_press_is_recorded_and_answerable(tg: FakeTelegram, bot: Bot) -> None:
    siti = tg.user("Siti")
    await siti.send("/start")
    [start] = await bot.get_updates()
    shown = await bot.send_message(siti.id, "Halo")
    with pytest.raises(LookupError):
        await tg.user("Budi").send_callback("x")  # the bot never wrote to Budi
    with pytest.raises(ValueError, match="1-64 bytes"):
        await siti.send_callback("é" * 33)  # 66 bytes
    first = await siti.send_callback("pp:send:-1:99999999999999999999:")
    second = await siti.send_callback("\x00\x01 é", inaccessible=True)
    updates = await bot.get_updates(offset=start.update_id + 1)
    queries = [u.callback_query for u in updates]
    assert [q.id for q in queries] == [first, second]
    assert isinstance(queries[0].message, Message) and queries[0].message.message_id == shown.message_id
    assert isinstance(queries[1].message, InaccessibleMessage) and queries[1].message.date == 0
    assert queries[1].data == "\x00\x01 é"
    await bot.answer_callback_query(first, text="Tombol ini sudah tidak berlaku")
    assert [(r.id, r.answered) for r in tg.callback_queries()] == [(first, True), (second, False)]
