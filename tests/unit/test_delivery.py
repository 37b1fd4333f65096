"""The delivery engine: the rate limiter (injected clock), the backoff schedule, and claiming —
two senders at once never send a row twice (SQLite and PostgreSQL) — and blocked users."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from sqlalchemy import select

from bot.domain.delivery import BACKOFF_CAP, SendLimiter, backoff
from bot.i18n import build_i18n
from bot.notifier import OutboxSender
from bot.services import broadcast as broadcasts
from bot.services import outbox, users
from fakeapi import FakeTelegram
from storage.models import Outbox, User

ADMIN = 1000


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_global_bucket_spaces_messages():
    clock = Clock()
    lim = SendLimiter(10, burst=2, clock=clock)
    assert lim.try_acquire(1) == 0 and lim.try_acquire(2) == 0  # the burst
    assert lim.try_acquire(3) == pytest.approx(0.1)  # then 1 per 1/10 s
    clock.now += 0.1
    assert lim.try_acquire(3) == 0
    sent, start = 0, clock.now  # 100 messages to 100 chats take ~10 s at 10/s
    while sent < 100:
        wait = lim.try_acquire(1000 + sent)
        if wait:
            clock.now += wait
        else:
            sent += 1
    assert clock.now - start == pytest.approx(9.9, abs=0.2)


def test_per_chat_spacing_allows_a_short_burst():
    clock = Clock()
    lim = SendLimiter(1000, clock=clock)
    assert [lim.try_acquire(7) for _ in range(3)] == [0, 0, 0]
    assert lim.try_acquire(7) == pytest.approx(1.0)
    assert lim.try_acquire(8) == 0  # other chats are not held up
    clock.now += 1.0
    assert lim.try_acquire(7) == 0


def test_retry_after_pauses_a_chat_or_everything():
    clock = Clock()
    lim = SendLimiter(1000, clock=clock)
    lim.try_acquire(5)
    assert lim.on_retry_after(5, 3) == "all"  # first message to this chat: the bot's overall limit
    assert lim.try_acquire(6) == pytest.approx(3)
    clock.now += 3
    lim.try_acquire(9)
    lim.try_acquire(9)
    assert lim.on_retry_after(9, 2) == "chat"  # writing to this chat in quick succession
    assert lim.try_acquire(9) == pytest.approx(2)
    assert lim.try_acquire(10) == 0


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(1, 1.6, 2.4), (2, 3.2, 4.8), (3, 6.4, 9.6), (8, 204.8, 300), (9, 240, 300), (30, 240, 300)],
)
def test_backoff_schedule(attempt, low, high):
    assert low <= backoff(attempt, lambda: 0.0) <= high
    assert low <= backoff(attempt, lambda: 0.999) <= high
    assert backoff(attempt) <= BACKOFF_CAP


@pytest.fixture
async def tg():
    async with FakeTelegram() as fake:
        yield fake


async def _people(sessionmaker, tg, n):
    bot = tg.make_bot()
    people = []
    async with sessionmaker() as s:
        for i in range(n):
            account = tg.world.create_user(f"Warga{i}", language_code="id")
            tg.world.conversation(bot, account).started = True
            await users.ensure_user(s, account.id, account.first_name, None, None)
            people.append(account.id)
        admin = tg.world.create_user("Admin", language_code="id", user_id=ADMIN)
        tg.world.conversation(bot, admin).started = True
        await users.ensure_user(s, ADMIN, "Admin", None, None)
    return bot, people


async def test_two_senders_at_once_never_send_a_row_twice(sessionmaker, tg):
    account, people = await _people(sessionmaker, tg, 60)
    async with sessionmaker() as s:
        item = await broadcasts.create(s, ADMIN, (ADMIN,), "all", "Kerja bakti Minggu pagi",
                                       progress_chat_id=ADMIN, progress_message_id=1)
    assert item.total == 61
    i18n = build_i18n()
    bots = [Bot(account.token, session=AiohttpSession(api=tg.aiogram_server())) for _ in range(2)]
    senders = [OutboxSender(b, sessionmaker, i18n, (ADMIN,), rate=200, concurrency=4) for b in bots]
    try:
        tg.fail("sendMessage", error_code=502, times=3)
        for _ in range(20):
            await asyncio.gather(*(s.run_once() for s in senders))
            async with sessionmaker() as s:
                left = (await s.scalars(select(Outbox).where(Outbox.status != "sent"))).all()
            if not left:
                break
            await asyncio.sleep(0.5)
        ok = Counter(int(c.params["chat_id"]) for c in tg.calls_of("sendMessage") if c.ok)
        assert set(ok) == set(people) | {ADMIN}
        assert max(ok.values()) == 1
        assert sum(s.stats["sent"] for s in senders) == 61
        assert sum(s.stats["retry"] for s in senders) == 3
    finally:
        for b in bots:
            await b.session.close()


async def test_blocked_user_is_marked_skipped_and_unmarked_when_back(sessionmaker, tg):
    account, people = await _people(sessionmaker, tg, 3)
    blocked = people[0]
    tg.world.set_blocked(tg.world.find_conversation(account, blocked), True)
    bot = Bot(account.token, session=AiohttpSession(api=tg.aiogram_server()))
    try:
        async with sessionmaker() as s:
            item = await broadcasts.create(s, ADMIN, (ADMIN,), "all", "Halo", progress_chat_id=ADMIN,
                                           progress_message_id=1)
        sender = OutboxSender(bot, sessionmaker, build_i18n(), (ADMIN,), rate=100)
        await sender.run_once()
        async with sessionmaker() as s:
            assert (await s.get(User, blocked)).blocked_bot is True
            p = await broadcasts.progress(s, item)
            assert (p.total, p.sent, p.failed, p.blocked, p.waiting) == (4, 3, 1, 1, 0)
            # the next broadcast skips them at enqueue; a notice to them fails without a request
            again = await broadcasts.create(s, ADMIN, (ADMIN,), "all", "Lagi", progress_chat_id=ADMIN,
                                            progress_message_id=2)
            assert (again.total, again.skipped_blocked) == (3, 1)
            outbox.enqueue(s, blocked, "registration.rejected", registration_id=1)
            await s.commit()
        calls = len(tg.calls_of("sendMessage"))
        await sender.run_once()
        assert len(tg.calls_of("sendMessage")) == calls + 3
        async with sessionmaker() as s:
            await users.ensure_user(s, blocked, "Warga0", None, None)  # they write to the bot again
        async with sessionmaker() as s:
            assert (await s.get(User, blocked)).blocked_bot is False
    finally:
        await bot.session.close()


async def test_one_chats_notices_keep_their_order(sessionmaker, tg):
    """Chats are served in parallel, but one chat's rows go out in the order they were written."""
    account, people = await _people(sessionmaker, tg, 3)
    async with sessionmaker() as s:
        for n in range(4):
            for chat in people:
                outbox.enqueue(s, chat, "broadcast_test_order", n=n)
        await s.commit()
    bot = Bot(account.token, session=AiohttpSession(api=tg.aiogram_server()))
    sender = OutboxSender(bot, sessionmaker, build_i18n(), (ADMIN,), rate=200, concurrency=8)

    from bot import notices

    async def render(session, row, admin_ids):
        return notices.Notice(f"pesan {row.payload['n']}")

    notices.RENDERERS["broadcast_test_order"] = render
    try:
        for _ in range(10):
            await sender.run_once()
            async with sessionmaker() as s:
                if not (await s.scalars(select(Outbox).where(Outbox.status != "sent"))).all():
                    break
        for chat in people:
            texts = [c.params["text"] for c in tg.calls_of("sendMessage") if c.ok and int(c.params["chat_id"]) == chat]
            assert texts == [f"pesan {n}" for n in range(4)]
    finally:
        notices.RENDERERS.pop("broadcast_test_order", None)
        await bot.session.close()
