"""Shared pieces of the benchmarks: fresh databases, seeding, the real bot process, the server-side
step clock and table printing. Figures are printed, never asserted on time (see bench/README.md)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import os
import platform
import re
import signal
import socket
import sqlite3
import sys
import tempfile
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url

from fakeapi import FakeTelegram
from fakeapi.state import Event

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
# Redis database indexes the benchmarks may claim (the tests use 0, 7 and 11 of the shared server).
BENCH_REDIS_DBS = (12, 13, 14, 15)
REDIS_CLAIM_KEY = "prolita-bench:claimed-by"
ADMIN_ID = 900_001
HEAD_ID_BASE = 6_100_000_000  # simulated RT heads: HEAD_ID_BASE + i
OFFICER_ID_BASE = 6_000_000_000  # one officer per kelurahan: OFFICER_ID_BASE + kelurahan id


# ----------------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.0f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table (also valid Markdown)."""
    rows = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def machine() -> str:
    """One line describing where the figures come from."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    try:
        load = "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        load = "load ?"
    return (
        f"{os.cpu_count()} CPU ({cpu}), Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{platform.system()} {platform.release()}, {load}"
    )


def peak_rss_mb(pid: int | None = None) -> float:
    """Peak resident memory (VmHWM) of a live process, in MB; NaN when unknown."""
    path = Path(f"/proc/{pid or 'self'}/status")
    with contextlib.suppress(OSError):
        for ln in path.read_text().splitlines():
            if ln.startswith("VmHWM:"):
                return int(ln.split()[1]) / 1024
    return math.nan


# ------------------------------------------------------------------------------------ databases


async def _pg_admin(url: str, sql: str) -> None:
    import asyncpg

    u = make_url(url)
    conn = await asyncpg.connect(
        host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username or "postgres", password=u.password,
        database=u.database or "postgres", timeout=5,
    )  # fmt: skip
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def pg_version(url: str) -> str:
    import asyncpg

    u = make_url(url)
    conn = await asyncpg.connect(
        host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username or "postgres", password=u.password,
        database=u.database or "postgres", timeout=5,
    )  # fmt: skip
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def fresh_database(kind: str, workdir: Path, pg_url: str | None = None) -> AsyncIterator[str]:
    """The URL of a new, empty database: a SQLite file in ``workdir``, or a new PostgreSQL database
    (dropped afterwards) on the server of ``pg_url``."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / f'bench-{uuid.uuid4().hex[:8]}.db'}"
        return
    if kind != "postgresql":
        raise ValueError(f"unknown database kind {kind!r} (sqlite or postgresql)")
    base = pg_url or os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG_URL
    name = f"prolita_bench_{uuid.uuid4().hex[:10]}"
    try:
        await _pg_admin(base, f'CREATE DATABASE "{name}"')
    except Exception as exc:
        raise SystemExit(f"PostgreSQL at {make_url(base).render_as_string()} is not usable: {exc!r}") from None
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        for _ in range(3):
            try:
                await _pg_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except Exception:
                await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def fresh_redis(base: str | None = None) -> AsyncIterator[str]:
    """The URL of an empty Redis database of this run's own on the server of ``base`` (default
    TEST_REDIS_URL or the local one): the first empty index of BENCH_REDIS_DBS, claimed with a key
    (two runs at once get two indexes) and flushed afterwards."""
    from redis.asyncio import Redis

    base = base or os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    for index in BENCH_REDIS_DBS:
        url = urlsplit(base)._replace(path=f"/{index}").geturl()
        client = Redis.from_url(url, socket_connect_timeout=3)
        try:
            try:
                claimed = await client.dbsize() == 0 and await client.set(REDIS_CLAIM_KEY, token, nx=True)
            except Exception as exc:
                raise SystemExit(f"Redis at {_redis_shown(base)} is not usable: {exc!r}") from None
            if not claimed:
                continue
            try:
                yield url
            finally:
                await client.flushdb()
            return
        finally:
            await client.aclose()
    raise SystemExit(
        f"Redis at {_redis_shown(base)}: no empty database among indexes {', '.join(map(str, BENCH_REDIS_DBS))} "
        f"(another benchmark running, or keys left by one that was killed: FLUSHDB the index it used)"
    )


def _redis_shown(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


async def prepare(url: str) -> None:
    """Migrate, import the bundled Bontang RTs (499) and make this year's programme."""
    from bot.config import load_settings
    from bot.services import programs
    from bot.services.wilayah import ensure_sample_wilayah
    from storage.db import create_engine, create_sessionmaker
    from storage.migrate import upgrade

    engine = create_engine(url)
    try:
        await upgrade(engine)
        sm = create_sessionmaker(engine)
        await ensure_sample_wilayah(sm)
        settings = load_settings()
        async with sm() as s:
            await programs.ensure(s, settings, settings.current_fiscal_year())
    finally:
        await engine.dispose()


async def ensure_rts(session, count: int) -> list[int]:
    """At least ``count`` RTs: the real 499 of Bontang first, then synthetic RT numbers 100-999 in
    each kelurahan (for N beyond one head per real RT). Returns the first ``count`` RT ids."""
    from storage.models import RT, Kelurahan

    ids = list((await session.scalars(select(RT.id).order_by(RT.id))).all())
    if len(ids) < count:
        kels = list((await session.scalars(select(Kelurahan.id).order_by(Kelurahan.id))).all())
        taken = {(k, n) for k, n in (await session.execute(select(RT.kelurahan_id, RT.number))).all()}
        rows = []
        number = 100
        while len(ids) + len(rows) < count:
            if number > 999:
                raise SystemExit(f"cannot make {count} RTs (at most {len(ids) + len(rows)})")
            for kel in kels:
                if (kel, number) not in taken and len(ids) + len(rows) < count:
                    rows.append({"kelurahan_id": kel, "number": number})
            number += 1
        await session.execute(insert(RT), rows)
        await session.commit()
        ids = list((await session.scalars(select(RT.id).order_by(RT.id))).all())
    return ids[:count]


async def seed_heads(url: str, user_ids: Sequence[int], *, officers: bool = True) -> dict[str, Any]:
    """Verified Ketua RT ``user_ids[i]`` of the i-th RT, written straight into the database (as a
    verification would leave them), and one kelurahan officer per kelurahan. Returns the officer ids."""
    from storage.db import create_engine, create_sessionmaker
    from storage.models import REG_VERIFIED, SCOPE_KELURAHAN, Kelurahan, Officer, RTHead, User, utcnow

    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as s:
            rt_ids = await ensure_rts(s, len(user_ids))
            now = utcnow()
            officer_ids: list[int] = []
            user_rows = [{"id": ADMIN_ID, "first_name": "Admin", "language": "id"}]
            if officers:
                for kel_id in (await s.scalars(select(Kelurahan.id))).all():
                    officer_ids.append(OFFICER_ID_BASE + kel_id)
                    user_rows.append(
                        {"id": OFFICER_ID_BASE + kel_id, "first_name": f"Petugas{kel_id}", "language": "id"}
                    )
            user_rows += [{"id": uid, "first_name": f"Ketua{i}", "language": "id"} for i, uid in enumerate(user_ids)]
            for chunk in _chunks(user_rows, 2000):
                await s.execute(insert(User), chunk)
            if officers:
                kels = (await s.execute(select(Kelurahan.id, Kelurahan.kecamatan_id))).all()
                await s.execute(insert(Officer), [
                    {"user_id": OFFICER_ID_BASE + k, "scope": SCOPE_KELURAHAN, "kecamatan_id": kc,
                     "kelurahan_id": k, "appointed_by": ADMIN_ID, "appointed_at": now}
                    for k, kc in kels
                ])  # fmt: skip
            heads = [
                {"user_id": uid, "rt_id": rt, "full_name": f"Ketua {i} Santoso", "phone": f"+62811{i:07d}",
                 "status": REG_VERIFIED, "decided_by": ADMIN_ID, "decided_at": now, "created_at": now}
                for i, (uid, rt) in enumerate(zip(user_ids, rt_ids, strict=True))
            ]  # fmt: skip
            for chunk in _chunks(heads, 2000):
                await s.execute(insert(RTHead), chunk)
            await s.commit()
            return {"officers": officer_ids, "rt_ids": rt_ids}
    finally:
        await engine.dispose()


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


async def count_rows(url: str, model: Any, *where: Any) -> int:
    from storage.db import create_engine, create_sessionmaker

    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as s:
            return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)
    finally:
        await engine.dispose()


# ---------------------------------------------------------------------------------- processes


class Process:
    """A bot process (``python -m bot`` or the echo bot) talking to the fake server over HTTP."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, *, ready_log: str | None = None) -> None:
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.ready_log = ready_log  # ready once this appears in the log (else: once it long-polls)
        self.proc: asyncio.subprocess.Process | None = None
        self.peak_rss_mb = math.nan

    async def start(self, tg: FakeTelegram, bot_id: int, timeout: float = 60.0) -> None:
        since = len(self.log())
        log = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, cwd=str(self.log_path.parent), env=self.env, stdout=log, stderr=log
        )
        log.close()
        account = tg.world.bots[bot_id]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        waiting = f"no {self.ready_log!r} in its log" if self.ready_log else "not polling"
        while not self._ready(account, since):
            if self.proc.returncode is not None:
                raise SystemExit(f"{self.argv} exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            if loop.time() > deadline:
                raise SystemExit(f"{self.argv} {waiting} after {timeout}s:\n{self.log()[-3000:]}")
            await asyncio.sleep(0.05)

    def _ready(self, account: Any, since: int) -> bool:
        if self.ready_log is not None:
            return self.ready_log in self.log()[since:]
        return account.active_poll is not None and not account.active_poll.done()

    async def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc is None or self.proc.returncode is not None:
            return None if self.proc is None else self.proc.returncode
        self.peak_rss_mb = peak_rss_mb(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def errors(self) -> list[str]:
        """ERROR/CRITICAL lines and tracebacks in the log."""
        return [ln for ln in self.log().splitlines() if re.search(r" (ERROR|CRITICAL) |^Traceback", ln)]


def bot_env(token: str, base_url: str, db_url: str, workdir: Path, **extra: str) -> dict[str, str]:
    skip = ("BOT_", "PROGRAM_", "DATABASE_", "SEND_", "WEBHOOK_", "REDIS_", "THROTTLE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    env.update(
        BOT_TOKEN=token,
        TELEGRAM_API_URL=base_url,
        DATABASE_URL=db_url,
        ADMIN_IDS=str(ADMIN_ID),
        MEDIA_DIR=str(workdir / "media"),
        LOG_LEVEL="INFO",
        POLLING_TIMEOUT="10",
        SCHEDULED_MESSAGES="0",
        # Simulated users act as soon as the bot answers (saturation), faster than any person: flood
        # control is kept out of their way, as in the end-to-end tests; it still runs on every update.
        THROTTLE_RATE="1000",
        THROTTLE_BURST="10000",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def prolita_process(token: str, tg: FakeTelegram, db_url: str, workdir: Path, *, ready_log: str | None = None,
                    **extra: str) -> Process:  # fmt: skip
    return Process([sys.executable, "-m", "bot"], bot_env(token, tg.base_url, db_url, workdir, **extra),
                   workdir / "bot.log", ready_log=ready_log)  # fmt: skip


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def echo_process(token: str, tg: FakeTelegram, workdir: Path) -> Process:
    env = bot_env(token, tg.base_url, "sqlite://", workdir)
    return Process([sys.executable, str(ROOT / "bench" / "echo_bot.py")], env, workdir / "echo.log")


def started_chat(tg: FakeTelegram, bot_id: int, user_id: int) -> None:
    """The user has opened the bot before (so the bot may write first), without an update."""
    tg.world.conversation(tg.world.bots[bot_id], tg.world.users[user_id]).started = True


def workdir(prefix: str) -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix=f"prolita-{prefix}-")


def local_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ------------------------------------------------------------------------------ the step clock

# What counts as "the bot answered": something the user sees (a message, an edit, a callback answer).
ANSWER_METHODS = frozenset({
    "sendMessage", "sendPhoto", "sendDocument", "sendMediaGroup", "sendLocation", "sendVenue", "sendPoll",
    "editMessageText", "editMessageCaption", "editMessageReplyMarkup", "editMessageMedia", "answerCallbackQuery",
})  # fmt: skip


@dataclass
class Step:
    bot_id: int
    chat_id: int
    label: str
    available: float  # when the (first) update was queued for the bot, i.e. available to getUpdates
    group: str | None = None  # media_group_id of an album step
    updates: int = 1
    answered: float | None = None

    @property
    def latency(self) -> float | None:
        return None if self.answered is None else self.answered - self.available


@dataclass
class StepClock:
    """Server-side step latency, measured inside the fake: from the moment a user's update is queued
    for the bot until the bot's first answer to it *arrives* at the server (``ApiCall.started``).

    Updates of one media group form one step. A chat's answers resolve its pending steps oldest first;
    an answer that started before a step existed never resolves it (a late second message of the
    previous step). ``label(chat, name)`` names the chat's next step."""

    tg: FakeTelegram
    steps: list[Step] = field(default_factory=list)
    _pending: dict[tuple[int, int], deque[Step]] = field(default_factory=lambda: defaultdict(deque))
    _labels: dict[tuple[int, int], deque[str]] = field(default_factory=lambda: defaultdict(deque))
    _queries: dict[str, int] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def label(self, bot_id: int, chat_id: int, name: str) -> None:
        self._labels[(bot_id, chat_id)].append(name)

    def start(self) -> None:
        self._sub = self.tg.world.events.subscribe(kinds=["update", "api_call"])
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await asyncio.sleep(0)
        for event in self._sub.drain():
            self._handle(event)
        self._sub.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            self._handle(await self._sub.queue.get())

    def _handle(self, event: Event) -> None:
        if event.kind == "update":
            self._on_update(event)
        else:
            call = event.data["call"]
            if call.method in ANSWER_METHODS and call.bot_id is not None:
                self._on_answer(call)

    def _on_update(self, event: Event) -> None:
        update = event.data["update"]
        message = update.get("message") or update.get("edited_message")
        if message is not None:
            chat_id, group = message["chat"]["id"], message.get("media_group_id")
        elif "callback_query" in update:
            chat_id, group = update["callback_query"]["from"]["id"], None
            self._queries[update["callback_query"]["id"]] = chat_id
        else:
            return
        key = (event.bot_id, chat_id)
        pending = self._pending[key]
        if group is not None and pending and pending[-1].group == group:
            pending[-1].updates += 1
            return
        labels = self._labels.get(key)
        name = labels.popleft() if labels else "?"
        step = Step(event.bot_id, chat_id, name, event.time, group)
        self.steps.append(step)
        pending.append(step)

    def _on_answer(self, call: Any) -> None:
        if call.method == "answerCallbackQuery":
            chat_id = self._queries.pop(str(call.params.get("callback_query_id")), None)
        else:
            chat_id = call.params.get("chat_id")
        if not isinstance(chat_id, int):
            return
        pending = self._pending.get((call.bot_id, chat_id))
        if pending and pending[0].available <= call.started:
            pending.popleft().answered = call.started

    def of(self, bot_id: int) -> list[Step]:
        return [s for s in self.steps if s.bot_id == bot_id]


@dataclass
class Latencies:
    count: int
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Latencies:
        return cls(len(values), percentile(values, 50), percentile(values, 95), percentile(values, 99),
                   max(values) if values else math.nan)  # fmt: skip


def answered_within(steps: Sequence[Step], limit: float) -> tuple[list[float], int]:
    """Latencies of steps answered within ``limit`` seconds, and how many were lost (later or never)."""
    done = [s.latency for s in steps if s.latency is not None and s.latency <= limit]
    return done, len(steps) - len(done)
