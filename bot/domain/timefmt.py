"""Indonesian date/time formatting and working-day arithmetic (holidays passed in)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from zoneinfo import ZoneInfo

DEFAULT_TZ = "Asia/Makassar"

DAY_NAMES = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")
MONTH_NAMES = (
    "Januari",
    "Februari",
    "Maret",
    "April",
    "Mei",
    "Juni",
    "Juli",
    "Agustus",
    "September",
    "Oktober",
    "November",
    "Desember",
)
MONTH_ABBR = ("Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des")

TZ_ABBREVIATIONS: dict[str, str] = {
    "Asia/Jakarta": "WIB",
    "Asia/Pontianak": "WIB",
    "Asia/Makassar": "WITA",
    "Asia/Ujung_Pandang": "WITA",
    "Asia/Jayapura": "WIT",
}


def _check_date(d: dt.date) -> None:
    if isinstance(d, dt.datetime):
        raise TypeError("got a datetime; use format_datetime (it converts to the local zone first)")
    if not isinstance(d, dt.date):
        raise TypeError(f"expected date, got {type(d).__name__}")


def _zone(tz: str | dt.tzinfo) -> tuple[dt.tzinfo, str | None]:
    if isinstance(tz, str):
        return ZoneInfo(tz), tz
    return tz, getattr(tz, "key", None)


def _local(value: dt.datetime, tz: str | dt.tzinfo) -> tuple[dt.datetime, str]:
    if not isinstance(value, dt.datetime):
        raise TypeError(f"expected datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime; pass a timezone-aware datetime")
    zone, key = _zone(tz)
    local = value.astimezone(zone)
    abbr = TZ_ABBREVIATIONS.get(key or "") or local.tzname() or ""
    return local, abbr


def format_date(d: dt.date) -> str:
    """``Senin, 27 April 2026``."""
    _check_date(d)
    return f"{DAY_NAMES[d.weekday()]}, {d.day} {MONTH_NAMES[d.month - 1]} {d.year}"


def format_short_date(d: dt.date) -> str:
    """``27 Apr 2026``."""
    _check_date(d)
    return f"{d.day} {MONTH_ABBR[d.month - 1]} {d.year}"


def tz_abbreviation(tz: str | dt.tzinfo = DEFAULT_TZ, at: dt.datetime | None = None) -> str:
    """WIB / WITA / WIT for Indonesian zones, otherwise the zone's own abbreviation."""
    _, key = _zone(tz)
    if key in TZ_ABBREVIATIONS:
        return TZ_ABBREVIATIONS[key]
    return _local(at or dt.datetime.now(dt.UTC), tz)[1]


def format_time(value: dt.datetime, tz: str | dt.tzinfo = DEFAULT_TZ) -> str:
    """``14.05 WITA`` (aware datetimes only)."""
    local, abbr = _local(value, tz)
    return f"{local.hour:02d}.{local.minute:02d} {abbr}".rstrip()


def format_datetime(value: dt.datetime, tz: str | dt.tzinfo = DEFAULT_TZ) -> str:
    """``Senin, 27 April 2026 14.05 WITA`` (aware datetimes only; ValueError if naive)."""
    local, abbr = _local(value, tz)
    return f"{format_date(local.date())} {local.hour:02d}.{local.minute:02d} {abbr}".rstrip()


def is_working_day(d: dt.date, holidays: Collection[dt.date] = frozenset()) -> bool:
    """Monday-Friday and not in ``holidays``."""
    return d.weekday() < 5 and d not in holidays


def add_working_days(start: dt.date, n: int, holidays: Collection[dt.date] = frozenset()) -> dt.date:
    """The ``n``-th working day after ``start`` (before it if ``n`` < 0); ``n == 0`` returns ``start``."""
    step = dt.timedelta(days=1 if n >= 0 else -1)
    remaining = abs(n)
    d = start
    while remaining:
        d += step
        if is_working_day(d, holidays):
            remaining -= 1
    return d


def working_days_between(a: dt.date, b: dt.date, holidays: Collection[dt.date] = frozenset()) -> int:
    """Working days in ``(a, b]``; negative (the count in ``(b, a]``) when ``b`` < ``a``.

    ``working_days_between(a, add_working_days(a, n, h), h) == n`` for ``n`` >= 0.
    """
    if b < a:
        return -working_days_between(b, a, holidays)
    days = (b - a).days
    full_weeks, rest = divmod(days, 7)
    count = full_weeks * 5
    d = a + dt.timedelta(days=full_weeks * 7)
    for _ in range(rest):
        d += dt.timedelta(days=1)
        if d.weekday() < 5:
            count += 1
    count -= sum(1 for h in set(holidays) if a < h <= b and h.weekday() < 5)
    return count
