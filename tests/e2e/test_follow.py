"""Residents following an RT over HTTP against the real bot process: follow RT 05 through the
buttons, get the notice of an approval (and open the public card from it); with quiet hours around
the current time the notice is held until the end of the window; decisions-only gets no progress
notice; after /berhenti nothing comes. Then single proposals: followed with the button on the public
card and with /ikuti and a code, their decision and progress reach the follower, and /berhenti lists
them and stops one.

Also the notice-settings helpers other e2e tests use (``set_prefs``, ``window_around_now``): quiet
hours depend on the time of day, so tests that expect a notice at once turn them off, and tests
that expect one to be held put the window around the current time — either way the test behaves
the same at any hour."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.domain import follow as rules
from bot.services import follows, progress, review, users
from handlers.follow import SettingsCb
from storage.db import begin_write
from storage.models import DIGEST_OFF, DIGEST_WEEKLY, AuditLog, Follow, NotificationPrefs, Outbox
from tests.e2e.conftest import ADMIN_ID, t
from tests.e2e.test_public import STALE
from tests.e2e.test_review import open_card, seed, start_chat, submitted

pytestmark = pytest.mark.e2e

WITA = ZoneInfo("Asia/Makassar")
NO_QUIET_HOURS = (0, 0)


def window_around_now(minutes: int = 60) -> tuple[int, int]:
    """Quiet hours (local minutes) from ``minutes`` before to ``minutes`` after the current time: a
    notice made now is held, whatever the time of day the test runs."""
    now_local = dt.datetime.now(WITA)
    minute = now_local.hour * 60 + now_local.minute
    return (minute - minutes) % rules.DAY, (minute + minutes) % rules.DAY


async def set_prefs(
    db, url: str, user_id: int, quiet: tuple[int, int] = NO_QUIET_HOURS, mode: str = rules.NOTIFY_ALL
) -> None:
    """Store a user's notice settings as /pengaturan would (the user must have opened the bot)."""
    async with db(url) as s:
        await begin_write(s)
        prefs = await s.get(NotificationPrefs, user_id)
        if prefs is None:
            prefs = NotificationPrefs(user_id=user_id)
            s.add(prefs)
        prefs.mode, (prefs.quiet_start, prefs.quiet_end) = mode, quiet
        await s.commit()


async def follow_rows(db, url: str, chat_id: int) -> list[Outbox]:
    async with db(url) as s:
        rows = await s.scalars(
            select(Outbox).where(Outbox.kind == follows.NOTICE_EVENT, Outbox.chat_id == chat_id).order_by(Outbox.id)
        )
        return list(rows.all())


async def decide(db, url: str, officer_id: int, proposal_id: int, action: str, note: str | None = None) -> None:
    async with db(url) as s:
        roles = await users.load_roles(s, officer_id, (ADMIN_ID,))
        await review.decide(s, officer_id, roles, proposal_id, action, note=note)


async def test_resident_follows_an_rt_and_gets_decision_notices(tg, launch, sqlite_url, db, tmp_path):
    await launch(sqlite_url)
    officer = tg.user("Rina", "Petugas", language_code="id")
    head = tg.user("Budi", language_code="id")
    ana = tg.user("Ana", language_code="id")
    await start_chat(officer, head, ana)
    w = await seed(db, sqlite_url, tmp_path, officer, head)
    p1 = await submitted(db, tg, w, "Semenisasi gang Mawar")

    # Ana follows RT 05 Api-Api with the buttons, and turns quiet hours off for now.
    await ana.press(t("🔔 Follow an RT"))
    await ana.wait_message(t("You do not follow anything yet."))
    await ana.press("Bontang Utara")
    await ana.press("Api-Api")
    await ana.press("05")
    followed = await ana.wait_message("RT 05", include_edits=True)
    assert "Api-Api" in followed.text and "/berhenti" in followed.text
    await ana.send("/pengaturan")
    await ana.wait_message(t("⚙️ <b>Notice settings</b>"))
    await ana.press(t("☀️ No quiet hours"))
    await ana.wait_message(t("Quiet hours: <b>off</b> — notices come at any time."), include_edits=True)

    # The officer approves p1 in the bot: Ana is told, without names, and can open the public card.
    card = await open_card(officer, p1.code)
    await officer.press(t("✅ Approve"), message=card)
    await officer.press(t("✅ Approve without a note"))
    await officer.wait_edit(card)
    notice = await ana.wait_message([p1.code, "Semenisasi gang Mawar", "RT 05"], timeout=15)
    assert t("🔍 See the proposal") in notice.button_texts
    for secret in ("Rina", "Budi", "+62", str(head.id)):
        assert secret not in notice.text
    await ana.press(t("🔍 See the proposal"), message=notice)
    await ana.wait_message([p1.code, t("Status: {status}").format(status=t("approved"))])

    # Quiet hours around the current time (typed as HH:MM-HH:MM): a decision is held until their end.
    start, end = window_around_now()
    await ana.send("/pengaturan")
    await ana.press(t("✏️ Other hours"))
    await ana.wait_message("22:00-05:30")
    await ana.send(f"{rules.format_minute(start).replace('.', ':')}-{rules.format_minute(end).replace('.', ':')}")
    await ana.wait_message(rules.format_quiet(start, end))
    p2 = await submitted(db, tg, w, "Lampu jalan gang Anggrek")
    ana.mark_read()
    await decide(db, sqlite_url, officer.id, p2.id, "tolak", note="Bukan prioritas tahun ini")
    await head.wait_message([p2.code, "Bukan prioritas tahun ini"], timeout=15)  # the sender went past it
    await ana.expect_no_message(2.5)
    held = (await follow_rows(db, sqlite_url, ana.id))[-1]
    assert held.payload["proposal_id"] == p2.id and held.status == "pending"
    due = rules.quiet_until(dt.datetime.now(dt.UTC), start, end, WITA)
    assert abs(held.next_attempt_at - due) < dt.timedelta(minutes=2)
    assert held.next_attempt_at.astimezone(WITA).strftime("%H.%M") == rules.format_minute(end)

    # Decisions only, quiet hours off again (what was held comes at once): no progress notice.
    await ana.send("/pengaturan")
    await ana.press(t("✅ Decisions only"))
    await ana.wait_message(t("Notices: <b>{mode}</b>").format(mode=t("✅ Decisions only")), include_edits=True)
    await ana.press(t("☀️ No quiet hours"))
    late = await ana.wait_message([p2.code, "Lampu jalan gang Anggrek"], timeout=15)
    assert "Bukan prioritas" not in late.text
    async with db(sqlite_url) as s:
        await progress.report(s, head.id, p1.id, percent=30, spent_total=1_000_000)
    await officer.wait_message([p1.code, "30%"], timeout=15)  # the officers' notice went out
    await ana.expect_no_message(1.0)
    assert [r.payload["event"] for r in await follow_rows(db, sqlite_url, ana.id)] == ["approved", "rejected"]

    # /berhenti: stop following; the next decision on the RT does not reach Ana.
    await ana.send("/berhenti")
    await ana.press(t("✖️ Stop: {what}").format(what="RT 05 Api-Api"))
    await ana.wait_message(
        t("You are not following anything. To follow an RT or a proposal, use /ikuti."), include_edits=True
    )
    p3 = await submitted(db, tg, w, "Pengecatan pos ronda")
    await decide(db, sqlite_url, officer.id, p3.id, "setujui")
    await head.wait_message(p3.code, timeout=15)
    await ana.expect_no_message(1.0)
    assert len(await follow_rows(db, sqlite_url, ana.id)) == 2

    # One proposal, followed with the button on its public card (answered in a new message, the
    # card stays as it is) ...
    await ana.send(f"/cek {p3.code}")
    card = await ana.wait_message([p3.code, "Pengecatan pos ronda", t("🔔 Follow this proposal")])
    answer = await ana.press(t("🔔 Follow this proposal"), message=card)
    assert answer.text == t("🔔 Following.")
    now_follows = t("🔔 You now follow {what}. You will get a short notice on each decision and progress report.")
    proposal_of = t("proposal <b>{code}</b>").format
    followed = await ana.wait_message(now_follows.format(what=proposal_of(code=p3.code)))
    assert t("You get decisions only, no progress reports (change it with /pengaturan).") in followed.text
    assert t("🔔 Follow this proposal") in card.button_texts  # not edited
    # ... and another one with /ikuti and its code, typed loosely; a second time changes nothing.
    p4 = await submitted(db, tg, w, "Pengerasan jalan gang Dahlia")
    await ana.send(f"/ikuti {p4.code.lower().replace('-', ' ')}")
    await ana.wait_message(now_follows.format(what=proposal_of(code=p4.code)))
    await ana.send(f"/ikuti {p4.code}")
    await ana.wait_message(t("You already follow {what}.").format(what=proposal_of(code=p4.code)))
    await ana.send("/pengaturan")
    await ana.press(t("🔔 Everything"))
    await ana.wait_message(t("Notices: <b>{mode}</b>").format(mode=t("🔔 Everything")), include_edits=True)

    # A decision on p4 and a progress report on p3 reach Ana; she follows neither's RT any more.
    await decide(db, sqlite_url, officer.id, p4.id, "setujui")
    approved = await ana.wait_message([p4.code, "Pengerasan jalan gang Dahlia"], timeout=15)
    assert approved.text.startswith("✅") and t("🔍 See the proposal") in approved.button_texts
    async with db(sqlite_url) as s:
        await progress.report(s, head.id, p3.id, percent=25, spent_total=500_000)
    reported = await ana.wait_message([p3.code, "Pengecatan pos ronda", "25%"], timeout=15)
    assert reported.text.startswith("📈")
    for secret in ("Rina", "Budi", "+62"):
        assert secret not in approved.text + reported.text

    # /berhenti lists both proposals; stopping p4 leaves p3, and p4's progress no longer reaches Ana.
    await ana.send("/berhenti")
    listed = await ana.wait_message([p3.code, p4.code, "Pengecatan pos ronda", "Pengerasan jalan gang Dahlia"])
    stop = t("✖️ Stop: {what}")
    assert listed.button_texts == [stop.format(what=p3.code), stop.format(what=p4.code)]
    await ana.press(stop.format(what=p4.code), message=listed)
    left = await ana.wait_edit(
        listed, contains=t("🔕 You no longer follow {what}.").format(what=proposal_of(code=p4.code))
    )
    assert p3.code in left.text and left.button_texts == [stop.format(what=p3.code)]
    async with db(sqlite_url) as s:
        await progress.report(s, head.id, p4.id, percent=30, spent_total=1_000_000)
    await officer.wait_message([p4.code, "30%"], timeout=15)
    await ana.expect_no_message(1.0)
    async with db(sqlite_url) as s:
        rows = (await s.scalars(select(Follow).where(Follow.user_id == ana.id))).all()
        assert [(f.rt_id, f.proposal_id) for f in rows] == [(None, p3.id)]


async def test_officer_chooses_how_often_the_morning_summary_comes(tg, launch, sqlite_url, db, tmp_path):
    """/pengaturan shows officers the morning-summary choice (every working day, Monday only, off);
    residents do not see it, and a forged press of it is refused without changing anything."""
    await launch(sqlite_url)
    officer = tg.user("Rina", "Petugas", language_code="id")
    head = tg.user("Budi", language_code="id")
    ana = tg.user("Ana", language_code="id")
    await start_chat(officer, head, ana)
    await seed(db, sqlite_url, tmp_path, officer, head)

    await officer.send("/pengaturan")
    view = await officer.wait_message(t("⚙️ <b>Notice settings</b>"))
    assert t("Officers' morning summary: <b>{mode}</b>").format(mode=t("☀️ Daily")) in view.text
    assert "✓ " + t("☀️ Daily") in view.button_texts
    await officer.press(t("🗓 Mondays"), message=view)
    changed = await officer.wait_message(t("🗓 Mondays"), include_edits=True)
    assert "✓ " + t("🗓 Mondays") in changed.button_texts
    async with db(sqlite_url) as s:
        prefs = await s.get(NotificationPrefs, officer.id)
        assert prefs.digest == DIGEST_WEEKLY
        logged = (await s.scalars(select(AuditLog).where(AuditLog.action == "prefs.digest"))).all()
        assert [(a.actor_id, a.after) for a in logged] == [(officer.id, {"digest": DIGEST_WEEKLY})]

    await ana.send("/pengaturan")
    mine = await ana.wait_message(t("⚙️ <b>Notice settings</b>"))
    assert t("🗓 Mondays") not in mine.button_texts and t("Morning summary (07:00, working days only):") not in mine.text
    answer = await ana.press(data=SettingsCb(action="digest", value=DIGEST_OFF).pack())
    assert answer.show_alert and answer.text == t(STALE)
    answer = await officer.press(data=SettingsCb(action="digest", value="setiap-jam").pack())
    assert answer.show_alert and answer.text == t(STALE)
    async with db(sqlite_url) as s:
        assert await s.get(NotificationPrefs, ana.id) is None
        assert (await s.get(NotificationPrefs, officer.id)).digest == DIGEST_WEEKLY
