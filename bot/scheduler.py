"""Scheduled jobs: an APScheduler 3 ``AsyncIOScheduler`` built and started inside the running loop
(``run_bot``), with jobs registered by id.

Jobs take plain values (the settings, the sessionmaker, the clock), never aiogram objects: what a
job produces goes to the outbox, which the delivery engine sends. Every job is one transaction and
safe to run on two instances at once (unique keys decide; see ``bot/services/reminders.py`` and
``bot/services/votes.close_due``), and gets its time from the injected clock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.services import digests, escalations, reminders, votes
from bot.unavailable import OutageLog

log = logging.getLogger("prolita.scheduler")

JOB_REMINDERS = "reminders"
JOB_CLOSE_VOTES = "votes.close"
JOB_DIGESTS = "digests"
JOB_ESCALATIONS = "escalations"
JOB_MEDIA_GC = "media.prune"
MEDIA_GC_HOUR = 3  # local time (WITA): the quietest hour
DIGEST_HOUR = 7  # local time (WITA)
REMINDERS_EVERY = 15 * 60  # seconds
CLOSE_VOTES_EVERY = 30


DRAIN_TIMEOUT = 20.0  # seconds a stopping bot waits for running jobs before cancelling them

_running: set[asyncio.Task[Any]] = set()  # job runs in flight, so a stopping bot can let them finish


def _stoppable(job: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """A job run is tracked while it runs (``drain_scheduler`` waits for it); one cancelled because
    the bot is stopping anyway ends quietly (its transaction is rolled back, the next run does the
    work) instead of a traceback in the log, and so does one that meets a database or Redis outage
    (logged once by :class:`bot.unavailable.OutageLog`; the next run retries)."""

    outage = OutageLog(log, f"job {job.__name__}")

    @functools.wraps(job)
    async def run(*args: Any) -> Any:
        task = asyncio.current_task()
        if task is not None:
            _running.add(task)
        try:
            result = await job(*args)
        except asyncio.CancelledError:
            log.info("job %s stopped with the bot; it runs again at the next start", job.__name__)
            return None
        except Exception as exc:
            if outage.failed(exc):  # the database or Redis is down: one line, the next run retries
                return None
            raise  # a real error: APScheduler logs it with its traceback
        finally:
            _running.discard(task)  # type: ignore[arg-type]
        outage.succeeded()
        return result

    return run


@_stoppable
async def reminders_job(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, clock: Clock) -> int:
    async with sessionmaker() as session:
        return len(await reminders.run_due(session, clock.now(), settings))


@_stoppable
async def escalations_job(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, clock: Clock) -> int:
    """Work waiting for an officer past the SLA: to that officer, then the levels above."""
    async with sessionmaker() as session:
        return len(await escalations.run_due(session, clock.now(), settings))


@_stoppable
async def digests_job(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, clock: Clock) -> int:
    """Today's digest for every officer with something waiting (once a day, whichever instance runs it)."""
    now = clock.now()
    year = now.astimezone(settings.tz).year
    days_off = reminders.indonesian_holidays((year - 1, year))
    async with sessionmaker() as session:
        return await digests.enqueue_due(session, now, settings, holidays=days_off)


@_stoppable
async def media_gc_job(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, clock: Clock) -> int:
    """Stored files nothing refers to any more, older than MEDIA_ORPHAN_DAYS: deleted (a batch a run;
    the rest in the next runs)."""
    from bot.services.media import LocalMediaStore
    from bot.services.media_gc import prune

    redis = None
    if settings.redis_url:
        from redis.asyncio import Redis

        redis = Redis.from_url(settings.redis_url)
    try:
        older = dt.timedelta(days=settings.media_orphan_days)
        result = await prune(sessionmaker, LocalMediaStore(settings.media_dir), clock.now(), older, redis=redis)
    finally:
        if redis is not None:
            await redis.aclose()
    return result.rows


@_stoppable
async def close_votes_job(sessionmaker: async_sessionmaker[AsyncSession], clock: Clock) -> list[int]:
    async with sessionmaker() as session:
        return await votes.close_due(session, clock.now())


def _add_messages(
    scheduler: AsyncIOScheduler,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: Clock,
    start: dt.datetime,
) -> None:
    """Reminders and escalations (every 15 minutes and at start) and the officers' digests (07:00 WITA, and at start
    when that hour has passed today: a digest missed while the bot was down still goes out)."""
    scheduler.add_job(
        reminders_job,
        IntervalTrigger(seconds=REMINDERS_EVERY, timezone=settings.tz),
        id=JOB_REMINDERS,
        name="reminders to RT heads",
        args=(sessionmaker, settings, clock),
        next_run_time=start,
        replace_existing=True,
    )
    scheduler.add_job(
        escalations_job,
        IntervalTrigger(seconds=REMINDERS_EVERY, timezone=settings.tz),
        id=JOB_ESCALATIONS,
        name="escalations of overdue reviews and verifications",
        args=(sessionmaker, settings, clock),
        next_run_time=start,
        replace_existing=True,
    )
    past_digest_hour = start.astimezone(settings.tz).hour >= DIGEST_HOUR
    scheduler.add_job(
        digests_job,
        CronTrigger(hour=DIGEST_HOUR, minute=0, timezone=settings.tz),
        id=JOB_DIGESTS,
        name="officers' morning digests",
        args=(sessionmaker, settings, clock),
        replace_existing=True,
        **({"next_run_time": start} if past_digest_hour else {}),
    )


def build_scheduler(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock
) -> AsyncIOScheduler:
    """The scheduler with its jobs. Call ``start()`` inside the running loop. ``SCHEDULED_MESSAGES``
    off leaves out the reminders and digests (the vote closer always runs)."""
    scheduler = AsyncIOScheduler(
        timezone=settings.tz,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )
    start = clock.now()
    if settings.scheduled_messages:
        _add_messages(scheduler, settings, sessionmaker, clock, start)
    if settings.media_orphan_days:
        scheduler.add_job(
            media_gc_job,
            CronTrigger(hour=MEDIA_GC_HOUR, minute=30, timezone=settings.tz),
            id=JOB_MEDIA_GC,
            name="delete stored files nothing refers to",
            args=(sessionmaker, settings, clock),
            next_run_time=start + dt.timedelta(minutes=1),  # and once soon after a start, off the start's rush
            replace_existing=True,
        )
    scheduler.add_job(
        close_votes_job,
        IntervalTrigger(seconds=CLOSE_VOTES_EVERY, timezone=settings.tz),
        id=JOB_CLOSE_VOTES,
        name="close due musyawarah votes",
        args=(sessionmaker, clock),
        next_run_time=start,
        replace_existing=True,
    )

    def close_votes_now() -> None:  # an answer came for a vote past its time: close it now
        job = scheduler.get_job(JOB_CLOSE_VOTES)
        if scheduler.running and job is not None:
            job.modify(next_run_time=clock.now())

    scheduler.prolita_unsubscribe = votes.on_wake(close_votes_now)  # type: ignore[attr-defined]
    return scheduler


def pause_scheduler(scheduler: AsyncIOScheduler) -> None:
    """Fire no new job runs (safe from a signal handler); runs in flight go on."""
    if scheduler.running:
        scheduler.pause()


async def drain_scheduler(scheduler: AsyncIOScheduler, timeout: float = DRAIN_TIMEOUT) -> None:
    """Stop firing jobs and let the runs in flight finish their transaction (up to ``timeout``
    seconds), then stop the scheduler. Cancelling a run in the middle of a database call would leave
    its connection to be rolled back by the pool, noisily, while the engine is being disposed."""
    pause_scheduler(scheduler)
    in_flight = [task for task in _running if not task.done()]
    if in_flight:
        log.info("waiting for %d scheduled job(s) to finish", len(in_flight))
        _done, pending = await asyncio.wait(in_flight, timeout=timeout)
        if pending:
            log.warning("%d scheduled job(s) still running after %.0f s: cancelling", len(pending), timeout)
    stop_scheduler(scheduler)
    await asyncio.sleep(0)  # AsyncIOScheduler shuts down on the loop's next turn


def stop_scheduler(scheduler: AsyncIOScheduler) -> None:
    """Stop firing jobs (a job still running is cancelled; its transaction rolls back)."""
    unsubscribe = getattr(scheduler, "prolita_unsubscribe", None)
    if unsubscribe is not None:  # idempotent: called on a signal, after polling and on the way out
        scheduler.prolita_unsubscribe = None  # type: ignore[attr-defined]
        unsubscribe()
    if scheduler.running:
        scheduler.shutdown(wait=False)
