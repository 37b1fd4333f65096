"""Reminders to RT heads, decided from the data and a given ``now`` (the scheduler's clock).

Four kinds, each with its schedule in the fiscal year's ``programs.reminder_settings`` (JSON; any
key left out takes the default in :class:`ReminderConfig`):

- ``window``: the submission window closes in 7 / 3 / 1 days (``window_days``) while the RT still
  has part of its ceiling not proposed; one reminder per stage.
- ``revision``: an officer asked for a revision and the proposal was not sent again within
  3 working days (``revision_working_days``; weekends and Indonesian public holidays do not count);
  one reminder per revision request.
- ``report``: an approved proposal (disetujui / pelaksanaan) without a progress report for 14 days
  (``report_days``) since its approval or its latest report; again every 14 days while it lasts.
- ``year_end``: an approved proposal not at 100 % when the fiscal year ends in 30 / 14 / 7 days
  (``year_end_days``); one reminder per stage.

``texts`` may replace a kind's text for that year (``{"texts": {"window": "..."}}``, used as
written for every language, with ``{code}``, ``{title}``, ``{days}``, ``{date}``, ``{place}``...).
``enabled: false`` turns a year's reminders off. ``sla_working_days`` (5) and
``escalation_step_working_days`` (2) set when work waiting for an officer is escalated
(``bot/services/escalations.py``).

Each reminder given is a :class:`ReminderSent` row, unique per occurrence and per person and local
day, inserted (or skipped) in the transaction that enqueues its outbox row: two instances running
the job at once give one reminder, and nobody gets more than one reminder a day (the others wait
for the next day). Reminders respect the person's quiet hours (default 21.00-06.00): made inside
them, they are queued for the end of the quiet hours and count for that day. The outbox renderer
(``bot/notices_reminders.py``) checks the condition again and sends nothing once it is resolved.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain import follow as follow_rules
from bot.domain.timefmt import working_days_between
from bot.domain.workflow import COUNTS_AGAINST_CEILING, DISETUJUI, MINTA_REVISI, PELAKSANAAN, PERLU_REVISI
from bot.services import outbox
from storage.db import begin_write
from storage.models import (
    QUIET_END_DEFAULT,
    QUIET_START_DEFAULT,
    REG_VERIFIED,
    NotificationPrefs,
    Program,
    ProgressReport,
    Proposal,
    ProposalEvent,
    ReminderSent,
    RTHead,
    User,
)

log = logging.getLogger("prolita.reminders")

WINDOW = "window"
REVISION = "revision"
REPORT = "report"
YEAR_END = "year_end"
KINDS = (REVISION, WINDOW, YEAR_END, REPORT)  # also the order of preference within one day
NOTICE_PREFIX = "reminder."
ACTIVE = frozenset({DISETUJUI, PELAKSANAAN})  # approved, work going on: progress expected


class ReminderConfigError(ValueError):
    """A fiscal year's ``reminder_settings`` has a bad value (the message names it)."""


def _stages(value: Any, name: str) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise ReminderConfigError(f"{name} must be a list of days, e.g. [7, 3, 1]")
    out = []
    for v in value:
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 366:
            raise ReminderConfigError(f"{name}: {v!r} is not a number of days between 1 and 366")
        out.append(v)
    return tuple(sorted(set(out), reverse=True))


def _days(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 366:
        raise ReminderConfigError(f"{name} must be a number of days between 1 and 366")
    return value


@dataclass(frozen=True)
class ReminderConfig:
    enabled: bool = True
    window_days: tuple[int, ...] = (7, 3, 1)
    revision_working_days: int = 3
    report_days: int = 14
    year_end_days: tuple[int, ...] = (30, 14, 7)
    texts: Mapping[str, str] = field(default_factory=dict)
    sla_working_days: int = 5  # officers: a review or verification is overdue after this (escalations)
    escalation_step_working_days: int = 2  # then one level up every this many working days

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ReminderConfig:
        """The defaults, overridden by what ``data`` (a program's ``reminder_settings``) sets."""
        if not data:
            return cls()
        unknown = set(data) - {
            "enabled",
            "window_days",
            "revision_working_days",
            "report_days",
            "year_end_days",
            "texts",
            "sla_working_days",
            "escalation_step_working_days",
        }
        if unknown:
            raise ReminderConfigError("unknown reminder setting(s): " + ", ".join(sorted(unknown)))
        kw: dict[str, Any] = {}
        if "enabled" in data:
            kw["enabled"] = bool(data["enabled"])
        if "window_days" in data:
            kw["window_days"] = _stages(data["window_days"], "window_days")
        if "year_end_days" in data:
            kw["year_end_days"] = _stages(data["year_end_days"], "year_end_days")
        if "revision_working_days" in data:
            kw["revision_working_days"] = _days(data["revision_working_days"], "revision_working_days")
        if "report_days" in data:
            kw["report_days"] = _days(data["report_days"], "report_days")
        for name in ("sla_working_days", "escalation_step_working_days"):
            if name in data:
                kw[name] = _days(data[name], name)
        if "texts" in data:
            texts = data["texts"]
            if not isinstance(texts, Mapping) or not all(k in KINDS and isinstance(v, str) for k, v in texts.items()):
                raise ReminderConfigError("texts must map " + "/".join(KINDS) + " to a text")
            kw["texts"] = dict(texts)
        return cls(**kw)


def config_of(program: Program) -> ReminderConfig:
    """A year's reminder configuration; a broken one is logged and replaced by the defaults."""
    try:
        return ReminderConfig.from_json(program.reminder_settings)
    except ReminderConfigError as exc:
        log.error("fiscal year %s: bad reminder_settings (%s); using the defaults", program.fiscal_year, exc)
        return ReminderConfig()


@functools.lru_cache(maxsize=16)
def indonesian_holidays(years: tuple[int, ...]) -> frozenset[dt.date]:
    """Indonesia's public holidays of ``years`` (the ``holidays`` package)."""
    import holidays

    return frozenset(holidays.country_holidays("ID", years=list(years)).keys())


# --- pure rules ---------------------------------------------------------------------------------


def stage(days_left: int, thresholds: Iterable[int]) -> int | None:
    """The reminder stage of ``days_left`` (days until a deadline, 0 = today): the smallest threshold
    at or above it, so a stage missed (bot down that day) is given late rather than never."""
    if days_left < 0:
        return None
    fitting = [t for t in thresholds if t >= days_left]
    return min(fitting) if fitting else None


def window_stage(today: dt.date, opens: dt.date, closes: dt.date, remaining: int, cfg: ReminderConfig) -> int | None:
    """Stage of the window reminder, or None: window open, closing soon, ceiling not all proposed."""
    if remaining <= 0 or not opens <= today <= closes:
        return None
    return stage((closes - today).days, cfg.window_days)


def revision_due(
    today: dt.date, requested_on: dt.date, cfg: ReminderConfig, holidays: Collection[dt.date] = frozenset()
) -> bool:
    """Whether a revision asked for on ``requested_on`` (still not sent again) is overdue."""
    return working_days_between(requested_on, today, holidays) >= cfg.revision_working_days


def report_round(today: dt.date, since: dt.date, cfg: ReminderConfig) -> int | None:
    """1, 2, ... for each full ``report_days`` without a report since ``since``; None before the first."""
    k = (today - since).days // cfg.report_days
    return k if k >= 1 else None


def year_end_stage(today: dt.date, fiscal_year: int, percent: int, cfg: ReminderConfig) -> int | None:
    """Stage of the year-end reminder for work at ``percent``, or None."""
    if percent >= 100 or today.year != fiscal_year:
        return None
    return stage((dt.date(fiscal_year, 12, 31) - today).days, cfg.year_end_days)


def delivery(now: dt.datetime, quiet: tuple[int, int], tz: dt.tzinfo) -> tuple[dt.datetime, dt.date]:
    """When a reminder made at ``now`` is sent (end of quiet hours if inside them) and the local day
    it counts for."""
    at = follow_rules.quiet_until(now, quiet[0], quiet[1], tz)
    return at, at.astimezone(tz).date()


@dataclass(frozen=True)
class Due:
    kind: str
    user_id: int
    subject_id: int  # programme id (window) or proposal id
    occurrence: str
    payload: dict[str, Any]

    @property
    def priority(self) -> int:
        return KINDS.index(self.kind)


def in_order(dues: Iterable[Due]) -> list[Due]:
    """Candidates in the order they are tried: per person, the most pressing kind first."""
    return sorted(dues, key=lambda d: (d.user_id, d.priority, d.subject_id, d.occurrence))


# --- finding candidates in the database ------------------------------------------------------------


@dataclass
class _Head:
    user_id: int
    quiet: tuple[int, int]


async def _heads(session: AsyncSession) -> dict[int, _Head]:
    """rt_id → its verified Ketua RT who can receive messages, with their quiet hours."""
    rows = await session.execute(
        select(RTHead.rt_id, RTHead.user_id, NotificationPrefs.quiet_start, NotificationPrefs.quiet_end)
        .join(User, User.id == RTHead.user_id)
        .outerjoin(NotificationPrefs, NotificationPrefs.user_id == RTHead.user_id)
        .where(RTHead.status == REG_VERIFIED, User.blocked_bot.is_(False), User.erased_at.is_(None))
    )
    out = {}
    for rt_id, user_id, qs, qe in rows:
        quiet = (QUIET_START_DEFAULT, QUIET_END_DEFAULT) if qs is None else (qs, qe)
        out[rt_id] = _Head(user_id, quiet)
    return out


async def find_due(
    session: AsyncSession, now: dt.datetime, tz: dt.tzinfo, holidays: Collection[dt.date] | None = None
) -> tuple[list[Due], dict[int, _Head]]:
    today = now.astimezone(tz).date()
    years = (today.year - 1, today.year)
    if holidays is None:
        holidays = indonesian_holidays((today.year - 2, *years))
    programs = {p.id: p for p in (await session.scalars(select(Program).where(Program.fiscal_year.in_(years)))).all()}
    configs = {pid: config_of(p) for pid, p in programs.items()}
    heads = await _heads(session)
    by_user = {h.user_id: h for h in heads.values()}
    dues: list[Due] = []  # every candidate is the verified, reachable head of its RT (``heads``)

    # Submission window closing while the RT's ceiling is not all proposed.
    for program in programs.values():
        cfg = configs[program.id]
        if not cfg.enabled or not program.submission_opens <= today <= program.submission_closes:
            continue
        used = dict(
            (
                await session.execute(
                    select(Proposal.rt_id, func.coalesce(func.sum(Proposal.total_amount), 0))
                    .where(Proposal.fiscal_year == program.fiscal_year, Proposal.status.in_(COUNTS_AGAINST_CEILING))
                    .group_by(Proposal.rt_id)
                )
            ).all()
        )
        for rt_id, head in heads.items():
            remaining = max(0, program.budget_per_rt - int(used.get(rt_id, 0)))
            st = window_stage(today, program.submission_opens, program.submission_closes, remaining, cfg)
            if st is not None:
                days = (program.submission_closes - today).days
                dues.append(
                    Due(
                        WINDOW,
                        head.user_id,
                        program.id,
                        str(st),
                        {"program_id": program.id, "rt_id": rt_id, "days": days},
                    )
                )

    # Proposals of these years waiting for a revision or for progress.
    props = (
        await session.execute(
            select(
                Proposal.id,
                Proposal.rt_id,
                Proposal.program_id,
                Proposal.status,
                Proposal.fiscal_year,
                Proposal.decided_at,
            ).where(Proposal.program_id.in_(list(programs)), Proposal.status.in_([PERLU_REVISI, *ACTIVE]))
        )
    ).all()
    ids = [p.id for p in props]
    revisions: dict[int, tuple[int, dt.datetime]] = {}
    latest: dict[int, tuple[dt.datetime, int]] = {}
    if ids:
        last_ev = (
            select(func.max(ProposalEvent.id))
            .where(ProposalEvent.proposal_id.in_(ids), ProposalEvent.action == MINTA_REVISI)
            .group_by(ProposalEvent.proposal_id)
        )
        for pid, ev_id, at in await session.execute(
            select(ProposalEvent.proposal_id, ProposalEvent.id, ProposalEvent.at).where(ProposalEvent.id.in_(last_ev))
        ):
            revisions[pid] = (ev_id, at)
        last_rep = (
            select(func.max(ProgressReport.id))
            .where(ProgressReport.proposal_id.in_(ids))
            .group_by(ProgressReport.proposal_id)
        )
        for pid, at, percent in await session.execute(
            select(ProgressReport.proposal_id, ProgressReport.created_at, ProgressReport.percent).where(
                ProgressReport.id.in_(last_rep)
            )
        ):
            latest[pid] = (at, percent)
    for p in props:
        head = heads.get(p.rt_id)
        cfg = configs[p.program_id]
        if head is None or not cfg.enabled:
            continue
        if p.status == PERLU_REVISI:
            if p.id in revisions:
                ev_id, at = revisions[p.id]
                if revision_due(today, at.astimezone(tz).date(), cfg, holidays):
                    dues.append(
                        Due(REVISION, head.user_id, p.id, f"ev{ev_id}", {"proposal_id": p.id, "event_id": ev_id})
                    )
            continue
        report_at, percent = latest.get(p.id, (None, 0))
        anchor = max(a for a in (report_at, p.decided_at) if a is not None) if (report_at or p.decided_at) else None
        if anchor is not None:
            k = report_round(today, anchor.astimezone(tz).date(), cfg)
            if k is not None:
                payload = {
                    "proposal_id": p.id,
                    "since": anchor.isoformat(),
                    "days": (today - anchor.astimezone(tz).date()).days,
                }
                dues.append(Due(REPORT, head.user_id, p.id, f"{anchor.astimezone(tz).date().isoformat()}#{k}", payload))
        st = year_end_stage(today, p.fiscal_year, percent, cfg)
        if st is not None:
            days = (dt.date(p.fiscal_year, 12, 31) - today).days
            dues.append(Due(YEAR_END, head.user_id, p.id, str(st), {"proposal_id": p.id, "days": days}))
    return in_order(dues), by_user


def _insert_ignore(session: AsyncSession) -> Any:
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


async def run_due(
    session: AsyncSession, now: dt.datetime, settings: Settings, *, holidays: Collection[dt.date] | None = None
) -> list[Due]:
    """Give every reminder due at ``now`` that was not given yet (one transaction); returns them."""
    tz = settings.tz
    # Find what is due on a read snapshot, then take the write lock only for the inserts: the unique
    # keys of reminders_sent decide between two instances, so nothing needs the lock while reading.
    dues, by_user = await find_due(session, now, tz, holidays)
    await begin_write(session)
    insert = _insert_ignore(session)
    given: list[Due] = []
    for due in dues:
        not_before, day = delivery(now, by_user[due.user_id].quiet, tz)
        stmt = (
            insert(ReminderSent)
            .values(
                kind=due.kind,
                user_id=due.user_id,
                subject_id=due.subject_id,
                occurrence=due.occurrence,
                local_date=day,
                created_at=now,
            )
            .on_conflict_do_nothing()
            .returning(ReminderSent.id)
        )
        reminder_id = (await session.execute(stmt)).scalar()
        if reminder_id is None:
            continue  # given before (this occurrence), or this person already has one that day
        outbox.enqueue(
            session,
            due.user_id,
            NOTICE_PREFIX + due.kind,
            not_before=not_before,
            reminder_id=reminder_id,
            **due.payload,
        )
        given.append(due)
        log.info(
            "reminder %s to user %s (subject %s, %s) for %s, sent from %s",
            due.kind,
            due.user_id,
            due.subject_id,
            due.occurrence,
            day,
            not_before.isoformat(),
        )
    await session.commit()
    if given:
        log.info("reminders at %s: %d given", now.isoformat(), len(given))
    return given
