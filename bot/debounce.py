"""Answer an album once: Telegram sends each photo of an album as its own update (sharing a
``media_group_id``). Each update is handled — and its photo stored — on its own; the reply is
debounced here so the user gets one answer, shortly after the album's last photo."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable

log = logging.getLogger("prolita.debounce")

# Telegram delivers an album's updates within a few hundred milliseconds of each other.
ALBUM_QUIET_SECONDS = 0.8


class Debouncer:
    """Runs the latest callback for a key once no newer ``touch`` came for ``delay`` seconds."""

    def __init__(self, delay: float = ALBUM_QUIET_SECONDS) -> None:
        self.delay = delay
        self._tasks: dict[Hashable, asyncio.Task[None]] = {}

    def touch(self, key: Hashable, callback: Callable[[], Awaitable[object]]) -> None:
        previous = self._tasks.get(key)
        if previous is not None and not previous.done():
            previous.cancel()
        self._tasks[key] = asyncio.create_task(self._later(key, callback), name=f"debounce-{key}")

    async def _later(self, key: Hashable, callback: Callable[[], Awaitable[object]]) -> None:
        await asyncio.sleep(self.delay)
        # From here on the callback runs to the end, even if a late item touches the key again.
        if self._tasks.get(key) is asyncio.current_task():
            del self._tasks[key]
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
