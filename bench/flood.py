"""Flood: one user floods the bot (200 messages and button presses in 10 s) while N other Ketua RT
walk the /usulan wizard at human pace; the others' step latency is reported for windows without
and with the flood, in the same run. By default twice: with flood control at its defaults
(THROTTLE_BURST=10, THROTTLE_RATE=1) and with it off (THROTTLE_RATE=0), to show what it buys.

    python -m bench.flood                          # N=25, SQLite, 2 quiet + 2 flood windows, on and off
    python -m bench.flood --n 50 --db postgresql --throttle on

The N users loop over the whole wizard (surge.run_wizard: 14 steps, 2 s ± 50 % think time) for
the whole run. Timeline: a warm-up, then ``--cycles`` times a quiet window followed by a flood
window (the flooder, in the middle of its own wizard, sends 3 texts then presses an old button,
again and again, 200 updates in 10 s). A step belongs to the window in which its update became
available to the bot; latency is measured in the fake server (bench.common.StepClock), from that
moment to the bot's first answer. The album steps (3 photos answered once after the bot's album
wait) are left out of the figures, as in the surge's plain steps. Lost = no answer within 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.common import (
    ADMIN_ID,
    HEAD_ID_BASE,
    Latencies,
    Step,
    StepClock,
    answered_within,
    fresh_database,
    machine,
    ms,
    prepare,
    prolita_process,
    seed_heads,
    started_chat,
    table,
    workdir,
)
from bench.surge import ALBUM, LOST_AFTER, Driver, Pace, UserRun, _texts, run_wizard
from fakeapi import FakeTelegram, SimUser, make_jpeg, make_pdf
from fakeapi.state import ChatMessage

WARMUP = 5.0  # seconds before the first window: everyone past /usulan
FLOOD_UPDATES = 200
FLOOD_SECONDS = 10.0


@dataclass
class Window:
    name: str  # "quiet" or "flood"
    start: float
    end: float


@dataclass
class Result:
    db: str
    throttle: str  # "on" (defaults) or "off"
    n: int
    windows: dict[str, Latencies] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)
    flood_sent: int = 0
    flood_handled: int = 0
    flood_notices: int = 0
    presses: int = 0
    presses_answered: int = 0
    proposals_sent: int = 0
    errors: int = 0
    error_lines: list[str] = field(default_factory=list)


async def _flood(user: SimUser, category: ChatMessage, data: str, count: int, seconds: float
                 ) -> tuple[int, list[asyncio.Task]]:  # fmt: skip
    """``count`` updates in ``seconds``: 3 texts, then a press of the (long used) category button."""
    presses: list[asyncio.Task] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    for i in range(count):
        if i % 4 == 3:
            presses.append(asyncio.create_task(user.press(data=data, message=category, timeout=LOST_AFTER)))
        else:
            await user.send(f"Pesan cepat nomor {i}")
        await asyncio.sleep(max(0.0, started + (i + 1) * seconds / count - loop.time()))
    return count, presses


async def run(db: str, throttle: str, n: int, *, cycles: int, quiet: float, think: float, pg_url: str | None,
              seed: int) -> Result:  # fmt: skip
    from bot.config import Settings
    from bot.i18n import build_i18n
    from bot.middlewares.throttle import NOTICE

    rng = random.Random(seed)
    result = Result(db, throttle, n)
    txt = _texts()
    notice = build_i18n().gettext(NOTICE, locale="id")
    pdf = make_pdf("Berita acara musyawarah")
    media = [[make_jpeg(320, 240, color=(rng.randrange(256), 90, 160), text=f"{i}-{k}") for k in range(3)]
             for i in range(n)]  # fmt: skip
    # bench.common keeps flood control out of simulated users' way; here it runs at its defaults.
    defaults = {name: str(Settings.model_fields[name].default) for name in ("throttle_rate", "throttle_burst")}
    extra = {"THROTTLE_RATE": defaults["throttle_rate"], "THROTTLE_BURST": defaults["throttle_burst"]}
    if throttle == "off":
        extra["THROTTLE_RATE"] = "0"
    with workdir("flood") as tmp:
        tmpdir = Path(tmp)
        async with FakeTelegram() as tg, fresh_database(db, tmpdir, pg_url) as url:
            await prepare(url)
            ids = [HEAD_ID_BASE + i for i in range(n + 1)]
            seeded = await seed_heads(url, ids)
            bot = tg.make_bot(username="prolita_bench_bot", first_name="Prolita")
            for uid in [*seeded["officers"], ADMIN_ID]:
                tg.user(f"Petugas{uid}", language_code="id", id=uid)
                started_chat(tg, bot.id, uid)
            heads = [tg.user(f"Ketua{i}", language_code="id", id=uid, bot=bot) for i, uid in enumerate(ids)]
            flooder, others = heads[-1], heads[:-1]
            clock = StepClock(tg)
            clock.start()
            proc = prolita_process(bot.token, tg, url, tmpdir, **extra)
            await proc.start(tg, bot.id)

            stop = asyncio.Event()
            pace = Pace("human", think, rng)
            runs: list[UserRun] = []

            async def walk(i: int, user: SimUser) -> None:
                while not stop.is_set():
                    r = UserRun()
                    runs.append(r)
                    await run_wizard(Driver(user, clock, bot.id, pace), media[i], pdf, txt, r)

            walkers = [asyncio.create_task(walk(i, u)) for i, u in enumerate(others)]
            await flooder.send("/usulan")
            category = await flooder.wait_message(predicate=lambda m: txt["category"] in m.button_texts,
                                                  timeout=LOST_AFTER)  # fmt: skip
            old_button = category.button(txt["category"])["callback_data"]
            await flooder.press(txt["category"], message=category, timeout=LOST_AFTER)
            await asyncio.sleep(WARMUP)
            windows: list[Window] = []
            presses: list[asyncio.Task] = []
            log_start = len(proc.log())
            for _ in range(cycles):
                start = time.time()
                await asyncio.sleep(quiet)
                windows.append(Window("quiet", start, time.time()))
                start = time.time()
                sent, tasks = await _flood(flooder, category, old_button, FLOOD_UPDATES, FLOOD_SECONDS)
                windows.append(Window("flood", start, time.time()))
                result.flood_sent += sent
                presses += tasks
            stop.set()
            for walker in walkers:  # no new steps; the bot still answers those it has
                walker.cancel()
            answers = await asyncio.gather(*presses)
            await asyncio.gather(*walkers, return_exceptions=True)

            def measured() -> list[Step]:
                return [s for s in clock.of(bot.id) if s.chat_id != flooder.id and s.label != ALBUM
                        and any(w.start <= s.available < w.end for w in windows)]  # fmt: skip

            for _ in range(int(LOST_AFTER / 0.2)):  # the steps still waiting: answered, or lost
                if all(s.answered is not None for s in measured()):
                    break
                await asyncio.sleep(0.2)
            await proc.stop()
            await clock.stop()

            steps = measured()
            for name in ("quiet", "flood"):
                inside = [s for s in steps if any(w.name == name and w.start <= s.available < w.end for w in windows)]
                done, lost = answered_within(inside, LOST_AFTER)
                result.windows[name] = Latencies.of(done)
                result.lost[name] = lost
            log = proc.log()[log_start:]
            result.flood_handled = sum(f" user={flooder.id} " in ln and " ms=" in ln for ln in log.splitlines())
            result.flood_notices = sum(notice in (m.text or "") for m in flooder.bot_messages)
            result.presses = len(answers)
            result.presses_answered = sum(bool(a) for a in answers)
            result.proposals_sent = sum(r.ok for r in runs)
            result.error_lines = proc.errors()
            result.errors = len(result.error_lines)
    return result


def summary(results: list[Result]) -> str:
    rows = []
    for r in results:
        for name in ("quiet", "flood"):
            s = r.windows[name]
            flood = name == "flood"
            rows.append([
                r.db, r.throttle, r.n, name, s.count, ms(s.p50), ms(s.p95), ms(s.p99), ms(s.max), r.lost[name],
                f"{r.flood_handled}/{r.flood_sent}" if flood else "-",
                r.flood_notices if flood else "-",
                f"{r.presses_answered}/{r.presses}" if flood else "-",
                r.errors,
            ])  # fmt: skip
    return table(
        ["db", "throttle", "N", "window", "steps", "p50 ms", "p95 ms", "p99 ms", "max ms", "lost",
         "flood handled", "notices", "presses answered", "errors"],
        rows,
    )  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.flood", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=25, help="Ketua RT walking the wizard at human pace")
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--throttle", choices=("on", "off", "both"), default="both",
                   help="flood control at its defaults, off (THROTTLE_RATE=0), or one run of each")  # fmt: skip
    p.add_argument("--cycles", type=int, default=2, help="quiet window + flood window, this many times")
    p.add_argument("--quiet", type=float, default=8.0, help="seconds of each quiet window")
    p.add_argument("--think", type=float, default=2.0, help="mean think time of the walking users, seconds")
    p.add_argument("--pg-url", help="PostgreSQL server (default TEST_DATABASE_URL or the local one)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", type=Path, help="append the results as JSON lines to this file")
    args = p.parse_args(argv)
    if not 1 <= args.n <= 2000:
        p.error("--n: between 1 and 2000")
    if args.cycles < 1 or args.quiet <= 0 or args.think < 0:
        p.error("--cycles >= 1, --quiet > 0 and --think >= 0")
    return args


async def main_async(args: argparse.Namespace) -> list[Result]:
    print(f"Machine: {machine()}")
    print(f"Command: python -m bench.flood {' '.join(sys.argv[1:])}".rstrip(), flush=True)
    results = []
    for throttle in ("on", "off") if args.throttle == "both" else (args.throttle,):
        print(f"... {args.db}, flood control {throttle}, N={args.n}", flush=True)
        r = await run(args.db, throttle, args.n, cycles=args.cycles, quiet=args.quiet, think=args.think,
                      pg_url=args.pg_url, seed=args.seed)  # fmt: skip
        if r.error_lines:
            lines = "\n    ".join(x[:240] for x in r.error_lines[:5])
            print(f"  bot log errors (first 5 of {r.errors}):\n    {lines}")
        results.append(r)
        if args.json:
            with args.json.open("a") as fh:
                fh.write(json.dumps(asdict(r), default=str) + "\n")
    print(f"\nFlood: other users' step latency (update available -> first answer), windows without and with one "
          f"user sending {FLOOD_UPDATES} updates in {FLOOD_SECONDS:.0f} s")  # fmt: skip
    print(summary(results))
    return results


def main(argv: list[str] | None = None) -> int:
    results = asyncio.run(main_async(parse_args(argv)))
    bad = sum(r.errors + sum(r.lost.values()) + (r.presses - r.presses_answered) for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
