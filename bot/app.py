"""Assembly: Bot + Dispatcher + middlewares + routers, and the long-running process."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import suppress

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramNetworkError, TelegramServerError, TelegramUnauthorizedError
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault, User
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.debounce import Debouncer
from bot.i18n import LANGUAGES, build_i18n
from bot.middlewares.context import HandlerTraceMiddleware, UpdateContextMiddleware
from bot.middlewares.i18n import UserLocaleMiddleware
from bot.notifier import OutboxSender
from bot.polling import SafePoller
from bot.services import programs
from bot.services.media import LocalMediaStore
from bot.services.wilayah import ensure_sample_wilayah
from storage import handled
from storage.db import begin_write, create_engine, create_sessionmaker
from storage.fsm import SQLStorage
from storage.migrate import upgrade

log = logging.getLogger("prolita")


def build_bot(settings: Settings) -> Bot:
    session = None
    if settings.telegram_api_url:
        session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    return Bot(
        token=settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def build_storage(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> tuple[BaseStorage, BaseEventIsolation]:
    if settings.redis_url:
        from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisEventIsolation, RedisStorage

        storage = RedisStorage.from_url(settings.redis_url, key_builder=DefaultKeyBuilder(with_destiny=True))
        return storage, RedisEventIsolation(redis=storage.redis, key_builder=storage.key_builder)
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
    dp = Dispatcher(
        storage=storage,
        events_isolation=isolation,
        settings=settings,
        sessionmaker=sessionmaker,
        media_store=LocalMediaStore(settings.media_dir),
        album_replies=Debouncer(),
    )
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
    await upgrade(engine)
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


async def run_bot(settings: Settings) -> None:
    engine, sessionmaker = await prepare_database(settings)
    i18n = build_i18n()
    bot = build_bot(settings)
    dp = build_dispatcher(settings, sessionmaker, i18n)
    sender = OutboxSender(
        bot, sessionmaker, i18n, settings.admin_ids,
        rate=settings.send_rate, concurrency=settings.send_concurrency, lease=settings.send_lease,
    )
    from bot.notices_broadcast import BroadcastProgress

    progress = BroadcastProgress(bot, sessionmaker, i18n, sender)  # edits admins' "Terkirim 120/499"
    from bot.clock import SystemClock
    from bot.scheduler import build_scheduler, drain_scheduler, pause_scheduler, stop_scheduler

    scheduler = build_scheduler(settings, sessionmaker, SystemClock())  # reminders, closing votes
    poller: SafePoller | None = None
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def request_stop(signame: str) -> None:
        if not stopping.is_set():
            log.info("%s received: finishing in-flight updates, then stopping", signame)
            stopping.set()
            if poller is not None:
                poller.stop()
            sender.stop()
            pause_scheduler(scheduler)  # runs in flight finish; drained below
            progress.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with suppress(NotImplementedError):
            loop.add_signal_handler(sig, request_stop, sig.name)
    try:
        me = await _connect(bot, stopping)
        if me is None:
            return
        log.info("bot @%s (id %s) starting with long polling", me.username, me.id)
        await bot.delete_webhook(drop_pending_updates=False)
        await register_commands(bot, i18n, settings.admin_ids)
        await dp.emit_startup(bot=bot)
        poller = SafePoller(bot, dp, allowed_updates=dp.resolve_used_update_types(), timeout=settings.polling_timeout)
        if stopping.is_set():
            poller.stop()
        sender_task = asyncio.create_task(sender.run(), name="outbox-sender")
        scheduler.start()  # inside the running loop; every job also runs once now
        progress_task = asyncio.create_task(progress.run(), name="broadcast-progress")
        await poller.run()
        await dp.workflow_data["album_replies"].flush()  # albums still waiting for their one answer
        await drain_scheduler(scheduler)
        sender.stop()
        progress.stop()
        await sender_task
        await progress_task
        await dp.emit_shutdown(bot=bot)
    finally:
        stop_scheduler(scheduler)
        await dp.storage.close()
        await bot.session.close()
        await engine.dispose()
        log.info("stopped")
