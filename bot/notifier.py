"""The delivery engine: sends the outbox rows written by services, within Telegram's limits.

Guarantees:

* **Never the same row twice** from two senders: a row is *claimed* in its own transaction
  (``pending`` → ``sending`` with a lease, ``claimed_until``) under ``SELECT … FOR UPDATE SKIP
  LOCKED`` on PostgreSQL and SQLite's write lock, so two bot instances take disjoint rows; it is
  marked ``sent`` in the transaction right after Telegram's answer.
* **Resumes after a restart**: rows are given back (``pending``) when the sender stops or must wait
  out a long pause. Each claim names its sender (``claim_token``: instance id and a token of this
  start). A sender that starts (a restart, or a new leader) takes back the rows another sender
  left in ``sending``: at once on SQLite, where only one instance runs, so their sender is dead;
  on PostgreSQL once that sender could no longer be sending them (``takeover_grace``: the
  limiter's wait plus a request's timeout after the claim), in case it is a deposed leader still
  finishing. Any other row left in ``sending`` is claimed again when its lease (``SEND_LEASE``)
  expires. A row claimed by a crashed sender is the only way a message can go out twice, and only
  if the crash fell between Telegram accepting it and our commit (Telegram has no idempotency
  key).
* **Telegram's limits**: a global token bucket (``SEND_RATE``/s) and per-chat spacing (1/s, bursts
  of 3), ``SEND_CONCURRENCY`` requests in flight. A 429 pauses that chat (when we were writing to it
  in quick succession) or everything, for ``retry_after``; 429s are counted in the log.
* **Transient failures** (5xx, network errors) are retried with exponential backoff and jitter
  (2, 4, 8 … s, at most 5 min) through ``next_attempt_at``; after ``MAX_ATTEMPTS`` tries or
  ``MAX_AGE`` the row is marked ``failed`` with ``last_error`` and logged.
* **A timeout is an unknown outcome** (the request may have been delivered): a broadcast row is not
  sent again (``failed``, "unknown: …": a duplicate mass message is worse than one missing); other
  notices are retried, since a lost decision notice costs more than a rare duplicate. After a
  timeout the whole sender pauses briefly, so an outage of minutes only touches the requests that
  were in flight, never the queue.
* **Blocked users** (403 "bot was blocked by the user", "user is deactivated") are marked
  ``users.blocked_bot``; their rows fail without a request until they write to the bot again.

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
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
)
from aiogram.utils.i18n import I18n
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import metrics, notices
from bot.domain.delivery import SendLimiter, backoff
from bot.middlewares.requests import paced_elsewhere
from bot.services import outbox as outbox_service
from bot.unavailable import OutageLog, is_unavailable
from storage.db import begin_write
from storage.models import OUTBOX_FAILED, OUTBOX_PENDING, OUTBOX_SENT, Outbox, User, utcnow

log = logging.getLogger("prolita.notifier")

OUTBOX_SENDING = "sending"
MAX_ATTEMPTS = 8
MAX_AGE = dt.timedelta(days=2)
BATCH = 25
RELEASE_AFTER = 2.0  # a row that would wait longer than this for the limiter is given back
TIMEOUT_PAUSE = 5.0  # after a request timed out, nothing is sent for this long
OUTAGE_RETRY = 1.0  # a row that could not be prepared because the database went away is tried again after this
# Writing a row's outcome is retried through a short outage (a restart, a failover) with these
# pauses, so a message Telegram accepted is recorded as sent instead of going out again when its
# lease expires; if the database stays away longer, the lease decides.
FINISH_RETRY = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)
BLOCKED = "blocked: "  # last_error prefix of rows not delivered because the user blocked the bot
UNKNOWN = "unknown: "  # last_error prefix of rows whose delivery is unknown (timed out)
NOT_RESENT_ON_TIMEOUT = frozenset({"broadcast"})


def is_timeout(exc: BaseException) -> bool:
    """aiogram's read timeout: the request was sent, the answer never came (maybe delivered)."""
    return isinstance(exc, TelegramNetworkError) and "timeout" in exc.message.lower()


class OutboxSender:
    def __init__(
        self,
        bot: Bot,
        sessionmaker: async_sessionmaker[AsyncSession],
        i18n: I18n,
        admin_ids: tuple[int, ...],
        *,
        poll_interval: float = 2.0,
        rate: float = 25.0,
        concurrency: int = 8,
        lease: float = 300.0,
        limiter: SendLimiter | None = None,
        instance_id: str = "",
        takeover_grace: float | None = None,
    ) -> None:
        self.bot = bot
        self.sessionmaker = sessionmaker
        self.i18n = i18n
        self.admin_ids = admin_ids
        self.poll_interval = poll_interval
        self.limiter = limiter or SendLimiter(rate)
        self.concurrency = concurrency
        self.lease = dt.timedelta(seconds=lease)
        self.claim_token = f"{instance_id or 'sender'}/{secrets.token_hex(4)}"[-96:]
        if takeover_grace is None:  # a deposed sender's last request ends within its timeout
            takeover_grace = RELEASE_AFTER + float(getattr(getattr(bot, "session", None), "timeout", 60.0)) + 5.0
        self.takeover_grace = dt.timedelta(seconds=max(0.0, takeover_grace))
        self.batch = max(BATCH, int(rate))  # about a second's worth of messages per pass
        self.stats: Counter[str] = Counter()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._unsubscribe = outbox_service.on_enqueued(self._wake.set)
        self._outage = OutageLog(log, "outbox sender")
        self._recovered = False

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when stopping."""
        if seconds > 0 and not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=seconds)
            except TimeoutError:
                pass

    async def acquire(self, chat_id: int) -> None:
        """Wait for a sending slot for ``chat_id`` (for other senders in this process, e.g. the
        broadcast progress editor, so they count against the same limits)."""
        while True:
            wait = self.limiter.try_acquire(chat_id)
            if wait <= 0:
                return
            await asyncio.sleep(min(wait, 1.0))

    async def recover(self) -> int:
        """Take back the rows that another sender (a crashed process, a deposed leader) left in
        ``sending``: they are due again once that sender cannot be sending them any more
        (``takeover_grace`` after their claim), not only when their lease ends. Returns how many."""
        now = utcnow()
        async with self.sessionmaker() as session:
            await begin_write(session)
            rows = (
                await session.scalars(
                    select(Outbox)
                    .where(
                        Outbox.status == OUTBOX_SENDING,
                        or_(Outbox.claim_token.is_(None), Outbox.claim_token != self.claim_token),
                    )
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                until = min(_aware(row.next_attempt_at) + self.takeover_grace, now + self.lease)
                if row.claimed_until is None or _aware(row.claimed_until) > until:
                    row.claimed_until = until
            await session.commit()
        if rows:
            log.warning(
                "%d notice(s) were being sent by a sender that stopped (%s); they go out again %s "
                "(delivery unknown: one may arrive twice)",
                len(rows), ", ".join(sorted({r.claim_token or "?" for r in rows})),
                "now" if not self.takeover_grace else f"{self.takeover_grace.total_seconds():.0f} s after their claim",
            )  # fmt: skip
        return len(rows)

    async def run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    done = await self.run_once()
                except Exception as exc:
                    if not self._outage.failed(exc):
                        log.exception("outbox pass failed")
                    done = 0
                else:
                    self._outage.succeeded()
                if done:
                    continue
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
                except TimeoutError:
                    pass
        finally:
            self._unsubscribe()

    async def _claim(self, limit: int) -> Sequence[Outbox]:
        now = utcnow()
        async with self.sessionmaker() as session:
            await begin_write(session)
            rows = (
                await session.scalars(
                    select(Outbox)
                    .where(
                        or_(
                            (Outbox.status == OUTBOX_PENDING) & (Outbox.next_attempt_at <= now),
                            (Outbox.status == OUTBOX_SENDING) & (Outbox.claimed_until <= now),
                            # claimed before leases existed (migration 0006)
                            (Outbox.status == OUTBOX_SENDING)
                            & Outbox.claimed_until.is_(None)
                            & (Outbox.next_attempt_at <= now - self.lease),
                        )
                    )
                    .order_by(Outbox.next_attempt_at, Outbox.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                if row.status == OUTBOX_SENDING:
                    log.warning(
                        "outbox %s (%s to %s): its sender stopped mid-send (lease expired); sending it again",
                        row.id, row.kind, row.chat_id,
                    )
                row.status = OUTBOX_SENDING
                row.attempts += 1
                row.next_attempt_at = now
                row.claimed_until = now + self.lease
                row.claim_token = self.claim_token
            await session.commit()
            return rows

    async def run_once(self) -> int:
        """Deliver what is due now (up to a batch, concurrently); returns how many rows were taken."""
        if not self._recovered:  # the first pass (again after an outage) takes back a stopped sender's rows
            await self.recover()
            self._recovered = True
        await self._sleep(self.limiter.paused_for())
        if self._stop.is_set():
            return 0
        rows = await self._claim(self.batch)
        if not rows:
            return 0
        before = self.stats.copy()
        slots = asyncio.Semaphore(self.concurrency)

        async def one(row: Outbox) -> None:
            async with slots:
                if self._stop.is_set():  # give the rest back untouched
                    await self._finish(row.id, status=OUTBOX_PENDING, error=None, undo_attempt=True)
                    return
                try:
                    await self._deliver(row)
                except Exception as exc:  # e.g. the database stayed away: the lease brings the row back
                    if not self._outage.failed(exc):
                        log.exception("outbox %s: delivery failed unexpectedly", row.id)
                    self.stats["error"] += 1

        # Different chats in parallel; one chat's rows in order (an intro before its poll).
        by_chat: dict[int, list[Outbox]] = {}
        for row in rows:
            by_chat.setdefault(row.chat_id, []).append(row)

        async def in_order(rows_of_chat: list[Outbox]) -> None:
            for row in sorted(rows_of_chat, key=lambda r: r.id):
                await one(row)

        await asyncio.gather(*(in_order(group) for group in by_chat.values()))
        delta = self.stats - before
        log.info(
            "outbox pass: %d taken; sent %d, retry %d, failed %d, blocked %d, given back %d, 429 %d (429s so far %d)",
            len(rows), delta["sent"], delta["retry"], delta["failed"], delta["blocked"],
            delta["given_back"], delta["429"], self.stats["429"],
        )
        # Telegram asked us to wait (429 for everything): wait here rather than spin.
        await self._sleep(self.limiter.paused_for())
        return len(rows)

    async def _prepare(self, row: Outbox) -> notices.Notice | None:
        """The notice to send for ``row``, or None when the row is settled without sending (the user
        blocked the bot, the renderer failed, the notice is obsolete). A database outage is raised."""
        async with self.sessionmaker() as session:
            user = await session.get(User, row.chat_id)
            lang = user.language if user is not None else "id"
            if user is not None and user.blocked_bot:
                self.stats["blocked"] += 1
                metrics.BLOCKED.inc()
                await self._finish(row.id, status=OUTBOX_FAILED, error=BLOCKED + "the user blocked the bot earlier")
                return None
            try:
                with self.i18n.context(), self.i18n.use_locale(lang):
                    notice = await notices.render(session, row, self.admin_ids)
            except Exception as exc:  # a bug in a renderer must not stall the other notices
                if is_unavailable(exc):  # not the renderer's fault: the row is sent once the database is back
                    raise
                log.exception("cannot render outbox %s (%s)", row.id, row.kind)
                self.stats["failed"] += 1
                await self._finish(row.id, status=OUTBOX_FAILED, error=f"render: {exc!r}")
                return None
        if notice is None:
            await self._finish(row.id, status=OUTBOX_SENT, error="obsolete; not sent")
        return notice

    async def _deliver(self, row: Outbox) -> None:
        try:
            notice = await self._prepare(row)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            # Nothing was sent: back to the queue for the next pass (or, if even that cannot be
            # written, the lease brings it back). Never marked failed for an outage.
            self._outage.failed(exc)
            self.stats["given_back"] += 1
            await self._finish(row.id, status=OUTBOX_PENDING, error=None, delay=OUTAGE_RETRY, undo_attempt=True)
            return
        if notice is None:
            return
        deliver = getattr(notice, "deliver", None)
        for _try in range(5):
            if not await self._slot(row):
                return
            try:
                with paced_elsewhere():  # paced here (and its 429s handled here), not by FloodControl
                    if deliver is not None:
                        sent: Any = await deliver(self.bot, row.chat_id)
                    else:
                        sent = await self.bot.send_message(row.chat_id, notice.text, reply_markup=notice.reply_markup)
                break
            except TelegramRetryAfter as exc:
                # Paused as Telegram asks; a short pause is waited out here (next _slot), a long
                # one gives the row back.
                self.stats["429"] += 1
                metrics.RETRY_AFTER.inc()
                scope = self.limiter.on_retry_after(row.chat_id, exc.retry_after)
                log.warning(
                    "429 #%d from Telegram (chat %s): pausing %s for %ss",
                    self.stats["429"], row.chat_id, "this chat" if scope == "chat" else "all sending",
                    exc.retry_after,
                )
                continue
            except TelegramForbiddenError as exc:
                self.stats["blocked"] += 1
                metrics.BLOCKED.inc()
                log.info("outbox %s: user %s cannot be reached (%s); marked as blocked",
                         row.id, row.chat_id, exc.message)
                await self._mark_blocked(row.chat_id)
                await self._finish(row.id, status=OUTBOX_FAILED, error=BLOCKED + exc.message)
                return
            except TelegramBadRequest as exc:
                self.stats["failed"] += 1
                await self._finish(row.id, status=OUTBOX_FAILED, error=str(exc))
                log.warning("outbox %s to %s refused: %s", row.id, row.chat_id, exc)
                return
            except (TelegramAPIError, OSError) as exc:  # 5xx, network errors, timeouts
                await self._transient(row, exc)
                return
        else:  # 429 again and again: back to the queue
            self.stats["given_back"] += 1
            wait = max(1.0, self.limiter.paused_for(row.chat_id))
            await self._finish(row.id, status=OUTBOX_PENDING, error="429", delay=wait, undo_attempt=True)
            return
        self.stats["sent"] += 1
        metrics.MESSAGES_SENT.inc()
        record = getattr(notice, "record", None)
        on_sent = None if record is None else (lambda session: record(session, sent))
        await self._finish(row.id, status=OUTBOX_SENT, error=None, on_sent=on_sent)

    async def _slot(self, row: Outbox) -> bool:
        """Wait for the limiter; a long wait (or stopping) gives the row back and returns False."""
        while True:
            wait = self.limiter.try_acquire(row.chat_id)
            if wait <= 0:
                return True
            if wait > RELEASE_AFTER or self._stop.is_set():
                self.stats["given_back"] += 1
                await self._finish(row.id, status=OUTBOX_PENDING, error=None, delay=wait, undo_attempt=True)
                return False
            await asyncio.sleep(wait)

    async def _transient(self, row: Outbox, exc: BaseException) -> None:
        error = str(exc)
        if is_timeout(exc):
            self.limiter.pause_all(TIMEOUT_PAUSE)
            if row.kind in NOT_RESENT_ON_TIMEOUT:
                self.stats["failed"] += 1
                log.warning("outbox %s (%s to %s): request timed out, delivery unknown; not sent again",
                            row.id, row.kind, row.chat_id)
                await self._finish(row.id, status=OUTBOX_FAILED, error=UNKNOWN + error)
                return
        too_old = row.created_at is not None and utcnow() - _aware(row.created_at) > MAX_AGE
        if row.attempts >= MAX_ATTEMPTS or too_old:
            self.stats["failed"] += 1
            log.warning("outbox %s (%s to %s): giving up after %d attempts: %s",
                        row.id, row.kind, row.chat_id, row.attempts, error)
            await self._finish(row.id, status=OUTBOX_FAILED, error=error)
            return
        delay = backoff(row.attempts)
        self.stats["retry"] += 1
        log.warning("outbox %s (%s to %s): attempt %d failed (%s); retrying in %.0fs",
                    row.id, row.kind, row.chat_id, row.attempts, error, delay)
        await self._finish(row.id, status=OUTBOX_PENDING, error=error, delay=delay)

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
        for pause in (*FINISH_RETRY, None):
            try:
                await self._finish_once(row_id, status, error, delay, undo_attempt, on_sent)
                return
            except Exception as exc:
                if pause is None or not is_unavailable(exc):
                    raise
                self._outage.failed(exc)
                await asyncio.sleep(pause)

    async def _finish_once(
        self,
        row_id: int,
        status: str,
        error: str | None,
        delay: float,
        undo_attempt: bool,
        on_sent: Callable[[AsyncSession], Awaitable[None]] | None,
    ) -> None:
        async with self.sessionmaker() as session:
            await begin_write(session)
            if on_sent is not None:
                try:
                    await on_sent(session)
                except Exception as exc:  # delivered all the same: never send it twice
                    if is_unavailable(exc):  # the database went away: write it all again
                        raise
                    log.exception("outbox %s sent, but recording what was sent failed", row_id)
                    await session.rollback()
                    await begin_write(session)
                    error = f"record: {exc!r}"
            values: dict[str, object] = {
                "status": status, "last_error": error, "claimed_until": None, "claim_token": None,
            }  # fmt: skip
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


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
