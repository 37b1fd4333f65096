"""Webhook mode over HTTP: the real bot process serves a webhook, and the fake Bot API delivers
updates to it like Telegram (POST with the secret header, retries until it gets a 2xx)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import func, select

from fakeapi import FakeTelegram
from fakeapi.webhook import SECRET_HEADER
from storage.models import HandledUpdate
from storage.models import User as UserRow
from tests.e2e.conftest import BotProcess, t

pytestmark = pytest.mark.e2e

SECRET = "e2e_Webhook-Secret_0123456789"
PATH = "/telegram/webhook"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebhookBot(BotProcess):
    """The bot process in webhook mode: ready once it has (re)registered its webhook."""

    port: int

    async def wait_ready(self, timeout: float = 40.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.proc is not None and self.proc.returncode is not None:
                raise AssertionError(f"bot exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            calls = [c for c in self.tg.calls[-50:] if c.seq > self._calls_before]
            if any(c.method == "setWebhook" and c.ok for c in calls):
                return
            if loop.time() > deadline:
                raise AssertionError(f"bot did not set its webhook after {timeout}s:\n{self.log()[-4000:]}")
            await asyncio.sleep(0.05)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    """Telegram as seen from a local webhook: http:// on any port, quick retries."""
    async with FakeTelegram(
        allow_insecure_webhooks=True, webhook_retry_min_delay=0.2, webhook_retry_max_delay=1.0
    ) as fake:
        yield fake


@pytest.fixture
async def launch_webhook(tg: FakeTelegram, tmp_path: Path) -> AsyncIterator[Callable[..., WebhookBot]]:
    """``await launch_webhook(db_url, **env)``: the bot in webhook mode on a free port (its URL and
    secret set unless given); stopped and its log checked at the end."""
    procs: list[WebhookBot] = []

    async def _launch(db_url: str, *, port: int | None = None, **env: str) -> WebhookBot:
        port = port or free_port()
        token = tg.new_bot_token(username="prolita_test_bot", first_name="Prolita")
        settings = {"WEBHOOK_URL": f"http://127.0.0.1:{port}{PATH}", "WEBHOOK_SECRET": SECRET, "PORT": str(port)}
        proc = WebhookBot(tg, token, db_url, tmp_path, {**settings, **env})
        proc.port = port
        procs.append(proc)
        await proc.start()
        return proc

    yield _launch
    for proc in procs:
        await proc.stop()
        log = proc.log()
        assert "Traceback" not in log, f"the bot logged a traceback:\n{log[-6000:]}"
        assert proc.token not in log, "the bot token appeared in the log"
        assert SECRET not in log, "the webhook secret appeared in the log"


async def until(condition: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if condition():
            return
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not met within {timeout}s")
        await asyncio.sleep(0.02)


def start_update(update_id: int, user_id: int) -> dict:
    user = {"id": user_id, "is_bot": False, "first_name": "Palsu", "language_code": "id"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": "Palsu"},
            "from": user,
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


async def test_users_are_answered_through_the_webhook(tg, launch_webhook, sqlite_url):
    bot = await launch_webhook(sqlite_url)
    info = tg.calls_of("setWebhook")[-1].params
    assert info["url"] == bot.url(PATH) and info["secret_token"] == SECRET
    assert {"message", "callback_query"} <= set(info["allowed_updates"])
    assert "chat_member" not in info["allowed_updates"]  # only what the bot handles

    warga = tg.user("Sari", language_code="id")
    await warga.send("/start")
    await warga.wait_message("Halo")
    await warga.press(t("📝 Register as RT head"))  # a callback query, through the webhook too
    await warga.wait_message("UU PDP")

    attempts = tg.server.webhooks.attempts
    await until(lambda: tg.pending_updates() == [], what="the press confirmed")
    assert len(attempts) >= 2 and all(a.status == 200 for a in attempts)
    assert not tg.calls_of("getUpdates")  # no polling in webhook mode
    webhook_info = next(c for c in reversed(tg.calls) if c.method == "setWebhook").params
    assert webhook_info["drop_pending_updates"] is False
    assert tg.pending_updates() == []

    async with aiohttp.ClientSession() as http:
        async with http.get(bot.url("/healthz")) as response:
            assert response.status == 200
        async with http.get(bot.url("/readyz")) as response:
            body = await response.json()
            assert response.status == 200, body
            assert body["checks"] == {"database": "ok", "migrations": "ok", "started": "ok"}
        async with http.get(bot.url("/metrics")) as response:
            assert response.status == 200
            text = await response.text()
    handled = [line for line in text.splitlines() if line.startswith("prolita_updates_total{")]
    assert any('outcome="ok"' in line and not line.endswith(" 0.0") for line in handled), handled
    assert "prolita_handler_seconds_bucket{" in text and 'prolita_outbox_backlog{status="pending"}' in text


async def test_forged_webhook_calls_get_401_and_nothing_happens(tg, launch_webhook, sqlite_url, db):
    bot = await launch_webhook(sqlite_url, LOG_FORMAT="json")
    victim = tg.user("Palsu", language_code="id")
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {SECRET_HEADER: "not-the-secret"}, {SECRET_HEADER: SECRET[:-1]}):
            async with http.post(bot.url(PATH), json=start_update(990001, victim.id), headers=headers) as response:
                assert response.status == 401
        async with http.get(bot.url("/metrics")) as response:
            text = await response.text()
    await victim.expect_no_message(within=1.0)
    assert 'prolita_webhook_rejected_total{reason="missing"} 1.0' in text
    assert 'prolita_webhook_rejected_total{reason="wrong"} 2.0' in text
    async with db(sqlite_url) as session:
        assert await session.get(UserRow, victim.id) is None
        assert await session.get(HandledUpdate, 990001) is None

    # LOG_FORMAT=json: every line of the bot is one JSON object; the refusals are among them
    lines = [line for line in bot.log().splitlines() if line.strip() and not line.startswith("=====")]
    records = [json.loads(line) for line in lines]
    refused = [r for r in records if "refused a call" in r["message"]]
    assert len(refused) == 3 and {r["level"] for r in refused} == {"WARNING"}
    assert "missing secret token" in refused[0]["message"] and "wrong secret token" in refused[1]["message"]

    # the real user, with the real secret, is still answered
    await victim.send("/start")
    await victim.wait_message("Halo")


class LosingProxy:
    """Between Telegram and the bot (like a reverse proxy): forwards each call, but for the first
    delivery of the chosen user's first update answers 500 after the bot has answered 200."""

    def __init__(self, target: str, user_id: int) -> None:
        self.target = target
        self.user_id = user_id
        self.lost: int | None = None
        self.bot_statuses: list[tuple[int, int]] = []
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        update = json.loads(body)
        headers = {SECRET_HEADER: request.headers.get(SECRET_HEADER, ""), "Content-Type": "application/json"}
        async with aiohttp.ClientSession() as http:
            async with http.post(self.target, data=body, headers=headers) as response:
                status = response.status
                answer = await response.read()
        self.bot_statuses.append((update["update_id"], status))
        message = update.get("message") or {}
        if self.lost is None and (message.get("from") or {}).get("id") == self.user_id and status == 200:
            self.lost = update["update_id"]
            return web.Response(status=500)  # the bot's answer never reaches Telegram
        return web.Response(status=status, body=answer, content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(PATH, self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def test_update_redelivered_after_a_lost_answer_is_handled_once(tg, db_url, launch_webhook, db):
    warga = tg.user("Sari", language_code="id")
    bot_port = free_port()
    proxy = LosingProxy(f"http://127.0.0.1:{bot_port}{PATH}", warga.id)
    await proxy.start()
    try:
        bot = await launch_webhook(db_url, port=bot_port, WEBHOOK_URL=f"http://127.0.0.1:{proxy.port}{PATH}")
        await warga.send("/start")
        await warga.wait_message("Halo")
        await until(lambda: proxy.lost is not None, what="the bot's answer reached the proxy")
        update_id = proxy.lost
        await until(lambda: tg.pending_updates() == [], what="Telegram retries after the 500")
    finally:
        await proxy.stop()
    attempts = tg.server.webhooks.attempts_of(update_id)
    assert [a.status for a in attempts] == [500, 200]
    assert attempts[0].error == "Wrong response from the webhook: 500 Internal Server Error"
    assert [s for uid, s in proxy.bot_statuses if uid == update_id] == [200, 200]  # the bot saw it twice
    await warga.expect_no_message(within=1.0)
    welcomes = [m for m in warga.bot_messages if "Halo" in (m.text or "")]
    assert len(welcomes) == 1  # answered once, not twice
    assert f"update={update_id} user={warga.id} type=message handler=- outcome=duplicate" in bot.log()
    async with db(db_url) as session:
        assert await session.scalar(select(func.count()).select_from(UserRow).where(UserRow.id == warga.id)) == 1
        assert await session.get(HandledUpdate, update_id) is not None
    async with aiohttp.ClientSession() as http:  # getWebhookInfo, as the operator would ask
        async with http.get(f"{tg.base_url}/bot{bot.token}/getWebhookInfo") as response:
            info = (await response.json())["result"]
    assert info["pending_update_count"] == 0
    assert info["last_error_message"] == "Wrong response from the webhook: 500 Internal Server Error"
    assert info["max_connections"] == 25  # WEBHOOK_MAX_CONNECTIONS: below the PostgreSQL pool


async def test_update_in_flight_when_the_bot_is_killed_is_delivered_again(tg, launch_webhook, sqlite_url, db):
    bot = await launch_webhook(sqlite_url)
    warga = tg.user("Sari", language_code="id")
    # The welcome's sendMessage hangs, then is dropped: the bot is killed while handling /start.
    tg.server.faults.add("sendMessage", delay=3.0, drop_connection=True)
    await warga.send("/start")
    await until(lambda: any(c.method == "sendMessage" and not c.done for c in tg.calls), what="welcome in flight")
    update_id = tg.pending_updates()[0]["update_id"]
    await bot.kill()
    await asyncio.sleep(1.0)  # Telegram keeps trying meanwhile
    first = tg.server.webhooks.attempts_of(update_id)[0]
    assert first.error is not None and first.status is None  # no answer: the update stays queued
    assert tg.pending_updates() and tg.pending_updates()[0]["update_id"] == update_id

    await bot.start()  # same port, same webhook
    await warga.wait_message("Halo", timeout=20)
    await warga.expect_no_message(within=1.0)
    welcomes = [m for m in warga.bot_messages if "Halo" in (m.text or "")]
    assert len(welcomes) == 1
    attempts = tg.server.webhooks.attempts_of(update_id)
    assert attempts[-1].status == 200 and len(attempts) >= 2
    assert tg.pending_updates() == []
    async with db(sqlite_url) as session:
        assert await session.scalar(select(func.count()).select_from(UserRow).where(UserRow.id == warga.id)) == 1
        assert await session.get(HandledUpdate, update_id) is not None


async def test_polling_mode_serves_health_on_health_port(tg, launch, sqlite_url):
    port = free_port()
    await launch(sqlite_url, HEALTH_PORT=str(port))  # long polling; stopped and checked by the fixture
    warga = tg.user("Sari", language_code="id")
    await warga.send("/start")
    await warga.wait_message("Halo")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200
        async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
            body = await response.json()
            assert response.status == 200, body
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
        async with http.post(f"http://127.0.0.1:{port}{PATH}", json=start_update(1, warga.id)) as response:
            assert response.status == 404  # no webhook route when polling
    assert 'prolita_updates_total{handler="start.start",outcome="ok"} 1.0' in text
    assert tg.calls_of("getUpdates")
