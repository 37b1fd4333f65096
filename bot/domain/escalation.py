"""Escalation of work waiting for an officer (pure rules, no I/O).

A proposal waiting for review, or a progress report waiting for verification, is "overdue" once it
has waited more than the SLA (default 5 working days; weekends and Indonesian public holidays do not
count). It is then brought to the officers in charge (the lowest level of the chain that has
anyone: its kelurahan's officers); if it still waits ``step`` more working days, to the level above
(its kecamatan's officers), then to the city officers together with the admins. A level nobody
holds is skipped: the item goes to the next level that has someone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_SLA = 5  # working days (LAPOR! uses 3 and 5)
DEFAULT_STEP = 2  # working days between two levels


@dataclass(frozen=True)
class Rung:
    """One level of the chain: whose turn it is (kelurahan / kecamatan / kota) and who they are."""

    scope_level: str
    recipients: tuple[int, ...]


def level_reached(age: int, sla: int = DEFAULT_SLA, step: int = DEFAULT_STEP) -> int | None:
    """Which level an item waiting ``age`` working days has reached: None within the SLA, 0 past
    it (the officers in charge), then one more level every ``step`` working days."""
    if sla < 0 or step < 1:
        raise ValueError("sla must be >= 0 and step >= 1")
    if age <= sla:
        return None
    return (age - sla - 1) // step


def chain(rungs: Sequence[Rung]) -> list[Rung]:
    """The chain without its empty levels (nobody appointed there)."""
    return [r for r in rungs if r.recipients]


def due_levels(age: int, rungs: Sequence[Rung], sla: int = DEFAULT_SLA, step: int = DEFAULT_STEP) -> list[int]:
    """Every level of the (non-empty) chain an item of ``age`` has reached, lowest first; the top
    level is the last one however long it waits. A level missed (the job did not run, or the
    chain changed) is still given, so nobody in the chain is skipped silently."""
    reached = level_reached(age, sla, step)
    if reached is None:
        return []
    full = chain(rungs)
    if not full:
        return []
    return list(range(min(reached, len(full) - 1) + 1))
