"""The outbox sender against the fake Bot API: delivers once, honours 429 retry_after, marks
users who blocked the bot, and a broken notice does not stall the others."""

from __future__ import annotations

import asyncio

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from bot import notices, notifier
from bot.i18n import build_i18n
from bot.notifier import OutboxSender
from bot.services import officers, outbox, registration, users
from bot.services.wilayah import import_csv
from fakeapi import FakeTelegram
from storage.models import Kelurahan, Outbox, User

ADMIN = 1000


@pytest.fixture
async def tg():
    async with FakeTelegram() as fake:
        yield fake


async def _world(sessionmaker, tg):
    await import_csv(sessionmaker, "kecamatan,kelurahan,rt\nBontang Utara,Api-Api,1\n")
    officer = tg.user("Rina", language_code="id")
    head = tg.user("Budi", language_code="id")
    # Each simulated user opens the chat first, as a real user must before a bot can write.
    for u in (officer, head):
        await u.send("/start")
    async with sessionmaker() as s:
        from bot.domain.permissions import Scope

        kel = await s.scalar(select(Kelurahan).where(Kelurahan.name == "Api-Api"))
        for u in (officer, head):
            await users.ensure_user(s, u.id, u.first_name, None, None)
        await users.ensure_user(s, ADMIN, "Admin", None, None)
        await officers.appoint(s, ADMIN, (ADMIN,), officer.id, Scope.for_kelurahan(kel.kecamatan_id, kel.id))
        from storage.repositories import wilayah

        rt = await wilayah.find_rt(s, kel.id, 1)
        await registration.submit(s, head.id, "Budi Santoso", "+62811", rt.id, (ADMIN,))
    return officer, head


def _bot(tg) -> Bot:
    return Bot(tg.new_bot_token() if not tg.world.bots else tg.default_bot.token,
               session=AiohttpSession(api=tg.aiogram_server()))


async def _statuses(sessionmaker):
    async with sessionmaker() as s:
        return sorted((o.kind, o.status) for o in (await s.scalars(select(Outbox))).all())


async def test_delivers_once_in_recipients_language(sessionmaker, tg):
    tg.make_bot()
    officer, _head = await _world(sessionmaker, tg)
    bot = _bot(tg)
    sender = OutboxSender(bot, sessionmaker, build_i18n(), (ADMIN,))
    try:
        assert await sender.run_once() == 2  # officer.appointed + registration.new
        msg = await officer.wait_message("Budi Santoso")
        assert "Pendaftaran Ketua RT baru" in msg.text
        assert await sender.run_once() == 0  # nothing is sent twice
        assert await _statuses(sessionmaker) == [("officer.appointed", "sent"), ("registration.new", "sent")]
    finally:
        await bot.session.close()


async def test_retry_after_and_blocked_user(sessionmaker, tg):
    tg.make_bot()
    officer, head = await _world(sessionmaker, tg)
    bot = _bot(tg)
    sender = OutboxSender(bot, sessionmaker, build_i18n(), (ADMIN,))
    try:
        tg.fail("sendMessage", error_code=429, retry_after=1, times=1)
        started = asyncio.get_running_loop().time()
        await sender.run_once()  # first send: 429, paused 1 s, given back
        assert asyncio.get_running_loop().time() - started >= 1.0
        for _ in range(3):
            await sender.run_once()
        assert await _statuses(sessionmaker) == [("officer.appointed", "sent"), ("registration.new", "sent")]

        head.block_bot()
        async with sessionmaker() as s:
            outbox.enqueue(s, head.id, "registration.rejected", registration_id=1)
            outbox.enqueue(s, officer.id, "no.such.kind")
            await s.commit()
        await sender.run_once()
        async with sessionmaker() as s:
            rows = {o.kind: o for o in (await s.scalars(select(Outbox))).all()}
            assert rows["registration.rejected"].status == "failed"
            assert "blocked" in rows["registration.rejected"].last_error
            assert rows["no.such.kind"].status == "failed" and "render" in rows["no.such.kind"].last_error
            assert (await s.get(User, head.id)).blocked_bot is True
    finally:
        await bot.session.close()


def _outage() -> DBAPIError:
    return DBAPIError("SELECT 1", {}, ConnectionResetError("terminating connection"), connection_invalidated=True)


async def test_database_outage_while_rendering_gives_the_row_back_instead_of_failing_it(sessionmaker, tg, monkeypatch):
    """The connection ended while a notice was rendered (CI caught a registration notice marked
    failed this way, so the officer never heard of it): the row goes back to the queue untouched."""
    tg.make_bot()
    officer, _head = await _world(sessionmaker, tg)
    bot = _bot(tg)
    sender = OutboxSender(bot, sessionmaker, build_i18n(), (ADMIN,))
    real_render = notices.render
    broken = {"registration.new"}

    async def render(session, row, admin_ids):
        if row.kind in broken:
            broken.discard(row.kind)
            raise _outage()
        return await real_render(session, row, admin_ids)

    monkeypatch.setattr(notices, "render", render)
    monkeypatch.setattr(notifier, "OUTAGE_RETRY", 0.0)
    try:
        await sender.run_once()
        async with sessionmaker() as s:
            row = await s.scalar(select(Outbox).where(Outbox.kind == "registration.new"))
            assert (row.status, row.attempts, row.last_error, row.claimed_until) == ("pending", 0, None, None)
        assert sender.stats["given_back"] == 1 and sender.stats["failed"] == 0
        await sender.run_once()
        await officer.wait_message("Budi Santoso")
        assert await _statuses(sessionmaker) == [("officer.appointed", "sent"), ("registration.new", "sent")]
        # A renderer's own bug is still a failed row, not an endless retry.
        async with sessionmaker() as s:
            outbox.enqueue(s, officer.id, "no.such.kind")
            await s.commit()
        await sender.run_once()
        assert ("no.such.kind", "failed") in await _statuses(sessionmaker)
    finally:
        await bot.session.close()


async def test_outcome_of_a_sent_row_is_written_through_a_short_outage(sessionmaker, tg, monkeypatch):
    """Telegram accepted the message but the database went away before the row was marked sent:
    the write is retried, so the lease never expires and the message never goes out twice."""
    tg.make_bot()
    officer, _head = await _world(sessionmaker, tg)
    bot = _bot(tg)
    sender = OutboxSender(bot, sessionmaker, build_i18n(), (ADMIN,), lease=0.0)
    real_finish_once = OutboxSender._finish_once
    failures = {"left": 3}

    async def finish_once(self, row_id, status, *args):
        if status == "sent" and failures["left"]:
            failures["left"] -= 1
            raise _outage()
        return await real_finish_once(self, row_id, status, *args)

    monkeypatch.setattr(OutboxSender, "_finish_once", finish_once)
    monkeypatch.setattr(notifier, "FINISH_RETRY", (0.0,) * 5)
    try:
        assert await sender.run_once() == 2
        assert failures["left"] == 0
        assert await _statuses(sessionmaker) == [("officer.appointed", "sent"), ("registration.new", "sent")]
        assert await sender.run_once() == 0  # with a zero lease, an unwritten row would be taken again
        await officer.wait_idle(quiet=0.3, timeout=5)
        assert len([m for m in officer.bot_messages if "Budi Santoso" in (m.text or "")]) == 1
        # An outage longer than the retries: the error reaches the pass, the lease decides.
        failures["left"] = 99
        async with sessionmaker() as s:
            outbox.enqueue(s, officer.id, "registration.new", registration_id=1)
            await s.commit()
        await sender.run_once()
        assert sender.stats["error"] == 1
    finally:
        await bot.session.close()


@pytest.mark.parametrize("grace, claimed_ago, due_in", [
    (0.0, 5, 0),  # SQLite: the sender that claimed them is dead, so they are due at once
    (60.0, 100, 0),  # PostgreSQL: claimed 100 s ago, past the grace: due now
    (60.0, 10, 50),  # claimed 10 s ago: due 60 s after the claim, not after the 300 s lease
])
async def test_a_starting_sender_takes_back_a_stopped_senders_rows(sessionmaker, grace, claimed_ago, due_in):
    import datetime as dt

    from storage.models import utcnow

    now = utcnow()
    async with sessionmaker() as s:
        s.add_all([
            Outbox(chat_id=1, kind="broadcast", status="sending", attempts=1, claim_token="bot-1/dead0000",
                   next_attempt_at=now - dt.timedelta(seconds=claimed_ago),
                   claimed_until=now + dt.timedelta(seconds=290)),
            Outbox(chat_id=2, kind="broadcast", status="pending", next_attempt_at=now),
        ])
        await s.commit()
    sender = OutboxSender(None, sessionmaker, None, (), takeover_grace=grace, instance_id="bot-2")  # type: ignore[arg-type]
    assert await sender.recover() == 1
    assert await sender.recover() == 1  # idempotent: the lease only ever gets shorter
    async with sessionmaker() as s:
        row = await s.scalar(select(Outbox).where(Outbox.chat_id == 1))
        until = row.claimed_until if row.claimed_until.tzinfo else row.claimed_until.replace(tzinfo=dt.UTC)
        assert abs((until - now).total_seconds() - (grace - claimed_ago)) < 2  # claim + grace
        assert row.status == "sending"  # the claim query takes it once due (lease expired)
    claimed = await sender._claim(10)
    assert {r.chat_id for r in claimed} == ({1, 2} if due_in == 0 else {2})
    assert all(r.claim_token == sender.claim_token for r in claimed)
