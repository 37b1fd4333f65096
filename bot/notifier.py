"""The outbox sender: delivers notifications written by services, at most once each.

A row is claimed (``pending`` → ``sending``) in its own transaction before the API call and
marked ``sent`` right after, so a restart never sends a delivered row twice; a row left in
``sending`` by a crash is retried after a grace period (the only case where a duplicate is
possible, and only if the crash fell between Telegram accepting the message and our commit).
Transient errors back off; ``retry_after`` from a 429 pauses the whole sender as Telegram asks;
a user who blocked the bot is marked and not retried.

A rendered notice is usually text (``notices.Notice``: ``send_message``). A notice may instead
bring its own ``deliver(bot, chat_id)`` coroutine (e.g. a native poll, or stopping one; see
``bot/notices_votes.py``) and a ``record(session, sent)`` coroutine: it runs in the transaction
that marks the row sent, so what Telegram returned (a poll's id) is stored exactly when the row
is marked delivered.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.utils.i18n import I18n
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import notices
from bot.services import outbox as outbox_service
from storage.db import begin_write
from storage.models import OUTBOX_FAILED, OUTBOX_PENDING, OUTBOX_SENT, Outbox, User, utcnow

log = logging.getLogger("prolita.notifier")

OUTBOX_SENDING = "sending"
MAX_ATTEMPTS = 8
STUCK_AFTER = dt.timedelta(minutes=5)
BATCH = 25


class OutboxSender:
    def __init__(
        self,
        bot: Bot,
        sessionmaker: async_sessionmaker[AsyncSession],
        i18n: I18n,
        admin_ids: tuple[int, ...],
        *,
        poll_interval: float = 2.0,
    ) -> None:
        self.bot = bot
        self.sessionmaker = sessionmaker
        self.i18n = i18n
        self.admin_ids = admin_ids
        self.poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._unsubscribe = outbox_service.on_enqueued(self._wake.set)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    sent = await self.run_once()
                except Exception:
                    log.exception("outbox pass failed")
                    sent = 0
                if sent:
                    continue
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
                except TimeoutError:
                    pass
        finally:
            self._unsubscribe()

    async def _claim(self) -> Sequence[Outbox]:
        now = utcnow()
        async with self.sessionmaker() as session:
            await begin_write(session)
            rows = (
                await session.scalars(
                    select(Outbox)
                    .where(
                        or_(
                            (Outbox.status == OUTBOX_PENDING) & (Outbox.next_attempt_at <= now),
                            (Outbox.status == OUTBOX_SENDING) & (Outbox.next_attempt_at <= now - STUCK_AFTER),
                        )
                    )
                    .order_by(Outbox.next_attempt_at, Outbox.id)
                    .limit(BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                row.status = OUTBOX_SENDING
                row.attempts += 1
                row.next_attempt_at = now
            await session.commit()
            return rows

    async def run_once(self) -> int:
        """Deliver what is due now; returns how many rows were processed."""
        rows = await self._claim()
        for row in rows:
            if self._stop.is_set():
                # Give the rest back untouched.
                await self._finish(row.id, status=OUTBOX_PENDING, error=None, delay=0, undo_attempt=True)
                continue
            await self._deliver(row)
        return len(rows)

    async def _deliver(self, row: Outbox) -> None:
        async with self.sessionmaker() as session:
            user = await session.get(User, row.chat_id)
            lang = user.language if user is not None else "id"
            if user is not None and user.blocked_bot:
                await self._finish(row.id, status=OUTBOX_FAILED, error="blocked by user")
                return
            try:
                with self.i18n.context(), self.i18n.use_locale(lang):
                    notice = await notices.render(session, row, self.admin_ids)
            except Exception as exc:  # a bug in a renderer must not stall the other notices
                log.exception("cannot render outbox %s (%s)", row.id, row.kind)
                await self._finish(row.id, status=OUTBOX_FAILED, error=f"render: {exc!r}")
                return
        if notice is None:
            await self._finish(row.id, status=OUTBOX_SENT, error="obsolete; not sent")
            return
        deliver = getattr(notice, "deliver", None)
        try:
            if deliver is not None:
                sent: Any = await deliver(self.bot, row.chat_id)
            else:
                sent = await self.bot.send_message(row.chat_id, notice.text, reply_markup=notice.reply_markup)
        except TelegramRetryAfter as exc:
            log.warning("429 from Telegram: pausing the outbox for %ss", exc.retry_after)
            await self._finish(row.id, status=OUTBOX_PENDING, error="429", delay=exc.retry_after, undo_attempt=True)
            await asyncio.sleep(exc.retry_after)
            return
        except TelegramForbiddenError as exc:
            await self._mark_blocked(row.chat_id)
            await self._finish(row.id, status=OUTBOX_FAILED, error=str(exc))
            return
        except TelegramBadRequest as exc:
            await self._finish(row.id, status=OUTBOX_FAILED, error=str(exc))
            log.warning("outbox %s to %s refused: %s", row.id, row.chat_id, exc)
            return
        except (TelegramNetworkError, TelegramServerError, OSError) as exc:
            if row.attempts >= MAX_ATTEMPTS:
                await self._finish(row.id, status=OUTBOX_FAILED, error=str(exc))
            else:
                await self._finish(row.id, status=OUTBOX_PENDING, error=str(exc), delay=min(2**row.attempts, 600))
            return
        record = getattr(notice, "record", None)
        on_sent = None if record is None else (lambda session: record(session, sent))
        await self._finish(row.id, status=OUTBOX_SENT, error=None, on_sent=on_sent)

    async def _finish(
        self,
        row_id: int,
        *,
        status: str,
        error: str | None,
        delay: float = 0,
        undo_attempt: bool = False,
        on_sent: Callable[[AsyncSession], Awaitable[None]] | None = None,
    ) -> None:
        async with self.sessionmaker() as session:
            await begin_write(session)
            if on_sent is not None:
                try:
                    await on_sent(session)
                except Exception as exc:  # delivered all the same: never send it twice
                    log.exception("outbox %s sent, but recording what was sent failed", row_id)
                    await session.rollback()
                    await begin_write(session)
                    error = f"record: {exc!r}"
            values: dict[str, object] = {"status": status, "last_error": error}
            if status == OUTBOX_SENT:
                values["sent_at"] = utcnow()
            if status == OUTBOX_PENDING:
                values["next_attempt_at"] = utcnow() + dt.timedelta(seconds=delay)
            stmt = update(Outbox).where(Outbox.id == row_id).values(**values)
            if undo_attempt:
                stmt = stmt.values(attempts=Outbox.attempts - 1)
            await session.execute(stmt)
            await session.commit()

    async def _mark_blocked(self, user_id: int) -> None:
        async with self.sessionmaker() as session:
            await begin_write(session)
            await session.execute(update(User).where(User.id == user_id).values(blocked_bot=True))
            await session.commit()
