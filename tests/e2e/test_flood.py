"""Per-user flood control at its default limits (THROTTLE_BURST=10, THROTTLE_RATE=1), with the real bot
process: one Ketua RT in the middle of the /usulan wizard sends 200 messages and button presses in
about 10 s. They get exactly one "tunggu sebentar", every press is answered (the button stops
spinning), most of the flood is never handled, and the wizard carries on afterwards with the answers
that were handled and nothing else. Meanwhile a second user's /start and wizard steps are answered
promptly, and a third user's 10-photo album passes whole. On PostgreSQL the bot also uses Redis
(when TEST_REDIS_URL is set), as several instances would: the buckets are then in Redis."""

from __future__ import annotations

import asyncio
import os
import re

import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.middlewares.throttle import BUTTON_NOTICE, NOTICE
from fakeapi import make_jpeg
from storage.models import Proposal
from tests.e2e.conftest import t
from tests.e2e.test_proposal_wizard import seed_people

pytestmark = pytest.mark.e2e

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "").strip()
REDIS_DB = 11  # a database index of this test's own, emptied before and after
FLOOD = 200
FLOOD_SECONDS = 10.0
PROMPT = 5.0  # a generous bound on the other users' answers, not a timing figure
CATEGORY = "Infrastruktur fisik"
DEFAULTS = {
    "THROTTLE_RATE": str(Settings.model_fields["throttle_rate"].default),
    "THROTTLE_BURST": str(Settings.model_fields["throttle_burst"].default),
}


def _redis_url() -> str:
    base = re.sub(r"/\d*$", "", TEST_REDIS_URL.rstrip("/"))
    return f"{base}/{REDIS_DB}"


async def _flush_redis(*, expect_bucket_of: int | None = None) -> None:
    from redis.asyncio import Redis

    from bot.middlewares.throttle import REDIS_PREFIX

    client = Redis.from_url(_redis_url())
    try:
        if expect_bucket_of is not None:  # the bot kept the bucket in Redis, not in its own memory
            assert await client.exists(f"{REDIS_PREFIX}{expect_bucket_of}")
        await client.flushdb()
    finally:
        await client.aclose()


async def _to_photos(head) -> None:
    """/usulan up to the photo step: 8 updates, as fast as the bot answers."""
    await head.send("/usulan")
    await head.wait_message(predicate=lambda m: CATEGORY in m.button_texts)
    await head.press(CATEGORY)
    await head.wait_message(t("Type a short <b>title</b>, e.g. <i>Semenisasi jalan gang RT 05</i>.")[:20])
    await head.send("Semenisasi jalan gang Melati")
    await head.wait_message(t("Describe it in a few sentences: what will be done, and why the residents need it."))
    await head.send("Jalan gang rusak dan becek saat hujan; dipakai 40 KK.")
    await head.wait_message(t("📍 Send my current location"))
    await head.share_location(0.13370, 117.49500)
    await head.press(t("Skip ➡️"))
    await head.wait_message("Semen 50 sak x 65.000")
    await head.send("Semen 50 sak x 65.000")
    await head.wait_message(predicate=lambda m: t("✅ Done, next") in m.button_texts)
    await head.press(t("✅ Done, next"))
    await head.wait_message(t("Send <b>1 to 10 photos</b> of the site as it is now (several at once is fine). "
                              "Photos so far: {n}.")[:30])  # fmt: skip


async def _draft(db, url: str, user_id: int) -> Proposal:
    async with db(url) as s:
        return await s.scalar(select(Proposal).where(Proposal.created_by == user_id, Proposal.status == "draf"))


async def test_one_user_flooding_gets_one_notice_and_others_are_answered(db_url, tg, launch, db):
    env = dict(DEFAULTS)
    if db_url.startswith("postgresql") and TEST_REDIS_URL:
        await _flush_redis()
        env["REDIS_URL"] = _redis_url()
    bot = await launch(db_url, **env)
    officer = tg.user("Rina", language_code="id")
    flooder, second, third = (tg.user(name, language_code="id") for name in ("Budi", "Sari", "Joko"))
    await seed_people(db, db_url, officer, [flooder, second, third])

    # The flooder is at the wizard's title step (2 updates so far).
    await flooder.send("/usulan")
    categories = await flooder.wait_message(predicate=lambda m: CATEGORY in m.button_texts)
    old_button = categories.button(CATEGORY)["callback_data"]
    await flooder.press(CATEGORY, message=categories)
    await flooder.wait_message(t("Type a short <b>title</b>, e.g. <i>Semenisasi jalan gang RT 05</i>.")[:20])
    await _to_photos(third)
    flooder.mark_read()
    log_before = len(bot.log())

    presses: list[asyncio.Task] = []

    async def flood() -> None:
        for i in range(FLOOD):
            if i % 4 == 3:  # a button press (the category button, long since used) among the messages
                presses.append(asyncio.create_task(flooder.press(message=categories, data=old_button, timeout=15)))
            else:
                await flooder.send(f"Pesan nomor {i}")
            await asyncio.sleep(FLOOD_SECONDS / FLOOD)

    async def album() -> None:
        await asyncio.sleep(2.0)
        await third.send_album([make_jpeg(text=str(k)) for k in range(10)])
        answer = await third.wait_message("📷", timeout=15)
        assert "10" in answer.text, answer.text

    async def other_user() -> None:
        await asyncio.sleep(3.0)
        await second.send("/start")
        await second.wait_message(timeout=PROMPT)
        await second.send("/usulan")
        menu = await second.wait_message(predicate=lambda m: CATEGORY in m.button_texts, timeout=PROMPT)
        await second.press(CATEGORY, message=menu)
        await second.wait_message(t("Type a short <b>title</b>, e.g. <i>Semenisasi jalan gang RT 05</i>.")[:20],
                                  timeout=PROMPT)  # fmt: skip

    await asyncio.gather(flood(), album(), other_user())
    answers = await asyncio.gather(*presses)
    await asyncio.sleep(1.5)  # the last handled updates' answers

    notice = t(NOTICE)
    assert notice.startswith("⏳ Tunggu sebentar ya")
    seen = [m.text or "" for m in flooder.bot_messages]
    assert sum(notice in text for text in seen) == 1, seen[-10:]
    assert all(a.answered for a in answers), "a pressed button was left spinning"
    assert sum(a.text == t(BUTTON_NOTICE) for a in answers) >= len(answers) // 2
    handled = [ln for ln in bot.log()[log_before:].splitlines() if f" user={flooder.id} " in ln and " ms=" in ln]
    assert 10 <= len(handled) <= 40, f"{len(handled)} of the flood's {FLOOD} updates were handled"
    print(f"\nflood: {len(handled)} of {FLOOD} updates handled, {len(answers)} presses all answered, one notice")

    # The dialog took the handled answers in order and nothing else: title, description, then the
    # location step, which still waits for the location.
    draft = await _draft(db, db_url, flooder.id)
    assert (draft.title, draft.description) == ("Pesan nomor 0", "Pesan nomor 1")
    await asyncio.sleep(2.0)  # a token or two back
    flooder.mark_read()
    await flooder.share_location(0.13370, 117.49500)
    await flooder.wait_message(predicate=lambda m: t("Skip ➡️") in m.button_texts)
    draft = await _draft(db, db_url, flooder.id)
    assert round(draft.latitude, 4) == 0.1337 and draft.title == "Pesan nomor 0"

    assert len((await _draft(db, db_url, third.id)).media_of("foto_awal")) == 10
    assert "outcome=error" not in bot.log()
    if "REDIS_URL" in env:
        await _flush_redis(expect_bucket_of=flooder.id)
