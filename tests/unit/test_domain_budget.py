from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.budget import (
    VIOLATION_KINDS,
    CategoryRule,
    ProgramRules,
    Violation,
    category_minimum_gaps,
    category_totals,
    check_proposal,
    max_allowed_amount,
    remaining_ceiling,
    share_max_limit,
    share_min_limit,
)

JT = 1_000_000
OPENS = dt.date(2026, 2, 1)
CLOSES = dt.date(2026, 3, 31)
IN_WINDOW = dt.date(2026, 3, 1)

RULES = ProgramRules(
    ceiling=50 * JT,
    categories={
        "fisik": CategoryRule(None, 70, "Infrastruktur fisik"),
        "sosbud": CategoryRule(20, None, "Sosial budaya"),
        "ekonomi": CategoryRule(10, 30, "Ekonomi"),
        "lain": CategoryRule(name="Lainnya"),
    },
    opens=OPENS,
    closes=CLOSES,
)


def kinds(violations: list[Violation]) -> list[str]:
    return [v.kind for v in violations]


@pytest.mark.parametrize(
    ("ceiling", "amounts", "expected"),
    [
        (50 * JT, [], 50 * JT),
        (50 * JT, [10 * JT, 5 * JT], 35 * JT),
        (50 * JT, [50 * JT], 0),
        (50 * JT, [60 * JT], 0),  # over-committed (ceiling lowered later): never negative
        (0, [], 0),
    ],
)
def test_remaining_ceiling(ceiling: int, amounts: list[int], expected: int) -> None:
    assert remaining_ceiling(ceiling, amounts) == expected


@pytest.mark.parametrize(
    ("others", "category", "amount", "today", "expected"),
    [
        # fine
        ([], "fisik", 10 * JT, IN_WINDOW, []),
        ([], "lain", 50 * JT, IN_WINDOW, []),
        # ceiling: exactly at it is OK, 1 rupiah over is not
        ([("lain", 20 * JT)], "sosbud", 30 * JT, IN_WINDOW, []),
        ([("lain", 20 * JT)], "sosbud", 30 * JT + 1, IN_WINDOW, ["over_ceiling"]),
        ([("lain", 50 * JT)], "sosbud", 1, IN_WINDOW, ["over_ceiling"]),
        # category max: 70 % of 50 jt = 35 jt, counting others in the same category
        ([], "fisik", 35 * JT, IN_WINDOW, []),
        ([], "fisik", 35 * JT + 1, IN_WINDOW, ["category_max"]),
        ([("fisik", 20 * JT)], "fisik", 15 * JT, IN_WINDOW, []),
        ([("fisik", 20 * JT)], "fisik", 15 * JT + 1, IN_WINDOW, ["category_max"]),
        ([("fisik", 20 * JT), ("sosbud", 10 * JT)], "fisik", 15 * JT, IN_WINDOW, []),
        # other categories don't count towards this category's max
        ([("sosbud", 15 * JT)], "fisik", 35 * JT, IN_WINDOW, []),
        # both at once are reported together
        ([("fisik", 30 * JT), ("sosbud", 15 * JT)], "fisik", 10 * JT, IN_WINDOW, ["over_ceiling", "category_max"]),
        # window: inclusive on both ends
        ([], "fisik", JT, OPENS, []),
        ([], "fisik", JT, CLOSES, []),
        ([], "fisik", JT, OPENS - dt.timedelta(days=1), ["window_not_open"]),
        ([], "fisik", JT, CLOSES + dt.timedelta(days=1), ["window_closed"]),
        # empty budget
        ([], "fisik", 0, IN_WINDOW, ["empty_budget"]),
        ([], "fisik", -5, IN_WINDOW, ["empty_budget"]),
        # unknown category still gets the ceiling check
        ([], "wisata", JT, IN_WINDOW, ["unknown_category"]),
        ([], "wisata", 51 * JT, IN_WINDOW, ["unknown_category", "over_ceiling"]),
        # everything at once
        (
            [("fisik", 40 * JT)],
            "fisik",
            20 * JT,
            CLOSES + dt.timedelta(days=1),
            ["window_closed", "over_ceiling", "category_max"],
        ),
        ([], "fisik", 0, OPENS - dt.timedelta(days=1), ["window_not_open", "empty_budget"]),
    ],
)
def test_check_proposal(
    others: list[tuple[str, int]], category: str, amount: int, today: dt.date, expected: list[str]
) -> None:
    assert kinds(check_proposal(RULES, others, category, amount, today)) == expected


def test_violation_numbers() -> None:
    over, cat_max = check_proposal(RULES, [("fisik", 30 * JT), ("sosbud", 15 * JT)], "fisik", 10 * JT, IN_WINDOW)
    assert over == Violation("over_ceiling", amount=10 * JT, ceiling=50 * JT, remaining=5 * JT)
    assert cat_max == Violation(
        "category_max",
        amount=10 * JT,
        ceiling=50 * JT,
        remaining=5 * JT,
        limit=35 * JT,
        share_pct=70,
        category="fisik",
        category_name="Infrastruktur fisik",
        category_total=40 * JT,
    )
    (closed,) = check_proposal(RULES, [], "fisik", JT, dt.date(2026, 4, 1))
    assert closed == Violation("window_closed", opens=OPENS, closes=CLOSES, today=dt.date(2026, 4, 1))
    (empty,) = check_proposal(RULES, [], "fisik", 0, IN_WINDOW)
    assert empty.amount == 0
    (unknown,) = check_proposal(RULES, [], "wisata", JT, IN_WINDOW)
    assert unknown.category == "wisata"


def test_zero_ceiling() -> None:
    rules = ProgramRules(0, {"fisik": CategoryRule(None, 70, "Fisik")}, OPENS, CLOSES)
    assert kinds(check_proposal(rules, [], "fisik", 1, IN_WINDOW)) == ["over_ceiling", "category_max"]
    assert kinds(check_proposal(rules, [], "fisik", 0, IN_WINDOW)) == ["empty_budget"]
    assert max_allowed_amount(rules, [], "fisik") == 0


def test_max_share_rounds_down_min_share_rounds_up() -> None:
    # 33 % of 1.000.001 = 330.000,33 -> max 330.000, min 330.001
    assert share_max_limit(1_000_001, 33) == 330_000
    assert share_min_limit(1_000_001, 33) == 330_001
    assert share_max_limit(50 * JT, 70) == share_min_limit(50 * JT, 70) == 35 * JT
    rules = ProgramRules(1_000_001, {"a": CategoryRule(None, 33, "A")}, OPENS, CLOSES)
    assert check_proposal(rules, [], "a", 330_000, IN_WINDOW) == []
    assert kinds(check_proposal(rules, [], "a", 330_001, IN_WINDOW)) == ["category_max"]


@pytest.mark.parametrize(
    ("others", "category", "expected"),
    [
        ([], "fisik", 35 * JT),
        ([], "lain", 50 * JT),
        ([], "ekonomi", 15 * JT),
        ([("fisik", 20 * JT)], "fisik", 15 * JT),
        ([("fisik", 20 * JT), ("lain", 20 * JT)], "fisik", 10 * JT),
        ([("fisik", 40 * JT)], "fisik", 0),
        ([("lain", 50 * JT)], "lain", 0),
        ([], "wisata", 0),
    ],
)
def test_max_allowed_amount(others: list[tuple[str, int]], category: str, expected: int) -> None:
    assert max_allowed_amount(RULES, others, category) == expected


@pytest.mark.parametrize(
    ("amounts", "expected"),
    [
        ({}, [("sosbud", 10 * JT, 0, 10 * JT), ("ekonomi", 5 * JT, 0, 5 * JT)]),
        ({"sosbud": 10 * JT, "ekonomi": 5 * JT}, []),
        ({"sosbud": 10 * JT - 1, "ekonomi": 6 * JT}, [("sosbud", 10 * JT, 10 * JT - 1, 1)]),
        ({"fisik": 35 * JT, "sosbud": 4 * JT}, [("sosbud", 10 * JT, 4 * JT, 6 * JT), ("ekonomi", 5 * JT, 0, 5 * JT)]),
    ],
)
def test_category_minimum_gaps(amounts: dict[str, int], expected: list[tuple[str, int, int, int]]) -> None:
    gaps = category_minimum_gaps(RULES, amounts)
    assert all(g.kind == "category_min" for g in gaps)
    assert [(g.category, g.limit, g.category_total, g.shortfall) for g in gaps] == expected


def test_category_minimum_gap_numbers() -> None:
    (gap,) = category_minimum_gaps(RULES, {"fisik": 30 * JT, "sosbud": 2 * JT, "ekonomi": 5 * JT})
    assert gap == Violation(
        "category_min",
        ceiling=50 * JT,
        remaining=13 * JT,
        limit=10 * JT,
        share_pct=20,
        category="sosbud",
        category_name="Sosial budaya",
        category_total=2 * JT,
        shortfall=8 * JT,
    )


def test_category_totals() -> None:
    assert category_totals([("a", 1), ("b", 2), ("a", 3)]) == {"a": 4, "b": 2}
    assert category_totals([]) == {}


@pytest.mark.parametrize(
    "make",
    [
        lambda: CategoryRule(-1, None, "x"),
        lambda: CategoryRule(None, 101, "x"),
        lambda: CategoryRule(50, 40, "x"),
        lambda: ProgramRules(-1, {}, OPENS, CLOSES),
        lambda: ProgramRules(1, {}, CLOSES, OPENS),
    ],
)
def test_rules_validation(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_single_day_window() -> None:
    day = dt.date(2026, 3, 1)
    rules = ProgramRules(10, {"a": CategoryRule()}, day, day)
    assert check_proposal(rules, [], "a", 1, day) == []


_cat = st.sampled_from(["fisik", "sosbud", "ekonomi", "lain"])
_others = st.lists(st.tuples(_cat, st.integers(min_value=1, max_value=20 * JT)), max_size=6)


@given(_others, _cat, st.integers(min_value=-JT, max_value=60 * JT), st.dates())
def test_check_proposal_agrees_with_max_allowed(
    others: list[tuple[str, int]], category: str, amount: int, today: dt.date
) -> None:
    violations = check_proposal(RULES, others, category, amount, today)
    assert all(v.kind in VIOLATION_KINDS for v in violations)
    money_ok = not ({"over_ceiling", "category_max"} & set(kinds(violations)))
    assert money_ok == (amount <= max_allowed_amount(RULES, others, category))
    window_ok = OPENS <= today <= CLOSES
    assert window_ok == (not ({"window_not_open", "window_closed"} & set(kinds(violations))))


def test_empty_budget_alone_when_category_already_over() -> None:
    # others already exceed the category max (ceiling lowered later): an empty proposal only
    # gets empty_budget, a real one gets category_max with remaining 0
    others = [("ekonomi", 15 * JT + 1)]
    assert kinds(check_proposal(RULES, others, "ekonomi", 0, IN_WINDOW)) == ["empty_budget"]
    (v,) = check_proposal(RULES, others, "ekonomi", 1, IN_WINDOW)
    assert (v.kind, v.remaining, v.category_total) == ("category_max", 0, 15 * JT + 2)
