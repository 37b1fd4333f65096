"""Escalations: work waiting for an officer past the SLA (``bot/domain/escalation.py`` has the rule).

Two kinds of work wait for officers: a proposal sent for review (``diajukan``, waiting since it was
sent) and a progress report waiting for verification (waiting since it was made). Past the SLA of
the fiscal year (``programs.reminder_settings``: ``sla_working_days``, default 5, and
``escalation_step_working_days``, default 2; see ``bot/services/reminders.py``) the item is brought
to the officers of its kelurahan, then its kecamatan, then the city officers and the admins.

``run_due`` (the scheduler's ``escalations`` job, every 15 minutes) inserts one
:class:`~storage.models.Escalation` row per item, waiting period and scope level (unique: two
instances running the job at once escalate once) and, in the same transaction, one outbox row per
recipient listing everything newly brought to them (``escalation.officer``), held until the end of
the recipient's quiet hours. The renderer (``bot/notices_escalations.py``) leaves out what was
handled meanwhile and sends nothing when all of it was.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain import escalation as rules
from bot.domain.permissions import LEVEL_KECAMATAN, LEVEL_KELURAHAN, LEVEL_KOTA
from bot.domain.timefmt import working_days_between
from bot.domain.workflow import DIAJUKAN
from bot.services import outbox, reminders
from storage.db import begin_write
from storage.models import (
    QUIET_END_DEFAULT,
    QUIET_START_DEFAULT,
    REPORT_PENDING,
    RT,
    Escalation,
    Kelurahan,
    NotificationPrefs,
    Officer,
    Program,
    ProgressReport,
    Proposal,
)

log = logging.getLogger("prolita.escalations")

KIND = "escalation.officer"
ITEM_PROPOSAL = "proposal"
ITEM_REPORT = "report"
RUNG_LEVELS = (LEVEL_KELURAHAN, LEVEL_KECAMATAN, LEVEL_KOTA)


@dataclass(frozen=True)
class Waiting:
    """An item waiting for an officer, with where it is."""

    item_type: str
    item_id: int
    since: dt.datetime
    kelurahan_id: int
    kecamatan_id: int


@dataclass(frozen=True)
class Due:
    item: Waiting
    level: int  # index in the item's non-empty chain
    scope_level: str
    age: int  # working days
    recipients: tuple[int, ...]


async def waiting(session: AsyncSession) -> list[Waiting]:
    """Every proposal waiting for review and every report waiting for verification."""
    proposals = (
        await session.execute(
            select(Proposal.id, Proposal.submitted_at, Proposal.created_at, Kelurahan.id, Kelurahan.kecamatan_id)
            .join(RT, Proposal.rt_id == RT.id)
            .join(Kelurahan, RT.kelurahan_id == Kelurahan.id)
            .where(Proposal.status == DIAJUKAN)
        )
    ).all()
    reports = (
        await session.execute(
            select(ProgressReport.id, ProgressReport.created_at, Kelurahan.id, Kelurahan.kecamatan_id)
            .join(Proposal, ProgressReport.proposal_id == Proposal.id)
            .join(RT, Proposal.rt_id == RT.id)
            .join(Kelurahan, RT.kelurahan_id == Kelurahan.id)
            .where(ProgressReport.status == REPORT_PENDING)
        )
    ).all()
    items = [Waiting(ITEM_PROPOSAL, pid, sub or made, kel, kec) for pid, sub, made, kel, kec in proposals]
    items += [Waiting(ITEM_REPORT, rid, made, kel, kec) for rid, made, kel, kec in reports]
    return items


async def since_of(session: AsyncSession, item_type: str, item_id: int) -> dt.datetime | None:
    """When the item started its current wait, or None when it no longer waits for an officer."""
    if item_type == ITEM_PROPOSAL:
        row = (
            await session.execute(
                select(Proposal.status, Proposal.submitted_at, Proposal.created_at).where(Proposal.id == item_id)
            )
        ).first()
        if row is None or row.status != DIAJUKAN:
            return None
        return row.submitted_at or row.created_at
    row = (
        await session.execute(
            select(ProgressReport.status, ProgressReport.created_at).where(ProgressReport.id == item_id)
        )
    ).first()
    if row is None or row.status != REPORT_PENDING:
        return None
    return row.created_at


class Officers:
    """Active officers by area, and the admins: the rungs of each item's chain."""

    def __init__(self, officers: Collection[Officer], admin_ids: Collection[int]) -> None:
        self.by_kelurahan: dict[int, set[int]] = defaultdict(set)
        self.by_kecamatan: dict[int, set[int]] = defaultdict(set)
        self.city: set[int] = set(admin_ids)
        for o in officers:
            if o.scope == LEVEL_KELURAHAN and o.kelurahan_id is not None:
                self.by_kelurahan[o.kelurahan_id].add(o.user_id)
            elif o.scope == LEVEL_KECAMATAN and o.kecamatan_id is not None:
                self.by_kecamatan[o.kecamatan_id].add(o.user_id)
            elif o.scope == LEVEL_KOTA:
                self.city.add(o.user_id)

    def rungs(self, item: Waiting) -> list[rules.Rung]:
        return [
            rules.Rung(LEVEL_KELURAHAN, tuple(sorted(self.by_kelurahan.get(item.kelurahan_id, ())))),
            rules.Rung(LEVEL_KECAMATAN, tuple(sorted(self.by_kecamatan.get(item.kecamatan_id, ())))),
            rules.Rung(LEVEL_KOTA, tuple(sorted(self.city))),
        ]

    @classmethod
    async def load(cls, session: AsyncSession, admin_ids: Collection[int]) -> Officers:
        active = (await session.scalars(select(Officer).where(Officer.revoked_at.is_(None)))).all()
        return cls(active, admin_ids)


async def config(session: AsyncSession, year: int) -> reminders.ReminderConfig:
    program = await session.scalar(select(Program).where(Program.fiscal_year == year))
    return reminders.config_of(program) if program is not None else reminders.ReminderConfig()


async def find_due(
    session: AsyncSession, now: dt.datetime, settings: Settings, holidays: Collection[dt.date]
) -> list[Due]:
    """What must be escalated at ``now`` (given or not yet: the unique key decides)."""
    tz = settings.tz
    today = now.astimezone(tz).date()
    cfg = await config(session, today.year)
    officers = await Officers.load(session, settings.admin_ids)
    dues: list[Due] = []
    for item in await waiting(session):
        age = working_days_between(item.since.astimezone(tz).date(), today, holidays)
        chain = rules.chain(officers.rungs(item))
        for level in rules.due_levels(age, chain, cfg.sla_working_days, cfg.escalation_step_working_days):
            rung = chain[level]
            dues.append(Due(item, level, rung.scope_level, age, rung.recipients))
    return dues


async def run_due(
    session: AsyncSession, now: dt.datetime, settings: Settings, *, holidays: Collection[dt.date] | None = None
) -> list[Escalation]:
    """Escalate everything due at ``now`` not escalated yet (one transaction); returns the new rows."""
    tz = settings.tz
    if holidays is None:
        year = now.astimezone(tz).year
        holidays = reminders.indonesian_holidays((year - 1, year))
    dues = await find_due(session, now, settings, holidays)
    if not dues:
        await session.rollback()
        return []
    await begin_write(session)
    insert = reminders._insert_ignore(session)
    new: list[Escalation] = []
    per_recipient: dict[int, list[int]] = defaultdict(list)
    for due in dues:
        stmt = (
            insert(Escalation)
            .values(
                item_type=due.item.item_type,
                item_id=due.item.item_id,
                since=due.item.since,
                level=due.level,
                scope_level=due.scope_level,
                age_days=due.age,
                recipients=list(due.recipients),
                created_at=now,
            )
            .on_conflict_do_nothing()
            .returning(Escalation.id)
        )
        escalation_id = (await session.execute(stmt)).scalar()
        if escalation_id is None:
            continue  # escalated to that level before (or by the other instance just now)
        for uid in due.recipients:
            per_recipient[uid].append(escalation_id)
        new.append(
            Escalation(
                id=escalation_id,
                item_type=due.item.item_type,
                item_id=due.item.item_id,
                since=due.item.since,
                level=due.level,
                scope_level=due.scope_level,
                age_days=due.age,
                recipients=list(due.recipients),
                created_at=now,
            )
        )
    if per_recipient:
        prefs = {
            p.user_id: (p.quiet_start, p.quiet_end)
            for p in await session.scalars(
                select(NotificationPrefs).where(NotificationPrefs.user_id.in_(list(per_recipient)))
            )
        }
        for uid, ids in sorted(per_recipient.items()):
            quiet = prefs.get(uid, (QUIET_START_DEFAULT, QUIET_END_DEFAULT))
            not_before, _day = reminders.delivery(now, quiet, tz)
            outbox.enqueue(session, uid, KIND, not_before=not_before, escalations=ids, tz=settings.timezone)
    await session.commit()
    for e in new:
        log.info(
            "escalated %s %s (waiting %d working days) to the %s level: %s",
            e.item_type,
            e.item_id,
            e.age_days,
            e.scope_level,
            ", ".join(map(str, e.recipients)),
        )
    return new
