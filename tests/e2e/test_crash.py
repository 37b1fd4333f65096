"""SIGKILL while updates are in flight: nothing the user sent is lost, nothing is done twice."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from storage.models import FSMRecord, HandledUpdate, RTHead
from tests.e2e.conftest import t

pytestmark = pytest.mark.e2e

BTN_PHONE = "📱 Send my phone number"


async def _to_name_step(user) -> None:
    await user.send("/daftar")
    await user.wait_message("UU PDP")
    await user.press(t("✅ I agree"))
    await user.wait_message(t("Step 1 of 4. Please type your <b>full name</b> as on your KTP."))


async def test_update_in_flight_at_sigkill_is_handled_after_restart(db_url, tg, launch, db):
    bot = await launch(db_url)
    user = tg.user("Budi", language_code="id", phone="+6281200000001")
    await _to_name_step(user)

    # The bot's reply to the name hangs in the API: the handler is still running when we kill it.
    after = tg.calls[-1].seq
    tg.delay("sendMessage", 4.0, times=1)
    sent = await user.send("Budi Santoso")
    await tg.wait_for_call("sendMessage", after=after)
    await bot.kill()
    tg.clear_faults()

    async with db(db_url) as s:
        state = await s.scalar(select(FSMRecord.state).where(FSMRecord.key.like(f"%:{user.id}:{user.id}:%")))
        assert state == "Reg:name"  # the step did not advance: it was never committed
        update_ids = set((await s.scalars(select(HandledUpdate.update_id))).all())
    delivered = [c for c in tg.calls_of("getUpdates") if c.response and c.response.get("result")]
    name_update = next(
        u["update_id"] for c in delivered for u in c.response["result"]
        if u.get("message", {}).get("message_id") == sent.message_id
    )
    assert name_update not in update_ids

    await bot.start()  # Telegram (the fake) delivers the unconfirmed update again
    await user.wait_message(t(BTN_PHONE), timeout=15)
    await user.press(t(BTN_PHONE))
    await user.wait_message(predicate=lambda m: "Bontang Utara" in m.button_texts)
    async with db(db_url) as s:
        data = await s.scalar(select(FSMRecord.data).where(FSMRecord.key.like(f"%:{user.id}:{user.id}:%")))
        assert data["full_name"] == "Budi Santoso"


async def test_handled_update_redelivered_after_sigkill_changes_nothing_twice(tg, launch, sqlite_url, db):
    bot = await launch(sqlite_url)
    user = tg.user("Budi", language_code="id", phone="+6281200000001")
    await _to_name_step(user)
    await user.send("Budi Santoso")
    await user.press(t(BTN_PHONE))
    await user.press("Bontang Utara")
    await user.press("Api-Api")
    await user.press("05")
    await user.wait_message("Budi Santoso")

    # The registration is committed, then the bot hangs answering the button and is killed.
    after = tg.calls[-1].seq
    tg.delay("answerCallbackQuery", 4.0, times=1)
    await user.press(t("📨 Send registration"), timeout=0.5)
    await tg.wait_for_call("answerCallbackQuery", after=after)
    await bot.kill()
    tg.clear_faults()
    await bot.start()

    # The same update arrives again: it is recognised as handled and skipped (however slow the machine).
    for _ in range(300):
        if "outcome=duplicate" in bot.log():
            break
        await asyncio.sleep(0.05)
    assert "outcome=duplicate" in bot.log()
    await user.expect_no_message(0.5)
    async with db(sqlite_url) as s:
        assert await s.scalar(select(func.count()).select_from(RTHead)) == 1
    # Pressing the button again is harmless too.
    answer = await user.press(t("📨 Send registration"))
    assert answer.show_alert
    async with db(sqlite_url) as s:
        assert await s.scalar(select(func.count()).select_from(RTHead)) == 1


async def test_sigterm_finishes_the_update_in_flight_and_confirms_it(tg, launch, sqlite_url, db):
    bot = await launch(sqlite_url)
    user = tg.user("Sari", language_code="id", phone="+6281200000003")
    await _to_name_step(user)
    after = tg.calls[-1].seq
    tg.delay("sendMessage", 2.0, times=1)
    await user.send("Sari Dewi")
    await tg.wait_for_call("sendMessage", after=after)
    assert await bot.stop() == 0  # SIGTERM while the reply is still on its way
    reply = await user.wait_message(t(BTN_PHONE))  # ...the update was finished, not dropped
    async with db(sqlite_url) as s:
        state = await s.scalar(select(FSMRecord.state).where(FSMRecord.key.like(f"%:{user.id}:{user.id}:%")))
        assert state == "Reg:phone"
    await bot.start()  # the update was confirmed on the way out: it is not delivered again
    await user.expect_no_message(1.5)
    assert reply.text
