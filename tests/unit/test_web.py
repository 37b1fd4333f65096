"""The bot's web server: the webhook route (secret, answer only after handling), /healthz, /readyz
and /metrics, over real HTTP with aiohttp's test client."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram import Bot, Dispatcher, Router
from aiogram.types import Message
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import metrics
from bot.web import SECRET_HEADER, Health, WebhookHandler, build_app, database_checks, redis_check
from storage.db import create_engine, create_sessionmaker
from storage.migrate import upgrade
from storage.models import OUTBOX_PENDING, Outbox

SECRET = "s3cret-Token_1"
TOKEN = "123456:AAAbbbCCCdddEEEfffGGGhhhIIIjjjKKKlll"


def update(update_id: int, text: str = "halo", user_id: int = 42) -> dict:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": "Siti"},
            "from": {"id": user_id, "is_bot": False, "first_name": "Siti"},
            "text": text,
        },
    }


class Recorder:
    """A dispatcher whose one handler takes a while, and notes when it started and finished."""

    def __init__(self, delay: float = 0.2) -> None:
        self.delay = delay
        self.started: list[int] = []
        self.finished: list[int] = []
        self.dp = Dispatcher()
        router = Router()

        @router.message()
        async def on_message(message: Message) -> None:
            self.started.append(message.message_id)
            if message.text == "boom":
                raise RuntimeError("handler bug")
            await asyncio.sleep(self.delay)
            self.finished.append(message.message_id)

        self.dp.include_router(router)


@pytest.fixture
async def bot() -> AsyncIterator[Bot]:
    bot = Bot(TOKEN)
    yield bot
    await bot.session.close()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def webhook_client(recorder: Recorder, bot: Bot, *, started: bool = True) -> TestClient:
    health = Health(started=started)
    app = build_app(health, None, webhook=("/tg/hook", WebhookHandler(recorder.dp, bot, SECRET, health)))
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


# --------------------------------------------------------------------------------------- webhook


FORGED = [
    ({}, "missing"),
    ({SECRET_HEADER: "s3cret-Token_2"}, "wrong"),
    ({SECRET_HEADER: ""}, "wrong"),
    ({SECRET_HEADER: "ü" * 14}, "wrong"),
]


@pytest.mark.parametrize(("headers", "reason"), FORGED)
async def test_forged_call_is_refused_logged_and_not_handled(
    bot: Bot, caplog: pytest.LogCaptureFixture, headers: dict[str, str], reason: str
) -> None:
    recorder = Recorder()
    client = await webhook_client(recorder, bot)
    before = sample("prolita_webhook_rejected_total", reason=reason)
    try:
        with caplog.at_level(logging.WARNING, logger="prolita.web"):
            response = await client.post("/tg/hook", json=update(1), headers=headers)
        assert response.status == 401
        assert (await response.json())["ok"] is False
    finally:
        await client.close()
    assert recorder.started == []
    assert sample("prolita_webhook_rejected_total", reason=reason) == before + 1
    refused = [r.getMessage() for r in caplog.records if "refused a call" in r.getMessage()]
    assert refused and f"{reason} secret token" in refused[0]
    assert SECRET not in caplog.text and "s3cret-Token_2" not in caplog.text


async def test_answer_comes_only_after_the_update_is_handled(bot: Bot) -> None:
    recorder = Recorder(delay=0.3)
    client = await webhook_client(recorder, bot)
    try:
        began = time.monotonic()
        response = await client.post("/tg/hook", json=update(7), headers={SECRET_HEADER: SECRET})
        took = time.monotonic() - began
        assert response.status == 200
        assert await response.json() == {"ok": True}
    finally:
        await client.close()
    assert recorder.finished == [7]  # handled before Telegram got its answer
    assert took >= 0.3


async def test_a_failing_handler_is_still_answered_200(bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    """The user was told by the errors router; a retry would repeat the failure and hold up the chat."""
    recorder = Recorder()
    client = await webhook_client(recorder, bot)
    try:
        with caplog.at_level(logging.ERROR):
            response = await client.post("/tg/hook", json=update(8, "boom"), headers={SECRET_HEADER: SECRET})
        assert response.status == 200
    finally:
        await client.close()
    assert recorder.started == [8] and recorder.finished == []
    assert "update 8 failed" in caplog.text


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"update_id": "x"}', b"\xff\xfe"])
async def test_a_body_that_is_not_an_update_gets_400(bot: Bot, body: bytes) -> None:
    recorder = Recorder()
    client = await webhook_client(recorder, bot)
    try:
        response = await client.post(
            "/tg/hook", data=body, headers={SECRET_HEADER: SECRET, "Content-Type": "application/json"}
        )
        assert response.status == 400
    finally:
        await client.close()
    assert recorder.started == []


async def test_calls_before_the_bot_has_started_get_503(bot: Bot) -> None:
    recorder = Recorder()
    client = await webhook_client(recorder, bot, started=False)
    try:
        response = await client.post("/tg/hook", json=update(9), headers={SECRET_HEADER: SECRET})
        assert response.status == 503  # Telegram retries later: nothing is lost
        refused = await client.post("/tg/hook", json=update(9))
        assert refused.status == 401  # the secret is checked first, even while starting
    finally:
        await client.close()
    assert recorder.started == []


async def test_only_post_on_the_webhook_path(bot: Bot) -> None:
    recorder = Recorder()
    client = await webhook_client(recorder, bot)
    try:
        assert (await client.get("/tg/hook", headers={SECRET_HEADER: SECRET})).status == 405
        assert (await client.post("/other", json=update(1), headers={SECRET_HEADER: SECRET})).status == 404
    finally:
        await client.close()
    assert recorder.started == []


# ----------------------------------------------------------------------------------- health


async def serve(app) -> TestClient:
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_healthz_and_readyz_when_all_is_well(engine: AsyncEngine) -> None:
    health = Health(checks=database_checks(engine), started=True)
    client = await serve(build_app(health, create_sessionmaker(engine)))
    try:
        response = await client.get("/healthz")
        assert response.status == 200 and (await response.json())["status"] == "ok"
        response = await client.get("/readyz")
        body = await response.json()
        assert response.status == 200, body
        assert body == {"status": "ok", "checks": {"database": "ok", "migrations": "ok", "started": "ok"}}
    finally:
        await client.close()


async def test_readyz_fails_while_migrations_are_behind(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'behind.db'}")
    try:
        await upgrade(engine, "0002")
        health = Health(checks=database_checks(engine), started=True)
        client = await serve(build_app(health, None))
        try:
            response = await client.get("/readyz")
            body = await response.json()
            assert response.status == 503
            assert body["checks"]["database"] == "ok"
            assert "database is at 0002, behind" in body["checks"]["migrations"]
            assert "prolita-bot db upgrade" in body["checks"]["migrations"]
            assert (await client.get("/healthz")).status == 200  # the process itself is fine
            await upgrade(engine)
            assert (await client.get("/readyz")).status == 200
            async with engine.begin() as conn:  # a newer instance migrated it further
                await conn.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
            body = await (await client.get("/readyz")).json()
            assert "newer than this version's" in body["checks"]["migrations"]
            assert "upgrade this instance" in body["checks"]["migrations"]
        finally:
            await client.close()
    finally:
        await engine.dispose()


async def test_readyz_fails_when_the_database_is_unreachable() -> None:
    engine = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")  # nothing listens on port 1
    try:
        health = Health(checks=database_checks(engine), started=True)
        client = await serve(build_app(health, create_sessionmaker(engine)))
        try:
            response = await client.get("/readyz")
            body = await response.json()
            assert response.status == 503
            assert body["status"] == "unavailable"
            assert body["checks"]["database"] != "ok" and body["checks"]["migrations"] != "ok"
            assert (await client.get("/healthz")).status == 200
            metrics_response = await client.get("/metrics")  # still served, without the DB gauges' refresh
            assert metrics_response.status == 200
        finally:
            await client.close()
    finally:
        await engine.dispose()


async def test_readyz_fails_when_redis_is_unreachable(engine: AsyncEngine) -> None:
    from redis.asyncio import Redis

    redis = Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    try:
        health = Health(checks=database_checks(engine), started=True)
        health.checks["redis"] = redis_check(redis)
        client = await serve(build_app(health, None))
        try:
            response = await client.get("/readyz")
            body = await response.json()
            assert response.status == 503
            assert body["checks"]["database"] == "ok" and body["checks"]["redis"] != "ok"
        finally:
            await client.close()
    finally:
        await redis.aclose()


async def test_readyz_fails_until_started(engine: AsyncEngine) -> None:
    health = Health(checks=database_checks(engine))
    client = await serve(build_app(health, None))
    try:
        response = await client.get("/readyz")
        assert response.status == 503
        assert (await response.json())["checks"]["started"] == "still starting"
        health.started = True
        assert (await client.get("/readyz")).status == 200
    finally:
        await client.close()


# ---------------------------------------------------------------------------------- metrics


async def test_metrics_exposition(engine: AsyncEngine) -> None:
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as session:
        session.add_all([Outbox(chat_id=1, kind="decision", payload={}, status=OUTBOX_PENDING) for _ in range(3)])
        session.add(Outbox(chat_id=2, kind="decision", payload={}, status="sent"))
        await session.commit()
    metrics.observe_update("start.cmd_start", "ok", 0.042)
    metrics.MESSAGES_SENT.inc()
    client = await serve(build_app(Health(started=True), sessionmaker))
    try:
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = await response.text()
    finally:
        await client.close()
    lines = text.splitlines()
    assert 'prolita_outbox_backlog{status="pending"} 3.0' in lines
    assert 'prolita_outbox_backlog{status="sending"} 0.0' in lines
    assert "prolita_users_blocked 0.0" in lines
    assert any(line.startswith('prolita_updates_total{handler="start.cmd_start",outcome="ok"}') for line in lines)
    assert any(line.startswith('prolita_handler_seconds_bucket{handler="start.cmd_start",le="0.05"}') for line in lines)
    for name in ("prolita_messages_sent_total", "prolita_telegram_429_total", "prolita_blocked_deliveries_total"):
        assert any(line.startswith(name + " ") for line in lines), name
    # the exposition parses as Prometheus text
    from prometheus_client.parser import text_string_to_metric_families

    families = {family.name for family in text_string_to_metric_families(text)}
    assert {"prolita_updates", "prolita_handler_seconds", "prolita_outbox_backlog"} <= families


def test_json_log_lines() -> None:
    from bot.logs import json_formatter

    record = logging.LogRecord("prolita.updates", logging.INFO, __file__, 1, "update=%s outcome=%s", (5, "ok"), None)
    line = json_formatter().format(record)
    decoded = json.loads(line)
    assert decoded["level"] == "INFO" and decoded["logger"] == "prolita.updates"
    assert decoded["message"] == "update=5 outcome=ok"
    assert decoded["time"].endswith("+00:00")
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        record = logging.LogRecord("prolita", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    decoded = json.loads(json_formatter().format(record))
    assert "\n" not in json_formatter().format(record)  # one event, one line
    assert "ValueError: bad" in decoded["exc_info"]


# ----------------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"webhook_url": "https://bot.example.go.id/tg"}, "WEBHOOK_SECRET: must be set when WEBHOOK_URL is set"),
        ({"webhook_url": "http://bot.example.go.id/tg", "webhook_secret": "abc"}, "WEBHOOK_URL: must be the public"),
        ({"webhook_url": "bot.example.go.id/tg", "webhook_secret": "abc"}, "WEBHOOK_URL: must be the public"),
        ({"webhook_url": "https://bot.example.go.id/healthz", "webhook_secret": "abc"}, "WEBHOOK_URL: its path"),
        ({"webhook_url": "https://bot.example.go.id:99999/", "webhook_secret": "abc"}, "WEBHOOK_URL: is not a valid"),
        ({"webhook_url": "https://bot.example.go.id/tg", "webhook_secret": "with space"}, "WEBHOOK_SECRET: must be"),
        ({"webhook_url": "https://bot.example.go.id/tg", "webhook_secret": "x" * 257}, "WEBHOOK_SECRET: must be"),
        ({"port": 0}, "PORT: must be a TCP port"),
        ({"health_port": 70000}, "HEALTH_PORT: must be a TCP port"),
        ({"log_format": "xml"}, "LOG_FORMAT: must be text or json"),
    ],
)
def test_bad_web_settings_are_named(env: dict[str, object], message: str) -> None:
    from bot.config import ConfigError, load_settings

    with pytest.raises(ConfigError) as error:
        load_settings(**env)
    assert message in str(error.value)
    secret = env.get("webhook_secret")
    assert secret is None or str(secret) not in str(error.value)  # the secret is never echoed


def test_web_settings() -> None:
    from bot.config import load_settings

    settings = load_settings(webhook_url=" https://bot.example.go.id/telegram/hook ", webhook_secret="a-B_9")
    assert settings.webhook_url == "https://bot.example.go.id/telegram/hook"
    assert settings.webhook_path == "/telegram/hook"
    assert load_settings(webhook_url="https://bot.example.go.id", webhook_secret="s").webhook_path == "/"
    # a self-hosted Bot API server may call a plain http:// webhook
    local = load_settings(
        telegram_api_url="http://127.0.0.1:8081", webhook_url="http://127.0.0.1:8080/hook", webhook_secret="s"
    )
    assert local.webhook_path == "/hook"
    assert load_settings(health_port="").health_port is None
    assert load_settings(log_format="JSON").log_format == "json"
    plain = load_settings()
    assert plain.webhook_url is None and plain.webhook_secret is None and plain.port == 8080


def test_run_webhook_needs_the_webhook_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.__main__ import main

    monkeypatch.chdir(tmp_path)  # no .env here
    for name in ("WEBHOOK_URL", "WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    assert main(["run", "--webhook"]) == 2
    assert "run --webhook needs WEBHOOK_URL" in capsys.readouterr().err
