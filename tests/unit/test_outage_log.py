"""A database or Redis outage in a background loop is logged in a few lines, not a traceback per
attempt: one warning when it starts, a reminder while it lasts, one line when it is over. The
outbox sender and the scheduled jobs use it; any other error is still logged in full."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot import scheduler
from bot.notifier import OutboxSender
from bot.unavailable import OutageLog

LOGGER = "prolita.test.outage"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_one_warning_a_reminder_and_the_recovery(caplog):
    caplog.set_level(logging.INFO, LOGGER)
    clock = Clock()
    outage = OutageLog(logging.getLogger(LOGGER), "outbox sender", every=60, clock=clock)
    down = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
    for _ in range(20):  # a pass every second for 20 s: one line
        assert outage.failed(down)
        clock.now += 1
    assert messages(caplog) == [
        "outbox sender: the database or Redis is unavailable "
        "(ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 5432)); retrying"
    ]
    clock.now += 45  # 65 s after the first failure
    assert outage.failed(down)
    assert messages(caplog)[-1].startswith("outbox sender: still unavailable after 65 s (21 attempts;")
    clock.now += 5
    outage.succeeded()
    outage.succeeded()  # only once
    assert messages(caplog)[-1] == "outbox sender: available again after 70 s"
    assert len(caplog.records) == 3 and not any(r.exc_info for r in caplog.records)

    assert not outage.failed(ValueError("a bug"))  # not an outage: the caller logs it in full
    assert len(caplog.records) == 3


async def test_a_job_meeting_an_outage_logs_one_line_and_a_bug_still_raises(caplog):
    caplog.set_level(logging.INFO, "prolita")
    calls = []

    @scheduler._stoppable
    async def sample_job(fail: BaseException | None) -> str:
        calls.append(fail)
        if fail is not None:
            raise fail
        return "done"

    for _ in range(3):
        assert await sample_job(ConnectionResetError("server closed the connection")) is None
    assert await sample_job(None) == "done"
    with pytest.raises(ValueError):
        await sample_job(ValueError("a bug"))
    lines = [m for m in messages(caplog) if "sample_job" in m]
    assert lines == [
        "job sample_job: the database or Redis is unavailable "
        "(ConnectionResetError: server closed the connection); retrying",
        "job sample_job: available again after 0 s",
    ]
    assert len(calls) == 5


async def test_the_outbox_sender_logs_an_outage_once(caplog):
    caplog.set_level(logging.INFO, "prolita")
    sender = OutboxSender(None, None, None, (), poll_interval=0.01)  # type: ignore[arg-type]
    passes = 0

    async def run_once() -> int:
        nonlocal passes
        passes += 1
        if passes >= 30:
            sender.stop()
            return 0
        raise ConnectionRefusedError(111, "Connect call failed")

    sender.run_once = run_once  # type: ignore[method-assign]
    await asyncio.wait_for(sender.run(), 10)
    outage = [r for r in caplog.records if "outbox sender" in r.getMessage()]
    assert passes == 30
    assert [r.getMessage().split(" (")[0] for r in outage] == [
        "outbox sender: the database or Redis is unavailable",
        "outbox sender: available again after 0 s",
    ]
    assert not any(r.exc_info for r in caplog.records)
