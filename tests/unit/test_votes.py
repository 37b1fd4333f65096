"""Pure rules of musyawarah votes: question and options (Telegram's poll limits), closing time,
and counting answers once per person."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.services import votes
from bot.services.votes import VoteInputError

NOW = dt.datetime(2026, 11, 28, 3, 0, tzinfo=dt.UTC)  # Sabtu 28 Nov 2026 11.00 WITA


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Ide  mana   yang diusulkan? ", "Ide mana yang diusulkan?"),
        ("q" * 300, "q" * 300),
        ("Perbaikan <got> & jalan?", "Perbaikan <got> & jalan?"),  # plain text: nothing escaped
    ],
)
def test_clean_question(text, expected):
    assert votes.clean_question(text) == expected


@pytest.mark.parametrize(
    ("text", "code"), [("", "question_empty"), ("   \n ", "question_empty"), ("q" * 301, "question_long")]
)
def test_bad_question(text, code):
    with pytest.raises(VoteInputError) as e:
        votes.clean_question(text)
    assert e.value.code == code


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Semenisasi gang", ["Semenisasi gang"]),
        ("1. Jalan\n2) Lampu\n\n- Got\n• Pos ronda", ["Jalan", "Lampu", "Got", "Pos ronda"]),
        ("  Jalan   gang  \n\n", ["Jalan gang"]),
        ("2026 tahun depan", ["2026 tahun depan"]),
        ("", []),
    ],
)
def test_split_options(text, expected):
    assert votes.split_options(text) == expected


def test_add_options_rules():
    assert votes.add_options(["Jalan"], ["Lampu", "Got"]) == ["Jalan", "Lampu", "Got"]
    for existing, new, code in [
        (["Jalan"], ["jalan"], "option_duplicate"),
        ([], ["a", "A "], "option_duplicate"),
        ([], ["x" * 101], "option_long"),
        ([], ["🙂" * 51], "option_long"),  # 102 UTF-16 units
        ([str(i) for i in range(10)], ["11"], "too_many"),
        ([], [str(i) for i in range(11)], "too_many"),
    ]:
        with pytest.raises(VoteInputError) as e:
            votes.add_options(existing, new)
        assert e.value.code == code
    assert len(votes.add_options([], ["x" * 100, "🙂" * 50])) == 2


@pytest.mark.parametrize(("options", "ok"), [(["a"], False), ([], False), (["a", "b"], True), (["a"] * 1, False)])
def test_check_options_needs_two(options, ok):
    if ok:
        assert votes.check_options(options) == options
    else:
        with pytest.raises(VoteInputError, match="too_few"):
            votes.check_options(options)


def test_shorten():
    assert votes.shorten("pendek") == "pendek"
    long = votes.shorten("kata " * 50)
    assert len(long) == 100 and long.endswith("…")
    assert votes.shorten("x" * 60, 40) == "x" * 39 + "…"


@pytest.mark.parametrize(
    ("text", "expected_local"),
    [
        ("30/11 20:00", dt.datetime(2026, 11, 30, 20, 0)),
        ("30-11-2026 19.30", dt.datetime(2026, 11, 30, 19, 30)),
        ("1/12", dt.datetime(2026, 12, 1, 20, 0)),
        ("28/11 11:30 WITA", dt.datetime(2026, 11, 28, 11, 30)),
        ("5/12/26 pukul 08.00", dt.datetime(2026, 12, 5, 8, 0)),
    ],
)
def test_parse_closing(text, expected_local):
    from zoneinfo import ZoneInfo

    got = votes.parse_closing(text, NOW)
    assert got.tzinfo is not None
    assert got.astimezone(ZoneInfo("Asia/Makassar")).replace(tzinfo=None) == expected_local


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("besok", "closing_format"),
        ("31/11 20:00", "closing_format"),
        ("30/11 25:00", "closing_format"),
        ("28/11 11:05", "closing_past"),  # 5 minutes from now: too soon
        ("28/11/2026 08:00", "closing_past"),
        ("27/11 20:00", "closing_far"),  # no year: next year's 27 Nov
        ("29/12 20:00", "closing_far"),  # 31 days
    ],
)
def test_bad_closing(text, code):
    with pytest.raises(VoteInputError) as e:
        votes.parse_closing(text, NOW)
    assert e.value.code == code


def test_closing_in_days():
    assert votes.closing_in_days(7, NOW) == NOW + dt.timedelta(days=7)
    assert votes.check_closing(NOW + dt.timedelta(days=30), NOW) == NOW + dt.timedelta(days=30)
    with pytest.raises(VoteInputError):
        votes.closing_in_days(31, NOW)
    with pytest.raises(ValueError):
        votes.check_closing(NOW.replace(tzinfo=None), NOW)


@pytest.mark.parametrize(
    ("n", "answers", "result", "voters"),
    [
        (3, [[0], [0], [1]], [2, 1, 0], 3),
        (3, [[0], [], [1]], [1, 1, 0], 2),  # a retracted answer is no voter
        (2, [[0, 0], [5], [-1]], [1, 0], 1),  # repeats and unknown options are ignored
        (2, [], [0, 0], 0),
        (3, [[0, 2]], [1, 0, 1], 1),
    ],
)
def test_count(n, answers, result, voters):
    assert votes.count(n, answers) == (result, voters)


@given(st.integers(1, 10), st.lists(st.lists(st.integers(-2, 12), max_size=4), max_size=30))
def test_count_properties(n, answers):
    result, voters = votes.count(n, answers)
    assert len(result) == n and 0 <= voters <= len(answers)
    assert all(0 <= r <= voters for r in result)
    assert sum(result) >= voters or voters == 0


def test_ranking_and_bar():
    assert votes.ranking(["a", "b", "c"], [1, 2, 1]) == [(1, "b", 2), (0, "a", 1), (2, "c", 1)]
    assert votes.bar(2, 2) == "▓" * 10
    assert votes.bar(1, 2) == "▓" * 5 + "░" * 5
    assert votes.bar(0, 0) == "░" * 10
