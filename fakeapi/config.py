"""Knobs of the fake server. Defaults follow Telegram, except rate limits, which are off by default."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from .errors import too_many_requests


@dataclass
class RateLimits:
    """Flood limits like Telegram's: ~30 messages/s per bot overall and ~1 message/s per chat, with a
    small burst. Exceeding them gives 429 ``Too Many Requests: retry after N``."""

    enabled: bool = False
    per_bot_per_second: float = 30.0
    per_bot_burst: int = 30
    per_chat_per_second: float = 1.0
    per_chat_burst: int = 3

    def scaled(self, factor: float) -> RateLimits:
        """The same limits with both rates (and the overall burst) raised ``factor`` times, for a
        short run that keeps the ratios of a real one (the per-chat burst stays)."""
        if not factor > 0:
            raise ValueError("the rate-limit scale must be positive")
        return RateLimits(
            enabled=self.enabled,
            per_bot_per_second=self.per_bot_per_second * factor,
            per_bot_burst=max(1, round(self.per_bot_burst * factor)),
            per_chat_per_second=self.per_chat_per_second * factor,
            per_chat_burst=self.per_chat_burst,
        )


@dataclass
class ServerConfig:
    rate_limits: RateLimits = field(default_factory=RateLimits)
    max_download_size: int = 20 * 1024 * 1024  # getFile refuses bigger files ("file is too big")
    max_upload_size: int = 50 * 1024 * 1024  # multipart uploads
    max_photo_upload_size: int = 10 * 1024 * 1024
    strip_photo_exif: bool = True  # photos are re-encoded like Telegram does (EXIF/GPS lost)
    callback_query_timeout: float = 15.0  # after this, answerCallbackQuery says "query is too old"
    long_poll_max_timeout: int = 50
    long_poll_batch_delay: float = 0.002  # Telegram waits a moment after the first update to batch more
    repeat_poll_min_timeout: float = 3.0  # same offset again within 3 s with timeout < 3 -> timeout 3
    conflict_repeat_delay: float = 3.0  # a 409 within 3 s of the previous one is answered 3 s later
    webhook_set_rate_limit: bool = True  # setWebhook at most once per second (429 retry after 1)
    allow_insecure_webhooks: bool = False  # accept http:// and any port (for a local webhook receiver)
    # Webhook delivery (fakeapi/webhook.py): a failed POST is retried after min_delay, doubling up to max_delay.
    webhook_retry_min_delay: float = 1.0
    webhook_retry_max_delay: float = 60.0
    webhook_timeout: float = 60.0  # seconds a webhook may take to answer
    # A new connection for every webhook POST (no keep-alive), so a round-robin TCP proxy in front of
    # several bot instances spreads the updates over them (tests/e2e/test_two_instances.py).
    webhook_force_close: bool = False
    shutdown_timeout: float = 1.0


class TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def wait_time(self, cost: float, now: float) -> float:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= cost:
            return 0.0
        return (cost - self.tokens) / self.rate if self.rate > 0 else math.inf

    def take(self, cost: float) -> None:
        self.tokens -= cost


class RateLimiter:
    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._bots: dict[int, TokenBucket] = {}
        self._chats: dict[tuple[int, int], TokenBucket] = {}

    def reset(self) -> None:
        self._bots.clear()
        self._chats.clear()

    def check(self, bot_id: int, chat_id: int, cost: int = 1) -> None:
        """Consume ``cost`` messages or raise 429 (nothing is consumed then)."""
        limits = self.limits
        if not limits.enabled:
            return
        now = time.monotonic()
        bot_bucket = self._bots.get(bot_id)
        if bot_bucket is None:
            bot_bucket = self._bots[bot_id] = TokenBucket(limits.per_bot_per_second, limits.per_bot_burst)
        chat_bucket = self._chats.get((bot_id, chat_id))
        if chat_bucket is None:
            chat_bucket = self._chats[(bot_id, chat_id)] = TokenBucket(
                limits.per_chat_per_second, limits.per_chat_burst
            )
        wait = max(
            bot_bucket.wait_time(min(cost, bot_bucket.burst), now),
            chat_bucket.wait_time(min(cost, chat_bucket.burst), now),
        )
        if wait > 0:
            raise too_many_requests(math.ceil(wait) if math.isfinite(wait) else 3600)
        bot_bucket.take(cost)
        chat_bucket.take(cost)
