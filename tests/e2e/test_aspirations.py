"""Aspirasi warga over HTTP against the real bot process: a resident sends an idea with markup and
SQL in it and a photo; the Ketua RT sees it literally with the first name only, and marks it as
having become a proposal of their RT (another RT's code is refused); the resident is told with the
code. Bad input: a 5,000-character text is refused, a flood of messages stores at most 3 ideas,
and a double tap on Send stores once."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.services import registration, users
from fakeapi import make_jpeg
from handlers.aspirations import AspCb
from storage.models import RT, Aspiration, Follow, Kelurahan
from tests.e2e.conftest import t
from tests.e2e.test_review import World, seed, start_chat, submitted

pytestmark = pytest.mark.e2e

IDEA = "<b>Jalan</b> gang Mawar berlubang '; DROP TABLE aspirations; --"


async def _aspirations(db, url) -> list[Aspiration]:
    async with db(url) as s:
        return list((await s.scalars(select(Aspiration).order_by(Aspiration.id))).all())


async def test_an_idea_becomes_a_proposal(tg, launch, sqlite_url, db, tmp_path):
    await launch(sqlite_url)
    officer = tg.user("Rina", language_code="id")
    head = tg.user("Budi", language_code="id")
    other_head = tg.user("Joko", language_code="id")
    resident = tg.user("Siti", "Rahayu", language_code="id")
    flooder = tg.user("Andi", language_code="id")
    await start_chat(officer, head, other_head, resident, flooder)
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
    await resident.wait_message(t("💡 Your idea for {place}.").split("{")[0])
    await resident.send(IDEA)
    await resident.wait_message("📷")
    await resident.send_photo(make_jpeg(color=(200, 80, 40), text="lubang"))
    await resident.press(t("Skip ➡️"))
    await resident.press(t("🙈 No, first name only"))
    summary = await resident.wait_message(IDEA)  # shown back literally, not as markup
    assert "Siti" in summary.text and "Rahayu" not in summary.text
    await resident.press(t("📨 Send"))
    await resident.wait_message("📨")

    notice = await head.wait_message(["<b>Jalan</b>", "DROP TABLE"], timeout=15)
    assert t("🔎 Open") in notice.button_texts
    await head.press(t("🔎 Open"), message=notice)
    card = await head.wait_message(IDEA)
    assert "Siti" in card.text
    for hidden in ("Rahayu", str(resident.id), "+62"):
        assert hidden not in card.text
    assert {t("🗣 Discuss at musyawarah"), t("📄 Became a proposal"), t("🚫 Cannot be followed up")} <= set(
        card.button_texts
    )
    await head.press(t("🖼 Photo"), message=card)
    await head.wait_message(predicate=lambda m: m.photo is not None)

    await head.press(t("📄 Became a proposal"), message=card)
    await head.wait_message("PRL-")
    await head.send(q.code)  # another RT's proposal
    await head.wait_message(q.code)
    assert (await _aspirations(db, sqlite_url))[0].status == "baru"
    await head.send(p.code.lower())
    await head.wait_message("✅")

    told = await resident.wait_message(p.code, timeout=15)
    assert "Budi" not in told.text and "+62" not in told.text
    [row] = await _aspirations(db, sqlite_url)
    assert (row.text, row.status, row.proposal_id, row.share_contact) == (IDEA, "dijadikan_usulan", p.id, False)
    assert row.media_id is not None and row.latitude is None

    await bad_input_and_flooding(db, sqlite_url, w, flooder)


async def _send_idea(user, text: str, *, double_tap: bool = False) -> None:
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


async def bad_input_and_flooding(db, sqlite_url, w: World, resident) -> None:
    async with db(sqlite_url) as s:  # the resident follows RT 05: no need to pick it
        s.add(Follow(user_id=resident.id, rt_id=w.rt_id))
        await s.commit()

    await resident.send("/aspirasi")
    await resident.wait_message("💡")
    await resident.send("x" * 5000)
    await resident.wait_message(["5000", "1000"])
    assert [r for r in await _aspirations(db, sqlite_url) if r.user_id == resident.id] == []
    await resident.send("/batal")
    await resident.wait_message()

    await _send_idea(resident, "Lampu jalan mati", double_tap=True)
    await _send_idea(resident, "Selokan tersumbat")
    await _send_idea(resident, "Posyandu butuh timbangan")
    await resident.send("/aspirasi")
    await resident.wait_message("24")  # refused at the start, with when they can send again
    for _ in range(50):
        await resident.send("/aspirasi")
    await resident.wait_idle(quiet=1.0, timeout=30)
    rows = [r for r in await _aspirations(db, sqlite_url) if r.user_id == resident.id]
    assert [r.text for r in rows] == ["Lampu jalan mati", "Selokan tersumbat", "Posyandu butuh timbangan"]
