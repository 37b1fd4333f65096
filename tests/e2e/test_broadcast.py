"""/siaran to 500 users through the fake Bot API with Telegram-like flood limits, injected 429 and
502 answers, and a SIGKILL in the middle: every recipient gets the message exactly once, the
admin's single progress message ends with the final count, and blocked users are skipped."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from sqlalchemy import func, insert, select

from fakeapi import FakeTelegram
from fakeapi.config import RateLimits
from storage.models import Outbox, User
from tests.e2e.conftest import ADMIN_ID, t

pytestmark = pytest.mark.e2e

TEXT = "Kerja bakti Minggu 07.00 di balai RT. Bawa cangkul & karung <bersih>."
RESIDENTS = 499


@pytest.fixture
async def tg():
    limits = RateLimits(enabled=True, per_bot_per_second=100, per_bot_burst=100, per_chat_per_second=1,
                        per_chat_burst=10)
    async with FakeTelegram(rate_limits=limits) as fake:
        yield fake


SINCE = {"seq": 0}  # the admin's own preview comes before the broadcast


def _delivered(tg: FakeTelegram) -> Counter[int]:
    return Counter(
        int(c.params["chat_id"]) for c in tg.calls_of("sendMessage")
        if c.seq > SINCE["seq"] and c.ok and "Kerja bakti Minggu" in str(c.params.get("text", ""))
    )


async def test_broadcast_to_500_exactly_once_across_a_restart(tg, launch, sqlite_url, db):
    started = time.monotonic()
    bot = await launch(sqlite_url, SEND_RATE="80", SEND_CONCURRENCY="8", SEND_LEASE="15")
    account = tg.bot()
    admin = tg.user("Hendra", language_code="id", id=ADMIN_ID)
    await admin.send("/start")
    await admin.wait_message()

    # 499 residents who have opened the bot, created directly (no 499 /start round trips); one of
    # them has blocked the bot since (Telegram answers 403), another was known to be blocked already.
    people = []
    for i in range(RESIDENTS + 1):
        person = tg.world.create_user(f"Warga{i}", language_code="id")
        tg.world.conversation(account, person).started = True
        people.append(person.id)
    blocked_now, blocked_before = people[0], people[-1]
    tg.world.set_blocked(tg.world.find_conversation(account, blocked_now), True)
    async with db(sqlite_url) as s:
        await s.execute(insert(User), [
            {"id": uid, "first_name": f"Warga{i}", "language": "id", "blocked_bot": uid == blocked_before}
            for i, uid in enumerate(people)
        ])
        await s.commit()

    await admin.send("/siaran")
    await admin.press(t("👥 Everyone who uses the bot"))
    await admin.wait_message("500")
    await admin.send(TEXT)
    await admin.wait_message(t("Send this message to {n} people?").format(n=500))

    SINCE["seq"] = tg.calls[-1].seq
    tg.fail("sendMessage", error_code=502, times=5)
    await admin.press(t("📣 Send to {n}").format(n=500))

    # Midway: Telegram floods us out for 4 s, and the bot is SIGKILLed while it waits.
    for _ in range(400):
        if sum(_delivered(tg).values()) >= 200:
            break
        await asyncio.sleep(0.05)
    after = tg.calls[-1].seq
    tg.fail("sendMessage", error_code=429, retry_after=4, times=1)
    await tg.wait_for_call("sendMessage", after=after, predicate=lambda c: c.status == 429, timeout=10)
    await asyncio.sleep(0.7)
    killed_at = sum(_delivered(tg).values())
    await bot.kill()
    assert killed_at < 500
    await bot.start()

    final = t("✅ Broadcast finished: {sent} sent, {failed} failed ({blocked} of them blocked the bot).").format(
        sent=499, failed=1, blocked=1
    )
    for _ in range(900):
        progress = [m for m in admin.bot_messages if final in (m.text or "")]
        if progress:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail(f"no final progress line; delivered {sum(_delivered(tg).values())}\n{bot.log()[-3000:]}")

    delivered = _delivered(tg)
    assert set(delivered) == (set(people) | {ADMIN_ID}) - {blocked_now, blocked_before}
    assert max(delivered.values()) == 1, [uid for uid, n in delivered.items() if n > 1]
    # One progress message, edited; it reads the final total.
    text = progress[0].text
    assert t("Sent {sent}/{total} · failed {failed}").format(sent=499, total=500, failed=1) in text
    assert t("{n} recipients were skipped: they had blocked the bot earlier.").format(n=1) in text
    async with db(sqlite_url) as s:
        statuses = dict((await s.execute(
            select(Outbox.status, func.count()).where(Outbox.kind == "broadcast").group_by(Outbox.status)
        )).all())
        assert statuses == {"sent": 499, "failed": 1}
        assert (await s.get(User, blocked_now)).blocked_bot is True
    log = bot.log()
    assert "429 #" in log and "retrying in" in log
    print(f"\nbroadcast e2e: {time.monotonic() - started:.1f}s; {killed_at} delivered before the kill; "
          f"{sum(delivered.values())} delivered in all; 429s seen: {log.count('429 #')}")
