"""Programme rules checked against a proposal: ceiling, category shares, submission window.

All amounts are whole rupiah. ``others`` are the RT's *other* proposals whose status counts
against the ceiling (see ``workflow.COUNTS_AGAINST_CEILING``) for the same fiscal year; leave
the proposal being checked out of it (matters when resubmitting after a revision).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

OVER_CEILING = "over_ceiling"
CATEGORY_MAX = "category_max"
CATEGORY_MIN = "category_min"
WINDOW_NOT_OPEN = "window_not_open"
WINDOW_CLOSED = "window_closed"
EMPTY_BUDGET = "empty_budget"
UNKNOWN_CATEGORY = "unknown_category"
VIOLATION_KINDS = (
    WINDOW_NOT_OPEN,
    WINDOW_CLOSED,
    EMPTY_BUDGET,
    UNKNOWN_CATEGORY,
    OVER_CEILING,
    CATEGORY_MAX,
    CATEGORY_MIN,
)


@dataclass(frozen=True)
class CategoryRule:
    """Optional share limits of the RT's yearly ceiling, in whole percent."""

    min_share_pct: int | None = None
    max_share_pct: int | None = None
    name: str = ""

    def __post_init__(self) -> None:
        for pct in (self.min_share_pct, self.max_share_pct):
            if pct is not None and not 0 <= pct <= 100:
                raise ValueError(f"share percent must be 0..100, got {pct}")
        if (
            self.min_share_pct is not None
            and self.max_share_pct is not None
            and self.min_share_pct > self.max_share_pct
        ):
            raise ValueError("min_share_pct is above max_share_pct")


@dataclass(frozen=True)
class ProgramRules:
    ceiling: int
    categories: Mapping[str, CategoryRule] = field(default_factory=dict)
    opens: dt.date = dt.date.min
    closes: dt.date = dt.date.max

    def __post_init__(self) -> None:
        if self.ceiling < 0:
            raise ValueError("ceiling must not be negative")
        if self.opens > self.closes:
            raise ValueError("submission window opens after it closes")


@dataclass(frozen=True)
class Violation:
    """One broken rule. Fields not relevant to ``kind`` stay None.

    * window_not_open / window_closed: ``opens``, ``closes``, ``today``
    * empty_budget: ``amount``
    * unknown_category: ``category``
    * over_ceiling: ``amount``, ``ceiling``, ``remaining`` (ceiling minus others, >= 0)
    * category_max: ``category``, ``category_name``, ``amount``, ``ceiling``, ``share_pct``,
      ``limit`` (max rupiah for the category), ``category_total`` (others in it + this one),
      ``remaining`` (what the category can still take before this proposal)
    * category_min: ``category``, ``category_name``, ``ceiling``, ``share_pct``, ``limit``
      (min rupiah), ``category_total``, ``shortfall`` (still to plan), ``remaining`` (ceiling left)
    """

    kind: str
    amount: int | None = None
    ceiling: int | None = None
    remaining: int | None = None
    limit: int | None = None
    share_pct: int | None = None
    category: str | None = None
    category_name: str | None = None
    category_total: int | None = None
    shortfall: int | None = None
    opens: dt.date | None = None
    closes: dt.date | None = None
    today: dt.date | None = None


def remaining_ceiling(ceiling: int, counted_amounts: Iterable[int]) -> int:
    """Ceiling minus the counted amounts, never below zero."""
    return max(0, ceiling - sum(counted_amounts))


def category_totals(amounts: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Sum ``(category_code, amount)`` pairs per category."""
    totals: dict[str, int] = {}
    for code, amount in amounts:
        totals[code] = totals.get(code, 0) + amount
    return totals


def share_max_limit(ceiling: int, pct: int) -> int:
    """Largest rupiah amount within ``pct`` % of ``ceiling`` (rounded down)."""
    return ceiling * pct // 100


def share_min_limit(ceiling: int, pct: int) -> int:
    """Smallest rupiah amount reaching ``pct`` % of ``ceiling`` (rounded up)."""
    return -(-ceiling * pct // 100)


def window_violation(rules: ProgramRules, today: dt.date) -> Violation | None:
    """``window_not_open`` / ``window_closed``, or None inside ``[opens, closes]``."""
    if today < rules.opens:
        kind = WINDOW_NOT_OPEN
    elif today > rules.closes:
        kind = WINDOW_CLOSED
    else:
        return None
    return Violation(kind, opens=rules.opens, closes=rules.closes, today=today)


def check_proposal(
    rules: ProgramRules,
    others: Iterable[tuple[str, int]],
    category: str,
    amount: int,
    today: dt.date,
) -> list[Violation]:
    """Every rule the new proposal breaks (empty list = OK), in a stable order."""
    others = list(others)
    violations: list[Violation] = []
    window = window_violation(rules, today)
    if window is not None:
        violations.append(window)
    if amount <= 0:
        violations.append(Violation(EMPTY_BUDGET, amount=amount))
    rule = rules.categories.get(category)
    if rule is None:
        violations.append(Violation(UNKNOWN_CATEGORY, category=category))

    remaining = remaining_ceiling(rules.ceiling, (a for _, a in others))
    if amount > remaining:
        violations.append(Violation(OVER_CEILING, amount=amount, ceiling=rules.ceiling, remaining=remaining))

    if rule is not None and rule.max_share_pct is not None and amount > 0:
        limit = share_max_limit(rules.ceiling, rule.max_share_pct)
        before = sum(a for c, a in others if c == category)
        total = before + amount
        if total > limit:
            violations.append(
                Violation(
                    CATEGORY_MAX,
                    amount=amount,
                    ceiling=rules.ceiling,
                    remaining=max(0, limit - before),
                    limit=limit,
                    share_pct=rule.max_share_pct,
                    category=category,
                    category_name=rule.name,
                    category_total=total,
                )
            )
    return violations


def max_allowed_amount(rules: ProgramRules, others: Iterable[tuple[str, int]], category: str) -> int:
    """Largest amount a new proposal in ``category`` could still ask for (0 if none)."""
    others = list(others)
    allowed = remaining_ceiling(rules.ceiling, (a for _, a in others))
    rule = rules.categories.get(category)
    if rule is None:
        return 0
    if rule.max_share_pct is not None:
        before = sum(a for c, a in others if c == category)
        allowed = min(allowed, max(0, share_max_limit(rules.ceiling, rule.max_share_pct) - before))
    return allowed


def category_minimum_gaps(rules: ProgramRules, all_amounts_by_category: Mapping[str, int]) -> list[Violation]:
    """``category_min`` warnings for categories below their minimum share, in rules order."""
    remaining = remaining_ceiling(rules.ceiling, all_amounts_by_category.values())
    gaps: list[Violation] = []
    for code, rule in rules.categories.items():
        if not rule.min_share_pct:
            continue
        required = share_min_limit(rules.ceiling, rule.min_share_pct)
        total = all_amounts_by_category.get(code, 0)
        if total < required:
            gaps.append(
                Violation(
                    CATEGORY_MIN,
                    ceiling=rules.ceiling,
                    remaining=remaining,
                    limit=required,
                    share_pct=rule.min_share_pct,
                    category=code,
                    category_name=rule.name,
                    category_total=total,
                    shortfall=required - total,
                )
            )
    return gaps
