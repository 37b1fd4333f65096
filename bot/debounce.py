"""Answer an album once: Telegram sends each photo of an album as its own update (sharing a
``media_group_id``). Each update is handled — and its photo stored — on its own; the reply is
debounced here so the user gets one answer, shortly after the album's last photo.

With several instances (``REDIS_URL``) an album's photos may be handled by different instances,
each with its own timer. Every touch then also writes a token of its own to Redis under the album's
key; when a timer fires, only the instance whose token is still there (the album's last photo, as
one user's updates are handled one at a time across instances) answers, the others stay silent. If
Redis cannot be reached, each instance answers, as it would alone: two answers rather than none.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

log = logging.getLogger("prolita.debounce")

# Telegram delivers an album's updates within a few hundred milliseconds of each other.
ALBUM_QUIET_SECONDS = 0.8
REDIS_PREFIX = "prolita:album:"


class Debouncer:
    """Runs the latest callback for a key once no newer ``touch`` came for ``delay`` seconds."""

    def __init__(self, delay: float = ALBUM_QUIET_SECONDS, *, redis: Any = None) -> None:
        self.delay = delay
        self.redis = redis  # redis.asyncio.Redis shared by the instances, or None (this process only)
        self._tasks: dict[Hashable, asyncio.Task[None]] = {}

    def touch(self, key: Hashable, callback: Callable[[], Awaitable[object]]) -> None:
        previous = self._tasks.get(key)
        if previous is not None and not previous.done():
            previous.cancel()
        self._tasks[key] = asyncio.create_task(self._later(key, callback), name=f"debounce-{key}")

    @staticmethod
    def _redis_key(key: Hashable) -> str:
        parts = key if isinstance(key, tuple) else (key,)
        return REDIS_PREFIX + ":".join(str(p) for p in parts)

    async def _claim(self, key: Hashable) -> str | None:
        """Mark this touch as the key's latest for every instance; its token, or None without Redis."""
        if self.redis is None:
            return None
        token = uuid.uuid4().hex
        try:
            await self.redis.set(self._redis_key(key), token, px=int((self.delay * 4 + 10) * 1000))
        except Exception as exc:
            log.warning("album %s: Redis unavailable (%r); answering from this instance", key, exc)
            return None
        return token

    async def _latest(self, key: Hashable, token: str | None) -> bool:
        """Is this touch still the key's latest? (True without Redis, or when Redis cannot say.)"""
        if token is None:
            return True
        try:
            current = await self.redis.get(self._redis_key(key))
        except Exception as exc:
            log.warning("album %s: Redis unavailable (%r); answering from this instance", key, exc)
            return True
        if isinstance(current, bytes):
            current = current.decode()
        return current is None or current == token

    async def _later(self, key: Hashable, callback: Callable[[], Awaitable[object]]) -> None:
        token = await self._claim(key)
        await asyncio.sleep(self.delay)
        # From here on the callback runs to the end, even if a late item touches the key again.
        if self._tasks.get(key) is asyncio.current_task():
            del self._tasks[key]
        if not await self._latest(key, token):
            log.debug("album %s: a later photo went to another instance, which answers", key)
            return
        try:
            await callback()
        except Exception:
            log.exception("debounced callback for %s failed", key)

    def pending(self) -> int:
        return sum(1 for t in self._tasks.values() if not t.done())

    async def flush(self) -> None:
        """Wait for every scheduled callback (used at shutdown so no album goes unanswered)."""
        while tasks := [t for t in self._tasks.values() if not t.done()]:
            await asyncio.gather(*tasks, return_exceptions=True)
