"""Pure rules of follow notices: which events a notice mode lets through, quiet hours, the weekly
summary's due time, and quiet hours as people type them. No aiogram, no SQL.

Times of day are minutes after local midnight (``21 * 60`` is 21:00); a quiet window runs from
``start`` (inclusive) to ``end`` (exclusive) and may cross midnight; ``start == end`` means none.
Datetimes in and out are timezone-aware; results are UTC.
"""

from __future__ import annotations

import datetime as dt
import re

# Notice modes, as stored in ``notification_prefs.mode`` (same values as ``storage.models.NOTIFY_*``).
NOTIFY_ALL = "semua"
NOTIFY_DECISIONS = "keputusan"
NOTIFY_WEEKLY = "mingguan"
NOTIFY_OFF = "mati"
MODES = (NOTIFY_ALL, NOTIFY_DECISIONS, NOTIFY_WEEKLY, NOTIFY_OFF)

# What followers are told about (the ``event`` of a "follow.event" notice).
EV_APPROVED = "approved"
EV_REJECTED = "rejected"
EV_REVISION = "revision"
EV_COMPLETED = "completed"
EV_PROGRESS = "progress"  # a progress report was made (percent)
EV_PROGRESS_VERIFIED = "progress_verified"  # ... and verified by the kelurahan
DECISIONS = frozenset({EV_APPROVED, EV_REJECTED, EV_REVISION, EV_COMPLETED})
EVENTS = DECISIONS | {EV_PROGRESS, EV_PROGRESS_VERIFIED}

NOW = "now"
WEEKLY = "weekly"

WEEKLY_WEEKDAY = 0  # Monday
WEEKLY_AT = 7 * 60  # 07:00 local
DAY = 24 * 60


def route(mode: str, event: str) -> str | None:
    """How a follower with notice ``mode`` hears of ``event``: NOW, WEEKLY (in the summary) or None."""
    if event not in EVENTS:
        raise ValueError(f"unknown follow event {event!r}")
    if mode == NOTIFY_ALL:
        return NOW
    if mode == NOTIFY_DECISIONS:
        return NOW if event in DECISIONS else None
    if mode == NOTIFY_WEEKLY:
        return WEEKLY
    if mode == NOTIFY_OFF:
        return None
    raise ValueError(f"unknown notice mode {mode!r}")


def in_quiet(minute: int, start: int, end: int) -> bool:
    """Whether a local time of day (minutes) falls inside the quiet window [start, end)."""
    if start == end:
        return False
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


def _aware(value: dt.datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime; pass a timezone-aware datetime")


def _at_minute(day: dt.date, minute: int, tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(minute // 60, minute % 60), tzinfo=tz)


def quiet_until(now: dt.datetime, start: int, end: int, tz: dt.tzinfo) -> dt.datetime:
    """When a notice made at ``now`` may be sent: ``now`` itself outside quiet hours, else the end of
    the quiet window (the next local ``end``), in UTC."""
    _aware(now)
    local = now.astimezone(tz)
    minute = local.hour * 60 + local.minute
    if not in_quiet(minute, start, end):
        return now.astimezone(dt.UTC)
    day = local.date()
    if minute >= end:  # a window crossing midnight, in its evening part: it ends tomorrow
        day += dt.timedelta(days=1)
    return _at_minute(day, end, tz).astimezone(dt.UTC)


def next_weekly(now: dt.datetime, start: int, end: int, tz: dt.tzinfo) -> dt.datetime:
    """The next Monday 07:00 local strictly after ``now`` (pushed to the end of quiet hours if
    07:00 falls inside them), in UTC: when a weekly summary is due."""
    _aware(now)
    local = now.astimezone(tz)
    day = local.date() + dt.timedelta(days=(WEEKLY_WEEKDAY - local.weekday()) % 7)
    due = _at_minute(day, WEEKLY_AT, tz)
    if due <= local:
        due = _at_minute(day + dt.timedelta(days=7), WEEKLY_AT, tz)
    return quiet_until(due, start, end, tz)


_TIME = r"(\d{1,2})(?:\s*[:.]\s*(\d{2}))?"
_QUIET = re.compile(rf"^\s*{_TIME}\s*(?:-|–|—|s/?d|sampai|to)\s*{_TIME}\s*$")


def parse_quiet(text: str) -> tuple[int, int] | None:
    """Quiet hours as typed: ``22:00-05:30``, ``22.00 – 05.30``, ``22-5``, ``22:00 sampai 05:00``.
    Returns (start, end) in minutes, or None when it cannot be read (hours 0-23, minutes 0-59;
    ``24:00`` is midnight)."""
    match = _QUIET.match((text or "").lower())
    if match is None:
        return None
    out = []
    for hour, minute in ((match.group(1), match.group(2)), (match.group(3), match.group(4))):
        h, m = int(hour), int(minute or 0)
        if h == 24 and m == 0:
            h = 0
        if not (0 <= h <= 23 and 0 <= m <= 59):
            return None
        out.append(h * 60 + m)
    return out[0], out[1]


def format_minute(minute: int) -> str:
    """``21.00`` (Indonesian style, as times are shown elsewhere)."""
    minute %= DAY
    return f"{minute // 60:02d}.{minute % 60:02d}"


def format_quiet(start: int, end: int) -> str | None:
    """``21.00–06.00``, or None when there are no quiet hours."""
    if start == end:
        return None
    return f"{format_minute(start)}–{format_minute(end)}"
