"""Two bot instances on PostgreSQL + Redis behind a round-robin proxy, as in production.

The fake Bot API delivers updates by webhook to the proxy, which sends every POST to the next
instance in turn (``webhook_force_close``: one connection per POST), so the steps of one dialog land
on both instances. Registrations, verifications, two proposal wizards and a broadcast run through
them; the instance leading the scheduler and the outbox sender is SIGKILLed mid-broadcast, and the
other takes over (the failover time is printed). Then the faults: Redis restarting under a dialog
(the update sent while it is down is answered 503, retried, and the dialog resumes) and PostgreSQL
ending every session of the database (the pools reconnect, updates are retried, the leader lock is
won again). Every notice must arrive exactly once, and every dialog end where it should.

Needs ``TEST_DATABASE_URL`` and ``TEST_REDIS_URL`` (skipped with the reason otherwise). Each test
has a fresh PostgreSQL database; the shared Redis is used at database index 7 (flushed before and
after), and the Redis restart uses a private ``redis-server`` on a free port, never the shared one.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisStorage
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bot.domain.permissions import Scope
from bot.services import officers, users
from fakeapi import FakeTelegram, SimUser, make_jpeg, make_pdf
from storage.models import RT, Kelurahan, Outbox, Proposal, RTHead, User
from tests.conftest import TEST_DATABASE_URL, _pg_admin_exec, _pg_unavailable_reason
from tests.e2e.conftest import ADMIN_ID, BotProcess, t
from tests.e2e.rrproxy import RoundRobinProxy

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "").strip()
REDIS_DB = 7  # no other test uses this index of the shared Redis
SECRET = "two_instances-Secret_0123456789"
PATH = "/telegram/webhook"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
BROADCAST = "Rapat Ketua RT se-Kelurahan Api-Api, Sabtu 09.00 di aula kelurahan."
EXTRA_HEADS = range(11, 41)  # RTs of Api-Api whose (already verified) Ketua RT only receive the broadcast

CONGRATS = t(
    "✅ Congratulations, {name}! You are now the verified <b>Ketua RT</b> of {place}. "
    "The Ketua RT menu is now available below."
).split("{name}")[0]
NEW_REGISTRATION = t("🆕 New Ketua RT registration: <b>{name}</b>, {place}. Please check it in /verifikasi.").split(
    "{name}"
)[0]
NEW_PROPOSAL = t("📥 New proposal <b>{code}</b> from {place}: {title}, {amount}. Please review it in /tinjau.").split(
    "{code}"
)[0]
BTN_PHONE = "📱 Send my phone number"


# -- infrastructure -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _redis_reason() -> str | None:
    if not TEST_REDIS_URL:
        return "two-instance tests skipped: TEST_REDIS_URL is not set (.ci/run sets it)"
    client = Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        return f"two-instance tests skipped: Redis at TEST_REDIS_URL not reachable ({exc!r})"
    finally:
        await client.aclose()
    return None


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database (both instances migrate it at start: one does, one waits)."""
    reason = await _pg_unavailable_reason() or await _redis_reason()
    if reason:
        pytest.skip(reason if "two-instance" in reason else f"two-instance tests skipped: {reason}")
    name = f"prolita_2i_{uuid.uuid4().hex[:12]}"
    await _pg_admin_exec(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        for _ in range(3):
            try:
                await _pg_admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except Exception:
                await asyncio.sleep(0.5)


@pytest.fixture
async def shared_redis(pg_url: str) -> AsyncIterator[str]:
    """The machine's Redis at database index 7, empty before and after the test."""
    url = make_url(TEST_REDIS_URL.replace("redis://", "postgresql://", 1))  # only to swap the db index
    redis_url = f"redis://{url.host or '127.0.0.1'}:{url.port or 6379}/{REDIS_DB}"
    if url.password:
        redis_url = f"redis://:{url.password}@{url.host or '127.0.0.1'}:{url.port or 6379}/{REDIS_DB}"
    client = Redis.from_url(redis_url)
    await client.flushdb()
    try:
        yield redis_url
    finally:
        await client.flushdb()
        await client.aclose()


class PrivateRedis:
    """A redis-server of this test's own, with an append-only file (a production Redis with
    persistence): stopping and starting it keeps the dialog states."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.dir),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        client = Redis.from_url(self.url)
        try:
            for _ in range(200):
                try:
                    if await client.ping():
                        return
                except Exception:
                    await asyncio.sleep(0.025)
            raise AssertionError("the private redis-server did not start")
        finally:
            await client.aclose()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)  # redis-server flushes its AOF and exits
            await asyncio.wait_for(self.proc.wait(), 15)


@pytest.fixture
async def private_redis(pg_url: str, tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    if not os.access(REDIS_SERVER, os.X_OK):
        pytest.skip(f"two-instance Redis restart skipped: no redis-server at {REDIS_SERVER}")
    server = PrivateRedis(tmp_path / "redis")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class Instance(BotProcess):
    """One bot process in webhook mode; ready once it logged that its webhook is set."""

    name: str
    port: int

    async def wait_ready(self, timeout: float = 60.0) -> None:
        await self.wait_log("webhook set to", timeout=timeout, since=self.log_offset)

    async def start(self, *, wait: bool = True) -> None:
        self.log_offset = len(self.log())
        await super().start(wait=wait)

    async def wait_log(self, text: str, *, timeout: float, since: int = 0) -> float:
        """Wait for ``text`` in the log after offset ``since``; the moment it appeared (monotonic)."""
        deadline = time.monotonic() + timeout
        while True:
            if text in self.log()[since:]:
                return time.monotonic()
            if self.proc is not None and self.proc.returncode is not None and self.proc.returncode != -9:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {text!r} in the log within {timeout}s:\n{self.log()[-4000:]}")
            await asyncio.sleep(0.01)

    @property
    def leads(self) -> bool:
        # From "stepping down" on (the lead is lost; its services are stopping) another instance may
        # already lead: that overlap is by design (see bot/leader.py), two believing they lead is not.
        log = self.log()
        me = f"instance {self.name}"
        ended = max(log.rfind(f"{me} is stepping down"), log.rfind(f"{me} stepped down"))
        return log.rfind(f"{me} is now the leader") > ended

    def handled_users(self) -> Counter[int]:
        """How many updates of each user this instance handled (its ``update=`` log lines)."""
        return Counter(int(m) for m in re.findall(r"update=\d+ user=(\d+) ", self.log()))


class Cluster:
    def __init__(self, tg: FakeTelegram, proxy: RoundRobinProxy, instances: list[Instance]) -> None:
        self.tg = tg
        self.proxy = proxy
        self.instances = instances

    async def leader(self, timeout: float = 30.0) -> Instance:
        deadline = time.monotonic() + timeout
        while True:
            leading = [i for i in self.instances if i.leads and i.proc is not None and i.proc.returncode is None]
            if len(leading) == 1:
                return leading[0]
            assert len(leading) <= 1, "two instances lead at once"
            if time.monotonic() > deadline:
                logs = "\n".join(i.log()[-2000:] for i in self.instances)
                raise AssertionError(f"no instance became the leader:\n{logs}")
            await asyncio.sleep(0.02)

    def handled_by(self, user: SimUser) -> set[str]:
        return {i.name for i in self.instances if i.handled_users()[user.id]}


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Callable[..., Cluster]]:
    """``await cluster(db_url, redis_url)``: the fake Telegram, two instances ``bot-a``/``bot-b``
    sharing one token, MEDIA_DIR, database and Redis, and the round-robin proxy in front of them."""
    started: list[tuple[FakeTelegram, RoundRobinProxy, list[Instance]]] = []

    async def _start(db_url: str, redis_url: str, **env: str) -> Cluster:
        tg = FakeTelegram(
            allow_insecure_webhooks=True, webhook_retry_min_delay=0.2, webhook_retry_max_delay=1.0,
            webhook_force_close=True,
        )  # fmt: skip
        await tg.start()
        ports = [free_port(), free_port()]
        proxy = RoundRobinProxy([("127.0.0.1", p) for p in ports])
        await proxy.start()
        instances: list[Instance] = []
        started.append((tg, proxy, instances))
        token = tg.new_bot_token(username="prolita_test_bot", first_name="Prolita")
        for name, port in zip(("bot-a", "bot-b"), ports, strict=True):
            workdir = tmp_path / name
            workdir.mkdir()
            settings = {
                "WEBHOOK_URL": f"http://127.0.0.1:{proxy.port}{PATH}", "WEBHOOK_SECRET": SECRET, "PORT": str(port),
                "INSTANCE_ID": name, "LEADER_RETRY": "0.5", "REDIS_URL": redis_url,
                "MEDIA_DIR": str(tmp_path / "media"),  # shared, as the README asks of several instances
                "SEND_LEASE": "10",
            }  # fmt: skip
            instance = Instance(tg, token, db_url, workdir, {**settings, **env})
            instance.name, instance.port = name, port
            instances.append(instance)
        await asyncio.gather(*(i.start() for i in instances))
        return Cluster(tg, proxy, instances)

    yield _start
    for tg, proxy, instances in started:
        for instance in instances:
            await instance.stop()
        await proxy.close()
        await tg.stop()
        for instance in instances:
            log = instance.log()
            assert instance.token not in log, "the bot token appeared in the log"
            assert SECRET not in log, "the webhook secret appeared in the log"


# -- what users do ------------------------------------------------------------------------------


async def appoint_officer(db, url: str, officer: SimUser) -> None:
    async with db(url) as s:
        kel = await s.scalar(select(Kelurahan).where(Kelurahan.name == "Api-Api"))
        await users.ensure_user(s, ADMIN_ID, "Admin", None, None)
        await users.ensure_user(s, officer.id, officer.first_name, None, None)
        await officers.appoint(s, ADMIN_ID, (ADMIN_ID,), officer.id, Scope.for_kelurahan(kel.kecamatan_id, kel.id))


async def seed_verified_heads(db, url: str, tg: FakeTelegram) -> list[int]:
    """Ketua RT of RT 11..40 of Api-Api, verified before the test (they only receive the broadcast)."""
    account = tg.bot()
    ids = []
    async with db(url) as s:
        kel = await s.scalar(select(Kelurahan).where(Kelurahan.name == "Api-Api"))
        rts = {rt.number: rt.id for rt in (await s.scalars(select(RT).where(RT.kelurahan_id == kel.id))).all()}
        for number in EXTRA_HEADS:
            person = tg.world.create_user(f"Ketua{number}", language_code="id")
            tg.world.conversation(account, person).started = True
            s.add(User(id=person.id, first_name=person.first_name, language="id"))
            await s.flush()
            s.add(RTHead(user_id=person.id, rt_id=rts[number], full_name=f"Ketua RT {number}",
                         phone=f"+6281300000{number:03d}", status="terverifikasi"))  # fmt: skip
            ids.append(person.id)
        await s.commit()
    return ids


async def register(user: SimUser, full_name: str, rt_label: str) -> None:
    await user.send("/daftar")
    await user.wait_message("UU PDP", timeout=20)
    await user.press(t("✅ I agree"), timeout=20)
    await user.wait_message(t("Step 1 of 4. Please type your <b>full name</b> as on your KTP."), timeout=20)
    await user.send(full_name)
    await user.wait_message(t(BTN_PHONE), timeout=20)
    await user.press(t(BTN_PHONE), timeout=20)
    await user.wait_message(predicate=lambda m: "Bontang Utara" in m.button_texts, timeout=20)
    await user.press("Bontang Utara", timeout=20)
    await user.wait_message(predicate=lambda m: "Api-Api" in m.button_texts, timeout=20)
    await user.press("Api-Api", timeout=20)
    await user.wait_message(predicate=lambda m: rt_label in m.button_texts, timeout=20)
    await user.press(rt_label, timeout=20)
    await user.wait_message(full_name, timeout=20)
    await user.press(t("📨 Send registration"), timeout=20)
    await user.wait_message("menunggu verifikasi", timeout=20)


async def verify_all(officer: SimUser, count: int) -> None:
    """The officer approves ``count`` registrations from /verifikasi (5 cards a page)."""
    approved = 0
    while approved < count:
        await officer.send("/verifikasi")
        await officer.wait_message(t("{count} registration(s) waiting, oldest first:").format(count=count - approved),
                                   timeout=20)  # fmt: skip
        cards = [await officer.wait_message(t("✅ Approve"), timeout=20) for _ in range(min(5, count - approved))]
        for card in cards:
            answer = await officer.press(t("✅ Approve"), message=card, timeout=20)
            assert answer.answered and t("Saved. The applicant has been told.") in (answer.text or ""), answer
            approved += 1


async def propose(head: SimUser, title: str) -> str:
    """The whole /usulan wizard, one step per update; returns the proposal's code."""
    await head.send("/usulan")
    await head.wait_message(predicate=lambda m: "Infrastruktur fisik" in m.button_texts, timeout=20)
    await head.press("Infrastruktur fisik", timeout=20)
    await head.wait_message(t("Type a short <b>title</b>, e.g. <i>Semenisasi jalan gang RT 05</i>.")[:20], timeout=20)
    await head.send(title)
    await head.wait_message(t("Describe it in a few sentences: what will be done, and why the residents need it."),
                            timeout=20)  # fmt: skip
    await head.send("Jalan gang rusak dan becek saat hujan; dipakai 40 KK.")
    await head.wait_message(t("📍 Send my current location"), timeout=20)
    await head.share_location(0.13370, 117.49500)
    await head.press(t("Skip ➡️"), timeout=20)
    await head.wait_message("Semen 50 sak x 65.000", timeout=20)
    await head.send("Semen 50 sak x 65.000\nPasir 3 m3 x 250rb")
    await head.wait_message("Rp 4.000.000", timeout=20)
    await head.press(t("✅ Done, next"), timeout=20)
    await head.wait_message(t("Send <b>1 to 10 photos</b> of the site as it is now (several at once is fine). "
                              "Photos so far: {n}.")[:30], timeout=20)  # fmt: skip
    # An album: its photos go to both instances (round robin), and it is answered once all the same.
    await head.send_album([make_jpeg(text=f"{title} {n}") for n in (1, 2, 3)])
    saved = t("📷 Photos saved: {n} of at most {max}. Send more, or tap <b>➡️ Next</b>.")
    await head.wait_message(saved.format(n=3, max=10), timeout=20)
    await head.press(t("➡️ Next"), timeout=20)
    await head.wait_message("PDF", timeout=20)
    answers = [m.text for m in head.bot_messages if saved.split("{")[0] in (m.text or "")]
    assert answers == [saved.format(n=3, max=10)], answers
    await head.send_document(make_pdf(f"Berita acara {title}"), file_name="berita-acara.pdf",
                             mime_type="application/pdf")  # fmt: skip
    await head.press(t("➡️ Next"), timeout=20)
    await head.wait_message(t("How many residents attended the musyawarah? Type the number, e.g. <b>25</b>.")[:20],
                            timeout=20)  # fmt: skip
    await head.send("25 orang")
    summary = await head.wait_message([title, t("📨 Send")], timeout=20)
    assert "Rp 4.000.000" in summary.text
    await head.press(t("📨 Send"), message=summary, timeout=20)
    sent = await head.wait_message("PRL-", timeout=20)
    match = re.search(r"PRL-\d{4}-\d{4}", sent.text)
    assert match, sent.text
    return match.group(0)


def texts(user: SimUser, contains: str) -> list[str]:
    """The bot's messages in ``user``'s chat containing ``contains`` (as first sent, not edits)."""
    return [m.text for m in user.bot_messages if contains in (m.text or "")]


async def fsm_states(redis_url: str, bot_id: int, people: list[SimUser]) -> dict[int, str | None]:
    storage = RedisStorage.from_url(redis_url, key_builder=DefaultKeyBuilder(with_destiny=True))
    try:
        return {p.id: await storage.get_state(StorageKey(bot_id=bot_id, chat_id=p.id, user_id=p.id)) for p in people}
    finally:
        await storage.close()


async def until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.05)


# -- the tests ------------------------------------------------------------------------------------


async def test_two_instances_share_dialogs_and_survive_the_leader_being_killed(pg_url, shared_redis, cluster, db):
    started = time.monotonic()
    c = await cluster(pg_url, shared_redis, SEND_RATE="10")
    tg = c.tg
    first = await c.leader()
    print(f"\ncluster up in {time.monotonic() - started:.1f}s; leader {first.name}")

    admin = tg.user("Admin", id=ADMIN_ID, language_code="id")
    officer = tg.user("Rina", "Petugas", language_code="id")
    heads = [tg.user(f"Kepala{i}", language_code="id", phone=f"+62812000001{i:02d}") for i in range(1, 7)]
    await appoint_officer(db, pg_url, officer)
    extra = await seed_verified_heads(db, pg_url, tg)
    await asyncio.gather(*(p.send("/start") for p in (admin, officer, *heads)))
    await asyncio.gather(*(p.wait_message(timeout=20) for p in (admin, officer, *heads)))

    # Six registrations at once; their steps alternate between the instances.
    names = ["Budi Santoso", "Ani Lestari", "Joko Susilo", "Siti Aminah", "Rudi Hartono", "Dewi Sartika"]
    await asyncio.gather(*(register(h, n, f"{i:02d}") for i, (h, n) in enumerate(zip(heads, names, strict=True), 1)))
    for _ in heads:  # the officer is told of each one (by the leader's outbox sender)
        await officer.wait_message(NEW_REGISTRATION, timeout=30)
    await verify_all(officer, len(heads))
    await asyncio.gather(*(h.wait_message(CONGRATS, timeout=30) for h in heads))

    # Two proposal wizards at once: a dozen steps each, on both instances.
    titles = ["Semenisasi gang Mawar", "Drainase gang Melati"]
    codes = await asyncio.gather(*(propose(h, title) for h, title in zip(heads[:2], titles, strict=True)))
    for _ in codes:
        await officer.wait_message(NEW_PROPOSAL, timeout=30)

    # A broadcast to every Ketua RT; Telegram floods the sender out for 3 s midway, and the leader is
    # killed during that pause (nothing in flight: the one window where a notice could go out twice,
    # between Telegram's answer and our commit, is not what this test is about).
    recipients = [h.id for h in heads] + extra
    await admin.send("/siaran")
    await admin.press(t("👤 All Ketua RT"), timeout=20)
    await admin.wait_message(f"{len(recipients)}", timeout=20)
    await admin.send(BROADCAST)
    await admin.wait_message(t("Send this message to {n} people?").format(n=len(recipients)), timeout=20)
    since = tg.calls[-1].seq

    def delivered() -> Counter[int]:
        return Counter(int(c.params["chat_id"]) for c in tg.calls_of("sendMessage")
                       if c.seq > since and c.ok and BROADCAST in str(c.params.get("text", "")))  # fmt: skip

    await admin.press(t("📣 Send to {n}").format(n=len(recipients)), timeout=20)
    await until(lambda: sum(delivered().values()) >= 8, 30, "the broadcast under way")
    leader = await c.leader()
    after = tg.calls[-1].seq
    tg.fail("sendMessage", error_code=429, retry_after=3, times=1)
    await tg.wait_for_call("sendMessage", after=after, predicate=lambda call: call.status == 429, timeout=10)
    await asyncio.sleep(0.5)
    before_kill = sum(delivered().values())
    assert before_kill < len(recipients), "the broadcast finished before the kill; nothing was tested"
    survivor = next(i for i in c.instances if i is not leader)
    offset = len(survivor.log())
    killed = time.monotonic()
    leader.proc.send_signal(signal.SIGKILL)
    took_over = await survivor.wait_log(f"instance {survivor.name} is now the leader", timeout=15, since=offset)
    await leader.proc.wait()
    failover = took_over - killed
    print(f"failover after SIGKILL of the leader {leader.name}: {failover:.2f}s "
          f"(LEADER_RETRY=0.5; {before_kill}/{len(recipients)} broadcast messages out before the kill)")  # fmt: skip

    final = t("✅ Broadcast finished: {sent} sent, {failed} failed ({blocked} of them blocked the bot).").format(
        sent=len(recipients), failed=0, blocked=0
    )
    progress = await admin.wait_message(final, include_edits=True, timeout=40)
    assert t("Sent {sent}/{total} · failed {failed}").format(
        sent=len(recipients), total=len(recipients), failed=0) in progress.text  # fmt: skip
    # The survivor serves everyone alone now: a dialog started before the kill carries on.
    await heads[2].send("/usulan")
    await heads[2].wait_message(predicate=lambda m: "Infrastruktur fisik" in m.button_texts, timeout=20)
    await heads[2].send("/batal")
    await heads[2].wait_idle(quiet=0.5, timeout=10)

    # Both instances served each dialog: the steps of one registration and one wizard were split.
    for person in (*heads, officer, admin):
        assert c.handled_by(person) == {"bot-a", "bot-b"}, (person, c.handled_by(person), c.proxy.report())

    # Every notice exactly once, nothing lost.
    got = delivered()
    assert set(got) == set(recipients) and max(got.values()) == 1, got
    for head, name in zip(heads, names, strict=True):
        assert len(texts(head, CONGRATS)) == 1, texts(head, CONGRATS)
        assert len(texts(head, BROADCAST)) == 1
        assert len(texts(officer, f"{NEW_REGISTRATION}{name}")) == 1, texts(officer, NEW_REGISTRATION)
    for code in codes:
        assert len(texts(officer, f"{NEW_PROPOSAL}{code}")) == 1, texts(officer, NEW_PROPOSAL)
    assert len(texts(officer, NEW_REGISTRATION)) == len(heads) and len(texts(officer, NEW_PROPOSAL)) == len(codes)

    async with db(pg_url) as s:
        proposals = (await s.scalars(select(Proposal).order_by(Proposal.code))).all()
        submitted = [p for p in proposals if p.code is not None]
        assert [(p.code, p.status, p.total_amount) for p in submitted] == [
            (code, "diajukan", 4_000_000) for code in sorted(codes)]  # fmt: skip
        assert sorted(p.created_by for p in submitted) == sorted(h.id for h in heads[:2])
        # ... and the draft that heads[2] opened after the kill, nothing else.
        assert [(p.created_by, p.status) for p in proposals if p.code is None] == [(heads[2].id, "draf")]
        verified = (await s.scalars(select(RTHead).where(RTHead.user_id.in_([h.id for h in heads])))).all()
        assert sorted((r.full_name, r.status, r.decided_by) for r in verified) == [
            (n, "terverifikasi", officer.id) for n in sorted(names)]  # fmt: skip
        statuses = dict((await s.execute(select(Outbox.status, func.count()).group_by(Outbox.status))).all())
        assert set(statuses) == {"sent"}, statuses
        # The outbox and Telegram agree: one row sent per message received, per kind and chat.
        rows = Counter((o.kind, o.chat_id) for o in (await s.scalars(select(Outbox))).all())
    assert {k: n for k, n in rows.items() if k[0] == "broadcast"} == {("broadcast", uid): 1 for uid in recipients}
    assert {k: n for k, n in rows.items() if k[0] == "registration.approved"} == {
        ("registration.approved", h.id): 1 for h in heads}  # fmt: skip
    assert rows[("registration.new", officer.id)] == len(heads)
    assert rows[("proposal.submitted", officer.id)] == len(codes)

    # Every dialog ended where it should: nobody is left mid-step.
    states = await fsm_states(shared_redis, tg.bot().id, [admin, officer, *heads])
    assert set(states.values()) == {None}, states
    for instance in c.instances:
        assert "Traceback" not in instance.log(), instance.log()[-6000:]
    print(f"proxy: {c.proxy.report()}; whole test {time.monotonic() - started:.1f}s")


async def start_registration(user: SimUser, full_name: str) -> None:
    """Up to the phone-number step (the dialog's state is in Redis from here on)."""
    await user.send("/daftar")
    await user.wait_message("UU PDP", timeout=20)
    await user.press(t("✅ I agree"), timeout=20)
    await user.wait_message(t("Step 1 of 4. Please type your <b>full name</b> as on your KTP."), timeout=20)
    await user.send(full_name)
    await user.wait_message(t(BTN_PHONE), timeout=20)


async def finish_registration(user: SimUser, full_name: str, rt_label: str) -> None:
    await user.wait_message(predicate=lambda m: "Bontang Utara" in m.button_texts, timeout=30)
    await user.press("Bontang Utara", timeout=20)
    await user.wait_message(predicate=lambda m: "Api-Api" in m.button_texts, timeout=20)
    await user.press("Api-Api", timeout=20)
    await user.wait_message(predicate=lambda m: rt_label in m.button_texts, timeout=20)
    await user.press(rt_label, timeout=20)
    await user.wait_message(full_name, timeout=20)
    await user.press(t("📨 Send registration"), timeout=20)
    await user.wait_message("menunggu verifikasi", timeout=20)


async def end_database_sessions(db_url: str) -> int:
    """What a PostgreSQL restart does to this database's clients: every session ends (from an
    admin connection; the machine's server itself is never restarted)."""
    import asyncpg

    url = make_url(db_url)
    admin = await asyncpg.connect(host=url.host or "127.0.0.1", port=url.port or 5432, user=url.username or "postgres",
                                  password=url.password, database="postgres", timeout=5)  # fmt: skip
    try:
        return await admin.fetchval(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()) AS ended",
            url.database,
        )
    finally:
        await admin.close()


async def test_redis_restart_loses_no_update_and_dialogs_resume(pg_url, private_redis, cluster, db):
    started = time.monotonic()
    c = await cluster(pg_url, private_redis.url)
    tg = c.tg
    first = await c.leader()
    officer = tg.user("Rina", "Petugas", language_code="id")
    await appoint_officer(db, pg_url, officer)
    people = [tg.user(f"Warga{i}", language_code="id", phone=f"+62812000002{i:02d}") for i in range(1, 7)]
    names = ["Budi Santoso", "Ani Lestari", "Joko Susilo", "Siti Aminah", "Rudi Hartono", "Dewi Sartika"]
    await asyncio.gather(*(p.send("/start") for p in (officer, *people)))
    await asyncio.gather(*(p.wait_message(timeout=20) for p in (officer, *people)))

    # Redis restarts while two users are mid-registration; one of them answers while it is down.
    await asyncio.gather(*(start_registration(p, n) for p, n in zip(people[:2], names[:2], strict=True)))
    await private_redis.stop()
    down = time.monotonic()
    after = tg.calls[-1].seq if tg.calls else 0
    await people[0].press(t(BTN_PHONE))
    update_id = max(u["update_id"] for u in tg.pending_updates())  # the contact, queued until handled
    await until(lambda: any(a.status == 503 for a in tg.server.webhooks.attempts_of(update_id)), 20,
                "the update sent while Redis is down answered 503")  # fmt: skip
    await asyncio.sleep(1.0)  # a few more retries while it stays down
    assert not [call for call in tg.calls if call.seq > after and call.method == "sendMessage"
                and int(call.params.get("chat_id", 0)) == people[0].id], "answered while Redis was down"  # fmt: skip
    assert all(i.proc.returncode is None for i in c.instances), "an instance died with Redis"
    await private_redis.start()
    await finish_registration(people[0], names[0], "01")  # the step sent during the outage was not lost
    resumed = time.monotonic() - down
    await people[1].press(t(BTN_PHONE))  # the other dialog's state survived the restart too
    await finish_registration(people[1], names[1], "02")
    retried = [a for a in tg.server.webhooks.attempts_of(update_id) if a.status != 200]
    print(f"\nRedis down {resumed:.1f}s in all; the update sent meanwhile was answered non-2xx {len(retried)} times, "
          f"then handled")  # fmt: skip

    await until(lambda: tg.pending_updates() == [], 10, "every update confirmed")
    async with db(pg_url) as s:
        pending = (await s.scalars(select(RTHead).where(RTHead.status == "menunggu"))).all()
        assert sorted((r.user_id, r.full_name) for r in pending) == sorted(
            (p.id, n) for p, n in zip(people[:2], names[:2], strict=True))  # fmt: skip
    states = await fsm_states(private_redis.url, tg.bot().id, people[:2])
    assert set(states.values()) == {None}, states
    for instance in c.instances:
        assert "Traceback" not in instance.log(), instance.log()[-6000:]
    print(f"whole test {time.monotonic() - started:.1f}s; first leader {first.name}")


async def test_postgresql_sessions_ending_lose_no_update(pg_url, shared_redis, cluster, db):
    started = time.monotonic()
    c = await cluster(pg_url, shared_redis)
    tg = c.tg
    first = await c.leader()
    officer = tg.user("Rina", "Petugas", language_code="id")
    await appoint_officer(db, pg_url, officer)
    people = [tg.user(f"Warga{i}", language_code="id", phone=f"+62812000003{i:02d}") for i in range(1, 5)]
    names = ["Budi Santoso", "Ani Lestari", "Joko Susilo", "Siti Aminah"]
    await asyncio.gather(*(p.send("/start") for p in (officer, *people)))
    await asyncio.gather(*(p.wait_message(timeout=20) for p in (officer, *people)))

    # PostgreSQL ends every session of the database while four users register at once.
    offsets = {i.name: len(i.log()) for i in c.instances}
    leader = await c.leader()

    async def register_during_outage(user: SimUser, name: str, rt_label: str) -> None:
        await start_registration(user, name)
        await user.press(t(BTN_PHONE))
        await finish_registration(user, name, rt_label)

    busy = asyncio.gather(*(register_during_outage(p, n, f"{i:02d}")
                            for i, (p, n) in enumerate(zip(people, names, strict=True), 1)))  # fmt: skip
    await asyncio.sleep(0.3)
    ended_at = time.monotonic()
    ended, rounds = 0, 4
    for _ in range(rounds):  # again and again, while the users answer and the pools reconnect
        ended += await end_database_sessions(pg_url)
        await asyncio.sleep(0.25)
    await busy
    stepped = await leader.wait_log(f"instance {leader.name} stepped down", timeout=15, since=offsets[leader.name])
    relead = []
    for instance in c.instances:
        if f"instance {instance.name} is now the leader" in instance.log()[offsets[instance.name] :]:
            relead.append(instance.name)
    new_leader = await c.leader()
    assert new_leader.name in relead, (new_leader.name, relead)
    print(f"PostgreSQL sessions ended: {ended} in {rounds} rounds; {leader.name} stepped down after "
          f"{stepped - ended_at:.2f}s; {new_leader.name} leads again")  # fmt: skip

    # Nothing lost, nothing twice: six registrations, each announced to the officer once.
    for _ in people:
        await officer.wait_message(NEW_REGISTRATION, timeout=30)
    await officer.wait_idle(quiet=1.0, timeout=10)
    for name in names:
        assert len(texts(officer, f"{NEW_REGISTRATION}{name}")) == 1, texts(officer, NEW_REGISTRATION)
    await until(lambda: tg.pending_updates() == [], 10, "every update confirmed")
    async with db(pg_url) as s:
        pending = (await s.scalars(select(RTHead).where(RTHead.status == "menunggu"))).all()
        assert sorted(r.full_name for r in pending) == sorted(names)
        assert sorted(r.user_id for r in pending) == sorted(p.id for p in people)
    # A notice caught by the outage is given back (pending) by whichever sender held it, possibly
    # by the deposed leader's retries after the new leader's last pass: it must still go out.
    deadline = time.monotonic() + 30
    while True:
        async with db(pg_url) as s:
            rows = (await s.scalars(select(Outbox))).all()
        if {o.status for o in rows} == {"sent"} or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)
    assert {o.status for o in rows} == {"sent"}, [(o.kind, o.status, o.last_error, o.next_attempt_at) for o in rows]
    assert Counter(o.chat_id for o in rows if o.kind == "registration.new") == {officer.id: len(people)}
    await officer.wait_idle(quiet=0.5, timeout=10)
    assert len(texts(officer, "diangkat sebagai petugas")) == 1, texts(officer, "petugas")
    states = await fsm_states(shared_redis, tg.bot().id, people)
    assert set(states.values()) == {None}, states
    unavailable = sum(i.log().count("the database or Redis is unavailable") for i in c.instances)
    for instance in c.instances:  # background passes may log the lost connection; no update failed
        assert "prolita.errors" not in instance.log(), instance.log()[-6000:]
    print(f"updates answered 503 and retried: {unavailable}; first leader {first.name}; "
          f"whole test {time.monotonic() - started:.1f}s")  # fmt: skip
