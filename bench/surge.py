"""Surge (deadline day): N verified RT heads run the whole /usulan wizard at once through the fake Bot
API over HTTP against the real bot process (``python -m bot``), then the same N users and pace against
a bare aiogram echo bot on the same fake server (the ceiling, see bench/echo_bot.py).

    python -m bench.surge                                   # human pace, N=499, SQLite
    python -m bench.surge --db sqlite,postgresql --mode human,saturation --n 25,100,499
    python -m bench.surge --db postgresql --instances 2 --n 2000   # 2 webhook instances, one proxy

With ``--instances K`` (K >= 2, PostgreSQL only) the bot runs as production runs several: K
processes in webhook mode sharing the database, one MEDIA_DIR and the dialog states in Redis (an
empty database index of the run's own, see bench.common.fresh_redis), behind the round-robin proxy
of the end-to-end tests (tests/e2e/rrproxy.py). The fake server POSTs each update to the proxy on a
fresh connection, so consecutive steps of one dialog land on different instances, exactly as in
tests/e2e/test_two_instances.py. Errors are counted in all K logs; the bot RSS is the sum of the K
peaks.

Step latency is measured in the fake server (bench.common.StepClock): from the moment the user's
update is available to the bot until the bot's first answer to it arrives at the server. The album
step (3 photos sharing a media_group_id, answered once after the bot's short album wait) is reported
apart. Lost steps (no answer within 30 s), ERROR lines in the bot's log and missing or duplicated
proposals in the database at the end are counted; anything but zero is a bug.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.common import (
    ADMIN_ID,
    HEAD_ID_BASE,
    Latencies,
    StepClock,
    answered_within,
    echo_process,
    free_port,
    fresh_database,
    fresh_redis,
    machine,
    ms,
    prepare,
    prolita_process,
    seed_heads,
    started_chat,
    table,
    workdir,
)
from fakeapi import FakeTelegram, SimUser, WaitTimeout, make_jpeg, make_pdf

LOST_AFTER = 30.0  # seconds without an answer: the step is lost
ALBUM = "album (3 photos)"
ECHO_ID_BASE = HEAD_ID_BASE + 500_000
MAX_INSTANCES = 8
# Several instances: what tests/e2e/test_two_instances.py gives its cluster.
WEBHOOK_FAKE = {"allow_insecure_webhooks": True, "webhook_retry_min_delay": 0.2, "webhook_retry_max_delay": 1.0,
                "webhook_force_close": True}  # fmt: skip
WEBHOOK_PATH = "/telegram/webhook"
WEBHOOK_SECRET = "bench_surge-Secret_0123456789"


def _texts() -> dict[str, str]:
    from bot.i18n import build_i18n

    i18n = build_i18n()

    def t(msgid: str) -> str:  # what users see: HTML tags stripped
        return re.sub(r"<[^>]+>", "", i18n.gettext(msgid, locale="id"))

    return {
        "category": "Infrastruktur fisik",
        "title": t("Type a short <b>title</b>, e.g. <i>Semenisasi jalan gang RT 05</i>.")[:20],
        "describe": t("Describe it in a few sentences: what will be done, and why the residents need it."),
        "location": t("📍 Send my current location"),
        "skip": t("Skip ➡️"),
        "rab": "Semen 50 sak x 65.000",
        "done": t("✅ Done, next"),
        "photos": t(
            "Send <b>1 to 10 photos</b> of the site as it is now (several at once is fine). Photos so far: {n}."
        )[:30],
        "next": t("➡️ Next"),
        "minutes": "PDF",
        "attendees": t("How many residents attended the musyawarah? Type the number, e.g. <b>25</b>.")[:25],
        "send": t("📨 Send"),
    }


class Pace:
    """Think time between the bot's answer and the user's next action: 2 s ±50% (uniform) for human
    pace, none for saturation."""

    def __init__(self, mode: str, think: float, rng: random.Random) -> None:
        self.mode = mode
        self.think_s = think if mode == "human" else 0.0
        self.rng = rng

    async def think(self) -> None:
        if self.think_s > 0:
            await asyncio.sleep(self.rng.uniform(0.5 * self.think_s, 1.5 * self.think_s))


@dataclass
class UserRun:
    ok: bool = False
    code: str | None = None
    failed_step: str | None = None
    error: str | None = None


class Driver:
    """One simulated RT head: act, then wait for the bot's answer that asks the next question."""

    def __init__(self, user: SimUser, clock: StepClock, bot_id: int, pace: Pace) -> None:
        self.user = user
        self.clock = clock
        self.bot_id = bot_id
        self.pace = pace

    async def step(self, label: str, act: Callable[[], Awaitable[Any]], *, contains: str | None = None,
                   button: str | None = None) -> Any:  # fmt: skip
        self.clock.label(self.bot_id, self.user.id, label)
        await act()
        predicate = (lambda m: button in m.button_texts) if button else None
        return await self.user.wait_message(contains, predicate=predicate, timeout=LOST_AFTER)


async def run_wizard(d: Driver, photos: list[bytes], pdf: bytes, txt: dict[str, str], run: UserRun) -> None:
    u = d.user
    p = d.pace
    label = "start"
    try:
        await p.think()
        label = "/usulan"
        m = await d.step(label, lambda: u.send("/usulan"), button=txt["category"])
        await p.think()
        label = "category"
        await d.step(label, lambda: u.press(txt["category"], message=m, timeout=LOST_AFTER), contains=txt["title"])
        await p.think()
        label = "title"
        await d.step(label, lambda: u.send(f"Semenisasi jalan gang {u.first_name}"), contains=txt["describe"])
        await p.think()
        label = "description"
        await d.step(label, lambda: u.send("Jalan gang rusak dan becek saat hujan; dipakai 40 KK."),
                     contains=txt["location"])  # fmt: skip
        await p.think()
        label = "location"
        m = await d.step(label, lambda: u.share_location(0.1337, 117.495), button=txt["skip"])
        await p.think()
        label = "address skip"
        await d.step(label, lambda: u.press(txt["skip"], message=m, timeout=LOST_AFTER), contains=txt["rab"])
        await p.think()
        label = "RAB lines"
        m = await d.step(label, lambda: u.send("Semen 50 sak x 65.000\nPasir 3 m3 x 250rb"), button=txt["done"])
        await p.think()
        label = "RAB done"
        await d.step(label, lambda: u.press(txt["done"], message=m, timeout=LOST_AFTER), contains=txt["photos"])
        await p.think()
        label = ALBUM
        m = await d.step(label, lambda: u.send_album(photos), contains="📷")
        await p.think()
        label = "photos next"
        await d.step(label, lambda: u.press(txt["next"], message=m, timeout=LOST_AFTER), contains=txt["minutes"])
        await p.think()
        label = "minutes PDF"
        m = await d.step(label, lambda: u.send_document(pdf, file_name="berita-acara.pdf", mime_type="application/pdf"),
                         button=txt["next"])  # fmt: skip
        await p.think()
        label = "minutes next"
        await d.step(label, lambda: u.press(txt["next"], message=m, timeout=LOST_AFTER), contains=txt["attendees"])
        await p.think()
        label = "attendees"
        m = await d.step(label, lambda: u.send("25"), button=txt["send"])
        await p.think()
        label = "send"
        sent = await d.step(label, lambda: u.press(txt["send"], message=m, timeout=LOST_AFTER), contains="PRL-")
        found = re.search(r"[A-Z]{2,6}-\d{4}-\d{4,}", sent.text or "")
        run.code = found.group(0) if found else None
        run.ok = run.code is not None
    except (WaitTimeout, LookupError) as exc:
        run.failed_step = label
        run.error = str(exc).splitlines()[0][:200]


WIZARD_STEPS = 14


async def run_echo(d: Driver, run: UserRun) -> None:
    u = d.user
    try:
        for k in range(WIZARD_STEPS):
            await d.pace.think()
            text = f"langkah {k + 1} dari {u.first_name}"
            await d.step(f"echo {k + 1}", lambda text=text: u.send(text), contains=text)
        run.ok = True
    except WaitTimeout as exc:
        run.error = str(exc).splitlines()[0][:200]


class Bots:
    """The bot under test: one process long-polling the fake server, or ``instances`` processes in
    webhook mode behind the round-robin proxy (PostgreSQL, the FSM in Redis at ``redis_url``)."""

    def __init__(self, tg: FakeTelegram, token: str, db_url: str, tmpdir: Path, instances: int,
                 redis_url: str | None) -> None:  # fmt: skip
        self.tg = tg
        self.proxy: Any = None
        self.ports: list[int] = []
        if instances == 1:
            self.procs = [prolita_process(token, tg, db_url, tmpdir)]
            return
        from tests.e2e.rrproxy import RoundRobinProxy  # tests/ is a package: works from the repo root

        assert redis_url is not None
        self.ports = [free_port() for _ in range(instances)]
        self.proxy = RoundRobinProxy([("127.0.0.1", port) for port in self.ports])
        self.procs = []
        for k, port in enumerate(self.ports, 1):
            home = tmpdir / f"bot-{k}"
            home.mkdir()
            self.procs.append(prolita_process(
                token, tg, db_url, home, ready_log="webhook set to",
                WEBHOOK_SECRET=WEBHOOK_SECRET, PORT=str(port), INSTANCE_ID=f"bot-{k}", LEADER_RETRY="0.5",
                REDIS_URL=redis_url,
                MEDIA_DIR=str(tmpdir / "media"),  # shared, as the README asks of several instances
                SEND_LEASE="10",
            ))  # fmt: skip

    async def start(self, bot_id: int) -> None:
        if self.proxy is not None:
            await self.proxy.start()  # listening on a free port: the webhook URL is known from here on
            for proc in self.procs:
                proc.env["WEBHOOK_URL"] = f"http://127.0.0.1:{self.proxy.port}{WEBHOOK_PATH}"
        await asyncio.gather(*(proc.start(self.tg, bot_id) for proc in self.procs))

    async def stop(self) -> None:
        await asyncio.gather(*(proc.stop() for proc in self.procs))
        if self.proxy is not None:
            await self.proxy.close()

    @property
    def rss_each_mb(self) -> list[float]:
        return [proc.peak_rss_mb for proc in self.procs]

    def errors(self) -> list[str]:
        if len(self.procs) == 1:
            return self.procs[0].errors()
        return [f"[bot-{k}] {line}" for k, proc in enumerate(self.procs, 1) for line in proc.errors()]

    def posts(self) -> list[int]:
        """Webhook POSTs (connections) the proxy passed to each instance."""
        return [self.proxy.counts[("127.0.0.1", port)] for port in self.ports] if self.proxy is not None else []

    def keep_logs(self, path: Path) -> None:
        if len(self.procs) == 1:
            path.write_text(self.procs[0].log())
            return
        for k, proc in enumerate(self.procs, 1):
            path.with_name(f"{path.stem}-{k}{path.suffix}").write_text(proc.log())


def db_label(db: str, instances: int) -> str:
    return db if instances == 1 else f"{db}×{instances} webhook"


@dataclass
class Result:
    db: str
    mode: str
    n: int
    instances: int = 1
    users_done: int = 0
    steps: int = 0
    seconds: float = 0.0
    steps_per_s: float = 0.0
    step: Latencies | None = None
    album: Latencies | None = None
    per_step: dict[str, Latencies] = field(default_factory=dict)
    lost: int = 0
    errors: int = 0
    error_lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    proposals: int = 0
    missing: int = 0
    duplicated: int = 0
    bot_rss_mb: float = 0.0  # the sum of the instances' peaks
    bot_rss_each_mb: list[float] = field(default_factory=list)
    webhook_posts: list[int] = field(default_factory=list)  # per instance, through the proxy
    webhook_failed: int = 0  # delivery attempts not answered 2xx (each retried by the fake server)
    echo_users_done: int = 0
    echo_steps_per_s: float = 0.0
    echo: Latencies | None = None
    echo_lost: int = 0

    @property
    def label(self) -> str:
        return db_label(self.db, self.instances)

    @property
    def throughput_ratio(self) -> float:
        return self.steps_per_s / self.echo_steps_per_s if self.echo_steps_per_s else float("nan")


def _stats(steps: list, since: float) -> tuple[Latencies, int, float, float]:
    done, lost = answered_within(steps, LOST_AFTER)
    answered = [s.answered for s in steps if s.answered is not None]
    seconds = (max(answered) - since) if answered else 0.0
    return Latencies.of(done), lost, seconds, (len(done) / seconds if seconds > 0 else 0.0)


async def surge(db: str, mode: str, n: int, *, think: float, pg_url: str | None, echo: bool, seed: int,
                keep_log: Path | None = None, instances: int = 1, redis_url: str | None = None) -> Result:  # fmt: skip
    from storage.db import create_engine, create_sessionmaker
    from storage.models import Proposal

    if instances > 1 and db != "postgresql":
        raise ValueError(f"{instances} instances need PostgreSQL (one database shared by all), not {db}")
    rng = random.Random(seed)
    result = Result(db, mode, n, instances)
    txt = _texts()
    pdf = make_pdf("Berita acara musyawarah")
    media = [[make_jpeg(320, 240, color=(rng.randrange(256), 90, 160), text=f"{i}-{k}") for k in range(3)]
             for i in range(n)]  # fmt: skip
    with workdir("surge") as tmp:
        tmpdir = Path(tmp)
        redis = fresh_redis(redis_url) if instances > 1 else contextlib.nullcontext()
        fake = WEBHOOK_FAKE if instances > 1 else {}
        async with FakeTelegram(**fake) as tg, fresh_database(db, tmpdir, pg_url) as url, redis as redis_db:
            await prepare(url)
            ids = [HEAD_ID_BASE + i for i in range(n)]
            seeded = await seed_heads(url, ids)
            bot = tg.make_bot(username="prolita_bench_bot", first_name="Prolita")
            for uid in [*seeded["officers"], ADMIN_ID]:
                tg.user(f"Petugas{uid}", language_code="id", id=uid)
                started_chat(tg, bot.id, uid)
            heads = [tg.user(f"Ketua{i}", language_code="id", id=uid, bot=bot) for i, uid in enumerate(ids)]
            clock = StepClock(tg)
            clock.start()
            bots = Bots(tg, bot.token, url, tmpdir, instances, redis_db)
            try:
                await bots.start(bot.id)
                runs = [UserRun() for _ in heads]
                pace = Pace(mode, think, rng)
                started = time.time()
                await asyncio.gather(*(
                    run_wizard(Driver(h, clock, bot.id, pace), media[i], pdf, txt, runs[i])
                    for i, h in enumerate(heads)
                ))  # fmt: skip
                await asyncio.sleep(0.5)
            finally:
                await bots.stop()
            await clock.stop()
            result.bot_rss_each_mb = bots.rss_each_mb
            result.bot_rss_mb = sum(result.bot_rss_each_mb)
            result.webhook_posts = bots.posts()
            if instances > 1:
                result.webhook_failed = sum(1 for a in tg.server.webhooks.attempts if a.bot_id == bot.id and not a.ok)
            steps = clock.of(bot.id)
            plain = [s for s in steps if s.label != ALBUM]
            result.step, lost_plain, result.seconds, _ = _stats(plain, started)
            album = [s for s in steps if s.label == ALBUM]
            result.album, lost_album, _, _ = _stats(album, started)
            result.lost = lost_plain + lost_album
            result.steps = len(steps)
            answered = [s.answered for s in steps if s.answered is not None]
            result.seconds = (max(answered) - started) if answered else 0.0
            result.steps_per_s = (len(steps) - result.lost) / result.seconds if result.seconds else 0.0
            by_label: dict[str, list[float]] = {}
            for s in steps:
                if s.latency is not None and s.latency <= LOST_AFTER:
                    by_label.setdefault(s.label, []).append(s.latency)
            result.per_step = {k: Latencies.of(v) for k, v in by_label.items()}
            result.users_done = sum(r.ok for r in runs)
            result.failures = [f"{r.failed_step}: {r.error}" for r in runs if not r.ok][:5]
            result.error_lines = bots.errors()
            result.errors = len(result.error_lines)
            if keep_log is not None:
                await asyncio.to_thread(bots.keep_logs, keep_log)
            engine = create_engine(url)
            try:
                async with create_sessionmaker(engine)() as s:
                    rows = (await s.execute(
                        select(Proposal.created_by, func.count()).where(Proposal.code.is_not(None))
                        .group_by(Proposal.created_by)
                    )).all()  # fmt: skip
                    codes = (
                        await s.execute(select(func.count(Proposal.code), func.count(func.distinct(Proposal.code))))
                    ).one()
            finally:
                await engine.dispose()
            per_head = dict(rows)
            result.proposals = sum(per_head.values())
            result.missing = sum(1 for uid in ids if per_head.get(uid, 0) == 0)
            result.duplicated = sum(max(0, c - 1) for c in per_head.values()) + (codes[0] - codes[1])
            client_codes = [r.code for r in runs if r.code]
            result.duplicated += len(client_codes) - len(set(client_codes))

            if echo:
                echo_bot = tg.make_bot(username="echo_bench_bot", first_name="Echo")
                users = [tg.user(f"Warga{i}", language_code="id", id=ECHO_ID_BASE + i, bot=echo_bot) for i in range(n)]
                eproc = echo_process(echo_bot.token, tg, tmpdir)
                eclock = StepClock(tg)
                eclock.start()
                await eproc.start(tg, echo_bot.id)
                eruns = [UserRun() for _ in users]
                epace = Pace(mode, think, random.Random(seed))
                estarted = time.time()
                await asyncio.gather(*(run_echo(Driver(u, eclock, echo_bot.id, epace), eruns[i])
                                       for i, u in enumerate(users)))  # fmt: skip
                await eproc.stop()
                await eclock.stop()
                esteps = eclock.of(echo_bot.id)
                result.echo, result.echo_lost, _, _ = _stats(esteps, estarted)
                eanswered = [s.answered for s in esteps if s.answered is not None]
                eseconds = (max(eanswered) - estarted) if eanswered else 0.0
                result.echo_steps_per_s = (len(esteps) - result.echo_lost) / eseconds if eseconds else 0.0
                result.echo_users_done = sum(r.ok for r in eruns)
    return result


def print_result(r: Result, *, per_step: bool) -> None:
    if per_step and r.per_step:
        print(f"\nSurge {r.label}, {r.mode} pace, N={r.n}: step latency (ms), update available -> first answer")
        print(
            table(
                ["step", "count", "p50", "p95", "p99", "max"],
                [[k, v.count, ms(v.p50), ms(v.p95), ms(v.p99), ms(v.max)] for k, v in r.per_step.items()],
            )
        )
    if r.instances > 1:
        each = ", ".join(f"bot-{k} {p}" for k, p in enumerate(r.webhook_posts, 1))
        rss = " + ".join("?" if math.isnan(x) else f"{x:.0f}" for x in r.bot_rss_each_mb)
        print(f"  webhook POSTs per instance: {each}; failed deliveries (retried): {r.webhook_failed}; "
              f"bot RSS MB {rss}")  # fmt: skip
    if r.failures:
        print(f"  incomplete users (first {len(r.failures)}): " + "; ".join(r.failures))
    if r.error_lines:
        print(f"  bot log errors (first 5 of {r.errors}):\n    " + "\n    ".join(x[:240] for x in r.error_lines[:5]))


def summary(results: list[Result]) -> str:
    rows = []
    for r in results:
        s, a, e = r.step, r.album, r.echo
        rows.append([
            r.label, r.mode, r.n, f"{r.users_done}/{r.n}", r.steps, f"{r.steps_per_s:.1f}",
            ms(s.p50), ms(s.p95), ms(s.p99), ms(a.p50), ms(a.p99), r.lost, r.errors, r.missing, r.duplicated,
            f"{r.bot_rss_mb:.0f}",
            f"{r.echo_steps_per_s:.1f}" if e else "-", ms(e.p50) if e else "-", ms(e.p99) if e else "-",
            f"{r.throughput_ratio:.2f}" if e else "-",
            f"{s.p99 / e.p99:.1f}" if e and e.p99 else "-",
        ])  # fmt: skip
    return table(
        ["db", "pace", "N", "done", "steps", "steps/s", "p50 ms", "p95 ms", "p99 ms", "album p50", "album p99",
         "lost", "errors", "missing", "dup", "bot RSS MB (sum)", "echo steps/s", "echo p50", "echo p99",
         "thr/echo", "p99/echo"],
        rows,
    )  # fmt: skip


def _csv(value: str, cast: Callable[[str], Any] = str) -> list[Any]:
    try:
        return [cast(v.strip()) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list: {value!r}") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.surge", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=lambda v: _csv(v, int), default=[499], help="simulated RT heads, e.g. 25,100,499")
    p.add_argument("--db", type=_csv, default=["sqlite"], help="sqlite and/or postgresql")
    p.add_argument("--mode", type=_csv, default=["human"], help="human (2 s ±50%% think time) and/or saturation")
    p.add_argument("--think", type=float, default=2.0, help="mean think time of human pace, seconds")
    p.add_argument("--pg-url", help="PostgreSQL server (default TEST_DATABASE_URL or the local one)")
    p.add_argument("--instances", type=int, default=1, metavar="K",
                   help="bot processes: 1 long-polls; 2 or more run in webhook mode behind a round-robin proxy, "
                        "sharing PostgreSQL and Redis (PostgreSQL only)")  # fmt: skip
    p.add_argument("--redis-url", help="Redis server for 2+ instances (default TEST_REDIS_URL or the local one); "
                                       "a run claims an empty database index 12-15, flushed afterwards")  # fmt: skip
    p.add_argument("--no-echo", action="store_true", help="skip the echo-bot ceiling (always one echo bot)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", type=Path, help="append the results as JSON lines to this file")
    p.add_argument(
        "--bot-log",
        type=Path,
        help="keep the bot's log of the last run here (2+ instances: one per instance, NAME-1.log, ...)",
    )
    args = p.parse_args(argv)
    for db in args.db:
        if db not in ("sqlite", "postgresql"):
            p.error(f"--db: {db!r} is not sqlite or postgresql")
    for mode in args.mode:
        if mode not in ("human", "saturation"):
            p.error(f"--mode: {mode!r} is not human or saturation")
    if any(n < 1 or n > 5000 for n in args.n):
        p.error("--n: between 1 and 5000")
    if args.think < 0:
        p.error("--think must not be negative")
    if not 1 <= args.instances <= MAX_INSTANCES:
        p.error(f"--instances: between 1 and {MAX_INSTANCES}")
    if args.instances > 1 and any(db != "postgresql" for db in args.db):
        p.error(f"--instances {args.instances} needs --db postgresql: several instances share one database "
                f"(a SQLite file is one process's)")  # fmt: skip
    return args


async def main_async(args: argparse.Namespace) -> list[Result]:
    print(f"Machine: {machine()}")
    print(f"Command: python -m bench.surge {' '.join(sys.argv[1:])}".rstrip(), flush=True)
    results = []
    for db in args.db:
        for mode in args.mode:
            for n in args.n:
                print(f"... {db_label(db, args.instances)}, {mode} pace, N={n}", flush=True)
                r = await surge(db, mode, n, think=args.think, pg_url=args.pg_url, echo=not args.no_echo,
                                seed=args.seed, keep_log=args.bot_log, instances=args.instances,
                                redis_url=args.redis_url)  # fmt: skip
                print_result(r, per_step=mode == "human")
                results.append(r)
                if args.json:
                    with args.json.open("a") as fh:
                        fh.write(json.dumps(asdict(r), default=str) + "\n")
    print("\nSurge summary (latency = update available to the bot -> first answer at the server; "
          "album = 3 photos answered once)")  # fmt: skip
    print(summary(results))
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = asyncio.run(main_async(args))
    bad = sum(r.lost + r.errors + r.missing + r.duplicated + (r.n - r.users_done) for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
