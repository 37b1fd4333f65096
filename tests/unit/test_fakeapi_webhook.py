"""The fake Bot API's webhook delivery: POSTs like Telegram, retries non-2xx, keeps each chat in order."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramConflictError
from aiohttp import web
from aiohttp.test_utils import TestServer

from fakeapi import FakeTelegram
from fakeapi.webhook import SECRET_HEADER, queue_key

Responder = Callable[[dict[str, Any], int], Any]  # (update, how many times this update came) -> response


class Receiver:
    """A webhook endpoint that records what it gets and answers as told."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.respond: Responder = lambda update, seen: web.json_response({})
        self.active: dict[int, int] = {}  # chat -> requests in flight
        self.max_active = 0
        self.max_active_per_chat = 0
        self.server = TestServer(self._app())

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        update = json.loads(await request.read())
        self.received.append((update, dict(request.headers)))
        chat = queue_key(update)[1]
        self.active[chat] = self.active.get(chat, 0) + 1
        self.max_active = max(self.max_active, sum(self.active.values()))
        self.max_active_per_chat = max(self.max_active_per_chat, self.active[chat])
        try:
            seen = sum(1 for u, _ in self.received if u["update_id"] == update["update_id"])
            result = self.respond(update, seen)
            if asyncio.iscoroutine(result):
                result = await result
            return result
        finally:
            self.active[chat] -= 1

    @property
    def url(self) -> str:
        return str(self.server.make_url("/hook"))

    def texts(self) -> list[str]:
        return [u["message"]["text"] for u, _ in self.received if "message" in u]


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(
        allow_insecure_webhooks=True,
        webhook_set_rate_limit=False,
        webhook_retry_min_delay=0.05,
        webhook_retry_max_delay=0.2,
    ) as fake:
        yield fake


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    await receiver.server.start_server()
    yield receiver
    await receiver.server.close()


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    bot = Bot(tg.new_bot_token(), session=AiohttpSession(api=TelegramAPIServer.from_base(tg.base_url)))
    yield bot
    await bot.session.close()


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_updates_are_posted_with_the_secret(tg: FakeTelegram, receiver: Receiver, bot: Bot) -> None:
    assert await bot.set_webhook(receiver.url, secret_token="abc_DEF-123", allowed_updates=["message"])
    siti = tg.user("Siti")
    await siti.send("/start")
    await eventually(lambda: len(receiver.received) == 1)
    update, headers = receiver.received[0]
    assert headers[SECRET_HEADER] == "abc_DEF-123"
    assert headers["Content-Type"] == "application/json"
    assert update["message"]["text"] == "/start" and update["message"]["from"]["id"] == siti.id
    await eventually(lambda: tg.pending_updates() == [])
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 0 and info.last_error_date is None
    assert info.allowed_updates == ["message"]
    with pytest.raises(TelegramConflictError):  # no getUpdates while a webhook is set
        await bot.get_updates()
    attempts = tg.server.webhooks.attempts
    assert [(a.update_id, a.attempt, a.status, a.ok) for a in attempts] == [(update["update_id"], 1, 200, True)]


async def test_no_secret_header_without_a_secret(tg: FakeTelegram, receiver: Receiver, bot: Bot) -> None:
    assert await bot.set_webhook(receiver.url)
    await tg.user("Siti").send("halo")
    await eventually(lambda: len(receiver.received) == 1)
    assert SECRET_HEADER not in receiver.received[0][1]


async def test_non_2xx_is_retried_with_growing_delays(tg: FakeTelegram, receiver: Receiver, bot: Bot) -> None:
    receiver.respond = lambda update, seen: web.Response(status=500) if seen < 4 else web.json_response({})
    assert await bot.set_webhook(receiver.url, secret_token="s")
    await tg.user("Siti").send("halo")
    await eventually(lambda: len(receiver.received) == 4)
    await eventually(lambda: tg.pending_updates() == [])
    attempts = tg.server.webhooks.attempts
    assert [a.status for a in attempts] == [500, 500, 500, 200]
    assert [a.error for a in attempts][:1] == ["Wrong response from the webhook: 500 Internal Server Error"]
    gaps = [later.started - earlier.finished for earlier, later in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.04 and gaps[1] >= 0.09 and gaps[2] >= 0.19  # 0.05, 0.1, 0.2 s
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 0
    assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
    assert info.last_error_date is not None


async def test_one_chat_in_order_and_at_most_max_connections(tg: FakeTelegram, receiver: Receiver, bot: Bot) -> None:
    async def slow(update: dict[str, Any], seen: int) -> web.StreamResponse:
        await asyncio.sleep(0.05)
        if update["message"]["text"] == "a1" and seen == 1:
            return web.Response(status=502)  # a1 fails once: a2 and a3 must wait for it
        return web.json_response({})

    receiver.respond = slow
    assert await bot.set_webhook(receiver.url, max_connections=2)
    users = [tg.user(name) for name in ("A", "B", "C")]
    for i in range(1, 4):
        for user, name in zip(users, "abc", strict=True):
            await user.send(f"{name}{i}")
    await eventually(lambda: tg.pending_updates() == [], timeout=10)
    texts = receiver.texts()
    for name in "abc":
        delivered = [t for t in texts if t.startswith(name)]
        expected = [f"{name}1", f"{name}2", f"{name}3"]
        assert [t for i, t in enumerate(delivered) if t not in delivered[:i]] == expected
    assert texts.count("a1") == 2
    assert receiver.max_active_per_chat == 1
    assert receiver.max_active == 2  # chats in parallel, but never more than max_connections


async def test_unreachable_webhook_keeps_updates_until_dropped(tg: FakeTelegram, bot: Bot) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert await bot.set_webhook(f"http://127.0.0.1:{port}/hook")
    await tg.user("Siti").send("halo")
    await eventually(lambda: len(tg.server.webhooks.attempts) >= 2)
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 1
    assert info.last_error_message == "Connection refused"
    assert await bot.delete_webhook(drop_pending_updates=True)
    info = await bot.get_webhook_info()
    assert info.url == "" and info.pending_update_count == 0
    tried = len(tg.server.webhooks.attempts)
    await asyncio.sleep(0.4)
    assert len(tg.server.webhooks.attempts) == tried  # nothing more is sent


async def test_deleting_the_webhook_leaves_updates_for_get_updates(
    tg: FakeTelegram, receiver: Receiver, bot: Bot
) -> None:
    receiver.respond = lambda update, seen: web.Response(status=503)
    assert await bot.set_webhook(receiver.url)
    await tg.user("Siti").send("halo")
    await eventually(lambda: len(receiver.received) >= 1)
    assert await bot.delete_webhook()
    await eventually(lambda: all(a.finished for a in tg.server.webhooks.attempts))
    updates = await bot.get_updates(timeout=0)
    assert [u.message.text for u in updates] == ["halo"]


async def test_a_webhook_answer_may_carry_a_method_call(tg: FakeTelegram, receiver: Receiver, bot: Bot) -> None:
    def reply(update: dict[str, Any], seen: int) -> web.StreamResponse:
        chat_id = update["message"]["chat"]["id"]
        return web.json_response({"method": "sendMessage", "chat_id": chat_id, "text": "Halo juga"})

    receiver.respond = reply
    assert await bot.set_webhook(receiver.url)
    siti = tg.user("Siti")
    await siti.send("halo")
    message = await siti.wait_message("Halo juga")
    assert message.text == "Halo juga"
    call = tg.calls_of("sendMessage")[-1]
    assert call.http_method == "WEBHOOK" and call.ok
    assert tg.server.webhooks.attempts[-1].reply_method == "sendMessage"


async def test_a_new_update_waits_for_the_webhook_to_be_set_again(
    tg: FakeTelegram, receiver: Receiver, bot: Bot
) -> None:
    assert await bot.set_webhook(receiver.url)
    assert await bot.delete_webhook()
    siti = tg.user("Siti")
    await siti.send("first")
    await asyncio.sleep(0.2)
    assert receiver.received == []  # no webhook: the update waits for getUpdates or a webhook
    assert await bot.set_webhook(receiver.url)
    await eventually(lambda: receiver.texts() == ["first"])
