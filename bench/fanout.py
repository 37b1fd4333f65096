"""Fan-out: 5,000 reminders through the fake Bot API enforcing Telegram's limits (30 messages/s overall,
1/s per chat, 429 with retry_after beyond), delivered by the real bot process's outbox sender.

    python -m bench.fanout                         # 5,000 recipients at the real limits (about 3 minutes)
    python -m bench.fanout --scale 10              # both limits x10: a short run, the same ratio

The reminders are the real ones: 5,000 verified Ketua RT (the 499 RTs of Bontang plus synthetic RTs),
the submission window closing in 3 days, ``bot.services.reminders.run_due`` writing one
``reminder.window`` outbox row each (made due now). The bot then starts and sends them. Completion
time runs from the first reminder request to the last one accepted, and is reported as a ratio to the
physical minimum (recipients ÷ the overall limit); 429s, lost and duplicated messages are counted in
the fake server.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import func, select, update

from bench.common import (
    HEAD_ID_BASE,
    fresh_database,
    machine,
    prepare,
    prolita_process,
    seed_heads,
    started_chat,
    table,
    workdir,
)
from fakeapi import FakeTelegram, RateLimits

SEND_METHODS = frozenset({"sendMessage", "sendPhoto", "sendDocument", "sendMediaGroup"})


@dataclass
class FanoutResult:
    db: str
    recipients: int
    scale: float
    limit_per_s: float
    send_rate: float
    send_concurrency: int
    reminders_made: int = 0
    seconds: float = 0.0
    minimum: float = 0.0
    ratio: float = 0.0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    http_429: int = 0
    other_errors: int = 0
    outbox: dict[str, int] = field(default_factory=dict)
    bot_errors: int = 0
    error_lines: list[str] = field(default_factory=list)
    bot_rss_mb: float = 0.0


async def make_reminders(url: str, user_ids: list[int]) -> int:
    """The submission window closes in 3 days: every head gets the 3-day window reminder, due now."""
    from bot.config import load_settings
    from bot.services import reminders
    from storage.db import create_engine, create_sessionmaker
    from storage.models import Outbox, Program, utcnow

    settings = load_settings()
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as s:
            today = utcnow().astimezone(settings.tz).date()
            await s.execute(
                update(Program)
                .where(Program.fiscal_year == settings.current_fiscal_year())
                .values(submission_opens=today - dt.timedelta(days=30), submission_closes=today + dt.timedelta(days=3))
            )
            await s.commit()
            given = await reminders.run_due(s, utcnow(), settings, holidays=frozenset())
            # Made inside someone's quiet hours they would wait for the morning: deliver them now.
            await s.execute(update(Outbox).values(next_attempt_at=utcnow()))
            await s.commit()
            return len(given)
    finally:
        await engine.dispose()


async def outbox_status(url: str) -> dict[str, int]:
    from storage.db import create_engine, create_sessionmaker
    from storage.models import Outbox

    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as s:
            rows = (await s.execute(select(Outbox.status, func.count()).group_by(Outbox.status))).all()
            return {status: int(n) for status, n in rows}
    finally:
        await engine.dispose()


async def fanout(db: str, recipients: int, *, scale: float, send_rate: float | None, send_concurrency: int,
                 pg_url: str | None, timeout: float | None = None) -> FanoutResult:  # fmt: skip
    limits = RateLimits(enabled=True).scaled(scale)
    rate = send_rate if send_rate is not None else limits.per_bot_per_second
    result = FanoutResult(db, recipients, scale, limits.per_bot_per_second, rate, send_concurrency)
    result.minimum = recipients / limits.per_bot_per_second
    with workdir("fanout") as tmp:
        tmpdir = Path(tmp)
        async with FakeTelegram(rate_limits=limits) as tg, fresh_database(db, tmpdir, pg_url) as url:
            await prepare(url)
            ids = [HEAD_ID_BASE + i for i in range(recipients)]
            await seed_heads(url, ids, officers=False)
            result.reminders_made = await make_reminders(url, ids)
            bot = tg.make_bot(username="prolita_bench_bot", first_name="Prolita")
            wanted = set(ids)
            for i, uid in enumerate(ids):
                tg.user(f"Ketua{i}", language_code="id", id=uid, bot=bot)
                started_chat(tg, bot.id, uid)
            proc = prolita_process(
                bot.token, tg, url, tmpdir, SEND_RATE=f"{rate:g}", SEND_CONCURRENCY=str(send_concurrency)
            )
            await proc.start(tg, bot.id)
            delivered: Counter[int] = Counter()
            first = last = None
            seen = 0
            unfinished: list = []  # send calls still in flight when last looked at

            def account(call) -> None:
                nonlocal first, last
                first = call.started if first is None else min(first, call.started)
                if call.ok:
                    delivered[call.params["chat_id"]] += 1
                    last = call.finished if last is None else max(last, call.finished)
                elif call.status == 429:
                    result.http_429 += 1
                else:
                    result.other_errors += 1

            def collect() -> None:
                nonlocal seen, unfinished
                calls = tg.calls
                fresh = [c for c in calls[seen:] if c.bot_id == bot.id and c.method in SEND_METHODS
                         and c.params.get("chat_id") in wanted]  # fmt: skip
                seen = len(calls)
                waiting = []
                for call in [*unfinished, *fresh]:
                    if call.done:
                        account(call)
                    else:
                        waiting.append(call)
                unfinished = waiting

            loop = asyncio.get_running_loop()
            deadline = loop.time() + (timeout if timeout is not None else 3 * result.minimum + 60)
            while loop.time() < deadline and len(delivered) < len(wanted):
                await asyncio.sleep(0.2)
                collect()
            await asyncio.sleep(1.0)  # a duplicate would arrive now, if any
            collect()
            await proc.stop()
            collect()
            result.bot_rss_mb = proc.peak_rss_mb
            result.delivered = len(delivered)
            result.lost = len(wanted) - len(delivered)
            result.duplicated = sum(n - 1 for n in delivered.values() if n > 1)
            result.seconds = (last - first) if first is not None and last is not None else float("nan")
            result.ratio = result.seconds / result.minimum
            result.outbox = await outbox_status(url)
            result.error_lines = proc.errors()
            result.bot_errors = len(result.error_lines)
    return result


def summary(results: list[FanoutResult]) -> str:
    return table(
        ["db", "recipients", "limit/s", "SEND_RATE", "concurrency", "seconds", "minimum s", "ratio", "delivered",
         "lost", "dup", "429s", "other errors", "bot log errors", "bot RSS MB"],
        [[r.db, r.recipients, f"{r.limit_per_s:g}", f"{r.send_rate:g}", r.send_concurrency, f"{r.seconds:.1f}",
          f"{r.minimum:.1f}", f"{r.ratio:.3f}", r.delivered, r.lost, r.duplicated, r.http_429, r.other_errors,
          r.bot_errors, f"{r.bot_rss_mb:.0f}"] for r in results],
    )  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__.split("\n\n")[0])
    p.add_argument("--recipients", type=int, default=5000)
    p.add_argument("--scale", type=float, default=1.0, help="raise both limits of the fake server this many times")
    p.add_argument("--send-rate", type=float, action="append",
                   help="the bot's SEND_RATE (repeatable; default: the fake's overall limit)")  # fmt: skip
    p.add_argument("--send-concurrency", type=int, default=None, help="the bot's SEND_CONCURRENCY (default 8, x scale)")
    p.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    p.add_argument("--pg-url", help="PostgreSQL server (default TEST_DATABASE_URL or the local one)")
    p.add_argument("--json", type=Path, help="append the results as JSON lines to this file")
    args = p.parse_args(argv)
    if not 1 <= args.recipients <= 20_000:
        p.error("--recipients: between 1 and 20000")
    if not args.scale > 0:
        p.error("--scale must be positive")
    if args.send_concurrency is None:
        args.send_concurrency = min(100, max(8, round(8 * args.scale)))
    return args


async def main_async(args: argparse.Namespace) -> list[FanoutResult]:
    print(f"Machine: {machine()}")
    print(f"Command: python -m bench.fanout {' '.join(sys.argv[1:])}".rstrip(), flush=True)
    results = []
    for rate in args.send_rate or [None]:
        started = time.time()
        r = await fanout(args.db, args.recipients, scale=args.scale, send_rate=rate,
                         send_concurrency=args.send_concurrency, pg_url=args.pg_url)  # fmt: skip
        print(f"... SEND_RATE={r.send_rate:g}: {time.time() - started:.0f} s wall; outbox {r.outbox}", flush=True)
        for line in r.error_lines[:5]:
            print("  bot log: " + line[:240])
        results.append(r)
        if args.json:
            with args.json.open("a") as fh:
                fh.write(json.dumps(asdict(r), default=str) + "\n")
    print("\nFan-out (seconds = first reminder request -> last accepted; minimum = recipients / overall limit)")
    print(summary(results))
    return results


def main(argv: list[str] | None = None) -> int:
    results = asyncio.run(main_async(parse_args(argv)))
    return 1 if any(r.lost or r.duplicated or r.bot_errors for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
