"""The Ketua RT's /progres dialog over HTTP against the real bot process: forged or refused start
buttons (another RT's proposal: refused and audited; a rejected one; an unknown id), then a full 50 %
report with an album of site photos (sent as files, EXIF kept), a location pin, a note, the spending
and a receipt; the bad inputs: progress going backwards (a reason is asked), out of range, over
budget (a note is asked, the report is flagged), a 30 MB file, a sticker, a photo missing, a restart
in the middle; the 100 % report that sends the proposal to completion verification."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from bot.domain import evidence
from bot.services import media_gc, progress, registration, review, users
from fakeapi import make_pdf
from fakeapi.media import make_scene_jpeg
from handlers.progress.callbacks import ProgCb
from storage.db import create_engine, create_sessionmaker
from storage.models import RT, AuditLog, Kelurahan, Media, ProgressReport, Proposal
from tests.e2e.conftest import ADMIN_ID, t
from tests.e2e.test_review import World, seed, start_chat, submitted

pytestmark = pytest.mark.e2e

SITE = (0.1335, 117.4988)  # where test_review.submitted puts the work
NEAR = (SITE[0] + 0.0004, SITE[1] + 0.0003)  # ~55 m away
APPROVED = "Rp 4.750.000"  # submitted()'s RAB: 50 sak × 65.000 + 10 hari × 150.000


# The approval notice the Ketua RT gets from the outbox, at a moment of its own: tests wait for it
# before the /progres dialog, whose intro also names the proposal's code and title.
GOOD_NEWS = t("✅ Good news! Your proposal <b>{code}</b> ({title}, {amount}) has been approved by the kelurahan.")


def intro_of(p: Proposal) -> str:
    return t("📈 Progress report for <b>{code}</b> · {title}").format(code=p.code, title=p.title)


async def approval_seen(head, p: Proposal) -> None:
    await head.wait_message([GOOD_NEWS.split("{")[0], p.code], timeout=20)


def now_wita() -> dt.datetime:
    return dt.datetime.now(evidence.WITA).replace(tzinfo=None, microsecond=0)


def site_photo(seed_: int, *, exif: bool = True) -> bytes:
    return make_scene_jpeg(seed_, taken_at=now_wita(), gps=NEAR) if exif else make_scene_jpeg(seed_)


async def approved(db, tg, w: World, officer, title: str) -> Proposal:
    p = await submitted(db, tg, w, title)
    async with db(w.url) as s:
        roles = await users.load_roles(s, officer.id, (ADMIN_ID,))
        return await review.decide(s, officer.id, roles, p.id, "setujui")


async def reports_of(db, url: str, proposal_id: int) -> list[ProgressReport]:
    async with db(url) as s:
        return list(
            (
                await s.scalars(
                    select(ProgressReport).where(ProgressReport.proposal_id == proposal_id).order_by(ProgressReport.id)
                )
            ).all()
        )


async def status_of(db, url: str, proposal_id: int) -> str:
    async with db(url) as s:
        return (await s.get(Proposal, proposal_id)).status


async def test_full_report_with_album_location_and_receipt(db_url, tg, launch, db, tmp_path):
    await launch(db_url)
    officer = tg.user("Rina", language_code="id")
    head = tg.user("Budi", language_code="id")
    neighbour = tg.user("Sari", language_code="id")
    await start_chat(officer, head, neighbour)
    w = await seed(db, db_url, tmp_path, officer, head)
    p = await approved(db, tg, w, officer, "Semenisasi gang Mawar")
    rejected = await submitted(db, tg, w, "Gapura RT")
    async with db(db_url) as s:
        roles = await users.load_roles(s, officer.id, (ADMIN_ID,))
        await review.decide(s, officer.id, roles, rejected.id, "tolak", note="Bukan prioritas.")
        # The Ketua RT of RT 06, with an approved proposal of their own.
        kel = await s.scalar(select(Kelurahan).where(Kelurahan.name == "Api-Api"))
        rt6 = await s.scalar(select(RT).where(RT.kelurahan_id == kel.id, RT.number == 6))
        reg = await registration.submit(s, neighbour.id, "Sari Lestari", "+6281200000006", rt6.id, (ADMIN_ID,))
        await registration.decide(s, officer.id, roles, reg.id, True, None)
    theirs = await approved(db, tg, World(db_url, rt6.id, neighbour.id, w.store), officer, "Pos ronda RT 06")
    await approval_seen(head, p)

    # Forged and refused start buttons, in the middle of a report: the dialog stays where it was.
    await head.send("/progres")
    await head.wait_message(intro_of(p))
    await head.press("75%")
    await head.wait_message("📎")
    answer = await head.press(data=ProgCb(action="start", id=theirs.id).pack())  # another RT's proposal
    assert answer.show_alert and answer.text == t(
        "This proposal is not of your RT; you can only report on your own RT's work. The attempt was recorded."
    )
    async with db(db_url) as s:
        denied = (await s.scalars(select(AuditLog).where(AuditLog.action == "denied.progress.lapor"))).all()
        assert [(a.actor_id, a.entity_id) for a in denied] == [(head.id, str(theirs.id))]
    answer = await head.press(data=ProgCb(action="start", id=rejected.id).pack())
    assert answer.show_alert and rejected.code in answer.text
    answer = await head.press(data=ProgCb(action="start", id=999_999).pack())  # no such proposal
    assert answer.show_alert
    async with db(db_url) as s:
        stale = select(func.count()).select_from(AuditLog).where(AuditLog.action == "denied.stale_button")
        assert await s.scalar(stale) >= 1
    await head.send_sticker()
    await head.wait_message("📎")  # still at the photo step
    await head.press(t("✖️ Cancel"))
    await head.wait_message(t("Cancelled. Nothing was saved."))
    assert await reports_of(db, db_url, theirs.id) == [] and await reports_of(db, db_url, p.id) == []
    assert await status_of(db, db_url, theirs.id) == "disetujui"

    # The start button of their own proposal (as on the proposal card) begins a report.
    answer = await head.press(data=ProgCb(action="start", id=p.id).pack())
    assert not answer.show_alert
    intro = await head.wait_message(intro_of(p))
    assert APPROVED in intro.text and t("No report yet: this is the first one.") in intro.text
    question = await head.wait_message(predicate=lambda m: "50%" in m.button_texts)
    assert {"0%", "25%", "75%", "100%", t("⬅️ Back"), t("✖️ Cancel")} <= set(question.button_texts)
    await head.press("50%", message=question)
    ask_photos = await head.wait_message("📎")
    assert t("➡️ Next") not in ask_photos.button_texts  # not before the first photo

    # Two photos sent as files (EXIF kept), as one album: answered once.
    await head.send_album([("site-1.jpg", site_photo(1)), ("site-2.jpg", site_photo(2))])
    reply = await head.wait_message("📷", timeout=20)
    assert "2" in reply.text
    assert not [m for m in await head.wait_idle(quiet=2.0, timeout=15) if "📷" in m.text]  # answered once
    await head.press(t("➡️ Next"), message=reply)
    await head.wait_message(t("📍 Send my current location"))
    await head.press(t("📍 Send my current location"), location=NEAR)
    await head.wait_message(t("Skip ➡️"), predicate=lambda m: bool(m.buttons))  # the note question
    await head.send("Pengecoran 30 meter selesai, sisa 20 meter.")
    spending = await head.wait_message(APPROVED)
    assert "Rp 0" in spending.text
    await head.send("Rp 1,25 jt")
    await head.wait_message("nota/kuitansi")
    await head.send("lanjut")  # text where a receipt is expected: told what to send
    await head.wait_message("PDF")
    await head.send_document(make_pdf("Nota toko bangunan"), file_name="nota.pdf", mime_type="application/pdf")
    saved = await head.wait_message("🧾")
    await head.press(t("➡️ Next"), message=saved)
    summary = await head.wait_message(t("📨 Send report"))
    for seen in ("50%", "Rp 1.250.000", APPROVED, "Pengecoran 30 meter selesai", t("📍 Location pin: yes")):
        assert seen in summary.text, seen
    assert t("📷 Site photos: {n}").format(n=2) in summary.text
    assert t("🧾 Receipts: {n}").format(n=1) in summary.text
    send_data = summary.button(t("📨 Send report"))["callback_data"]
    await head.press(t("📨 Send report"), message=summary)
    sent = await head.wait_message([p.code, "50%"])
    assert t("in progress") in sent.text
    assert t("📎 → File") not in sent.text  # photos kept their EXIF: no tip needed

    [report] = await reports_of(db, db_url, p.id)
    assert (report.percent, report.spent_total, report.reporter_id) == (50, 1_250_000, head.id)
    assert report.note == "Pengecoran 30 meter selesai, sisa 20 meter."
    assert (round(report.latitude, 4), round(report.longitude, 4)) == (round(NEAR[0], 4), round(NEAR[1], 4))
    photos, receipts = report.media_of("foto_progres"), report.media_of("nota")
    assert len(photos) == 2 and len(receipts) == 1
    assert all(m.exif_lat is not None and m.exif_taken_at is not None for m in photos)
    assert all(m.telegram_file_id for m in photos + receipts)
    assert report.flags == []
    assert await status_of(db, db_url, p.id) == "pelaksanaan"
    # Sending once more (a double tap): refused, still one report.
    answer = await head.press(data=send_data)
    assert answer.show_alert
    assert len(await reports_of(db, db_url, p.id)) == 1


async def test_bad_input_backwards_over_budget_and_the_100_percent_report(tg, launch, sqlite_url, db, tmp_path):
    bot = await launch(sqlite_url)
    officer = tg.user("Rina", language_code="id")
    head = tg.user("Budi", language_code="id")
    await start_chat(officer, head)
    w = await seed(db, sqlite_url, tmp_path, officer, head)
    p = await approved(db, tg, w, officer, "Drainase gang Melati")
    async with db(sqlite_url) as s:  # an earlier report: 50 %, Rp 1.000.000
        from bot.services import media

        data = site_photo(10)
        row = await media.save_media(s, w.store, data, "image/jpeg")
        exif, phash = await progress.analyse_photo(data)
        await progress.report(
            s, head.id, p.id, percent=50, spent_total=1_000_000,
            photos=[progress.EvidenceFile(row, "f-10", "u-10", exif, phash)],
        )

    other = await approved(db, tg, w, officer, "Taman baca RT 05")

    await head.send(t("📈 Report progress"))  # the menu button works like /progres
    choice = await head.wait_message(t("Which proposal is this progress report for?"))
    labels = choice.button_texts
    assert f"{p.code} · Drainase gang Melati · 50%" in labels and f"{other.code} · Taman baca RT 05 · 0%" in labels
    await head.press(f"{p.code} · Drainase gang Melati · 50%", message=choice)
    intro = await head.wait_message([p.code, "50%", "Rp 1.000.000"])
    assert t("Last report: {percent}% on {date}; spending so far {spent}.")[:10] in intro.text
    await head.wait_message(predicate=lambda m: "25%" in m.button_texts)
    await head.send("120")
    await head.wait_message("120%")  # out of range, explained
    await head.send("sepuluh")
    await head.wait_message("60")  # not a number: an example
    await head.send("25 persen")  # lower than the last report: a reason is asked
    await head.wait_message(["50%", "25%"], predicate=lambda m: t("⬅️ Back") in m.button_texts)
    await head.send_sticker()
    await head.wait_message(t("Please answer by typing text (not a photo or sticker)."))
    await head.send("Sebagian cor harus dibongkar karena retak.")
    await head.wait_message("📎")

    # The photo step: a sticker, a text, Next without a photo, a 30 MB file, then a compressed photo.
    photo_please = t("Please send a photo of the work site (📎 → File keeps its location), or tap ➡️ Next when all "
                     "are sent.")
    await head.send_sticker()
    await head.wait_message(photo_please)
    await head.send("halo")
    await head.wait_message(photo_please)
    answer = await head.press(data=ProgCb(action="next", id=p.id).pack())  # Next before any photo
    assert answer.show_alert and answer.text == t("Please send at least one photo of the work site first.")
    async with db(sqlite_url) as s:
        media_before = await s.scalar(select(func.count()).select_from(Media))
    await head.send_document(site_photo(11), file_name="besar.jpg", mime_type="image/jpeg", file_size=30_000_000)
    await head.wait_message("30.0 MB")
    await head.send_document(b"just some text", file_name="catatan.txt", mime_type="text/plain")
    await head.wait_message(t("That file is not a photo. Please send a photo of the work site."))
    async with db(sqlite_url) as s:
        assert await s.scalar(select(func.count()).select_from(Media)) == media_before  # nothing stored
    await head.send_photo(site_photo(12))  # compressed by Telegram: no EXIF
    saved = await head.wait_message("📷")
    assert await bot.stop() == 0  # a restart in the middle: the dialog and its photo are kept
    # The nightly clean-up of unused files, run as if 60 days had passed, keeps the photo that this
    # unfinished report holds in its dialog data (and everything of the record).
    engine = create_engine(sqlite_url)
    try:
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=60)
        await media_gc.prune(create_sessionmaker(engine), w.store, later, dt.timedelta(days=30))
    finally:
        await engine.dispose()
    async with db(sqlite_url) as s:
        assert await s.scalar(select(func.count()).select_from(Media)) == media_before + 1
    await bot.start()
    await head.press(t("➡️ Next"), message=saved)
    await head.send("Gang Melati")  # a location as text: explained
    await head.wait_message(t("📍 Send my current location"), predicate=lambda m: "⌨️" in m.text)
    await head.press(t("Skip ➡️"))
    note_q = await head.wait_message(predicate=lambda m: t("Skip ➡️") in m.button_texts)
    await head.press(t("Skip ➡️"), message=note_q)
    await head.wait_message(APPROVED)
    await head.send("lima juta")
    await head.wait_message("1,25 jt")  # asked for digits, with an example
    await head.send("6jt")  # above the approved Rp 4.750.000: a note is asked, the report will be flagged
    await head.wait_message(["Rp 6.000.000", "Rp 1.250.000", APPROVED])
    await head.send("x" * 1001)
    await head.wait_message("1000")
    await head.send("Harga semen naik, disepakati warga.")
    ask_receipt = await head.wait_message("nota/kuitansi")
    assert t("Skip ➡️") not in ask_receipt.button_texts  # the spending went up: a receipt is required
    # Two receipts photographed and sent as one album: kept both, answered once.
    await head.send_album([make_scene_jpeg(13), make_scene_jpeg(15)])
    receipts_saved = t("🧾 Receipts saved: {n}. Send another, or tap <b>➡️ Next</b>.")
    saved = await head.wait_message(receipts_saved.format(n=2), timeout=20)
    assert not [m for m in await head.wait_idle(quiet=2.0, timeout=15) if "🧾" in m.text]  # answered once
    assert [m.text for m in head.bot_messages if receipts_saved.split("{")[0] in (m.text or "")] == [saved.text]
    await head.press(t("➡️ Next"), message=saved)
    summary = await head.wait_message(t("📨 Send report"))
    assert "⚠️" in summary.text and "Harga semen naik" in summary.text and "Sebagian cor" in summary.text
    await head.press(t("📨 Send report"), message=summary)
    sent = await head.wait_message([p.code, "25%"])
    assert "📎" in sent.text  # the photo lost its EXIF: a tip for next time
    reports = await reports_of(db, sqlite_url, p.id)
    assert len(reports) == 2
    second = reports[-1]
    assert (second.percent, second.spent_total) == (25, 6_000_000)
    assert len(second.media_of("foto_progres")) == 1
    assert [(m.kind, m.position) for m in second.media_of("nota")] == [("nota", 0), ("nota", 1)]
    assert second.backwards_reason == "Sebagian cor harus dibongkar karena retak."
    assert second.over_budget_note == "Harga semen naik, disepakati warga."
    kinds = {f["kind"] for f in second.flags}
    assert {evidence.OVER_BUDGET, evidence.NO_EXIF} <= kinds

    # 100 %: same spending as before (a button), no new receipt needed.
    await head.send("/progres")
    choice = await head.wait_message(t("Which proposal is this progress report for?"))
    await head.press(f"{p.code} · Drainase gang Melati · 25%", message=choice)
    await head.wait_message([p.code, "25%"])
    await head.press("100%")
    await head.wait_message("📎")
    await head.send_document(site_photo(14), file_name="selesai.jpg", mime_type="image/jpeg")
    saved = await head.wait_message("📷")
    await head.press(t("➡️ Next"), message=saved)
    await head.press(t("Skip ➡️"))
    note_q = await head.wait_message(predicate=lambda m: t("Skip ➡️") in m.button_texts)
    await head.press(t("Skip ➡️"), message=note_q)
    spending = await head.wait_message(APPROVED)
    await head.press(t("Same as last report: {amount}").format(amount="Rp 6.000.000"), message=spending)
    await head.wait_message(["Rp 6.000.000", "Rp 1.250.000"])  # over budget again: the note is asked again
    await head.send("Harga semen naik.")
    ask_receipt = await head.wait_message("nota/kuitansi")
    await head.press(t("Skip ➡️"), message=ask_receipt)
    summary = await head.wait_message(t("📨 Send report"))
    assert "100%" in summary.text
    await head.press(t("📨 Send report"), message=summary)
    sent = await head.wait_message([p.code, "100%"])
    assert t("completion awaiting verification") in sent.text
    assert await status_of(db, sqlite_url, p.id) == "menunggu_verifikasi_selesai"
    assert len(await reports_of(db, sqlite_url, p.id)) == 3
    # Now the report is with the officer: /progres says so.
    await head.send("/progres")
    await head.wait_message(
        t("{code}: the 100 % report is with the officer for verification. I will tell you here when it is checked.")
        .format(code=p.code)
    )
    await head.wait_message([other.code, "Taman baca RT 05"])  # the only one left: straight to it
