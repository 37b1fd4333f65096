"""Is an update's failure an outage of the database or Redis (retry it later), or a real error?

An update that fails because PostgreSQL or Redis could not be reached, or dropped the connection
mid-update (a restart, a failover, ``pg_terminate_backend``), did nothing: its transaction was rolled
back, or it never got the per-user lock. Answering Telegram 200 would lose it; the webhook answers
503 instead, so Telegram sends it again (with growing delays) until the service is back. Any other
error is a bug or bad input: the user is told and the update is not repeated (``handlers/errors.py``);
so is a failed call to Telegram itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiogram.exceptions import TelegramAPIError
from sqlalchemy.exc import DBAPIError, DisconnectionError

try:  # only installs with REDIS_URL need redis; without it there is no Redis outage to recognise
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError:  # pragma: no cover
    _REDIS: tuple[type[BaseException], ...] = ()
else:
    _REDIS = (RedisConnectionError, RedisTimeoutError)  # BusyLoadingError (restarting) is a ConnectionError

# asyncpg's errors for a connection that is gone or not yet accepted: class 08 (connection
# exception), 57P01-57P03 (terminated by an administrator, server shutting down, starting up), and
# the client-side "connection is closed" (ConnectionDoesNotExistError is an InterfaceError).
_ASYNCPG_NAMES = frozenset(
    {
        "PostgresConnectionError",
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "ClientCannotConnectError",
        "CannotConnectNowError",
        "AdminShutdownError",
        "CrashShutdownError",
        "InterfaceError",
    }
)


def _asyncpg_connection_error(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    if not module.startswith("asyncpg"):
        return False
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "InterfaceError" in names and "ConnectionDoesNotExistError" not in names:
        return "connection is closed" in str(exc) or "connection was closed" in str(exc)
    return bool(names & _ASYNCPG_NAMES)


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says the database or Redis is unreachable or dropped us."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TelegramAPIError):  # Telegram unreachable is not ours to retry this way
            return False
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, DisconnectionError | ConnectionError) or (_REDIS and isinstance(current, _REDIS)):
            return True
        if _asyncpg_connection_error(current):
            return True
        orig = getattr(current, "orig", None)  # SQLAlchemy keeps the driver's error here
        if isinstance(orig, BaseException) and id(orig) not in seen:
            if is_unavailable(orig):
                return True
        current = current.__cause__ or current.__context__
    return False


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


class OutageLog:
    """How a background loop (the outbox sender, a scheduled job) logs an outage of the database or
    Redis: one warning when it starts, a reminder every ``every`` seconds while it lasts, and one line
    when it is over, instead of a full traceback on every attempt. Other errors are not its business:
    :meth:`failed` returns False for them, and the caller logs them as before."""

    def __init__(
        self, logger: logging.Logger, what: str, every: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.logger, self.what, self.every, self.clock = logger, what, every, clock
        self.since: float | None = None
        self._last = 0.0
        self.failures = 0

    def failed(self, exc: BaseException) -> bool:
        if not is_unavailable(exc):
            return False
        now = self.clock()
        self.failures += 1
        if self.since is None:
            self.since, self._last = now, now
            self.logger.warning("%s: the database or Redis is unavailable (%s); retrying", self.what, _short(exc))
        elif now - self._last >= self.every:
            self._last = now
            self.logger.warning(
                "%s: still unavailable after %.0f s (%d attempts; %s)", self.what, now - self.since, self.failures,
                _short(exc),
            )  # fmt: skip
        return True

    def succeeded(self) -> None:
        if self.since is not None:
            self.logger.warning("%s: available again after %.0f s", self.what, self.clock() - self.since)
        self.since, self.failures = None, 0
