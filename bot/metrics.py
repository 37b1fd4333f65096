"""Prometheus metrics of the bot process, served at ``/metrics`` (see :mod:`bot.web`).

Counters and the latency histogram are updated where things happen (the update middleware, the
outbox sender, the webhook route); the gauges that describe the database (outbox backlog, users who
blocked the bot) are read from it when ``/metrics`` is scraped, so every instance reports the same
shared backlog. Process metrics (CPU, memory, open files) come with prometheus-client.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import OUTBOX_PENDING, Outbox, User

OUTBOX_SENDING = "sending"  # bot/notifier.py; not imported from there to keep this module light

disable_created_metrics()  # no *_created series: they double the output and nothing here uses them

UPDATES = Counter(
    "prolita_updates",
    "Telegram updates handled, by handler and outcome (ok, unhandled, duplicate, error, "
    "throttled: dropped by flood control).",
    ["handler", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "prolita_handler_seconds",
    "Time to handle one update (middleware, handler and commit), by handler.",
    ["handler"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
MESSAGES_SENT = Counter("prolita_messages_sent", "Notices delivered from the outbox to Telegram.")
RETRY_AFTER = Counter("prolita_telegram_429", "429 Too Many Requests answers from Telegram to the outbox sender.")
BLOCKED = Counter(
    "prolita_blocked_deliveries",
    "Notices not delivered because the user blocked the bot or deleted the account.",
)
LEADER = Gauge(
    "prolita_leader", "1 on the instance running the scheduler and the outbox sender (the leader), else 0."
)
WEBHOOK_REJECTED = Counter(
    "prolita_webhook_rejected",
    "Calls to the webhook refused because the secret token was missing or wrong.",
    ["reason"],
)
OUTBOX_BACKLOG = Gauge(
    "prolita_outbox_backlog",
    "Outbox rows not yet delivered (read from the database at scrape time), by status.",
    ["status"],
)
BLOCKED_USERS = Gauge(
    "prolita_users_blocked",
    "Users who blocked the bot (read from the database at scrape time).",
)


def observe_update(handler: str, outcome: str, seconds: float) -> None:
    UPDATES.labels(handler=handler, outcome=outcome).inc()
    HANDLER_SECONDS.labels(handler=handler).observe(seconds)


async def refresh_from_database(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Update the gauges that describe shared state (raises if the database is unreachable)."""
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(Outbox.status, func.count())
                .where(Outbox.status.in_((OUTBOX_PENDING, OUTBOX_SENDING)))
                .group_by(Outbox.status)
            )
        ).all()
        blocked = await session.scalar(select(func.count()).select_from(User).where(User.blocked_bot.is_(True)))
    counts = dict(rows)
    for status in (OUTBOX_PENDING, OUTBOX_SENDING):
        OUTBOX_BACKLOG.labels(status=status).set(counts.get(status, 0))
    BLOCKED_USERS.set(blocked or 0)


def exposition() -> tuple[bytes, str]:
    """The text exposition format and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
