"""Aspirasi warga over HTTP against the real bot process.

- Siti (who turned quiet hours off in /pengaturan) picks the RT with buttons and sends an idea with
  markup and SQL in it and a photo; the Ketua RT sees it literally with her first name only, and
  marks it as having become a proposal of their RT (another RT's code is refused); Siti is told
  with the code, and "🔍 See the proposal" opens its public card.
- Dewi sends an idea with a location pin and shares her contact: the Ketua RT sees her full name
  with a link to her and the pin; the idea is to be discussed at the musyawarah, then cannot be
  followed up, with a reason that has HTML in it — each time Dewi is told, the reason as typed.
- Andi: a 5,000-character text is refused, a double tap on Send stores once, and a flood of ideas
  through the dialog (and then 50 in a burst) stores exactly 3, the others answered with the daily
  limit. With quiet hours around the current time, the answer to his idea is held until they end,
  and comes at once when he turns them off.

Notices of decisions wait for the resident's quiet hours, so every resident here has none, or a
window around the current time: the test behaves the same at any hour.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import select

from bot.domain import follow as rules
from bot.services import aspirations as svc
from bot.services import registration, users
from fakeapi import make_jpeg
from handlers.aspirations import AspCb
from handlers.common import when
from storage.models import (
    ASPIRASI_DIBAHAS,
    ASPIRASI_DITOLAK,
    ASPIRASI_DIUSULKAN,
    OUTBOX_PENDING,
    RT,
    Aspiration,
    Follow,
    Kelurahan,
    Outbox,
)
from tests.e2e.conftest import t
from tests.e2e.test_follow import WITA, set_prefs, window_around_now
from tests.e2e.test_public import entity_texts
from tests.e2e.test_review import World, seed, start_chat, submitted

pytestmark = pytest.mark.e2e

IDEA = "<b>Jalan</b> gang Mawar berlubang '; DROP TABLE aspirations; --"
IDEA2 = "Tiang listrik miring di gang Melati & kabelnya menjuntai"
REASON = "<b>x</b> Dana RT tahun ini sudah habis; '; DROP TABLE users; --"
PIN = (0.1337, 117.4991)
PLACE = t("{rt}, Kel. {kelurahan}, Kec. {kecamatan}").format(rt="RT 05", kelurahan="Api-Api", kecamatan="Bontang Utara")

BECAME = t(
    "📄 Good news! Your idea for {place} («{text}») <b>became a proposal</b>: <b>{code}</b>.\n"
    "Follow it with /cek {code}."
)
DISCUSSED = t(
    "🗣 The Ketua RT of {place} will discuss your idea («{text}») at the next <b>musyawarah</b>. "
    "I will tell you if it becomes a proposal."
)
DECLINED = t(
    "🚫 Your idea for {place} («{text}») <b>cannot be followed up</b>.\nReason: {reason}\n\n"
    "Thank you for caring about your RT; you are welcome to send other ideas with /aspirasi."
)
SAVED = t("✅ Saved: {status}. The resident is told.")
SAVED_HELD = t("✅ Saved: {status}. The resident is told when their quiet hours end.")
LIMIT = t(
    "You have already sent {limit} ideas in the last 24 hours, the most allowed. You can send the next one from {when}."
)


async def _aspirations(db, url) -> list[Aspiration]:
    async with db(url) as s:
        return list((await s.scalars(select(Aspiration).order_by(Aspiration.id))).all())


async def _mine(db, url, user) -> list[Aspiration]:
    return [r for r in await _aspirations(db, url) if r.user_id == user.id]


async def test_an_idea_becomes_a_proposal(tg, launch, sqlite_url, db, tmp_path):
    await launch(sqlite_url)
    officer = tg.user("Rina", language_code="id")
    head = tg.user("Budi", language_code="id")
    other_head = tg.user("Joko", language_code="id")
    resident = tg.user("Siti", "Rahayu", language_code="id")
    dewi = tg.user("Dewi", "Lestari", language_code="id")
    flooder = tg.user("Andi", language_code="id")
    await start_chat(officer, head, other_head, resident, dewi, flooder)
    w = await seed(db, sqlite_url, tmp_path, officer, head)
    p = await submitted(db, tg, w, "Semenisasi gang Mawar")
    async with db(sqlite_url) as s:  # the Ketua RT of RT 06 and a proposal of theirs
        rt6 = await s.scalar(select(RT).join(Kelurahan).where(Kelurahan.name == "Api-Api", RT.number == 6))
        reg = await registration.submit(s, other_head.id, "Joko Susilo", "+6281200000002", rt6.id, ())
        await registration.decide(s, officer.id, await users.load_roles(s, officer.id, ()), reg.id, True, None)
    q = await submitted(db, tg, World(sqlite_url, rt6.id, other_head.id, w.store), "Pos ronda RT 06")

    # The resident follows no RT: kecamatan -> kelurahan -> RT by buttons.
    await resident.send("/aspirasi")
    await resident.press("Bontang Utara")
    await resident.press("Api-Api")
    await resident.press("05")
    await resident.wait_message(t("💡 Your idea for {place}.").format(place=PLACE))
    await resident.send(IDEA)
    await resident.wait_message("📷")
    await resident.send_photo(make_jpeg(color=(200, 80, 40), text="lubang"))
    await resident.press(t("Skip ➡️"))
    await resident.press(t("🙈 No, first name only"))
    summary = await resident.wait_message(IDEA)  # shown back literally, not as markup
    assert "Siti" in summary.text and "Rahayu" not in summary.text
    await resident.press(t("📨 Send"))
    await resident.wait_message("📨")
    # Siti wants the answer at any hour: /pengaturan → no quiet hours.
    await resident.send("/pengaturan")
    await resident.wait_message(t("⚙️ <b>Notice settings</b>"))
    await resident.press(t("☀️ No quiet hours"))
    await resident.wait_message(t("Quiet hours: <b>off</b> — notices come at any time."), include_edits=True)

    notice = await head.wait_message(["<b>Jalan</b>", "DROP TABLE"], timeout=15)
    assert t("🔎 Open") in notice.button_texts
    await head.press(t("🔎 Open"), message=notice)
    card = await head.wait_message(IDEA)
    assert t("From: {who}").format(who="Siti") in card.text.split("\n")  # the first name only
    for hidden in ("Rahayu", str(resident.id), "+62"):
        assert hidden not in card.text
    assert not any(e["type"] in ("text_mention", "text_link") for e in card.entities)  # no link to her
    assert {t("🗣 Discuss at musyawarah"), t("📄 Became a proposal"), t("🚫 Cannot be followed up")} <= set(
        card.button_texts
    )
    assert t("🗺 Location") not in card.button_texts  # she sent no pin
    await head.press(t("🖼 Photo"), message=card)
    await head.wait_message(predicate=lambda m: m.photo is not None)

    await head.press(t("📄 Became a proposal"), message=card)
    await head.wait_message("PRL-")
    await head.send(q.code)  # another RT's proposal
    await head.wait_message(q.code)
    assert (await _aspirations(db, sqlite_url))[0].status == "baru"
    await head.send(p.code.lower())
    await head.wait_message(SAVED.format(status=t("became a proposal")))

    told = await resident.wait_message(p.code, timeout=15)
    assert told.text == BECAME.format(place=PLACE, text=IDEA, code=p.code)  # the idea as typed, no markup
    assert "Budi" not in told.text and "+62" not in told.text
    assert told.button_texts == [t("🔍 See the proposal")]
    await resident.press(t("🔍 See the proposal"), message=told)
    public = await resident.wait_message([p.code, "Semenisasi gang Mawar"])
    assert t("Status: {status}").format(status=t("submitted, waiting for review")) in public.text.split("\n")
    assert PLACE in public.text and "Budi" not in public.text
    [row] = await _aspirations(db, sqlite_url)
    assert (row.text, row.status, row.proposal_id, row.share_contact) == (IDEA, ASPIRASI_DIUSULKAN, p.id, False)
    assert row.media_id is not None and row.latitude is None

    await location_contact_discussed_then_declined(db, sqlite_url, w, head, dewi)
    await bad_input_and_flooding(db, sqlite_url, w, flooder)
    await answer_held_in_quiet_hours(db, sqlite_url, head, flooder)


async def location_contact_discussed_then_declined(db, url: str, w: World, head, dewi) -> None:
    async with db(url) as s:  # Dewi follows RT 05 (no need to pick it) ...
        s.add(Follow(user_id=dewi.id, rt_id=w.rt_id))
        await s.commit()
    await set_prefs(db, url, dewi.id)  # ... and has no quiet hours

    await dewi.send("/aspirasi")
    await dewi.wait_message(t("💡 Your idea for {place}.").format(place=PLACE))
    await dewi.send(IDEA2)
    await dewi.wait_message("📷")
    await dewi.press(t("Skip ➡️"))
    await dewi.wait_message("📍")
    await dewi.press(t("📍 Send my current location"), location=PIN)  # the request_location button
    await dewi.press(t("✅ Yes, share my contact"))
    summary = await dewi.wait_message(IDEA2)
    lines = summary.text.split("\n")
    assert t("📍 Location: {answer}").format(answer=t("yes")) in lines
    assert t("📷 Photo: {answer}").format(answer=t("no")) in lines
    who = t("your full name ({name}) and your Telegram contact").format(name="Dewi Lestari")
    assert t("👤 The Ketua RT sees: {who}").format(who=who) in lines
    await dewi.press(t("📨 Send"))
    await dewi.wait_message("📨")

    # The Ketua RT sees her full name with a link to her, and the pin.
    notice = await head.wait_message(IDEA2, timeout=15)
    await head.press(t("🔎 Open"), message=notice)
    card = await head.wait_message([IDEA2, t("🗺 Location")])
    shared = t('{name} (shared their contact: <a href="tg://user?id={id}">write to them</a>)')
    assert t("From: {who}").format(who=shared.format(name="Dewi Lestari", id=dewi.id)) in card.text.split("\n")
    assert [e["user"]["id"] for e in card.entities if e["type"] == "text_mention"] == [dewi.id]
    assert str(dewi.id) not in card.text  # a link, not a number to copy
    await head.press(t("🗺 Location"), message=card)
    pin = await head.wait_message(predicate=lambda m: m.location is not None)
    assert pin.location["latitude"] == pytest.approx(PIN[0], abs=1e-5)
    assert pin.location["longitude"] == pytest.approx(PIN[1], abs=1e-5)

    # To be discussed at the musyawarah: Dewi is told; later it cannot be followed up.
    await head.press(t("🗣 Discuss at musyawarah"), message=card)
    await head.wait_message(SAVED.format(status=t("will be discussed at the musyawarah")))
    card = await head.wait_message([IDEA2, t("🚫 Cannot be followed up")])
    assert t("🗣 Discuss at musyawarah") not in card.button_texts and t("📄 Became a proposal") in card.button_texts
    told = await dewi.wait_message(IDEA2, timeout=15)
    assert told.text == DISCUSSED.format(place=PLACE, text=IDEA2)

    await head.press(t("🚫 Cannot be followed up"), message=card)
    await head.wait_message(
        t(
            "Why can this idea not be followed up? Please type the reason (at most {max} characters); "
            "it will be sent to the resident."
        ).format(max=svc.REASON_MAX)
    )
    await head.send(REASON)
    await head.wait_message(SAVED.format(status=t("cannot be followed up")))
    card = await head.wait_message([IDEA2, REASON])
    assert t("Reason: {reason}").format(reason=REASON) in card.text.split("\n")
    assert not {t("🗣 Discuss at musyawarah"), t("📄 Became a proposal"), t("🚫 Cannot be followed up")} & set(
        card.button_texts
    )  # final
    told = await dewi.wait_message(REASON, timeout=15)
    assert told.text == DECLINED.format(place=PLACE, text=IDEA2, reason=REASON)  # as typed ...
    assert "&lt;b&gt;x&lt;/b&gt;" in told.html and "x" not in entity_texts(told, "bold")  # ... not as markup
    assert "Budi" not in told.text

    [row] = await _mine(db, url, dewi)
    assert (row.text, row.status, row.reason, row.share_contact) == (IDEA2, ASPIRASI_DITOLAK, REASON, True)
    assert (row.latitude, row.longitude) == pytest.approx(PIN, abs=1e-5) and row.media_id is None


async def _send_idea(user, text: str, *, double_tap: bool = False) -> None:
    """The whole dialog, each step as soon as the bot asks for it."""
    await user.send("/aspirasi")
    await user.wait_message("💡")
    await user.send(text)
    await user.press(t("Skip ➡️"))
    await user.press(t("Skip ➡️"))
    await user.press(t("🙈 No, first name only"))
    await user.wait_message(text)
    await user.press(t("📨 Send"))
    await user.wait_message("📨")
    if double_tap:
        answer = await user.press(data=AspCb(action="send").pack())
        assert answer.show_alert


async def _until(check, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.1)


async def bad_input_and_flooding(db, url: str, w: World, resident) -> None:
    async with db(url) as s:  # the resident follows RT 05: no need to pick it
        s.add(Follow(user_id=resident.id, rt_id=w.rt_id))
        await s.commit()

    await resident.send("/aspirasi")
    await resident.wait_message("💡")
    await resident.send("x" * 5000)
    await resident.wait_message(["5000", "1000"])
    assert await _mine(db, url, resident) == []
    await resident.send("/batal")
    await resident.wait_message()

    # A flood through the dialog: six ideas one after another (one Send tapped twice). Three are
    # stored; for each of the others /aspirasi answers with the limit and when the next one fits,
    # and the idea typed anyway is not taken.
    ideas = [
        "Lampu jalan mati",
        "Selokan tersumbat",
        "Posyandu butuh timbangan",
        "Pos ronda perlu dicat",
        "Tempat sampah terpilah",
        "Polisi tidur di gang Anggrek",
    ]
    await _send_idea(resident, ideas[0], double_tap=True)
    for text in ideas[1:3]:
        await _send_idea(resident, text)
    rows = await _mine(db, url, resident)
    assert [r.text for r in rows] == ideas[:3]
    limit = LIMIT.format(limit=svc.DAILY_LIMIT, when=when(rows[0].created_at + svc.WINDOW))
    for text in ideas[3:]:
        await resident.send("/aspirasi")
        refused = await resident.wait_message(limit)
        assert refused.text == limit
        await resident.send(text)
        await resident.wait_message()

    # Then 50 more in a burst, not waiting for any answer: 50 limit answers, nothing stored.
    before = len(resident.bot_messages)
    for i in range(50):
        await resident.send("/aspirasi")
        await resident.send(f"Ide nomor {i}: perbaiki jalan")

    def refusals() -> int:
        return sum(m.text == limit for m in resident.bot_messages[before:])

    await _until(lambda: refusals() >= 50)
    await resident.wait_idle(quiet=1.0, timeout=30)
    assert refusals() == 50
    assert [r.text for r in await _mine(db, url, resident)] == ideas[:3]


async def answer_held_in_quiet_hours(db, url: str, head, resident) -> None:
    """With quiet hours around the current time (whatever time it is), the answer to an idea is
    held until they end; turning them off in /pengaturan sends it at once."""
    start, end = window_around_now()
    await set_prefs(db, url, resident.id, quiet=(start, end))
    newest = (await _mine(db, url, resident))[-1]
    await head.send("/aspirasi")
    inbox = await head.wait_message(t("🔎 Open idea {n}").format(n=1))
    await head.press(t("🔎 Open idea {n}").format(n=1), message=inbox)
    card = await head.wait_message([newest.text, t("🗣 Discuss at musyawarah")])  # newest first
    await head.press(t("🗣 Discuss at musyawarah"), message=card)
    await head.wait_message(SAVED_HELD.format(status=t("will be discussed at the musyawarah")))

    await resident.expect_no_message(2.5)
    async with db(url) as s:
        held = await s.scalar(select(Outbox).where(Outbox.kind == svc.NOTICE_DECIDED, Outbox.chat_id == resident.id))
        assert held.status == OUTBOX_PENDING and held.payload["aspiration_id"] == newest.id
    due = rules.quiet_until(dt.datetime.now(dt.UTC), start, end, WITA)
    assert abs(held.next_attempt_at - due) < dt.timedelta(minutes=2)
    assert held.next_attempt_at.astimezone(WITA).strftime("%H.%M") == rules.format_minute(end)

    await resident.send("/pengaturan")
    await resident.press(t("☀️ No quiet hours"))
    told = await resident.wait_message(newest.text, timeout=15)
    assert told.text == DISCUSSED.format(place=PLACE, text=newest.text)
    [row] = [r for r in await _mine(db, url, resident) if r.id == newest.id]
    assert row.status == ASPIRASI_DIBAHAS
