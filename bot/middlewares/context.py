"""Per-update context: skip re-delivered updates, open the DB session, load the user and roles,
and write one log line per handled update (user id, handler, duration; never the token)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.types import TelegramObject, Update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import metrics
from bot.config import Settings
from bot.services import users
from storage import fsm, handled
from storage.db import begin_write, count_queries

log = logging.getLogger("prolita.updates")

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class UpdateContextMiddleware(BaseMiddleware):
    """Outer middleware on ``update``: one session per update; a failed update rolls back whole."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        started = time.perf_counter()
        trace: dict[str, Any] = {"handler": "-"}
        data["trace"] = trace
        tg_user = data.get("event_from_user")
        outcome = "ok"
        queries = count_queries()
        try:
            async with self.sessionmaker() as session:
                user = roles = None
                if tg_user is not None and not tg_user.is_bot:
                    context = await users.load_for_update(
                        session, event.update_id, tg_user.id, tg_user.first_name, tg_user.last_name,
                        tg_user.username, self.settings.admin_ids,
                    )  # fmt: skip
                    already, user, roles = context.handled, context.user, context.roles
                else:
                    already = await handled.is_handled(session, event.update_id)
                if already:
                    outcome = "duplicate"
                    return UNHANDLED
                handled.track(session, event.update_id)
                data["session"] = session
                data["user"] = user
                data["roles"] = roles
                try:
                    with fsm.update_scope(session) as fsm_changes, fsm.deferred_scope(data.get("fsm_storage")) as later:
                        result = await handler(event, data)
                        if fsm_changes.dirty:
                            # The dialog's new step, committed with the update's mark (and any
                            # effects not yet committed by a service) in one transaction.
                            await begin_write(session)
                        elif fsm_changes.touched and handled.pending(session):
                            # The dialog was set to what it already was (/start, /batal): nothing
                            # to store but the mark, so a re-delivered update is not answered twice.
                            await begin_write(session)
                            handled.record_now(session)
                        if session.in_transaction():
                            await session.commit()
                    if later is not None and later.dirty:
                        await later.flush()  # Redis: the new step only once the update is committed
                    if result is UNHANDLED:
                        outcome = "unhandled"
                    return result
                except BaseException:
                    outcome = "error"
                    await session.rollback()
                    raise
                finally:
                    handled.untrack(session)
        finally:
            elapsed = time.perf_counter() - started
            metrics.observe_update(trace["handler"], outcome, elapsed)
            log.info(
                "update=%s user=%s type=%s handler=%s outcome=%s ms=%.1f q=%d",
                event.update_id,
                tg_user.id if tg_user else "-",
                event.event_type,
                trace["handler"],
                outcome,
                elapsed * 1000,
                queries.n,
            )


class HandlerTraceMiddleware(BaseMiddleware):
    """Inner middleware: notes which handler took the update, for the log line."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        trace = data.get("trace")
        handler_obj = data.get("handler")
        if trace is not None and handler_obj is not None:
            cb = handler_obj.callback
            trace["handler"] = f"{cb.__module__.removeprefix('handlers.')}.{cb.__name__}"
        return await handler(event, data)
