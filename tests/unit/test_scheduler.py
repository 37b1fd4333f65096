"""The scheduler: built and started inside a running loop, its jobs registered by id with plain
arguments (no aiogram objects), and the jobs themselves run with the injected clock."""

from __future__ import annotations

import asyncio
import datetime as dt

from aiogram import Bot
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import select

from bot.clock import FakeClock, SystemClock
from bot.config import Settings
from bot.scheduler import (
    JOB_CLOSE_VOTES,
    JOB_DIGESTS,
    JOB_ESCALATIONS,
    JOB_MEDIA_GC,
    JOB_REMINDERS,
    _stoppable,
    build_scheduler,
    close_votes_job,
    drain_scheduler,
    reminders_job,
    stop_scheduler,
)
from bot.services import votes
from storage.models import VOTE_CLOSED, MusyawarahVote, Outbox
from tests.unit.test_reminders import WITA, at, build_year


def test_clocks():
    now = SystemClock().now()
    assert now.tzinfo is not None and abs((now - dt.datetime.now(dt.UTC)).total_seconds()) < 5
    clock = FakeClock(at(dt.date(2026, 1, 1), 23, 50))
    assert clock.now().tzinfo == dt.UTC
    clock.advance(minutes=20)
    assert clock.now().astimezone(WITA) == at(dt.date(2026, 1, 2), 0, 10)


async def test_scheduler_starts_in_the_loop_with_its_jobs(sessionmaker):
    settings = Settings(timezone="Asia/Makassar", bot_token=None)
    scheduler = build_scheduler(settings, sessionmaker, FakeClock(at(dt.date(2026, 3, 24), 8)))
    scheduler.start(paused=True)  # no real trigger needed
    try:
        assert scheduler.running
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {JOB_REMINDERS, JOB_CLOSE_VOTES, JOB_DIGESTS, JOB_ESCALATIONS, JOB_MEDIA_GC}
        # unused files: a minute after the start, then 03:30 WITA every night
        assert jobs[JOB_MEDIA_GC].next_run_time == at(dt.date(2026, 3, 24), 8, 1)
        assert "hour='3', minute='30'" in str(jobs[JOB_MEDIA_GC].trigger)
        assert jobs[JOB_ESCALATIONS].trigger.interval == dt.timedelta(minutes=15)
        assert jobs[JOB_REMINDERS].trigger.interval == dt.timedelta(minutes=15)
        # 08:00 WITA: today's 07:00 digest was missed (the bot was down): it runs at start
        assert jobs[JOB_DIGESTS].next_run_time == at(dt.date(2026, 3, 24), 8)
        assert "hour='7'" in str(jobs[JOB_DIGESTS].trigger)
        assert jobs[JOB_CLOSE_VOTES].trigger.interval == dt.timedelta(seconds=30)
        for job in jobs.values():  # plain values only
            assert not any(isinstance(a, Bot) for a in job.args)
        votes.wake_closer()  # an answer past a vote's time: the closing job runs now
        assert scheduler.get_job(JOB_CLOSE_VOTES).next_run_time == at(dt.date(2026, 3, 24), 8)
    finally:
        stop_scheduler(scheduler)
    votes.wake_closer()  # unsubscribed: nothing happens


async def test_scheduled_messages_can_be_switched_off_and_wait_for_seven(sessionmaker):
    early = FakeClock(at(dt.date(2026, 3, 24), 5))
    scheduler = build_scheduler(Settings(timezone="Asia/Makassar", bot_token=None), sessionmaker, early)
    scheduler.start(paused=True)
    try:
        digest = scheduler.get_job(JOB_DIGESTS)
        # 05:00: not at start; the cron trigger's next 07:00 (APScheduler counts from the real time)
        assert digest.next_run_time != early.now()
        assert (digest.next_run_time.hour, digest.next_run_time.minute) == (7, 0)
    finally:
        stop_scheduler(scheduler)
    off = Settings(timezone="Asia/Makassar", bot_token=None, scheduled_messages=False)
    scheduler = build_scheduler(off, sessionmaker, early)
    scheduler.start(paused=True)
    try:
        assert {job.id for job in scheduler.get_jobs()} == {JOB_CLOSE_VOTES, JOB_MEDIA_GC}
    finally:
        stop_scheduler(scheduler)
    kept = Settings(timezone="Asia/Makassar", bot_token=None, scheduled_messages=False, media_orphan_days=0)
    scheduler = build_scheduler(kept, sessionmaker, early)
    scheduler.start(paused=True)
    try:
        assert {job.id for job in scheduler.get_jobs()} == {JOB_CLOSE_VOTES}
    finally:
        stop_scheduler(scheduler)


async def test_jobs_use_the_clock(sessionmaker):
    await build_year(sessionmaker)
    settings = Settings(timezone="Asia/Makassar", bot_token=None)
    clock = FakeClock(at(dt.date(2026, 3, 24), 8))
    assert await reminders_job(sessionmaker, settings, clock) == 2
    assert await reminders_job(sessionmaker, settings, clock) == 0
    async with sessionmaker() as s:
        s.add(MusyawarahVote(rt_id=1, created_by=1, question="?", options=["a", "b"], closes_at=clock.now()))
        await s.commit()
    clock.advance(seconds=1)
    closed = await close_votes_job(sessionmaker, clock)
    assert len(closed) == 1
    async with sessionmaker() as s:
        assert (await s.get(MusyawarahVote, closed[0])).status == VOTE_CLOSED
        assert len((await s.scalars(select(Outbox).where(Outbox.kind == "reminder.window"))).all()) == 2


async def test_a_stopping_bot_lets_a_running_job_finish_and_cancels_one_that_hangs(caplog):
    """Stopping waits for a job run in flight (its transaction completes) instead of cancelling it
    in the middle of a database call; a run that hangs past the timeout is cancelled quietly."""
    finished: list[str] = []
    started = {"slow": asyncio.Event(), "stuck": asyncio.Event()}

    @_stoppable
    async def slow_job() -> None:
        started["slow"].set()
        await asyncio.sleep(0.3)
        finished.append("slow")

    @_stoppable
    async def stuck_job() -> None:
        started["stuck"].set()
        await asyncio.sleep(60)
        finished.append("stuck")

    scheduler = AsyncIOScheduler(timezone=WITA)
    scheduler.add_job(slow_job, "interval", seconds=3600, next_run_time=dt.datetime.now(WITA))
    scheduler.start()
    await asyncio.wait_for(started["slow"].wait(), 5)
    await drain_scheduler(scheduler, timeout=5)
    assert finished == ["slow"] and not scheduler.running

    scheduler = AsyncIOScheduler(timezone=WITA)
    scheduler.add_job(stuck_job, "interval", seconds=3600, next_run_time=dt.datetime.now(WITA))
    scheduler.start()
    await asyncio.wait_for(started["stuck"].wait(), 5)
    caplog.set_level("INFO", logger="prolita.scheduler")
    await drain_scheduler(scheduler, timeout=0.2)
    await asyncio.sleep(0.05)  # the cancelled run unwinds
    assert finished == ["slow"] and not scheduler.running
    assert "still running after" in caplog.text and "stopped with the bot" in caplog.text
