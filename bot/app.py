"""Assembly: Bot + Dispatcher + middlewares + routers, and the long-running process."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import suppress
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault, LinkPreviewOptions, User
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot import metrics
from bot.config import Settings
from bot.debounce import Debouncer
from bot.domain.delivery import SendLimiter
from bot.i18n import LANGUAGES, build_i18n
from bot.leader import Leadership
from bot.middlewares.context import HandlerTraceMiddleware, UpdateContextMiddleware
from bot.middlewares.i18n import UserLocaleMiddleware
from bot.middlewares.requests import FloodControl, KeepResponseTypes, StaleCallbackAnswer, flood_limiter
from bot.middlewares.throttle import ThrottleMiddleware, build_limiter
from bot.notifier import OutboxSender
from bot.polling import SafePoller
from bot.services import programs
from bot.services.media import LocalMediaStore
from bot.services.wilayah import ensure_sample_wilayah
from bot.web import Health, WebhookHandler, WebServer, database_checks, redis_check
from bot.web import build_app as build_web_app
from storage import handled
from storage.db import begin_write, create_engine, create_sessionmaker, is_sqlite
from storage.fsm import DeferredStorage, SQLStorage
from storage.migrate import SchemaAhead, upgrade

log = logging.getLogger("prolita")


def build_bot(settings: Settings) -> Bot:
    session = None
    if settings.telegram_api_url:
        session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    bot = Bot(
        token=settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview=LinkPreviewOptions(is_disabled=True)),
    )
    bot.session.middleware(KeepResponseTypes())  # parse answers without rebuilding their model
    bot.session.middleware(StaleCallbackAnswer())  # a retried update's button press was answered already
    # Replies wait out Telegram's 429s instead of failing; the outbox sender shares the limiter.
    bot.session.middleware(FloodControl(SendLimiter(settings.send_rate)))
    return bot


def build_storage(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> tuple[BaseStorage, BaseEventIsolation]:
    if settings.redis_url:
        from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisEventIsolation, RedisStorage

        storage = RedisStorage.from_url(settings.redis_url, key_builder=DefaultKeyBuilder(with_destiny=True))
        isolation = RedisEventIsolation(redis=storage.redis, key_builder=storage.key_builder)
        return DeferredStorage(storage), isolation  # a step reaches Redis only after the update's commit
    return SQLStorage(sessionmaker), SimpleEventIsolation()


def build_dispatcher(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], i18n: I18n) -> Dispatcher:
    from handlers import admin, common, errors, proposals, public, registration, review, start, verification
    from handlers import aspirations as aspirations_handlers
    from handlers import broadcast as broadcast_handlers
    from handlers import export as export_handlers
    from handlers import follow as follow_handlers
    from handlers import privacy as privacy_handlers
    from handlers import votes as votes_handlers
    from handlers.progress import report as progress_report
    from handlers.progress import verify as progress_verify

    common.configure(settings.timezone)

    storage, isolation = build_storage(settings, sessionmaker)
    redis = getattr(storage, "redis", None)
    dp = Dispatcher(
        storage=storage,
        events_isolation=isolation,
        disable_fsm=True,  # its middleware is registered below, after flood control
        settings=settings,
        sessionmaker=sessionmaker,
        media_store=LocalMediaStore(settings.media_dir),
        album_replies=Debouncer(redis=redis),
    )
    # A flooding user's update is dropped before the dialog state is read (aiogram's FSM middleware
    # reads it, and takes the per-user lock) and before any database session is opened.
    limiter = build_limiter(settings.throttle_rate, settings.throttle_burst, redis)
    if limiter is not None:
        dp.update.outer_middleware(ThrottleMiddleware(limiter, i18n))
    dp.update.outer_middleware(dp.fsm)
    dp.update.outer_middleware(UpdateContextMiddleware(sessionmaker, settings))
    dp.update.outer_middleware(UserLocaleMiddleware(i18n))
    trace = HandlerTraceMiddleware()
    for observer in (dp.message, dp.callback_query, dp.poll_answer, dp.edited_message):
        observer.middleware(trace)
    dp.include_routers(
        errors.unknown_commands,
        start.router,
        registration.router,
        proposals.router,
        progress_report.router,
        review.router,
        progress_verify.router,
        verification.router,
        admin.router,
        public.router,
        aspirations_handlers.router,
        privacy_handlers.router,
        follow_handlers.router,
        votes_handlers.router,
        export_handlers.router,
        broadcast_handlers.router,
        errors.router,
    )
    return dp


def command_menu(roles: str = "default") -> list[tuple[str, str]]:
    """(command, msgid) pairs shown in Telegram's menu; the admin menu adds officer commands."""
    from handlers.common import N_

    base = [
        ("start", N_("Start and show the menu")),
        ("usulan", N_("New proposal (Ketua RT)")),
        ("draf", N_("My drafts and proposals to revise")),
        ("usulanku", N_("My proposals this year")),
        ("progres", N_("Report work progress (Ketua RT)")),
        ("cek", N_("Check a proposal by its code")),
        ("jelajah", N_("Browse the proposals of an RT")),
        ("ikuti", N_("Follow an RT or a proposal")),
        ("aspirasi", N_("Ideas for the RT (send / read)")),
        ("musyawarah", N_("Musyawarah vote (Ketua RT)")),
        ("pengaturan", N_("Notice settings and quiet hours")),
        ("berhenti", N_("Stop following")),
        ("dataku", N_("See the data stored about me")),
        ("hapusdata", N_("Delete my data")),
        ("daftar", N_("Register as Ketua RT")),
        ("bantuan", N_("What can I do here?")),
        ("bahasa", N_("Change the language")),
        ("batal", N_("Stop what I am doing")),
    ]
    if roles == "admin":
        base[1:1] = [
            ("tinjau", N_("Review submitted proposals")),
            ("verifikasi", N_("Verify Ketua RT registrations")),
            ("verifikasi_progres", N_("Verify progress reports")),
            ("ekspor", N_("Excel recap of my area")),
            ("siaran", N_("Broadcast a message (admin)")),
            ("petugas", N_("Appoint or revoke officers")),
        ]
    return base


async def register_commands(bot: Bot, i18n: I18n, admin_ids: tuple[int, ...]) -> None:
    for lang in LANGUAGES:
        with i18n.context(), i18n.use_locale(lang):
            menu = [BotCommand(command=c, description=i18n.gettext(d)) for c, d in command_menu()]
            admin_menu = [BotCommand(command=c, description=i18n.gettext(d)) for c, d in command_menu("admin")]
        language_code = None if lang == "id" else lang
        await bot.set_my_commands(menu, scope=BotCommandScopeDefault(), language_code=language_code)
        for admin_id in admin_ids:
            with suppress(Exception):  # an admin who never opened the bot has no chat yet
                await bot.set_my_commands(
                    admin_menu, scope=BotCommandScopeChat(chat_id=admin_id), language_code=language_code
                )


async def prepare_database(settings: Settings) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)  # several instances: one upgrades, the others wait (advisory lock)
    except SchemaAhead as exc:  # an older instance started beside a newer one: refuse, clearly
        await engine.dispose()
        raise StartupError(str(exc)) from None
    sessionmaker = create_sessionmaker(engine)
    report = await ensure_sample_wilayah(sessionmaker)
    if report is not None:
        log.info("first start: imported the bundled sample of RTs (%s RTs)", report.rt_created)
    async with sessionmaker() as session:
        await programs.ensure(session, settings, settings.current_fiscal_year())
        # Telegram keeps an undelivered update for 24 hours: older handled ids can never return.
        await begin_write(session)
        await handled.prune(session)
        await session.commit()
    return engine, sessionmaker


class TokenRejected(Exception):
    """Telegram (or the configured Bot API server) refused BOT_TOKEN."""


async def _connect(bot: Bot, stopping: asyncio.Event) -> User | None:
    """getMe, waiting out network trouble; a refused token stops start-up with a clear message."""
    delay = 1.0
    while not stopping.is_set():
        try:
            return await bot.get_me()
        except TelegramUnauthorizedError:
            raise TokenRejected from None
        except (TelegramNetworkError, TelegramServerError, OSError) as exc:
            log.warning("cannot reach the Bot API (%s); retrying in %.0fs", exc, delay)
            with suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            delay = min(delay * 2, 60)
    return None


class StartupError(Exception):
    """The bot cannot start; the message says what to fix (shown without a traceback)."""


class BackgroundServices:
    """The work besides answering updates: the outbox sender, the broadcast progress editor (admins'
    "Terkirim 120/499") and the scheduler (reminders, digests, closing votes).

    With several instances only one runs them: ``start()`` and ``stop()`` are the leader's
    callbacks and may run again and again in one process; each ``start()`` builds fresh ones.
    ``stop()`` returns when they have stopped (scheduled runs in flight finished, the sender's
    unsent rows given back).
    """

    def __init__(
        self, settings: Settings, bot: Bot, sessionmaker: async_sessionmaker[AsyncSession], i18n: I18n
    ) -> None:
        self.settings = settings
        self.bot = bot
        self.sessionmaker = sessionmaker
        self.i18n = i18n
        self.sender: OutboxSender | None = None
        self._progress: Any = None
        self._scheduler: Any = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    async def start(self) -> None:
        if self._tasks:
            return
        from bot.clock import SystemClock
        from bot.notices_broadcast import BroadcastProgress
        from bot.scheduler import build_scheduler

        settings = self.settings
        self.sender = OutboxSender(
            self.bot, self.sessionmaker, self.i18n, settings.admin_ids,
            rate=settings.send_rate, concurrency=settings.send_concurrency, lease=settings.send_lease,
            limiter=flood_limiter(self.bot), instance_id=settings.instance_id,
            # SQLite runs one instance: rows another sender left half-sent belong to a dead process.
            takeover_grace=0.0 if is_sqlite(settings.database_url) else None,
        )  # fmt: skip
        self._progress = BroadcastProgress(self.bot, self.sessionmaker, self.i18n, self.sender)
        self._scheduler = build_scheduler(settings, self.sessionmaker, SystemClock())
        self._tasks = [asyncio.create_task(self.sender.run(), name="outbox-sender")]
        self._scheduler.start()  # inside the running loop; every job also runs once now
        self._tasks.append(asyncio.create_task(self._progress.run(), name="broadcast-progress"))

    def request_stop(self) -> None:
        """Take on no new work (safe from a signal handler); what is in flight finishes in ``stop()``."""
        from bot.scheduler import pause_scheduler

        if self.sender is not None:
            self.sender.stop()
        if self._scheduler is not None:
            pause_scheduler(self._scheduler)
        if self._progress is not None:
            self._progress.stop()

    async def stop(self) -> None:
        from bot.scheduler import drain_scheduler

        self.request_stop()
        if self._scheduler is not None:
            await drain_scheduler(self._scheduler)
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            await task

    def close(self) -> None:
        """On the way out, also after an error: no scheduled job fires any more."""
        from bot.scheduler import stop_scheduler

        if self._scheduler is not None:
            stop_scheduler(self._scheduler)


def build_web(
    settings: Settings,
    dp: Dispatcher,
    bot: Bot,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> tuple[WebServer | None, Health]:
    """The web server: on PORT with the webhook in webhook mode, on HEALTH_PORT (if set) when polling."""
    health = Health(checks=database_checks(engine))
    redis = getattr(dp.storage, "redis", None)
    if redis is not None:
        health.checks["redis"] = redis_check(redis)
    if settings.webhook_url:
        assert settings.webhook_secret is not None  # required with WEBHOOK_URL (bot/config.py)
        handler = WebhookHandler(dp, bot, settings.webhook_secret.get_secret_value(), health)
        app = build_web_app(health, sessionmaker, webhook=(settings.webhook_path, handler))
        return WebServer(app, settings.port), health
    if settings.health_port is not None:
        return WebServer(build_web_app(health, sessionmaker), settings.health_port), health
    return None, health


async def set_webhook(bot: Bot, settings: Settings, allowed_updates: list[str], stopping: asyncio.Event) -> bool:
    """Register WEBHOOK_URL with Telegram (waiting out network trouble); False if stopped first."""
    assert settings.webhook_url is not None and settings.webhook_secret is not None
    delay = 1.0
    while not stopping.is_set():
        try:
            await bot.set_webhook(
                settings.webhook_url,
                secret_token=settings.webhook_secret.get_secret_value(),
                allowed_updates=allowed_updates,
                max_connections=settings.webhook_max_connections,
                drop_pending_updates=False,
            )
            return True
        except TelegramRetryAfter as exc:  # setWebhook is limited to once a second (other instances)
            wait = float(exc.retry_after)
        except TelegramBadRequest as exc:
            raise StartupError(f"Telegram refused WEBHOOK_URL {settings.webhook_url}: {exc.message}") from None
        except (TelegramNetworkError, TelegramServerError, OSError) as exc:
            log.warning("cannot set the webhook (%s); retrying in %.0fs", exc, delay)
            wait, delay = delay, min(delay * 2, 60)
        with suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), wait)
    return False


async def run_bot(settings: Settings) -> None:
    engine, sessionmaker = await prepare_database(settings)
    i18n = build_i18n()
    bot = build_bot(settings)
    dp = build_dispatcher(settings, sessionmaker, i18n)
    services = BackgroundServices(settings, bot, sessionmaker, i18n)
    web_server, health = build_web(settings, dp, bot, engine, sessionmaker)
    # One instance (the leader) runs the sender and the scheduler; on SQLite this one, at once.
    leadership = Leadership(settings.database_url, instance_id=settings.instance_id, retry=settings.leader_retry)
    leading: asyncio.Task[None] | None = None

    async def elected() -> None:
        await services.start()
        metrics.LEADER.set(1)

    async def deposed() -> None:
        await services.stop()
        metrics.LEADER.set(0)

    def lead() -> asyncio.Task[None]:
        return asyncio.create_task(leadership.run(elected, deposed), name="leadership")

    poller: SafePoller | None = None
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def request_stop(signame: str) -> None:
        if not stopping.is_set():
            log.info("%s received: finishing in-flight updates, then stopping", signame)
            stopping.set()
            if poller is not None:
                poller.stop()
            services.request_stop()  # scheduled runs in flight finish; drained below
            leadership.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with suppress(NotImplementedError):
            loop.add_signal_handler(sig, request_stop, sig.name)
    try:
        if web_server is not None:  # /healthz answers while connecting; webhook calls get 503 until started
            try:
                await web_server.start()
            except OSError as exc:
                raise StartupError(f"cannot listen on port {web_server.port}: {exc.strerror or exc}") from None
        me = await _connect(bot, stopping)
        if me is None:
            return
        mode = "a webhook" if settings.webhook_url else "long polling"
        log.info("bot @%s (id %s) starting with %s", me.username, me.id, mode)
        if not settings.webhook_url:
            await bot.delete_webhook(drop_pending_updates=False)
        await register_commands(bot, i18n, settings.admin_ids)
        await dp.emit_startup(bot=bot)
        allowed_updates = dp.resolve_used_update_types()
        if settings.webhook_url:
            assert web_server is not None
            health.started = True
            if await set_webhook(bot, settings, allowed_updates, stopping):
                log.info("webhook set to %s (%s)", settings.webhook_url, ", ".join(allowed_updates))
                leading = lead()
                await stopping.wait()
            await web_server.stop()  # no new calls; those in flight are handled and answered first
        else:
            poller = SafePoller(bot, dp, allowed_updates=allowed_updates, timeout=settings.polling_timeout)
            if stopping.is_set():
                poller.stop()
            leading = lead()
            health.started = True
            await poller.run()
        await dp.workflow_data["album_replies"].flush()  # albums still waiting for their one answer
        leadership.stop()
        if leading is not None:
            await leading  # the leader stops its services (jobs drained, rows given back), then unlocks
        await services.stop()
        await dp.emit_shutdown(bot=bot)
    finally:
        if leading is not None and not leading.done():
            leadership.stop()
            leading.cancel()
            with suppress(asyncio.CancelledError):
                await leading
        services.close()
        if web_server is not None:
            await web_server.stop()
        await dp.storage.close()
        await bot.session.close()
        await engine.dispose()
        log.info("stopped")
