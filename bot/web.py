"""The bot's web server (aiohttp): the Telegram webhook, ``/healthz``, ``/readyz`` and ``/metrics``.

In webhook mode it listens on ``PORT`` and serves all four; in polling mode it runs only when
``HEALTH_PORT`` is set, without the webhook route.

The webhook route is our own rather than aiogram's ``SimpleRequestHandler``, because we need three
things it does differently: Telegram gets its answer only *after* the update has been handled
(aiogram answers after 55 s regardless and finishes in the background, so a crash then loses the
update), a refused call is logged and counted, and the bot's session is not closed by the web
app's shutdown (``run_bot`` owns it). A crash or a kill before the answer makes Telegram send the
update again; an update that was already handled is recognised by its id (``storage/handled.py``)
and changes nothing twice. An update whose handler failed is answered 200 like any other: the
errors router has told the user, and a retry would only repeat the failure while holding back
that chat's later updates.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiohttp import web
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot import metrics
from bot.unavailable import is_unavailable

log = logging.getLogger("prolita.web")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
CHECK_TIMEOUT = 3.0  # seconds each readiness check may take
SHUTDOWN_GRACE = 30.0  # seconds in-flight webhook calls may take to finish when stopping

Check = Callable[[], Awaitable[None]]  # raises (or times out) when the dependency is not usable


def database_checks(engine: AsyncEngine) -> dict[str, Check]:
    from storage.migrate import SchemaState, check_schema

    async def database() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def migrations() -> None:
        status = await check_schema(engine)
        if status.state is SchemaState.BEHIND:  # someone must upgrade it: this instance runs on an old schema
            raise RuntimeError(f"{status.describe()}; run prolita-bot db upgrade or restart the bot")
        if not status.ok:  # ahead: a newer instance migrated it; this one must be upgraded
            raise RuntimeError(status.describe())

    return {"database": database, "migrations": migrations}


def redis_check(redis: Any) -> Check:
    async def check() -> None:
        await redis.ping()

    return check


@dataclass
class Health:
    """What ``/readyz`` checks, and whether the bot has finished starting."""

    checks: dict[str, Check] = field(default_factory=dict)
    started: bool = False

    async def run(self) -> dict[str, str]:
        async def one(check: Check) -> str:
            try:
                await asyncio.wait_for(check(), CHECK_TIMEOUT)
            except TimeoutError:
                return f"timed out after {CHECK_TIMEOUT:.0f}s"
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"[:300]
            return "ok"

        names = list(self.checks)
        results = await asyncio.gather(*(one(self.checks[n]) for n in names))
        report = dict(zip(names, results, strict=True))
        report["started"] = "ok" if self.started else "still starting"
        return report


class WebhookHandler:
    """POST from Telegram: check the secret, handle the update, then answer."""

    def __init__(self, dispatcher: Dispatcher, bot: Bot, secret: str, health: Health, **workflow: Any) -> None:
        self.dp = dispatcher
        self.bot = bot
        self._secret = secret.encode()
        self.health = health
        self.workflow = workflow

    def _refusal(self, request: web.Request) -> str | None:
        provided = request.headers.get(SECRET_HEADER)
        if provided is None:
            return "missing"
        if not hmac.compare_digest(provided.encode("utf-8", "surrogateescape"), self._secret):
            return "wrong"
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        reason = self._refusal(request)
        if reason is not None:
            metrics.WEBHOOK_REJECTED.labels(reason=reason).inc()
            forwarded = request.headers.get("X-Forwarded-For", "")
            log.warning(
                "webhook: refused a call from %s%s: %s secret token",
                request.remote,
                f" (forwarded for {forwarded[:100]})" if forwarded else "",
                reason,
            )
            return web.json_response({"ok": False, "error": "unauthorized"}, status=401)
        if not self.health.started:  # Telegram retries; the update is not lost
            return web.json_response({"ok": False, "error": "starting"}, status=503)
        try:
            payload = json.loads(await request.read())
            update = Update.model_validate(payload, context={"bot": self.bot})
        except (ValueError, ValidationError) as exc:  # json.JSONDecodeError is a ValueError
            log.warning("webhook: refused a body that is not a Telegram update: %s", str(exc).splitlines()[0])
            return web.json_response({"ok": False, "error": "not a Telegram update"}, status=400)
        try:
            result = await self.dp.feed_update(self.bot, update, **self.workflow)
        except Exception as exc:
            if is_unavailable(exc):  # nothing was done (rolled back): Telegram sends it again later
                log.warning(
                    "update %s not handled, the database or Redis is unavailable (%s: %s); answered 503, to be retried",
                    update.update_id, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "-",
                )  # fmt: skip
                return web.json_response({"ok": False, "error": "temporarily unavailable"}, status=503)
            log.exception("update %s failed", update.update_id)  # the errors router already told the user
        else:
            if isinstance(result, TelegramMethod):  # a handler returned a call instead of making it
                await self.dp.silent_call_request(self.bot, result)
        return web.json_response({"ok": True})


async def healthz(_request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


def build_app(
    health: Health,
    sessionmaker: async_sessionmaker[AsyncSession] | None,
    *,
    webhook: tuple[str, WebhookHandler] | None = None,
) -> web.Application:
    """The web app: ``/healthz``, ``/readyz``, ``/metrics`` and, given ``(path, handler)``, the webhook."""

    async def readyz(_request: web.Request) -> web.StreamResponse:
        report = await health.run()
        ready = all(v == "ok" for v in report.values())
        if not ready:
            log.warning("readyz: not ready: %s", json.dumps(report))
        return web.json_response({"status": "ok" if ready else "unavailable", "checks": report},
                                 status=200 if ready else 503)  # fmt: skip

    async def metrics_view(_request: web.Request) -> web.StreamResponse:
        if sessionmaker is not None:
            try:
                await asyncio.wait_for(metrics.refresh_from_database(sessionmaker), CHECK_TIMEOUT)
            except Exception as exc:  # the other metrics are still worth serving
                log.warning("metrics: cannot read the outbox backlog: %s", exc)
        body, content_type = metrics.exposition()
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    if webhook is not None:
        path, handler = webhook
        app.router.add_post(path, handler.handle)
    return app


class WebServer:
    """Serve an app on a port until ``stop()``; stopping lets in-flight requests finish first."""

    def __init__(self, app: web.Application, port: int, host: str = "0.0.0.0") -> None:
        self.app = app
        self.port = port
        self.host = host
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("web server listening on port %s", self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
