"""Long polling that never confirms an update before it has been handled.

aiogram's built-in polling asks for ``offset = last_id + 1`` as soon as it has *received* a
batch, which tells Telegram to forget those updates while their handlers may still be running:
a crash then loses what users sent. Here the offset only moves past updates whose handling has
finished. Because ``getUpdates`` cannot skip unconfirmed updates, a poll made while some are
still in flight returns them again; those are recognised and not dispatched twice (and, since a
busy bot polls every few milliseconds, not even parsed: see :class:`RawGetUpdates`). Updates of
one user are handled one after another, in order; different users run concurrently.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import GetUpdates
from aiogram.types import Update
from aiogram.utils.backoff import Backoff, BackoffConfig

from bot.unavailable import is_unavailable

log = logging.getLogger("prolita.polling")

# While updates are in flight, a poll returns at once (they are still unconfirmed), with all of
# them again: its cost, on Telegram's side and here, grows with how many are in flight. So polls
# are spaced by REPOLL_PER_UPDATE for each update in flight, between INFLIGHT_REPOLL_SECONDS and
# REPOLL_MAX (sooner once none is left). With 100 in flight (the deadline-day surge at saturation)
# that was a poll every ~16 ms carrying 100 updates: 6 % of the bot's CPU decoding the same
# updates again, and more in the server answering them.
INFLIGHT_REPOLL_SECONDS = 0.02
REPOLL_PER_UPDATE = 0.001
REPOLL_MAX = 0.1
MAX_INFLIGHT = 100  # Telegram returns at most 100 updates per call
OUTAGE_RETRY_MIN = 1.0  # seconds before an update that met a database/Redis outage is tried again
OUTAGE_RETRY_MAX = 30.0
# On stop, how long a poll made with timeout 0 (answered at once by Telegram) may take to come back
# before it is cancelled: its answer tells whether Telegram has the offset it carried.
SHORT_POLL_GRACE = 2.0


class RawGetUpdates(GetUpdates):
    """``getUpdates`` answered as plain dicts; :class:`SafePoller` parses only the updates it has
    not seen. A poll made while updates are in flight returns all of them again, and turning those
    into aiogram objects on every poll was the bot's largest CPU cost under load (the deadline-day
    surge benchmark: 8.5 ms per poll, 30 % of the CPU)."""

    __returning__ = list[dict[str, Any]]  # type: ignore[assignment]


def _user_key(update: Update) -> int | None:
    event = update.event
    user = getattr(event, "from_user", None) or getattr(event, "user", None)
    return user.id if user is not None else None


class SafePoller:
    def __init__(
        self,
        bot: Bot,
        dispatcher: Dispatcher,
        *,
        allowed_updates: list[str],
        timeout: int = 25,
        **workflow: Any,
    ) -> None:
        self.bot = bot
        self.dp = dispatcher
        self.allowed_updates = allowed_updates
        self.timeout = timeout
        self.workflow = workflow
        self._stop = asyncio.Event()
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._finished: set[int] = set()  # handled but not yet confirmed to the server
        self._tails: dict[int, asyncio.Task[None]] = {}
        self._max_seen: int | None = None
        self._unconfirmed: set[int] = set()  # not handled because of an outage while stopping
        # The offset carried by the last getUpdates Telegram answered: Telegram forgets every update
        # below it as soon as it *receives* the request (telegram-bot-api, do_get_updates), so this
        # is what the server is known to have confirmed.
        self._acked: int | None = None

    def stop(self) -> None:
        self._stop.set()

    @property
    def offset(self) -> int | None:
        if self._inflight or self._unconfirmed:
            return min((*self._inflight, *self._unconfirmed))
        return None if self._max_seen is None else self._max_seen + 1

    async def run(self) -> None:
        """Poll until :meth:`stop`, then :meth:`drain`.

        Shutting down without a ``409 Conflict``: Telegram keeps a long poll open until its timeout,
        an update, or a newer getUpdates (which it answers ``409 terminated by other getUpdates
        request``) — closing the connection does not end it on the server (telegram-bot-api does not
        watch for the client going away), so "wait until the server has let go" would mean waiting up
        to ``timeout`` seconds. And a getUpdates with the offset of the previous one, sent within 3 s
        of it with a timeout under 3, is made a 3-second long poll by the server, which is what
        terminated the long poll cancelled at stop (409) and held the shutdown 3 s. So a long poll is
        only ever made with an offset Telegram has already answered (a new offset goes out first in a
        poll with timeout 0, answered at once): a long poll cancelled at stop then confirms nothing
        new, and :meth:`drain` sends a confirming call only for an offset Telegram does not have yet
        — never the cancelled poll's — so nothing terminates it (it ends by its timeout, unread).
        """
        backoff = Backoff(BackoffConfig(min_delay=1.0, max_delay=30.0, factor=1.5, jitter=0.1))
        while not self._stop.is_set():
            if len(self._inflight) >= MAX_INFLIGHT:
                await self._wait_inflight(None)
                continue
            offset = self.offset
            timeout = 0 if self._inflight or offset != self._acked else self.timeout
            method = RawGetUpdates(offset=offset, timeout=timeout, allowed_updates=self.allowed_updates)
            poll = asyncio.ensure_future(self.bot(method, request_timeout=timeout + 30))
            stop = asyncio.ensure_future(self._stop.wait())
            done, _ = await asyncio.wait({poll, stop}, return_when=asyncio.FIRST_COMPLETED)
            if poll not in done:
                if timeout == 0:  # answered at once: wait for it, so its offset counts as confirmed
                    await asyncio.wait({poll}, timeout=SHORT_POLL_GRACE)
                if poll.done() and not poll.cancelled() and poll.exception() is None:
                    self._acked = offset  # its updates are not dispatched: they come again next start
                else:
                    poll.cancel()
                break
            stop.cancel()
            try:
                updates = poll.result()
            except Exception as exc:
                log.error("getUpdates failed: %s: %s; retrying in %.1fs", type(exc).__name__, exc, backoff.next_delay)
                await backoff.asleep()
                continue
            backoff.reset()
            self._acked = offset
            fresh = self._dispatch(updates)
            if self._inflight and fresh < MAX_INFLIGHT:  # a whole batch of new ones: more may be waiting
                await self._wait_all_inflight(self.repoll_gap())
        await self.drain()

    def _dispatch(self, updates: list[dict[str, Any]]) -> int:
        floor = self.offset
        fresh = 0
        for raw in updates:
            uid = raw["update_id"]
            if floor is not None and uid < floor:
                continue
            if uid in self._inflight or uid in self._finished:
                continue
            update = Update.model_validate(raw, context={"bot": self.bot})
            fresh += 1
            self._max_seen = uid if self._max_seen is None else max(self._max_seen, uid)
            key = _user_key(update)
            previous = self._tails.get(key) if key is not None else None
            task = asyncio.create_task(self._handle(update, previous), name=f"update-{uid}")
            self._inflight[uid] = task
            if key is not None:
                self._tails[key] = task
            task.add_done_callback(lambda t, uid=uid, key=key: self._done(uid, key, t))
        return fresh

    async def _handle(self, update: Update, previous: asyncio.Task[None] | None) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait({previous})
        delay = OUTAGE_RETRY_MIN
        while True:
            try:
                await self.dp.feed_update(self.bot, update, **self.workflow)
                return
            except Exception as exc:
                if not is_unavailable(exc):  # the errors router already answered the user and logged it
                    log.exception("update %s failed", update.update_id)
                    return
                # The database or Redis is down: the update did nothing. It stays unconfirmed and is
                # tried again (like Telegram re-sends a webhook call answered 503); if the bot stops
                # meanwhile, the next start gets it again from Telegram.
                if self._stop.is_set():
                    log.warning("update %s not handled (%s); left for the next start", update.update_id, exc)
                    raise
                log.warning("update %s: %s unavailable; trying again in %.0fs", update.update_id, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, OUTAGE_RETRY_MAX)

    def _done(self, uid: int, key: int | None, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:  # an outage at stop: not confirmed
            self._unconfirmed.add(uid)
        self._inflight.pop(uid, None)
        self._finished.add(uid)
        if key is not None and self._tails.get(key) is task:
            del self._tails[key]
        floor = self.offset
        if floor is not None:
            self._finished = {u for u in self._finished if u >= floor}

    def repoll_gap(self) -> float:
        """Seconds before the next poll while updates are in flight (see REPOLL_PER_UPDATE)."""
        return min(REPOLL_MAX, max(INFLIGHT_REPOLL_SECONDS, REPOLL_PER_UPDATE * len(self._inflight)))

    async def _wait_all_inflight(self, limit: float) -> None:
        """Wait ``limit`` seconds; less if every update in flight finishes, or the bot stops, first."""
        all_done = asyncio.ensure_future(asyncio.wait(set(self._inflight.values())))
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({all_done, stop}, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        finally:  # (cancelling the wait leaves the updates' tasks running)
            all_done.cancel()
            stop.cancel()

    async def _wait_inflight(self, limit: float | None) -> None:
        if self._inflight:
            await asyncio.wait(set(self._inflight.values()), timeout=limit, return_when=asyncio.FIRST_COMPLETED)

    async def drain(self, grace: float = 30.0) -> None:
        """Finish in-flight updates, then confirm them so they are not delivered again."""
        if self._inflight:
            log.info("finishing %d in-flight update(s)", len(self._inflight))
            await asyncio.wait(set(self._inflight.values()), timeout=grace)
        offset = self.offset
        # Only an offset Telegram does not have yet: it differs from the last poll's, so the server
        # answers at once and leaves a cancelled long poll alone (see run()).
        if offset is not None and offset != self._acked:
            try:
                await self.bot(GetUpdates(offset=offset, timeout=0, limit=1, allowed_updates=self.allowed_updates))
                self._acked = offset
            except Exception as exc:
                log.warning("could not confirm handled updates on shutdown: %s", exc)
