"""Over HTTP, the real bot process: /start in Indonesian, an admin appoints a kelurahan officer,
an RT head registers by buttons and contact only, the officer verifies, everyone is told."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage.models import AuditLog, Consent, Officer, RTHead
from tests.e2e.conftest import ADMIN_ID, t

pytestmark = pytest.mark.e2e


async def appoint_api_api_officer(tg, admin, officer) -> None:
    await admin.send("/petugas")
    await admin.wait_message(predicate=lambda m: t("➕ Appoint an officer") in [b["text"] for b in m.buttons])
    await admin.press(t("➕ Appoint an officer"))
    await admin.wait_message("Telegram")
    await admin.send(str(officer.id))
    await admin.wait_message(t("Which area will they handle?"))
    await admin.press(t("One kelurahan"))
    await admin.wait_message(t("Choose the kecamatan:"), include_edits=True)
    await admin.press("Bontang Utara")
    await admin.wait_message(t("Choose the kelurahan:"), include_edits=True)
    await admin.press("Api-Api")
    await admin.wait_message("Api-Api", include_edits=True)
    await officer.wait_message("Api-Api")  # the appointee is told


async def register_rt_head(user, rt_label: str = "05") -> None:
    await user.send("/start")
    await user.wait_message("Ketua RT")
    await user.press(t("📝 Register as RT head"))
    await user.wait_message("UU PDP")
    await user.press(t("✅ I agree"))
    await user.wait_message(t("Step 1 of 4. Please type your <b>full name</b> as on your KTP."))
    await user.send("Budi Santoso")
    await user.wait_message(t(BTN_PHONE))
    await user.press(t(BTN_PHONE))  # the request_contact button shares the user's own contact
    await user.wait_message(predicate=lambda m: "Bontang Utara" in m.button_texts)
    await user.press("Bontang Utara")
    await user.wait_message(predicate=lambda m: "Api-Api" in m.button_texts)
    await user.press("Api-Api")
    await user.wait_message(predicate=lambda m: rt_label in m.button_texts)
    await user.press(rt_label)
    await user.wait_message("Budi Santoso")
    await user.press(t("📨 Send registration"))
    await user.wait_message("menunggu verifikasi")


BTN_PHONE = "📱 Send my phone number"


async def test_start_in_indonesian_and_command_menus(tg, launch, sqlite_url):
    bot = await launch(sqlite_url)
    warga = tg.user("Sari", language_code="en")
    await warga.send("/start")
    msg = await warga.wait_message("Halo")
    assert "Ketua RT" in msg.text  # Indonesian even though the phone is set to English
    assert t("📝 Register as RT head") in warga.buttons()
    commands = {(c.params.get("language_code"), c.params["scope"]["type"] if c.params.get("scope") else "default")
                for c in tg.calls_of("setMyCommands")}
    assert (None, "default") in commands and ("en", "default") in commands
    id_menu = warga.commands()
    assert {"start", "daftar", "bantuan", "bahasa", "batal"} <= {c["command"] for c in id_menu}
    assert bot.token not in bot.log()


async def test_register_and_verify_over_http(db_url, tg, launch, db):
    await launch(db_url)
    admin = tg.user("Admin", id=ADMIN_ID, language_code="id")
    officer = tg.user("Rina", "Petugas", language_code="id", phone="+6281200000002")
    rt_head = tg.user("Budi", language_code="id", phone="+6281200000001")
    await admin.send("/start")
    await admin.wait_message("administrator")
    await officer.send("/start")
    await officer.wait_message("Halo")
    await appoint_api_api_officer(tg, admin, officer)

    await register_rt_head(rt_head)
    notice = await officer.wait_message("Budi Santoso")
    assert "RT 05" in notice.text and "Api-Api" in notice.text
    await officer.press(t("🔎 Check now"))
    card = await officer.wait_message("+6281200000001")
    await officer.press(t("✅ Approve"), message=card)
    await officer.wait_edit(card)
    told = await rt_head.wait_message("RT 05")
    assert "Api-Api" in told.text

    async with db(db_url) as s:
        head = await s.scalar(select(RTHead).where(RTHead.user_id == rt_head.id))
        assert (head.status, head.full_name, head.phone, head.rt.number) == (
            "terverifikasi", "Budi Santoso", "+6281200000001", 5)
        assert head.decided_by == officer.id
        assert await s.scalar(select(Consent).where(Consent.user_id == rt_head.id)) is not None
        actions = [a.action for a in (await s.scalars(select(AuditLog).order_by(AuditLog.id))).all()]
        assert actions == ["officer.appoint", "registration.submit", "registration.approve"]
        o = await s.scalar(select(Officer).where(Officer.user_id == officer.id))
        assert o.scope == "kelurahan" and o.kelurahan.name == "Api-Api"
    # The RT head now gets the Ketua RT menu and status.
    await rt_head.send("/start")
    await rt_head.wait_message("Ketua RT")
    assert t("📝 Register as RT head") not in rt_head.buttons()


async def test_restart_mid_registration_resumes_at_same_step(db_url, tg, launch):
    bot = await launch(db_url)
    user = tg.user("Ani", language_code="id", phone="+6281299999999")
    await user.send("/daftar")
    await user.wait_message("UU PDP")
    await user.press(t("✅ I agree"))
    await user.send("Ani Lestari")
    await user.wait_message(t(BTN_PHONE))
    assert await bot.stop() == 0  # SIGTERM: a clean stop
    await bot.start()
    await user.press(t(BTN_PHONE))
    await user.wait_message(predicate=lambda m: "Bontang Utara" in m.button_texts)
    await user.send("/daftar")  # asking again re-asks the current step, nothing is lost
    await user.wait_message(t("Let's continue your registration where you left off."))


async def test_wrong_input_gets_clear_answers_and_keeps_state(tg, launch, sqlite_url, db):
    await launch(sqlite_url)
    user = tg.user("Joko", language_code="id", phone="+6281211111111")
    await user.send("/daftar")
    await user.wait_message("UU PDP")
    await user.send("halo")  # text where a button is expected
    await user.wait_message(t("✅ I agree"))
    await user.press(t("✅ I agree"))
    await user.send_sticker()
    await user.wait_message(t("Please type your full name as text, e.g. <i>Budi Santoso</i>."))
    await user.send("12345")
    await user.wait_message("Budi Santoso")  # the example in "that does not look like a name"
    await user.send("Joko Widodo")
    await user.share_contact(phone="+628777", user_id=424242, first_name="Orang Lain")
    await user.wait_message(t(BTN_PHONE))  # someone else's contact: refused, asked again
    await user.send("081234567890")
    await user.wait_message(t(BTN_PHONE))
    await user.press(t(BTN_PHONE))
    await user.wait_message(predicate=lambda m: "Bontang Utara" in m.button_texts)
    await user.send("/tidakada")
    await user.wait_message(t("I do not know that command. You are still in the middle of something: answer the "
                              "question above to continue, or type /batal to stop."))
    await user.press("Bontang Utara")
    await user.wait_message(predicate=lambda m: "Api-Api" in m.button_texts)
    await user.press("Api-Api")
    await user.wait_message(predicate=lambda m: "07" in m.button_texts)
    await user.send("RT 999")
    await user.wait_message("999")
    await user.send("rt.007")
    await user.wait_message("RT 07")
    # A button from an earlier step (the kecamatan list, whose keyboard the bot already removed)
    # pressed now is refused politely, and the dialog stays where it was.
    answer = await user.press(data="rg:kec:1")
    assert answer.show_alert and answer.text
    async with db(sqlite_url) as s:
        refused = (await s.scalars(select(AuditLog).where(AuditLog.action == "denied.stale_button"))).all()
        assert [(r.actor_id, r.reason) for r in refused] == [(user.id, "rg:kec:1")]
    await user.press(t("⬅️ Back"))  # back from the summary to the RT question
    await user.wait_message(predicate=lambda m: "08" in m.button_texts)
    await user.send("8")
    summary = await user.wait_message("RT 08")
    assert "Joko Widodo" in summary.text


async def test_forged_decision_by_officer_of_another_kelurahan_is_refused_and_audited(tg, launch, sqlite_url, db):
    await launch(sqlite_url)
    admin = tg.user("Admin", id=ADMIN_ID, language_code="id")
    officer = tg.user("Rina", language_code="id")
    other = tg.user("Tono", language_code="id")
    rt_head = tg.user("Budi", language_code="id", phone="+6281200000001")
    await admin.send("/start")
    await admin.wait_message("administrator")
    await other.send("/start")
    await other.wait_message("Halo")
    await officer.send("/start")
    await officer.wait_message("Halo")
    await appoint_api_api_officer(tg, admin, officer)
    # The other officer handles Loktuan only.
    await admin.send("/petugas")
    await admin.press(t("➕ Appoint an officer"))
    await admin.send(str(other.id))
    await admin.press(t("One kelurahan"))
    await admin.press("Bontang Utara")
    await admin.wait_message(t("Choose the kelurahan:"), include_edits=True)
    await admin.press("Loktuan")
    await other.wait_message("Loktuan")

    await register_rt_head(rt_head)
    async with db(sqlite_url) as s:
        reg = await s.scalar(select(RTHead).where(RTHead.user_id == rt_head.id))
    await other.send("/verifikasi")
    await other.wait_message(t("No registrations are waiting for verification. 👍"))
    answer = await other.press(data=f"vf:ok:{reg.id}")
    assert answer.show_alert and "dicatat" in answer.text.lower()
    answer = await rt_head.press(data=f"vf:ok:{reg.id}")  # a resident forging it too
    assert answer.show_alert
    async with db(sqlite_url) as s:
        assert (await s.get(RTHead, reg.id)).status == "menunggu"
        denied = (await s.scalars(select(AuditLog).where(AuditLog.action.like("denied.%")))).all()
        assert {d.actor_id for d in denied} == {other.id, rt_head.id}


async def test_language_switch_is_stored(tg, launch, sqlite_url):
    await launch(sqlite_url)
    user = tg.user("Maria", language_code="id")
    await user.send("/bahasa")
    await user.press("English")
    await user.wait_message("Done. I will write to you in this language.")
    await user.send("/start")
    await user.wait_message("Hello")
    await user.press("🌐 Language")
    await user.press("Bahasa Indonesia")
    await user.send("/bantuan")
    await user.wait_message("/daftar")


async def test_refused_token_exits_2_with_explanation(tg, tmp_path):
    import asyncio
    import os
    import sys

    from tests.e2e.conftest import ROOT

    env = {**os.environ, "BOT_TOKEN": "123456:" + "x" * 35, "TELEGRAM_API_URL": tg.base_url,
           "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'tok.db'}", "PYTHONPATH": str(ROOT)}
    tg.make_bot("123456:" + "y" * 35)  # bot 123456 exists with another token: ours is refused (401)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", env=env, cwd=str(tmp_path),
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2, err.decode()
    assert b"BotFather" in err and b"Traceback" not in err
