"""The Ketua RT's /usulan wizard over HTTP against the real bot process: a full proposal with an
album and a location, budget overflow explained with the numbers, restart mid-wizard, Kirim twice,
an old summary's buttons, and 20 RT heads sending at once."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from bot.config import load_settings
from bot.domain.permissions import Scope
from bot.services import officers, programs, registration, users
from bot.services import proposals as svc
from fakeapi import make_jpeg, make_pdf
from storage.models import RT, Kelurahan, Outbox, Proposal
from tests.e2e.conftest import ADMIN_ID, t

pytestmark = pytest.mark.e2e


async def seed_people(db, url: str, officer, heads) -> list[int]:
    """An Api-Api officer and verified Ketua RT of RT 1..n of Api-Api (the bot imported the RTs)."""
    async with db(url) as s:
        kel = await s.scalar(select(Kelurahan).where(Kelurahan.name == "Api-Api"))
        await users.ensure_user(s, ADMIN_ID, "Admin", None, None)
        await users.ensure_user(s, officer.id, officer.first_name, None, None)
        await officers.appoint(s, ADMIN_ID, (ADMIN_ID,), officer.id, Scope.for_kelurahan(kel.kecamatan_id, kel.id))
        officer_roles = await users.load_roles(s, officer.id, (ADMIN_ID,))
        rt_ids = []
        for number, head in enumerate(heads, 1):
            rt = await s.scalar(select(RT).where(RT.kelurahan_id == kel.id, RT.number == number))
            await users.ensure_user(s, head.id, head.first_name, None, None)
            reg = await registration.submit(s, head.id, f"{head.first_name} Santoso", "+62811000" + str(number),
                                            rt.id, (ADMIN_ID,))
            await registration.decide(s, officer.id, officer_roles, reg.id, True, None)
            rt_ids.append(rt.id)
        return rt_ids


async def test_full_wizard_with_album_and_location(db_url, tg, launch, db):
    await launch(db_url)
    officer = tg.user("Rina", language_code="id")
    head = tg.user("Budi", language_code="id")
    await seed_people(db, db_url, officer, [head])

    await head.send("/usulan")
    intro = await head.wait_message("Rp 50.000.000")
    assert "RT 01" in intro.text
    await head.wait_message(predicate=lambda m: "Infrastruktur fisik" in m.button_texts)
    await head.press("Infrastruktur fisik")
    await head.wait_message(t("Type a short <b>title</b>, e.g. <i>Semenisasi jalan gang RT 05</i>.")[:20])
    await head.send("Semenisasi jalan gang Mawar")
    await head.send("Jalan gang rusak dan becek saat hujan; dipakai 40 KK.")
    await head.wait_message(t("📍 Send my current location"))
    await head.send("Gang Mawar")  # a location typed as text is explained
    await head.wait_message("📎")
    await head.share_location(0.13370, 117.49500)
    await head.press(t("Skip ➡️"))
    await head.wait_message("Semen 50 sak x 65.000")
    await head.send("Semen 50 sak x 65.000\nPasir 3 m3 x 250rb")
    rab = await head.wait_message("Rp 4.000.000")
    assert "Rp 3.250.000" in rab.text and "Rp 750.000" in rab.text and "Rp 46.000.000" in rab.text
    await head.send("lima puluh ribu")
    await head.wait_message("50rb")  # amounts in words: asked for digits
    await head.send("Semen 50 sak x -5000\nSemen 50 sak x 0\nSemen 1 sak x 1e9\nTenda 1 paket x Rp 50.000.000.000")
    refused = await head.wait_message("-5000")
    assert all(bad in refused.text for bad in ("x 0", "1e9", "50.000.000.000"))
    assert "Rp 4.000.000" not in refused.text  # nothing was added
    await head.send("Tukang")  # step by step: description, then how many, then the price
    await head.wait_message("Tukang")
    await head.send("10 hari")
    await head.wait_message("65.000")
    await head.send("150rb")
    await head.wait_message("Rp 5.500.000")
    await head.press(t("✅ Done, next"))
    await head.wait_message(t("Send <b>1 to 10 photos</b> of the site as it is now (several at once is fine). "
                              "Photos so far: {n}.")[:30])
    await head.send_sticker()
    await head.wait_message("📎")
    await head.send_album([make_jpeg(text="1"), make_jpeg(text="2"), make_jpeg(text="3")])
    replies = [m for m in await head.wait_idle(quiet=2.0, timeout=15) if "📷" in m.text]
    assert len(replies) == 1 and "3" in replies[0].text  # an album is answered once
    await head.press(t("➡️ Next"))
    await head.wait_message("PDF")
    await head.send_document(make_pdf("Berita acara musyawarah RT 01"), file_name="berita-acara.pdf",
                             mime_type="application/pdf")
    await head.wait_message("1")
    await head.press(t("➡️ Next"))
    await head.send("25 orang")
    summary = await head.wait_message("Semenisasi jalan gang Mawar")
    assert "Rp 5.500.000" in summary.text and "25" in summary.text
    send_data = summary.button(t("📨 Send"))["callback_data"]
    await head.press(t("📨 Send"), message=summary)
    sent = await head.wait_message("PRL-")
    assert "Rp 5.500.000" in sent.text and "Rp 44.500.000" in sent.text

    async with db(db_url) as s:
        p = await s.scalar(select(Proposal))
        year = load_settings().current_fiscal_year()
        assert (p.status, p.code, p.total_amount, p.attendees) == ("diajukan", f"PRL-{year}-0001", 5_500_000, 25)
        assert (round(p.latitude, 4), round(p.longitude, 4)) == (0.1337, 117.495)
        assert len(p.media_of("foto_awal")) == 3 and len(p.media_of("bukti_musyawarah")) == 1
        assert [ln.total for ln in p.lines] == [3_250_000, 750_000, 1_500_000]
        notices = (await s.scalars(select(Outbox).where(Outbox.kind == "proposal.submitted"))).all()
        assert [n.chat_id for n in notices] == [officer.id]
    # Pressing Kirim again (a double tap, before the buttons disappeared): one code, a clear answer.
    answer = await head.press(data=send_data)
    assert answer.show_alert
    async with db(db_url) as s:
        assert await s.scalar(select(func.count()).select_from(Proposal).where(Proposal.code.is_not(None))) == 1


async def _complete_draft(db, url: str, user_id: int, rt_id: int, amount_line: str, title: str) -> int:
    """A draft with everything filled in, made through the services (as the wizard would)."""
    from bot.domain.rab import parse_rab_line
    from bot.services.media import LocalMediaStore, save_media

    async with db(url) as s:
        program = await programs.ensure(s, load_settings(), load_settings().current_fiscal_year())
        p = await svc.create_draft(s, user_id, rt_id, program)
        p = await svc.update_fields(s, p, category_code="sosbud", title=title, description="Pelatihan warga",
                                    wizard_step="Usulan:ringkasan")
        await svc.add_line(s, p, parse_rab_line(amount_line))
        store = LocalMediaStore(__import__("pathlib").Path(url.rsplit("/", 1)[-1] + "-media"))
        photo = await save_media(s, store, make_jpeg(text=str(user_id)), "image/jpeg")
        await svc.attach_media(s, p, photo, "foto_awal", f"file-{user_id}", f"u-{user_id}")
        doc = await save_media(s, store, make_pdf(str(user_id)), "application/pdf", kind="document")
        await svc.attach_media(s, p, doc, "bukti_musyawarah", f"doc-{user_id}", f"ud-{user_id}")
        await svc.set_musyawarah(s, p, 20)
        return p.id


async def test_budget_overflow_is_refused_with_the_remaining_amount(tg, launch, sqlite_url, db, tmp_path,
                                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    await launch(sqlite_url)
    officer = tg.user("Rina", language_code="id")
    head = tg.user("Budi", language_code="id")
    [rt_id] = await seed_people(db, sqlite_url, officer, [head])
    first = await _complete_draft(db, sqlite_url, head.id, rt_id, "Kursi 100 unit x 375rb", "Kursi balai warga")
    async with db(sqlite_url) as s:
        await svc.submit(s, head.id, first, None, __import__("datetime").date.today())  # Rp 37.500.000 counted
    second = await _complete_draft(db, sqlite_url, head.id, rt_id, "Tenda 1 paket x 15jt", "Tenda hajatan")
    await head.send("/draf")
    await head.press(t("▶️ Continue: {title}").format(title="Tenda hajatan"))
    summary = await head.wait_message("Tenda hajatan")
    assert "Rp 12.500.000" in summary.text  # the remaining ceiling is shown on the card
    await head.press(t("📨 Send"), message=summary)
    refused = await head.wait_message("Rp 12.500.000")
    assert "Rp 15.000.000" in refused.text and "RT 01" in refused.text
    async with db(sqlite_url) as s:
        assert (await s.get(Proposal, second)).status == "draf"


async def test_restart_mid_wizard_resumes_and_old_summary_is_refused(db_url, tg, launch, db):
    bot = await launch(db_url)
    officer = tg.user("Rina", language_code="id")
    head = tg.user("Budi", language_code="id")
    await seed_people(db, db_url, officer, [head])
    await head.send("/usulan")
    await head.press("Sosial budaya")
    await head.send("Pelatihan kader posyandu")
    await head.wait_message(t("Describe it in a few sentences: what will be done, and why the residents need it."))
    assert await bot.stop() == 0
    await bot.start()
    await head.send("Pelatihan untuk 20 kader selama 2 hari.")  # the same step, after the restart
    await head.wait_message(t("📍 Send my current location"))
    await head.press(t("Skip ➡️"))
    await head.wait_message("Gang Mawar")  # the optional address question (its example)
    await head.press(t("Skip ➡️"))
    await head.send("Konsumsi 40 kotak x 25rb")
    await head.press(t("✅ Done, next"))
    await head.send_photo(make_jpeg())
    await head.press(t("➡️ Next"))
    await head.send_photo(make_jpeg(text="ba"))
    await head.press(t("➡️ Next"))
    await head.send("20")
    old = await head.wait_message("Pelatihan kader posyandu")
    old_send = old.button(t("📨 Send"))["callback_data"]
    # Change the budget from the summary; the old summary's Kirim is then refused.
    await head.press(t("✏️ Change…"), message=old)
    await head.press(t("Budget (RAB)"))
    await head.send("Transport 20 orang x 50rb")
    await head.press(t("✅ Done, next"))
    fresh = await head.wait_message("Rp 2.000.000", predicate=lambda m: t("📨 Send") in m.button_texts)
    answer = await head.press(data=old_send)
    assert answer.show_alert
    await head.press(t("📨 Send"), message=fresh)
    await head.wait_message("PRL-")


async def test_twenty_rt_heads_send_at_once_get_twenty_codes(tg, launch, sqlite_url, db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    await launch(sqlite_url)
    officer = tg.user("Rina", language_code="id")
    heads = [tg.user(f"Ketua{i}", language_code="id") for i in range(20)]
    rt_ids = await seed_people(db, sqlite_url, officer, heads)
    for head, rt_id in zip(heads, rt_ids, strict=True):
        await _complete_draft(db, sqlite_url, head.id, rt_id, "Konsumsi 40 kotak x 25rb", f"Usulan {head.first_name}")

    async def one(head):
        await head.send("/draf")
        await head.press(t("▶️ Continue: {title}").format(title=f"Usulan {head.first_name}"))
        summary = await head.wait_message(f"Usulan {head.first_name}", timeout=30)
        await head.press(t("📨 Send"), message=summary, timeout=30)
        return await head.wait_message("PRL-", timeout=30)

    sent = await asyncio.gather(*(one(h) for h in heads))
    year = load_settings().current_fiscal_year()
    codes = sorted(m.text.split("PRL-")[1][:9] for m in sent)
    assert codes == [f"{year}-{n:04d}" for n in range(1, 21)]
    async with db(sqlite_url) as s:
        assert await s.scalar(select(func.count(func.distinct(Proposal.code)))) == 20


async def test_revision_round_trip_reopens_only_flagged_parts(tg, launch, sqlite_url, db, tmp_path, monkeypatch):
    import datetime as dt

    from bot.services import review

    monkeypatch.chdir(tmp_path)
    await launch(sqlite_url)
    officer = tg.user("Rina", language_code="id")
    head = tg.user("Budi", language_code="id")
    await officer.send("/start")
    await head.send("/start")
    [rt_id] = await seed_people(db, sqlite_url, officer, [head])
    pid = await _complete_draft(db, sqlite_url, head.id, rt_id, "Konsumsi 40 kotak x 25rb", "Pelatihan kader")
    async with db(sqlite_url) as s:
        p = await svc.submit(s, head.id, pid, None, dt.date.today(), admin_ids=(ADMIN_ID,))
        code = p.code
        roles = await users.load_roles(s, officer.id, (ADMIN_ID,))
        await review.decide(s, officer.id, roles, pid, "minta_revisi", note="Konsumsi terlalu mahal",
                            parts=["anggaran"])
    told = await head.wait_message("Konsumsi terlalu mahal", timeout=15)
    await head.press(t("✏️ Fix it now"), message=told)
    summary = await head.wait_message(predicate=lambda m: t("📨 Send") in m.button_texts)
    assert "Konsumsi terlalu mahal" in summary.text and code in summary.text
    await head.press(t("✏️ Change…"), message=summary)
    menu = await head.wait_message(predicate=lambda m: t("Budget (RAB)") in m.button_texts)
    assert t("Location") not in menu.button_texts  # only what the officer flagged
    await head.press(t("Budget (RAB)"), message=menu)
    await head.press(t("✏️ Change a line"))
    await head.press(t("✏️ {n}. {desc}").format(n=1, desc="Konsumsi"))
    await head.send("Konsumsi 40 kotak x 20rb")
    await head.wait_message("Rp 800.000")
    await head.press(t("✅ Done, next"))
    fresh = await head.wait_message(predicate=lambda m: t("📨 Send") in m.button_texts)
    await head.press(t("📨 Send"), message=fresh)
    await head.wait_message(code)
    async with db(sqlite_url) as s:
        row = await s.get(Proposal, pid)
        assert (row.status, row.code, row.total_amount) == ("diajukan", code, 800_000)
        changes = await review.changes_since_last_submission(s, row)
        assert (changes["total_before"], changes["total_after"]) == (1_000_000, 800_000)
