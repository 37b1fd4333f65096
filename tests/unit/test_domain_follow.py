"""Pure rules of follow notices: mode filtering, quiet hours (across midnight, at the edges),
the weekly summary's Monday 07.00, and quiet hours as people type them."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain import follow as rules
from bot.domain.follow import (
    EV_APPROVED,
    EV_COMPLETED,
    EV_PROGRESS,
    EV_PROGRESS_VERIFIED,
    EV_REJECTED,
    EV_REVISION,
    NOW,
    WEEKLY,
    format_quiet,
    in_quiet,
    next_weekly,
    parse_quiet,
    quiet_until,
    route,
)
from storage import models

WITA = ZoneInfo("Asia/Makassar")
Q = (21 * 60, 6 * 60)  # the default 21.00–06.00


def wita(y, mo, d, h, mi=0, s=0) -> dt.datetime:
    return dt.datetime(y, mo, d, h, mi, s, tzinfo=WITA)


def test_modes_match_the_stored_values():
    assert rules.MODES == models.NOTIFY_MODES
    assert (rules.NOTIFY_ALL, rules.NOTIFY_DECISIONS, rules.NOTIFY_WEEKLY, rules.NOTIFY_OFF) == (
        models.NOTIFY_ALL,
        models.NOTIFY_DECISIONS,
        models.NOTIFY_WEEKLY,
        models.NOTIFY_OFF,
    )
    assert (models.QUIET_START_DEFAULT, models.QUIET_END_DEFAULT) == Q


@pytest.mark.parametrize(
    ("mode", "event", "expected"),
    [
        ("semua", EV_APPROVED, NOW),
        ("semua", EV_PROGRESS, NOW),
        ("semua", EV_PROGRESS_VERIFIED, NOW),
        ("keputusan", EV_APPROVED, NOW),
        ("keputusan", EV_REJECTED, NOW),
        ("keputusan", EV_REVISION, NOW),
        ("keputusan", EV_COMPLETED, NOW),
        ("keputusan", EV_PROGRESS, None),
        ("keputusan", EV_PROGRESS_VERIFIED, None),
        ("mingguan", EV_APPROVED, WEEKLY),
        ("mingguan", EV_PROGRESS, WEEKLY),
        ("mati", EV_APPROVED, None),
        ("mati", EV_PROGRESS, None),
    ],
)
def test_route(mode, event, expected):
    assert route(mode, event) == expected


def test_route_refuses_unknown_values():
    with pytest.raises(ValueError):
        route("semua", "liked")
    with pytest.raises(ValueError):
        route("loud", EV_APPROVED)


@pytest.mark.parametrize(
    ("hhmm", "start", "end", "quiet"),
    [
        ("20:59", *Q, False),
        ("21:00", *Q, True),  # the start is inside
        ("23:59", *Q, True),
        ("00:00", *Q, True),
        ("05:59", *Q, True),
        ("06:00", *Q, False),  # the end is outside
        ("12:00", *Q, False),
        ("13:00", 13 * 60, 15 * 60, True),  # a window within one day
        ("14:59", 13 * 60, 15 * 60, True),
        ("15:00", 13 * 60, 15 * 60, False),
        ("12:59", 13 * 60, 15 * 60, False),
        ("03:00", 0, 0, False),  # start == end: no quiet hours
    ],
)
def test_in_quiet(hhmm, start, end, quiet):
    h, m = map(int, hhmm.split(":"))
    assert in_quiet(h * 60 + m, start, end) is quiet


@pytest.mark.parametrize(
    ("now", "start", "end", "due"),
    [
        (wita(2026, 5, 4, 12, 0), *Q, wita(2026, 5, 4, 12, 0)),  # daytime: at once
        (wita(2026, 5, 4, 20, 59, 59), *Q, wita(2026, 5, 4, 20, 59, 59)),
        (wita(2026, 5, 4, 21, 0), *Q, wita(2026, 5, 5, 6, 0)),  # evening: tomorrow morning
        (wita(2026, 5, 4, 23, 0), *Q, wita(2026, 5, 5, 6, 0)),
        (wita(2026, 5, 5, 0, 30), *Q, wita(2026, 5, 5, 6, 0)),  # after midnight: this morning
        (wita(2026, 5, 5, 5, 59, 59), *Q, wita(2026, 5, 5, 6, 0)),
        (wita(2026, 5, 5, 6, 0), *Q, wita(2026, 5, 5, 6, 0)),  # the 06:00 edge: sent at once
        (wita(2026, 12, 31, 23, 0), *Q, wita(2027, 1, 1, 6, 0)),  # across the year
        (wita(2026, 5, 4, 14, 0), 13 * 60, 15 * 60, wita(2026, 5, 4, 15, 0)),
        (wita(2026, 5, 4, 23, 0), 0, 0, wita(2026, 5, 4, 23, 0)),
        (wita(2026, 5, 4, 23, 30), 22 * 60, 5 * 60 + 30, wita(2026, 5, 5, 5, 30)),
    ],
)
def test_quiet_until(now, start, end, due):
    got = quiet_until(now, start, end, WITA)
    assert got == due and got.tzinfo == dt.UTC


def test_quiet_until_from_utc_input():
    # 15:00 UTC is 23:00 WITA: held until 06:00 WITA = 22:00 UTC.
    now = dt.datetime(2026, 5, 4, 15, 0, tzinfo=dt.UTC)
    assert quiet_until(now, *Q, WITA) == dt.datetime(2026, 5, 4, 22, 0, tzinfo=dt.UTC)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError):
        quiet_until(dt.datetime(2026, 5, 4, 23, 0), *Q, WITA)
    with pytest.raises(ValueError):
        next_weekly(dt.datetime(2026, 5, 4, 23, 0), *Q, WITA)


@pytest.mark.parametrize(
    ("now", "start", "end", "due"),
    [
        (wita(2026, 5, 4, 6, 59), *Q, wita(2026, 5, 4, 7, 0)),  # Monday before 07:00: this morning
        (wita(2026, 5, 4, 7, 0), *Q, wita(2026, 5, 11, 7, 0)),  # Monday 07:00 itself: next week
        (wita(2026, 5, 4, 12, 0), *Q, wita(2026, 5, 11, 7, 0)),
        (wita(2026, 5, 6, 23, 0), *Q, wita(2026, 5, 11, 7, 0)),  # Wednesday night
        (wita(2026, 5, 10, 23, 59), *Q, wita(2026, 5, 11, 7, 0)),  # Sunday night
        (wita(2026, 12, 30, 10, 0), *Q, wita(2027, 1, 4, 7, 0)),
        (wita(2026, 5, 6, 12, 0), 22 * 60, 8 * 60, wita(2026, 5, 11, 8, 0)),  # 07:00 is quiet: after it
    ],
)
def test_next_weekly(now, start, end, due):
    got = next_weekly(now, start, end, WITA)
    assert got == due and got.tzinfo == dt.UTC
    assert got.astimezone(WITA).weekday() == 0


@given(st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 1, 1)))
def test_next_weekly_is_within_a_week_after(now):
    now = now.replace(tzinfo=WITA)
    due = next_weekly(now, *Q, WITA)
    assert now < due <= now + dt.timedelta(days=7)


@given(
    st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 1, 1)),
    st.integers(0, 1439),
    st.integers(0, 1439),
)
def test_quiet_until_lands_outside_quiet_hours_within_a_day(now, start, end):
    now = now.replace(tzinfo=WITA)
    due = quiet_until(now, start, end, WITA)
    local = due.astimezone(WITA)
    assert now <= due <= now + dt.timedelta(days=1)
    assert not in_quiet(local.hour * 60 + local.minute, start, end)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("22:00-05:30", (1320, 330)),
        ("22.00 – 05.30", (1320, 330)),
        ("  21:00 - 06:00 ", (1260, 360)),
        ("22-5", (1320, 300)),
        ("22:00 sampai 05:00", (1320, 300)),
        ("22:00 s/d 05:00", (1320, 300)),
        ("13:00-15:00", (780, 900)),
        ("24:00-06:00", (0, 360)),
        ("25:00-06:00", None),
        ("22:60-06:00", None),
        ("22:00", None),
        ("malam", None),
        ("", None),
        ("7:5-8", None),
    ],
)
def test_parse_quiet(text, expected):
    assert parse_quiet(text) == expected


def test_format_quiet():
    assert format_quiet(*Q) == "21.00–06.00"
    assert format_quiet(22 * 60, 5 * 60 + 30) == "22.00–05.30"
    assert format_quiet(0, 0) is None
