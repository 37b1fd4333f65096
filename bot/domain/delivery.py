"""Pure rules of the delivery engine: Telegram's flood limits as token buckets, and the retry
schedule. No aiogram, no SQL; the clock is injected, so tests drive time by hand."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

# Telegram: about 30 messages/s per bot overall, about 1 message/s per chat with a short burst.
CHAT_RATE = 1.0
CHAT_BURST = 3
BACKOFF_BASE = 2.0
BACKOFF_CAP = 300.0  # 5 minutes


def backoff(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds before retry number ``attempt`` (1-based) after a transient failure: 2, 4, 8 …
    capped at 5 minutes, with ±20 % jitter so that many rows failing together do not retry in step."""
    base = min(BACKOFF_CAP, BACKOFF_BASE ** max(1, attempt))
    return min(BACKOFF_CAP, base * (0.8 + 0.4 * rng()))


class _Bucket:
    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = now

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def wait(self, now: float) -> float:
        self.refill(now)
        return 0.0 if self.tokens >= 1 - 1e-9 else (1 - self.tokens) / self.rate

    @property
    def full(self) -> bool:
        return self.tokens >= self.burst


class SendLimiter:
    """A global token bucket (``rate`` messages/s, burst ``burst``) and one per chat (1/s, burst 3),
    plus pauses that Telegram asks for with ``retry_after`` (for one chat or for everything).

    ``try_acquire(chat_id)`` takes a token from both buckets and returns 0, or returns how long to
    wait (taking nothing); callers sleep that long and ask again.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        chat_rate: float = CHAT_RATE,
        chat_burst: float = CHAT_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.chat_rate = chat_rate
        self.chat_burst = chat_burst
        now = clock()
        self._global = _Bucket(rate, burst if burst is not None else max(1.0, rate / 2), now)
        self._chats: dict[int, _Bucket] = {}
        self._paused_until = 0.0
        self._chat_paused: dict[int, float] = {}

    def _chat(self, chat_id: int, now: float) -> _Bucket:
        bucket = self._chats.get(chat_id)
        if bucket is None:
            if len(self._chats) > 10_000:  # forget idle chats (a full bucket is the default state)
                for key in [k for k, b in self._chats.items() if (b.refill(now), b.full)[1]]:
                    del self._chats[key]
            bucket = self._chats[chat_id] = _Bucket(self.chat_rate, self.chat_burst, now)
        return bucket

    def paused_for(self, chat_id: int | None = None) -> float:
        """Seconds left of a global pause (and of the chat's own, if ``chat_id`` is given)."""
        now = self.clock()
        left = self._paused_until - now
        if chat_id is not None:
            left = max(left, self._chat_paused.get(chat_id, 0.0) - now)
        return max(0.0, left)

    def try_acquire(self, chat_id: int) -> float:
        now = self.clock()
        wait = self.paused_for(chat_id)
        if wait > 0:
            return wait
        chat = self._chat(chat_id, now)
        wait = max(self._global.wait(now), chat.wait(now))
        if wait > 0:
            return wait
        self._global.tokens -= 1
        chat.tokens -= 1
        return 0.0

    def note_sent(self, chat_id: int | None, cost: int = 1) -> None:
        """A message went out outside the delivery engine (a handler's reply to a user): it counts
        against the same limits, so the queue of notices slows down while people are being answered.
        The buckets may go into debt (at most one burst), never block the reply itself."""
        now = self.clock()
        self._global.refill(now)
        self._global.tokens = max(-self._global.burst, self._global.tokens - cost)
        if chat_id is not None:
            chat = self._chat(chat_id, now)
            chat.refill(now)
            chat.tokens = max(-chat.burst, chat.tokens - cost)

    def recently_sent(self, chat_id: int) -> bool:
        """Whether this chat had another message (besides the one just sent) within about the
        last second: its bucket is more than one token below full."""
        bucket = self._chats.get(chat_id)
        if bucket is None:
            return False
        bucket.refill(self.clock())
        return bucket.tokens < bucket.burst - 1 - 1e-9

    def pause_chat(self, chat_id: int, seconds: float) -> None:
        until = self.clock() + seconds
        self._chat_paused[chat_id] = max(self._chat_paused.get(chat_id, 0.0), until)

    def pause_all(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self.clock() + seconds)

    def on_retry_after(self, chat_id: int | None, seconds: float) -> str:
        """Telegram answered 429 for ``chat_id``: pause that chat if we were writing to it in quick
        succession (its own limit), else everything (the bot's overall limit). Returns which."""
        if chat_id is not None and self.recently_sent(chat_id):
            self.pause_chat(chat_id, seconds)
            return "chat"
        self.pause_all(seconds)
        return "all"
