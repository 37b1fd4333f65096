"""Per-user flood control of incoming updates (not to be confused with ``requests.FloodControl``,
which paces the bot's *outgoing* requests to Telegram's limits).

:class:`ThrottleMiddleware` is the first outer middleware on ``update`` after aiogram's user
context (see ``bot/app.py``): before the dialog state is read, before a database session is opened.
A user over the limit (``THROTTLE_BURST`` updates in a row, then ``THROTTLE_RATE`` a second; rules
in ``bot/domain/throttle.py``) has the update dropped at the cost of one dict lookup (or one Redis
call): a pressed button still gets its answerCallbackQuery with a short "wait a moment", and the
first drop of a flood episode sends the one polite message. Nothing else happens for a dropped
update: no handler runs, the dialog's step and draft stay exactly as they were (the wizard simply
still waits for that answer, which the user sends again), and the update counts as done — long
polling moves its offset past it and a webhook call is answered 200 — so Telegram does not send it
again. Only what a user can send at will is counted (``message``, ``edited_message``,
``callback_query``); a poll vote or blocking the bot is state and is never dropped.

With ``REDIS_URL`` the buckets live in Redis (one Lua script call per update, the same rules), so
several instances share each user's bucket; if Redis cannot be reached the instance falls back to
its own buckets for the moment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiogram import BaseMiddleware, Bot
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import TelegramAPIError
from aiogram.types import TelegramObject, Update
from aiogram.utils.i18n import I18n

from bot import metrics
from bot.domain.throttle import ALBUM_MAX, Bucket, Limits, Verdict, expired, take
from bot.i18n import DEFAULT_LOCALE

log = logging.getLogger("prolita.updates")

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
THROTTLED_UPDATES = frozenset({"message", "edited_message", "callback_query"})
REDIS_PREFIX = "prolita:throttle:"
MAX_REMEMBERED_LOCALES = 50_000


def N_(message: str) -> str:
    """Mark a msgid for extraction; translated when sent, in the user's language."""
    return message


NOTICE = N_(
    "⏳ One moment, please: your messages are coming too fast. I skipped some of the last messages "
    "or button presses; wait a few seconds, then send again whatever got no answer."
)
BUTTON_NOTICE = N_("⏳ Too fast. Please wait a moment, then press again.")


class Limiter(Protocol):
    async def take(self, user_id: int, update_id: int, media_group: str | None) -> Verdict: ...


class LocalThrottle:
    """The buckets of this process (one instance, or the fallback while Redis is unreachable)."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._buckets: dict[int, Bucket] = {}
        self._next_prune = clock() + limits.refill_seconds

    def decide(self, user_id: int, update_id: int, media_group: str | None = None) -> Verdict:
        now = self.clock()
        bucket, verdict = take(self._buckets.get(user_id), self.limits, now, update_id, media_group)
        self._buckets[user_id] = bucket
        if now >= self._next_prune:  # forget users whose bucket is full again (same as never seen)
            self._buckets = {k: b for k, b in self._buckets.items() if not expired(b, self.limits, now)}
            self._next_prune = now + self.limits.refill_seconds
        return verdict

    async def take(self, user_id: int, update_id: int, media_group: str | None) -> Verdict:
        return self.decide(user_id, update_id, media_group)

    def __len__(self) -> int:
        return len(self._buckets)


# bot/domain/throttle.take, in Redis: one atomic call per update, the bucket a hash that expires
# once it would be full again (an expired key is a fresh bucket, as in LocalThrottle's pruning).
# KEYS[1] the user's hash; ARGV: now, rate, burst, update id, media group ('' for none), ALBUM_MAX,
# expiry in ms. Returns the Verdict (0 allow, 1 drop, 2 drop and notify).
_TAKE_LUA = """
local now, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local uid, group, album_max = ARGV[4], ARGV[5], tonumber(ARGV[6])
local h = redis.call('HMGET', KEYS[1], 't', 'u', 'n', 'g', 'gl', 'ga', 'lu', 'la')
local tokens, updated = tonumber(h[1]), tonumber(h[2])
if tokens == nil or updated == nil then
  tokens, updated = burst, now
elseif h[7] == uid then
  if h[8] == '1' then return 0 end
  return 1
end
local elapsed = now - updated
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate)
local noticed = (h[3] == '1') and (tokens < burst - 1e-9)
if now > updated then updated = now end
local left = tonumber(h[5] or '0') or 0
local verdict
local fields
if group ~= '' and group == h[4] and left > 0 then
  local allowed = h[6] == '1'
  if allowed then verdict = 0 else verdict = 1 end
  fields = {'gl', tostring(left - 1)}
else
  if tokens >= 1 - 1e-9 then
    tokens = math.max(0, tokens - 1)
    verdict = 0
  elseif noticed then
    verdict = 1
  else
    verdict = 2
    noticed = true
  end
  fields = {}
  if group ~= '' then
    fields = {'g', group, 'gl', tostring(album_max - 1), 'ga', (verdict == 0) and '1' or '0'}
  end
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'u', tostring(updated), 'n', noticed and '1' or '0',
  'lu', uid, 'la', (verdict == 0) and '1' or '0', unpack(fields))
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return verdict
"""


class RedisThrottle:
    """Buckets shared by all instances through Redis. Times are the instances' wall clocks (kept in
    step by NTP; a clock a little behind another only delays its refill, never adds tokens)."""

    def __init__(
        self,
        redis: Any,
        limits: Limits,
        clock: Callable[[], float] = time.time,
        *,
        prefix: str = REDIS_PREFIX,
        fallback: LocalThrottle | None = None,
    ) -> None:
        self.redis = redis
        self.limits = limits
        self.clock = clock
        self.prefix = prefix
        self.fallback = fallback or LocalThrottle(limits)
        self._script = redis.register_script(_TAKE_LUA)
        self._warned_at: float | None = None

    async def take(self, user_id: int, update_id: int, media_group: str | None) -> Verdict:
        limits = self.limits
        args = [self.clock(), limits.rate, limits.burst, update_id, media_group or "", ALBUM_MAX, limits.ttl_ms]
        try:
            return Verdict(int(await self._script(keys=[f"{self.prefix}{user_id}"], args=args)))
        except Exception as exc:  # Redis down or unreachable: this instance's own buckets meanwhile
            now = time.monotonic()
            if self._warned_at is None or now - self._warned_at > 60:
                self._warned_at = now
                log.warning("flood control: Redis unavailable (%s: %s); using this instance's own counts",
                            type(exc).__name__, exc)  # fmt: skip
            return await self.fallback.take(user_id, update_id, media_group)


class ThrottleMiddleware(BaseMiddleware):
    """Outer ``update`` middleware: drops a flooding user's updates before any database work."""

    def __init__(self, limiter: Limiter, i18n: I18n) -> None:
        self.limiter = limiter
        self.i18n = i18n
        # A user's language is in the database, which a dropped update must not read: remembered
        # from their last handled update (only when not the default, so this stays small).
        self._locales: dict[int, str] = {}

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        tg_user = data.get("event_from_user")
        if tg_user is None or tg_user.is_bot or event.event_type not in THROTTLED_UPDATES:
            return await handler(event, data)
        group = event.message.media_group_id if event.message is not None else None
        verdict = await self.limiter.take(tg_user.id, event.update_id, group)
        if verdict.allowed:
            try:
                return await handler(event, data)
            finally:
                self._remember_locale(tg_user.id, data.get("user"))
        await self._refuse(event, data, tg_user.id, verdict)
        return UNHANDLED

    def _remember_locale(self, user_id: int, user: Any) -> None:
        # Only a value already loaded: after a failed update the session has rolled back and closed,
        # so reading the attribute would try to reload it from a session that is gone.
        lang = vars(user).get("language") if hasattr(user, "__dict__") else None
        if lang is None:
            return
        if lang == DEFAULT_LOCALE:
            self._locales.pop(user_id, None)
        elif self._locales.get(user_id) != lang:
            if len(self._locales) >= MAX_REMEMBERED_LOCALES:
                self._locales.pop(next(iter(self._locales)))
            self._locales[user_id] = lang

    async def _refuse(self, event: Update, data: dict[str, Any], user_id: int, verdict: Verdict) -> None:
        metrics.UPDATES.labels(handler="-", outcome="throttled").inc()
        bot: Bot = data["bot"]
        locale = self._locales.get(user_id, DEFAULT_LOCALE)
        first = verdict is Verdict.DROP_NOTIFY
        (log.info if first else log.debug)(
            "update=%s user=%s type=%s handler=- outcome=throttled%s",
            event.update_id, user_id, event.event_type,
            " (too fast: told once, dropping until they slow down)" if first else "",
        )  # fmt: skip
        query = event.callback_query
        if query is not None:  # the button stops spinning
            text = self.i18n.gettext(BUTTON_NOTICE, locale=locale)
            await self._quietly(bot.answer_callback_query(query.id, text=text))
        if first:
            chat = data.get("event_chat")
            chat_id = chat.id if chat is not None else user_id
            await self._quietly(bot.send_message(chat_id, self.i18n.gettext(NOTICE, locale=locale)))

    @staticmethod
    async def _quietly(call: Awaitable[Any]) -> None:
        try:
            await call
        except (TelegramAPIError, OSError, TimeoutError) as exc:  # an old query, a network blip
            log.warning("flood control: could not answer a dropped update: %s: %s", type(exc).__name__, exc)


def build_limiter(rate: float, burst: int, redis: Any | None) -> Limiter | None:
    """The limiter for THROTTLE_RATE / THROTTLE_BURST (None when THROTTLE_RATE is 0: no flood control)."""
    if rate <= 0:
        return None
    limits = Limits(rate=rate, burst=burst)
    return RedisThrottle(redis, limits) if redis is not None else LocalThrottle(limits)
