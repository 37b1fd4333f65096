"""The time scheduled jobs run at: the real clock in production, a settable one in tests.

Job logic asks its clock (``clock.now()``, an aware UTC datetime) and never calls
``datetime.now`` itself, so a test can run a whole fiscal year's reminders in seconds.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime: ...


class SystemClock:
    """The real time."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class FakeClock:
    """A clock that stands still until set or advanced (tests, simulations)."""

    def __init__(self, start: dt.datetime) -> None:
        self._now = _utc(start)

    def now(self) -> dt.datetime:
        return self._now

    def set(self, value: dt.datetime) -> None:
        self._now = _utc(value)

    def advance(self, delta: dt.timedelta | None = None, **kwargs: float) -> dt.datetime:
        self._now += delta if delta is not None else dt.timedelta(**kwargs)
        return self._now


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime; pass a timezone-aware datetime")
    return value.astimezone(dt.UTC)
