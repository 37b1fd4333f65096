"""A musyawarah vote end to end, over HTTP against the real bot process: the Ketua RT sets up a
vote (default question, typed options — one with HTML in it — and a resident's idea, closing time,
summary), three followers each get a native poll and answer (one changes their mind, one answers
the same twice), a late answer is refused and explained once, the Ketua RT gets the result 2/1/0
from 3 voters at closing, the polls are stopped, and the result is attached to a proposal as
evidence. The HTML option is shown literally everywhere. A follower who turned notices off gets no
poll; one in their quiet hours gets it when those end, and the Ketua RT is told so.

Polls wait for the follower's quiet hours, so the voters here have none and the one held has a
window around the current time: the test behaves the same at any hour."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import select, update

from bot.domain import follow as rules
from bot.services import proposals, votes
from handlers.common import when
from storage.models import (
    OUTBOX_PENDING,
    VOTE_CLOSED,
    Aspiration,
    Follow,
    MusyawarahVote,
    Outbox,
    Program,
    VoteAnswer,
    VotePoll,
    utcnow,
)
from tests.e2e.conftest import _I18N, t
from tests.e2e.test_follow import WITA, set_prefs, window_around_now
from tests.e2e.test_public import entity_texts
from tests.e2e.test_review import seed, start_chat

pytestmark = pytest.mark.e2e

LAMPU = "<i>Lampu</i> jalan"  # typed by the Ketua RT: a choice, never markup
OPTIONS = ["Semenisasi gang Mawar", LAMPU, "Drainase gang Melati"]


def prefix(start: str) -> str:
    """What users see of the msgid that begins with ``start``, up to its first placeholder."""
    catalog = _I18N.locales["id"]._catalog  # GNUTranslations' msgid -> msgstr
    msgid = next((m for m in catalog if isinstance(m, str) and m.startswith(start)), start)
    return t(msgid).split("{")[0].strip()


def is_poll(message) -> bool:
    return message.poll is not None


async def wait_for(check, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.1)


async def test_vote_with_three_voters(db_url, tg, launch, db, tmp_path):
    bot = await launch(db_url)
    officer = tg.user("Rina", "Petugas", language_code="id")
    head = tg.user("Budi", language_code="id")
    voters = [tg.user(name, language_code="id") for name in ("Siti", "Andi", "Dewi")]
    late = tg.user("Joko", language_code="id")
    stranger = tg.user("Tono", language_code="id")  # not a Ketua RT
    muted = tg.user("Rudi", language_code="id")  # notices off
    sleeper = tg.user("Wati", language_code="id")  # in quiet hours now
    await start_chat(officer, head, *voters, late, stranger, muted, sleeper)
    w = await seed(db, db_url, tmp_path, officer, head)
    for person in (*voters, late):
        await set_prefs(db, db_url, person.id)  # no quiet hours: polls come at once
    quiet = window_around_now()
    await set_prefs(db, db_url, sleeper.id, quiet=quiet)
    # Rudi turns his notices off himself.
    await muted.send("/pengaturan")
    await muted.press(t("🔕 Off"))
    await muted.wait_message(t("Notices: <b>{mode}</b>").format(mode=t("🔕 Off")), include_edits=True)
    async with db(db_url) as s:
        s.add_all(Follow(user_id=u.id, rt_id=w.rt_id) for u in (*voters, late, muted, sleeper))
        s.add(Aspiration(rt_id=w.rt_id, text="Drainase gang Melati", status="akan_dibahas"))
        await s.commit()
        program = await s.scalar(select(Program))
        draft = await proposals.create_draft(s, head.id, w.rt_id, program)
        await proposals.update_fields(s, draft, title="Semenisasi gang Mawar")

    await stranger.send("/musyawarah")
    await stranger.wait_message(prefix("Only a verified Ketua RT can start a musyawarah vote."))

    # --- the Ketua RT sets the vote up ---------------------------------------------------------------
    await head.send("/musyawarah")
    await head.wait_message(t("➕ New vote"))
    await head.press(t("➕ New vote"))
    await head.wait_message(t("✅ Use this question"))
    await head.press(t("✅ Use this question"))
    asked = await head.wait_message("💡 Drainase gang Melati")
    assert t("✅ Done") not in asked.button_texts  # not before two choices
    await head.send("x" * 101)
    await head.wait_message(prefix("A choice is too long: at most {limit} characters each"))
    await head.send(f"1. Semenisasi gang Mawar\n2. {LAMPU}")
    await head.wait_message(["Semenisasi gang Mawar", "2. " + LAMPU, t("✅ Done")])
    await head.press("💡 Drainase gang Melati")
    listed = await head.wait_message("3. Drainase gang Melati")
    assert "💡 Drainase" not in " ".join(listed.button_texts)  # offered once
    await head.press(t("✅ Done"))
    await head.wait_message("30/11 20:00")
    await head.send("kemarin")
    await head.wait_message(prefix("I could not read that date."))
    await head.press(t("In {days} day(s)").format(days=1))
    summary = await head.wait_message(t("📨 Send the vote"))
    sent_to = t("It will be sent as a Telegram poll to {count} resident(s) who follow {place}.")
    assert sent_to.split("{place}")[0].format(count=5) in summary.text  # not Rudi
    assert t("Which idea should our RT propose this year?") in summary.text
    assert LAMPU in summary.text
    await head.press(t("📨 Send the vote"))
    on_its_way = await head.wait_message(prefix("✅ The vote is on its way to {count} resident(s)."))
    async with db(db_url) as s:
        vote = await s.scalar(select(MusyawarahVote))
    assert on_its_way.text.split("\n") == [
        t(
            "✅ The vote is on its way to {count} resident(s). Each answer counts once per person; "
            "I will send you the result on {when}."
        ).format(count=5, when=when(vote.closes_at)),
        t("{count} of them are in their quiet hours now and get it when those end.").format(count=1),
    ]

    # --- each follower gets an intro and a native poll -------------------------------------------------
    polls = {}
    for person in (*voters, late):
        poll_msg = await person.wait_message(predicate=is_poll, timeout=15)
        poll = poll_msg.poll
        assert poll["question"] == t("Which idea should our RT propose this year?")
        assert [o["text"] for o in poll["options"]] == OPTIONS
        assert not any(o.get("text_entities") for o in poll["options"])  # "<i>" as typed, not italics
        assert poll["is_anonymous"] is False and poll["allows_multiple_answers"] is False
        assert any("musyawarah" in (m.text or "").lower() for m in person.bot_messages)
        polls[person.id] = poll_msg
    expected = {uid: m.poll["id"] for uid, m in polls.items()}
    expected[sleeper.id] = None  # not sent yet
    for _ in range(50):  # the sender records each poll id right after the poll is delivered
        async with db(db_url) as s:
            recorded = {r.user_id: r.poll_id for r in (await s.scalars(select(VotePoll))).all()}
        if recorded == expected:
            break
        await asyncio.sleep(0.1)
    assert recorded == expected  # Rudi has none

    # Rudi (notices off) gets nothing; Wati's intro and poll wait for the end of her quiet hours.
    await muted.expect_no_message(0.5)
    await sleeper.expect_no_message(0.5)
    assert not any(m.poll for m in (*muted.bot_messages, *sleeper.bot_messages))
    async with db(db_url) as s:
        held = (await s.scalars(select(Outbox).where(Outbox.chat_id == sleeper.id, Outbox.kind.like("vote.%")))).all()
        assert await s.scalar(select(Outbox).where(Outbox.chat_id == muted.id, Outbox.kind.like("vote.%"))) is None
    assert sorted(r.kind for r in held) == [votes.NOTICE_INTRO, votes.NOTICE_POLL]
    due = rules.quiet_until(utcnow(), *quiet, WITA)
    for row in held:
        assert row.status == OUTBOX_PENDING and abs(row.next_attempt_at - due) < dt.timedelta(minutes=2)
        assert row.next_attempt_at.astimezone(WITA).strftime("%H.%M") == rules.format_minute(quiet[1])

    # --- answers: Siti changes her mind, Andi answers the same twice, Dewi once ---------------------------
    siti, andi, dewi = voters
    await siti.vote([1])
    await siti.vote([0])
    await andi.vote([0])
    await andi.vote([])  # retracted ...
    await andi.vote([0])  # ... and the same answer again
    await dewi.vote([1])
    # Telegram delivering Andi's answer once more: still one answer of his
    tg.world.enqueue_update(
        tg.default_bot,
        "poll_answer",
        {
            "poll_id": polls[andi.id].poll["id"],
            "user": andi.to_json(),
            "option_ids": [0],
            "option_persistent_ids": [polls[andi.id].poll["options"][0]["persistent_id"]],
        },
    )

    async def answered() -> bool:
        async with db(db_url) as s:
            rows = {a.user_id: a.option_ids for a in (await s.scalars(select(VoteAnswer))).all()}
        return rows == {siti.id: [0], andi.id: [0], dewi.id: [1]}

    await wait_for(answered)
    await asyncio.sleep(0.5)  # the re-delivered answer is handled too
    assert await answered()

    # --- the closing time passes; Joko answers too late ---------------------------------------------------------
    async with db(db_url) as s:
        await s.execute(update(MusyawarahVote).values(closes_at=utcnow() - dt.timedelta(seconds=1)))
        await s.commit()
    await late.vote([2])
    await late.wait_message(prefix("⏰ This vote closed on {when}, so your answer was not counted."))
    result = await head.wait_message(prefix("🗳 <b>Result of the musyawarah vote</b> · {place}"), timeout=20)
    lines = result.text.splitlines()
    ranked = [line for line in lines if "—" in line and ("▓" in line or "░" in line)]
    assert [r.split("—")[1].strip() for r in ranked] == OPTIONS
    assert "&lt;i&gt;Lampu&lt;/i&gt;" in result.html and "Lampu" not in " ".join(entity_texts(result, "italic"))
    assert [int(r.split("—")[0].split()[-1]) for r in ranked] == [2, 1, 0]
    assert t("{voters} resident(s) voted. Closed {when}.").split("{when}")[0].format(voters=3) in result.text

    async def stopped() -> bool:
        return all(p.chat().get(polls[p.id].message_id).poll["is_closed"] for p in (*voters, late))

    await wait_for(stopped)
    with pytest.raises(ValueError, match="closed"):
        await late.vote([1])  # a closed poll cannot be answered
    await late.expect_no_message(0.5)  # and the late voter was told only once

    async with db(db_url) as s:
        vote = await s.scalar(select(MusyawarahVote))
        assert vote.status == VOTE_CLOSED and vote.result == [2, 1, 0] and vote.voters == 3
        assert len((await s.scalars(select(VoteAnswer))).all()) == 3

    # --- the result becomes evidence of a proposal ----------------------------------------------------------------
    await head.press(t("📎 Attach to a proposal"))
    await head.wait_message("Semenisasi gang Mawar")
    await head.press("Semenisasi gang Mawar")
    await head.wait_message(prefix("📎 The vote result ({voters} voters) is attached to the proposal {proposal}."))
    async with db(db_url) as s:
        evidence = await votes.for_proposal(s, draft.id)
        assert [v.id for v in evidence] == [vote.id] and evidence[0].result == [2, 1, 0]

    await head.send("/musyawarah")
    listing = await head.wait_message(t("➕ New vote"))
    assert "Semenisasi gang Mawar" in listing.text
    assert bot.proc.returncode is None
