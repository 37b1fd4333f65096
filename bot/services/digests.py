"""Officers' morning digests: what waits in their area, what is overdue, and the budget absorption.

``enqueue_due`` (called by the scheduler at 07:00 WITA) writes one outbox row of kind
``digest.officer`` per active officer with something to report; ``bot/notices_digests.py`` renders
it at send time with ``digest_for`` again (current numbers; nothing is sent when the queues have
emptied meanwhile or the officer's scope was revoked) and sends the chart of ``render_chart``.

Each officer chooses how often (``notification_prefs.digest``, in /pengaturan): every working day
(the default), weekly (the first working day of the week) or off. Weekends and Indonesian public
holidays get no digest: whatever waits is in the next working day's.

"Overdue" means waiting for more than the fiscal year's ``sla_working_days`` (5 unless the year's
reminder settings say otherwise; escalations use the same figure) working days (Monday-Friday,
minus the holidays passed in). The queues come oldest first, so ages are taken from the oldest
``AGE_SAMPLE`` items of each queue: the overdue counts are exact unless the whole sample is overdue
(``Queue.capped``), and the totals are always exact. Budget figures are those of the XLSX recap
(``bot/services/export.py``): ceiling = RTs × ceiling per RT; proposed, approved and realised leave
rejected and withdrawn proposals out.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.money import format_rupiah_short
from bot.domain.permissions import LEVEL_KELURAHAN, Scope
from bot.domain.timefmt import working_days_between
from bot.services import export, outbox, progress, registration, reminders, review
from bot.services.users import officer_scope
from storage.db import begin_write
from storage.models import (
    DIGEST_DAILY,
    DIGEST_OFF,
    DIGEST_WEEKLY,
    REG_PENDING,
    RT,
    Kelurahan,
    NotificationPrefs,
    Officer,
    Outbox,
    Program,
    RTHead,
)
from storage.repositories.wilayah import scope_filter

KIND = "digest.officer"
FRESH_WITHIN = 2  # working days: "fresh" in the age buckets (the overdue line is the year's SLA)
AGE_SAMPLE = 500  # oldest items per queue whose age is looked at
NEW_WITHIN = dt.timedelta(hours=24)
MAX_KELURAHAN_BARS = 10
HOLIDAY_WINDOW = dt.timedelta(days=62)  # holidays stored with a row: those that can matter to its ages


class HasTimezone(Protocol):
    timezone: str


@dataclass(frozen=True)
class Queue:
    """One officer queue: ``total`` waiting; ages of the oldest ones in working days."""

    total: int = 0
    fresh: int = 0  # ≤ fresh_within working days
    waiting: int = 0  # more than that, up to overdue_after
    overdue: int = 0  # more than overdue_after working days (the year's SLA)
    oldest_days: int | None = None
    capped: bool = False  # every sampled item was overdue: ``overdue`` is a lower bound
    overdue_after: int = 5
    fresh_within: int = FRESH_WITHIN


@dataclass(frozen=True)
class Budget:
    label: str  # kelurahan name ("" for the scope's total)
    ceiling: int = 0
    proposed: int = 0
    approved: int = 0
    realised: int = 0

    @property
    def absorption(self) -> float | None:
        return self.realised / self.ceiling if self.ceiling else None


@dataclass
class Digest:
    officer: Officer
    scope: Scope
    day: dt.date  # local date
    year: int
    new_registrations: int
    registrations: Queue
    reviews: Queue
    progress: Queue
    budget: Budget | None  # None without a programme for the year
    by_kelurahan: list[Budget] = field(default_factory=list)  # only when the scope has several
    overdue_after: int = 5  # the year's SLA in working days (the same as escalations use)

    @property
    def overdue(self) -> int:
        return self.registrations.overdue + self.reviews.overdue + self.progress.overdue

    @property
    def empty(self) -> bool:
        return not (self.registrations.total or self.reviews.total or self.progress.total)


def age_queue(
    waited_since: Sequence[dt.datetime],
    total: int,
    today: dt.date,
    tz: dt.tzinfo,
    holidays: Collection[dt.date],
    overdue_after: int = 5,
) -> Queue:
    """Bucket the waiting items (oldest first) by their age in working days at ``today``: fresh
    (≤ 2, or ≤ the SLA when it is shorter), waiting, and overdue (more than ``overdue_after``)."""
    fresh_within = min(FRESH_WITHIN, overdue_after)
    ages = [working_days_between(t.astimezone(tz).date(), today, holidays) for t in waited_since]
    fresh = sum(1 for a in ages if a <= fresh_within)
    overdue = sum(1 for a in ages if a > overdue_after)
    return Queue(
        total=total,
        fresh=fresh,
        waiting=len(ages) - fresh - overdue,
        overdue=overdue,
        oldest_days=max(ages) if ages else None,
        capped=bool(ages) and overdue == len(ages) and total > len(ages),
        overdue_after=overdue_after,
        fresh_within=fresh_within,
    )


async def active_officer(session: AsyncSession, user_id: int) -> Officer | None:
    return await session.scalar(
        select(Officer).where(Officer.user_id == user_id, Officer.revoked_at.is_(None)).order_by(Officer.id)
    )


async def _new_registrations(session: AsyncSession, scope: Scope, since: dt.datetime) -> int:
    stmt = (
        select(func.count())
        .select_from(RTHead)
        .join(RT, RTHead.rt_id == RT.id)
        .join(Kelurahan, RT.kelurahan_id == Kelurahan.id)
        .where(RTHead.status == REG_PENDING, RTHead.created_at >= since, scope_filter(scope))
    )
    return await session.scalar(stmt) or 0


async def _budget(session: AsyncSession, scope: Scope, year: int) -> tuple[Budget | None, list[Budget]]:
    """The scope's totals and, when it has several kelurahan, each kelurahan's (the recap's figures)."""
    recaps = await export.kelurahan_recaps(session, scope, year)
    if recaps is None:
        return None, []
    parts = [Budget(r.kelurahan, r.ceiling, r.proposed, r.approved, r.realised) for r in recaps]
    total = Budget(
        "",
        sum(b.ceiling for b in parts),
        sum(b.proposed for b in parts),
        sum(b.approved for b in parts),
        sum(b.realised for b in parts),
    )
    several = scope.level != LEVEL_KELURAHAN and len(parts) > 1
    return total, parts if several else []


async def digest_for(
    session: AsyncSession,
    officer_user_id: int,
    now: dt.datetime,
    settings: HasTimezone,
    *,
    holidays: Collection[dt.date] = frozenset(),
) -> Digest | None:
    """The officer's digest at ``now`` (aware); None without an active scope or with nothing waiting."""
    officer = await active_officer(session, officer_user_id)
    if officer is None:
        return None
    scope = officer_scope(officer)
    tz = ZoneInfo(settings.timezone)
    today = now.astimezone(tz).date()
    regs, regs_total = await registration.pending_in_scope(session, scope, limit=AGE_SAMPLE)
    props, props_total = await review.queue(session, scope, limit=AGE_SAMPLE)
    reports, reports_total = await progress.pending_in_scope(session, scope, limit=AGE_SAMPLE)
    if not (regs_total or props_total or reports_total):
        return None
    year = getattr(settings, "fiscal_year", None) or today.year
    budget, by_kelurahan = await _budget(session, scope, year)
    program = await session.scalar(select(Program).where(Program.fiscal_year == year))
    sla = (reminders.config_of(program) if program is not None else reminders.ReminderConfig()).sla_working_days
    return Digest(
        officer=officer,
        scope=scope,
        day=today,
        year=year,
        new_registrations=await _new_registrations(session, scope, now - NEW_WITHIN),
        registrations=age_queue([r.created_at for r in regs], regs_total, today, tz, holidays, sla),
        reviews=age_queue([p.submitted_at or p.created_at for p in props], props_total, today, tz, holidays, sla),
        progress=age_queue([r.created_at for r in reports], reports_total, today, tz, holidays, sla),
        budget=budget,
        by_kelurahan=by_kelurahan,
        overdue_after=sla,
    )


def is_working_day(day: dt.date, holidays: Collection[dt.date]) -> bool:
    return day.weekday() < 5 and day not in holidays


def is_due(day: dt.date, mode: str, holidays: Collection[dt.date] = frozenset()) -> bool:
    """Whether an officer with digest ``mode`` gets one on ``day``: daily on working days, weekly on
    the week's first working day (Tuesday when Monday is a holiday), never when off."""
    if mode == DIGEST_OFF or not is_working_day(day, holidays):
        return False
    if mode == DIGEST_WEEKLY:
        monday = day - dt.timedelta(days=day.weekday())
        return not any(is_working_day(monday + dt.timedelta(days=i), holidays) for i in range(day.weekday()))
    return True


async def enqueue_due(
    session: AsyncSession, now: dt.datetime, settings: HasTimezone, *, holidays: Collection[dt.date] = frozenset()
) -> int:
    """Enqueue today's digest for every active officer with something to report; returns how many.

    Safe to run from several instances at once: the officers' rows are locked (PostgreSQL) or the
    database write lock is held (SQLite) while the existing rows of today are checked, so each
    officer gets at most one ``digest.officer`` row per local day.
    """
    tz = ZoneInfo(settings.timezone)
    today = now.astimezone(tz).date()
    if not is_working_day(today, holidays):
        await session.rollback()
        return 0
    officer_ids = list(
        dict.fromkeys((await session.scalars(select(Officer.user_id).where(Officer.revoked_at.is_(None)))).all())
    )
    modes = dict(
        (
            await session.execute(
                select(NotificationPrefs.user_id, NotificationPrefs.digest).where(
                    NotificationPrefs.user_id.in_(officer_ids)
                )
            )
        ).all()
    )
    officer_ids = [uid for uid in officer_ids if is_due(today, modes.get(uid) or DIGEST_DAILY, holidays)]
    due = [uid for uid in officer_ids if await digest_for(session, uid, now, settings, holidays=holidays) is not None]
    if not due:
        await session.rollback()
        return 0
    await begin_write(session)
    await session.execute(
        select(Officer.id).where(Officer.user_id.in_(due), Officer.revoked_at.is_(None)).with_for_update()
    )
    existing = (
        await session.execute(
            select(Outbox.chat_id, Outbox.payload).where(
                Outbox.kind == KIND, Outbox.chat_id.in_(due), Outbox.created_at >= now - dt.timedelta(days=2)
            )
        )
    ).all()
    sent_today = {chat for chat, payload in existing if (payload or {}).get("date") == today.isoformat()}
    kept = sorted(d.isoformat() for d in holidays if today - HOLIDAY_WINDOW <= d <= today)
    added = 0
    for uid in due:
        if uid in sent_today:
            continue
        outbox.enqueue(session, uid, KIND, date=today.isoformat(), tz=settings.timezone, holidays=kept)
        added += 1
    await session.commit()
    return added


# --- the chart (pure: numbers and labels in, PNG out; run it in a worker thread) --------------------

COLORS = ("#9e9e9e", "#42a5f5", "#ffa726", "#43a047")  # ceiling, proposed, approved, realised


@dataclass(frozen=True)
class ChartText:
    """The chart's words, in the recipient's language: the four series, the titles."""

    series: tuple[str, str, str, str]  # Pagu, Diusulkan, Disetujui, Realisasi
    title: str
    by_kelurahan_title: str = ""
    absorption: str = ""  # e.g. "Serapan 12,3% dari pagu"


def _amounts(b: Budget) -> tuple[int, int, int, int]:
    return b.ceiling, b.proposed, b.approved, b.realised


def render_chart(digest: Digest, text: ChartText, *, width_px: int = 900, height_px: int = 600) -> bytes:
    """A phone-sized PNG: the scope's four amounts as horizontal bars, plus one group per kelurahan
    (the largest ceilings, at most ``MAX_KELURAHAN_BARS``) when the scope has several."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    assert digest.budget is not None
    dpi = 100
    kels = sorted(digest.by_kelurahan, key=lambda b: (-b.ceiling, b.label))[:MAX_KELURAHAN_BARS]
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    fig.patch.set_facecolor("white")
    money = FuncFormatter(lambda x, _pos: format_rupiah_short(round(x)))
    if kels:
        grid = fig.add_gridspec(2, 1, height_ratios=(1, 2.2), hspace=0.45)
        ax = fig.add_subplot(grid[0])
        ax_kel: Any = fig.add_subplot(grid[1])
    else:
        ax = fig.add_subplot(1, 1, 1)
        ax_kel = None
    amounts = _amounts(digest.budget)
    top = max(max(amounts), 1)
    ys = list(range(len(amounts)))[::-1]
    ax.barh(ys, amounts, color=COLORS, height=0.65)
    ax.set_yticks(ys, text.series, fontsize=12)
    for y, value in zip(ys, amounts, strict=True):
        ax.text(value + top * 0.01, y, format_rupiah_short(value), va="center", fontsize=11)
    ax.set_xlim(0, top * 1.25)
    ax.xaxis.set_major_formatter(money)
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.tick_params(axis="x", labelsize=9)
    ax.set_title(text.title + (f"\n{text.absorption}" if text.absorption else ""), fontsize=13, loc="left")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if ax_kel is not None:
        n = len(kels)
        bar = 0.8 / 4
        kel_top = max(max(max(_amounts(b)) for b in kels), 1)
        for i, (name, color) in enumerate(zip(text.series, COLORS, strict=True)):
            ys_i = [n - 1 - k + (1.5 - i) * bar for k in range(n)]
            ax_kel.barh(ys_i, [_amounts(b)[i] for b in kels], height=bar, color=color, label=name)
        ax_kel.set_yticks(list(range(n))[::-1], [b.label for b in kels], fontsize=10 if n <= 6 else 8)
        ax_kel.set_xlim(0, kel_top * 1.05)
        ax_kel.xaxis.set_major_formatter(money)
        ax_kel.xaxis.set_major_locator(MaxNLocator(4))
        ax_kel.tick_params(axis="x", labelsize=9)
        ax_kel.set_title(text.by_kelurahan_title, fontsize=12, loc="left")
        ax_kel.legend(fontsize=9, loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False, ncols=4)
        for side in ("top", "right"):
            ax_kel.spines[side].set_visible(False)
    fig.subplots_adjust(left=0.2, right=0.97, top=0.88 if not kels else 0.9, bottom=0.08)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
