"""Aspirasi warga, pure rules: the rolling daily limit, the text cap, status transitions, who may
decide, locations, and what the RT head sees of the sender."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.text import EMPTY, TOO_LONG, TextError
from bot.services import aspirations as svc
from storage.models import ASPIRASI_BARU, ASPIRASI_DIBAHAS, ASPIRASI_DITOLAK, ASPIRASI_DIUSULKAN, User

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("sent_hours_ago", "expected_hours_from_now"),
    [
        ([], None),
        ([1], None),
        ([1, 2], None),
        ([1, 2, 3], 21),  # the oldest of the three leaves the window 21 h from now
        ([23.5, 2, 3], 0.5),
        ([24, 2, 3], None),  # exactly 24 h ago: already outside the window
        ([25, 30, 1], None),  # old ones do not count
        ([1, 2, 3, 4], 21),  # four in the window (an old limit): wait until two have left
        ([0, 0, 0], 24),
    ],
)
def test_next_allowed_at(sent_hours_ago, expected_hours_from_now):
    sent = [NOW - h * H for h in sent_hours_ago]
    got = svc.next_allowed_at(sent, NOW)
    if expected_hours_from_now is None:
        assert got is None
    else:
        assert got == NOW + expected_hours_from_now * H


def test_future_times_do_not_count():
    assert svc.next_allowed_at([NOW + H] * 5, NOW) is None


@given(st.lists(st.integers(min_value=0, max_value=48 * 60), max_size=10))
def test_next_allowed_at_is_when_one_more_fits(minutes_ago):
    sent = [NOW - dt.timedelta(minutes=m) for m in minutes_ago]
    at = svc.next_allowed_at(sent, NOW)
    if at is None:
        assert sum(1 for t in sent if NOW - svc.WINDOW < t) < svc.DAILY_LIMIT
    else:
        assert at > NOW
        assert svc.next_allowed_at(sent, at) is None  # at that moment one more fits
        assert svc.next_allowed_at(sent, at - dt.timedelta(seconds=1)) is not None  # and not a second before


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("  Lampu jalan di gang 3 mati  ", "Lampu jalan di gang 3 mati"),
        ("<b>tebal</b>", "<b>tebal</b>"),  # stored literally; escaped when shown
        ("'; DROP TABLE aspirations; --", "'; DROP TABLE aspirations; --"),
        ("a\u0000b\u200bc", "abc"),
        ("x" * 1000, "x" * 1000),
    ],
)
def test_clean_idea_keeps_text_literally(text, result):
    assert svc.clean_idea(text) == result


@pytest.mark.parametrize(
    ("text", "kind", "length"),
    [("", EMPTY, 0), ("   \n ", EMPTY, 0), ("x" * 5000, TOO_LONG, 5000), ("y" * 1001, TOO_LONG, 1001)],
)
def test_clean_idea_refuses(text, kind, length):
    with pytest.raises(TextError) as e:
        svc.clean_idea(text)
    assert (e.value.kind, e.value.length, e.value.max_len) == (kind, length, svc.TEXT_MAX)


@pytest.mark.parametrize(
    ("current", "action", "expected"),
    [
        (ASPIRASI_BARU, svc.BAHAS, ASPIRASI_DIBAHAS),
        (ASPIRASI_BARU, svc.USULKAN, ASPIRASI_DIUSULKAN),
        (ASPIRASI_BARU, svc.TOLAK, ASPIRASI_DITOLAK),
        (ASPIRASI_DIBAHAS, svc.USULKAN, ASPIRASI_DIUSULKAN),
        (ASPIRASI_DIBAHAS, svc.TOLAK, ASPIRASI_DITOLAK),
        (ASPIRASI_DIBAHAS, svc.BAHAS, None),
        (ASPIRASI_DIUSULKAN, svc.TOLAK, None),
        (ASPIRASI_DIUSULKAN, svc.USULKAN, None),
        (ASPIRASI_DITOLAK, svc.BAHAS, None),
        (ASPIRASI_DITOLAK, svc.USULKAN, None),
        ("nonsense", svc.BAHAS, None),
    ],
)
def test_transitions(current, action, expected):
    if expected is None:
        with pytest.raises(KeyError):
            svc.next_status(current, action)
        assert action not in svc.allowed_actions(current)
    else:
        assert svc.next_status(current, action) == expected
        assert action in svc.allowed_actions(current)


def test_unknown_action():
    with pytest.raises(ValueError):
        svc.next_status(ASPIRASI_BARU, "hapus")


@pytest.mark.parametrize(("head_rt", "asp_rt", "ok"), [(5, 5, True), (5, 6, False), (None, 5, False), (0, 0, True)])
def test_may_decide(head_rt, asp_rt, ok):
    assert svc.may_decide(head_rt, asp_rt) is ok


@pytest.mark.parametrize(
    ("lat", "lon", "ok"),
    [
        (None, None, True),
        (0.1335, 117.4988, True),
        (-90, 180, True),
        (91, 0, False),
        (0, -181, False),
        (0.1, None, False),
        (float("nan"), 0, False),
        (float("inf"), 0, False),
    ],
)
def test_valid_location(lat, lon, ok):
    assert svc.valid_location(lat, lon) is ok


def test_aspirant_view_first_name_only_unless_shared():
    u = User(id=42, first_name="Siti", last_name="Aminah")
    assert svc.aspirant_view(u, False) == svc.Aspirant("Siti", None)
    assert svc.aspirant_view(u, True) == svc.Aspirant("Siti Aminah", 42)
    u.erased_at = NOW
    assert svc.aspirant_view(u, True) == svc.Aspirant(None, None)
    assert svc.aspirant_view(None, False) == svc.Aspirant(None, None)
