from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.timefmt import (
    add_working_days,
    format_date,
    format_datetime,
    format_short_date,
    format_time,
    is_working_day,
    tz_abbreviation,
    working_days_between,
)

D = dt.date


@pytest.mark.parametrize(
    ("d", "expected"),
    [
        (D(2026, 4, 27), "Senin, 27 April 2026"),
        (D(2026, 4, 28), "Selasa, 28 April 2026"),
        (D(2026, 4, 29), "Rabu, 29 April 2026"),
        (D(2026, 4, 30), "Kamis, 30 April 2026"),
        (D(2026, 5, 1), "Jumat, 1 Mei 2026"),
        (D(2026, 5, 2), "Sabtu, 2 Mei 2026"),
        (D(2026, 5, 3), "Minggu, 3 Mei 2026"),
        (D(2026, 1, 1), "Kamis, 1 Januari 2026"),
        (D(2026, 2, 14), "Sabtu, 14 Februari 2026"),
        (D(2026, 3, 20), "Jumat, 20 Maret 2026"),
        (D(2026, 6, 1), "Senin, 1 Juni 2026"),
        (D(2026, 7, 17), "Jumat, 17 Juli 2026"),
        (D(2026, 8, 17), "Senin, 17 Agustus 2026"),
        (D(2026, 9, 9), "Rabu, 9 September 2026"),
        (D(2026, 10, 28), "Rabu, 28 Oktober 2026"),
        (D(2026, 11, 10), "Selasa, 10 November 2026"),
        (D(2026, 12, 25), "Jumat, 25 Desember 2026"),
    ],
)
def test_format_date(d: dt.date, expected: str) -> None:
    assert format_date(d) == expected


@pytest.mark.parametrize(
    ("d", "expected"),
    [
        (D(2026, 4, 27), "27 Apr 2026"),
        (D(2026, 5, 1), "1 Mei 2026"),
        (D(2026, 8, 17), "17 Agu 2026"),
        (D(2026, 10, 5), "5 Okt 2026"),
        (D(2026, 12, 31), "31 Des 2026"),
    ],
)
def test_format_short_date(d: dt.date, expected: str) -> None:
    assert format_short_date(d) == expected


UTC_0605 = dt.datetime(2026, 4, 27, 6, 5, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "tz", "expected"),
    [
        (UTC_0605, "Asia/Makassar", "Senin, 27 April 2026 14.05 WITA"),
        (UTC_0605, "Asia/Jakarta", "Senin, 27 April 2026 13.05 WIB"),
        (UTC_0605, "Asia/Jayapura", "Senin, 27 April 2026 15.05 WIT"),
        (UTC_0605, ZoneInfo("Asia/Makassar"), "Senin, 27 April 2026 14.05 WITA"),
        (UTC_0605, "UTC", "Senin, 27 April 2026 06.05 UTC"),
        (UTC_0605, dt.UTC, "Senin, 27 April 2026 06.05 UTC"),
        (UTC_0605, "Europe/Berlin", "Senin, 27 April 2026 08.05 CEST"),
        # crossing midnight: the local date is used, not the UTC one
        (dt.datetime(2026, 4, 26, 16, 30, tzinfo=dt.UTC), "Asia/Makassar", "Senin, 27 April 2026 00.30 WITA"),
        # already-local input in another offset
        (
            dt.datetime(2026, 4, 27, 14, 5, tzinfo=ZoneInfo("Asia/Makassar")),
            "Asia/Jakarta",
            "Senin, 27 April 2026 13.05 WIB",
        ),
    ],
)
def test_format_datetime(value: dt.datetime, tz: str | dt.tzinfo, expected: str) -> None:
    assert format_datetime(value, tz) == expected


def test_format_datetime_default_is_wita() -> None:
    assert format_datetime(UTC_0605) == "Senin, 27 April 2026 14.05 WITA"
    assert format_time(UTC_0605) == "14.05 WITA"


def test_naive_datetime_refused() -> None:
    with pytest.raises(ValueError):
        format_datetime(dt.datetime(2026, 4, 27, 14, 5))
    with pytest.raises(ValueError):
        format_time(dt.datetime(2026, 4, 27, 14, 5))


def test_format_date_refuses_datetime() -> None:
    with pytest.raises(TypeError):
        format_date(UTC_0605)
    with pytest.raises(TypeError):
        format_short_date(UTC_0605)


@pytest.mark.parametrize(
    ("tz", "expected"),
    [("Asia/Makassar", "WITA"), ("Asia/Jakarta", "WIB"), ("Asia/Pontianak", "WIB"), ("Asia/Jayapura", "WIT")],
)
def test_tz_abbreviation(tz: str, expected: str) -> None:
    assert tz_abbreviation(tz) == expected


# 2026-04-24 Fri, 25 Sat, 26 Sun, 27 Mon ... 2026-05-01 Fri (Hari Buruh), 2026-05-14 Thu
HOLIDAYS = {D(2026, 5, 1), D(2026, 5, 14)}


@pytest.mark.parametrize(
    ("start", "n", "holidays", "expected"),
    [
        (D(2026, 4, 27), 0, set(), D(2026, 4, 27)),
        (D(2026, 4, 25), 0, set(), D(2026, 4, 25)),  # n=0 returns start even on a weekend
        (D(2026, 4, 27), 1, set(), D(2026, 4, 28)),
        (D(2026, 4, 24), 1, set(), D(2026, 4, 27)),  # Fri + 1 -> Mon
        (D(2026, 4, 25), 1, set(), D(2026, 4, 27)),  # Sat + 1 -> Mon
        (D(2026, 4, 26), 1, set(), D(2026, 4, 27)),  # Sun + 1 -> Mon
        (D(2026, 4, 27), 5, set(), D(2026, 5, 4)),
        (D(2026, 4, 27), 5, HOLIDAYS, D(2026, 5, 5)),  # skips 1 May
        (D(2026, 4, 30), 1, HOLIDAYS, D(2026, 5, 4)),  # Thu + 1 skips Fri holiday and weekend
        (D(2026, 4, 27), 10, HOLIDAYS, D(2026, 5, 12)),
        (D(2026, 4, 27), 14, HOLIDAYS, D(2026, 5, 19)),  # skips 1 May and 14 May
        (D(2026, 4, 27), -1, set(), D(2026, 4, 24)),  # Mon - 1 -> Fri
        (D(2026, 5, 4), -1, HOLIDAYS, D(2026, 4, 30)),
        (D(2026, 4, 27), 3, {D(2026, 4, 25)}, D(2026, 4, 30)),  # weekend holiday changes nothing
    ],
)
def test_add_working_days(start: dt.date, n: int, holidays: set[dt.date], expected: dt.date) -> None:
    assert add_working_days(start, n, holidays) == expected


@pytest.mark.parametrize(
    ("a", "b", "holidays", "expected"),
    [
        (D(2026, 4, 27), D(2026, 4, 27), set(), 0),
        (D(2026, 4, 27), D(2026, 4, 28), set(), 1),
        (D(2026, 4, 24), D(2026, 4, 27), set(), 1),
        (D(2026, 4, 25), D(2026, 4, 26), set(), 0),
        (D(2026, 4, 27), D(2026, 5, 4), set(), 5),
        (D(2026, 4, 27), D(2026, 5, 4), HOLIDAYS, 4),
        (D(2026, 4, 27), D(2026, 5, 31), HOLIDAYS, 22),
        (D(2026, 5, 4), D(2026, 4, 27), HOLIDAYS, -4),
        (D(2026, 4, 27), D(2026, 4, 29), {D(2026, 4, 27)}, 2),  # holiday on a itself not counted anyway
    ],
)
def test_working_days_between(a: dt.date, b: dt.date, holidays: set[dt.date], expected: int) -> None:
    assert working_days_between(a, b, holidays) == expected


def test_is_working_day() -> None:
    assert is_working_day(D(2026, 4, 27))
    assert not is_working_day(D(2026, 4, 25))
    assert not is_working_day(D(2026, 5, 1), HOLIDAYS)


dates = st.dates(min_value=D(2020, 1, 1), max_value=D(2035, 12, 31))
holiday_sets = st.sets(dates, max_size=20)


@given(dates, st.integers(min_value=0, max_value=400), holiday_sets)
def test_add_then_between_round_trip(start: dt.date, n: int, holidays: set[dt.date]) -> None:
    end = add_working_days(start, n, holidays)
    assert working_days_between(start, end, holidays) == n
    if n:
        assert is_working_day(end, holidays)


@given(dates, dates, holiday_sets)
def test_between_matches_naive_count(a: dt.date, b: dt.date, holidays: set[dt.date]) -> None:
    lo, hi = sorted((a, b))
    naive = sum(1 for i in range(1, (hi - lo).days + 1) if is_working_day(lo + dt.timedelta(days=i), holidays))
    assert working_days_between(a, b, holidays) == (naive if a <= b else -naive)


@given(dates, st.integers(min_value=1, max_value=200), holiday_sets)
def test_backwards_lands_on_working_day(start: dt.date, n: int, holidays: set[dt.date]) -> None:
    back = add_working_days(start, -n, holidays)
    assert back < start
    assert is_working_day(back, holidays)
    if is_working_day(start, holidays):
        assert add_working_days(back, n, holidays) == start
