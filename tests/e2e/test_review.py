"""The officer's review over HTTP against the real bot process: /tinjau with the card, the map pin,
the photo album and the musyawarah evidence; approve with a note, reject with a reason, request a
revision of two parts (and see the change summary on resubmission); forged and late decisions."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.domain.permissions import Scope
from bot.domain.rab import RabLine as Line
from bot.services import media, officers, proposals, registration, users
from fakeapi import make_jpeg, make_pdf
from handlers.proposals.callbacks import PropCb
from handlers.review.callbacks import ReviewCb
from storage.models import (
    MEDIA_BUKTI_MUSYAWARAH,
    MEDIA_FOTO_AWAL,
    RT,
    AuditLog,
    Kelurahan,
    Outbox,
    Program,
    Proposal,
)
from tests.e2e.conftest import ADMIN_ID, t

pytestmark = pytest.mark.e2e

OUT_OF_SCOPE = "This proposal is outside your area. The attempt was recorded."


@dataclass
class World:
    url: str
    rt_id: int  # RT 05 of Api-Api, led by the Ketua RT
    head_id: int
    store: media.LocalMediaStore


async def start_chat(*people) -> None:
    """Everyone opens the bot first (a bot cannot write to someone who never did)."""
    for person in people:
        await person.send("/start")
        await person.wait_message()


async def seed(db, url: str, tmp_path: Path, officer, head, other=None) -> World:
    """An Api-Api officer (and a Loktuan one), and the verified Ketua RT of RT 05 Api-Api."""
    async with db(url) as s:
        kels = {k.name: k for k in (await s.scalars(select(Kelurahan))).all()}
        api, lok = kels["Api-Api"], kels["Loktuan"]
        await officers.appoint(s, ADMIN_ID, (ADMIN_ID,), officer.id, Scope.for_kelurahan(api.kecamatan_id, api.id))
        if other is not None:
            await officers.appoint(s, ADMIN_ID, (ADMIN_ID,), other.id, Scope.for_kelurahan(lok.kecamatan_id, lok.id))
        rt = await s.scalar(select(RT).where(RT.kelurahan_id == api.id, RT.number == 5))
        reg = await registration.submit(s, head.id, "Budi Santoso", "+6281200000001", rt.id, (ADMIN_ID,))
        roles = await users.load_roles(s, officer.id, (ADMIN_ID,))
        await registration.decide(s, officer.id, roles, reg.id, True, None)
    # The media directory of the bot process (MEDIA_DIR = <tmp_path>/media).
    return World(url, rt.id, head.id, media.LocalMediaStore(tmp_path / "media"))


def _today(program: Program) -> dt.date:
    return min(max(dt.date.today(), program.submission_opens), program.submission_closes)


async def submitted(db, tg, w: World, title: str, *, photos: int = 1) -> Proposal:
    """A complete proposal submitted by the Ketua RT (Semen 50 sak × 65.000 + Tukang 10 hari × 150.000).

    The photos and the berita acara are put in the fake Telegram first, so their file ids are real."""
    async with db(w.url) as s:
        program = await s.scalar(select(Program))
        p = await proposals.create_draft(s, w.head_id, w.rt_id, program)
        await proposals.update_fields(
            s, p, category_code="infrastruktur", title=title, description="Jalan gang rusak; warga sepakat."
        )
        await proposals.set_location(s, p, 0.1335, 117.4988)
        await proposals.add_line(s, p, Line("Semen", 50, "sak", 65_000))
        await proposals.add_line(s, p, Line("Tukang", 10, "hari", 150_000))
        for i in range(photos):
            biggest = tg.world.store_photo(make_jpeg(color=(30 + 60 * i, 120, 200), text=title))[-1]
            stored = await media.save_media(s, w.store, biggest.data, "image/jpeg")
            await proposals.attach_media(s, p, stored, MEDIA_FOTO_AWAL, biggest.file_id, biggest.file_unique_id)
        pdf = make_pdf()
        doc = tg.world.store_file(pdf, "document", file_name="berita-acara.pdf", mime_type="application/pdf")
        stored = await media.save_media(s, w.store, pdf, "application/pdf", kind=media.KIND_DOCUMENT)
        await proposals.attach_media(s, p, stored, MEDIA_BUKTI_MUSYAWARAH, doc.file_id, doc.file_unique_id)
        await proposals.set_musyawarah(s, p, 25)
        return await proposals.submit(s, w.head_id, p.id, None, _today(program), admin_ids=(ADMIN_ID,))


async def open_card(officer, code: str, how: str = "/tinjau"):
    """The officer opens the queue; the card of ``code`` (not the notice about it)."""
    await officer.send(how)
    return await officer.wait_message([code, t("❌ Reject")])


async def stored(db, url: str, proposal_id: int) -> Proposal:
    async with db(url) as s:
        return await s.get(Proposal, proposal_id)


async def test_card_media_and_approval_with_a_note(db_url, tg, launch, db, tmp_path):
    await launch(db_url)
    admin = tg.user("Admin", id=ADMIN_ID, language_code="id")
    officer = tg.user("Rina", "Petugas", language_code="id")
    head = tg.user("Budi", language_code="id")
    await start_chat(admin, officer, head)
    w = await seed(db, db_url, tmp_path, officer, head)
    p = await submitted(db, tg, w, "Semenisasi gang Mawar", photos=2)

    notice = await officer.wait_message([p.code, "Rp 4.750.000", "/tinjau"])  # told of the new proposal
    assert "Semenisasi gang Mawar" in notice.text and "RT 05" in notice.text
    assert t("🔎 Open the proposal") in notice.button_texts

    card = await open_card(officer, p.code)
    attendees = t("👥 Musyawarah: {count} resident(s) present").format(count=25)
    for seen in ("Semenisasi gang Mawar", "RT 05", "Api-Api", "Infrastruktur fisik", "Rp 4.750.000", "Rp 50.000.000",
                 "Semen — 50 sak × Rp 65.000 = Rp 3.250.000", "Tukang — 10 hari × Rp 150.000 = Rp 1.500.000",
                 attendees):
        assert seen in card.text, seen
    assert {t("✅ Approve"), t("❌ Reject"), t("🔁 Request revision")} <= set(card.button_texts)

    await officer.press(t("🗺 Location"), message=card)
    pin = await officer.wait_message(predicate=lambda m: m.location is not None)
    assert abs(pin.location["latitude"] - 0.1335) < 1e-4 and abs(pin.location["longitude"] - 117.4988) < 1e-4
    await officer.press(t("🖼 Photos ({count})").format(count=2), message=card)
    album = await officer.wait_messages(2)
    assert all(m.photo for m in album)
    assert album[0].media_group_id and album[0].media_group_id == album[1].media_group_id
    assert p.code in (album[0].caption or "")
    await officer.press(t("📄 Musyawarah evidence"), message=card)
    evidence = await officer.wait_message(predicate=lambda m: m.document is not None)
    assert evidence.document["file_name"] == "berita-acara.pdf"

    await officer.press(t("✅ Approve"), message=card)
    await officer.wait_message(t("✅ Approve without a note"))
    await officer.send("Lanjutkan, mulai bulan depan.")
    decided = await officer.wait_edit(card)
    assert "Rina" in decided.text and "Lanjutkan, mulai bulan depan." in decided.text
    assert not decided.buttons  # no decision buttons left on the card
    told = await head.wait_message([p.code, "Lanjutkan, mulai bulan depan."])
    assert "Semenisasi gang Mawar" in told.text

    row = await stored(db, db_url, p.id)
    assert (row.status, row.decided_by, row.decision_note) == ("disetujui", officer.id, "Lanjutkan, mulai bulan depan.")
    async with db(db_url) as s:
        actions = [a.action for a in (await s.scalars(select(AuditLog).where(AuditLog.entity == "proposal"))).all()]
        assert "proposal.setujui" in actions

    # A second officer (the admin, city-wide) pressing the old card's button: told, nothing changes.
    answer = await admin.press(data=ReviewCb(action="ok", id=p.id, v=p.version).pack())
    assert answer.show_alert
    assert answer.text == t("Another officer has already decided on this proposal: {status}.").format(
        status=t("approved")
    )
    answer = await admin.press(data=ReviewCb(action="okn", id=p.id, v=p.version).pack())
    assert answer.show_alert and t("approved") in answer.text
    assert (await stored(db, db_url, p.id)).decided_by == officer.id


async def test_reject_needs_a_reason(tg, launch, sqlite_url, db, tmp_path):
    await launch(sqlite_url)
    officer = tg.user("Rina", language_code="id")
    head = tg.user("Budi", language_code="id")
    await start_chat(officer, head)
    w = await seed(db, sqlite_url, tmp_path, officer, head)
    p = await submitted(db, tg, w, "Pengecatan pos ronda")

    card = await open_card(officer, p.code, t("🔎 Review proposals"))  # the menu button works like /tinjau
    await officer.press(t("❌ Reject"), message=card)
    await officer.wait_message(t("Why is {code} rejected? Please type the reason; it will be sent to the Ketua RT.")
                               .format(code=p.code))
    await officer.send_sticker()
    await officer.wait_message(t("Please type the reason for rejecting as text, or /batal to stop."))
    await officer.send("x" * 1001)
    await officer.wait_message("1000")
    assert (await stored(db, sqlite_url, p.id)).status == "diajukan"
    await officer.send("Bukan prioritas tahun ini.")
    decided = await officer.wait_edit(card)
    assert "Bukan prioritas tahun ini." in decided.text
    told = await head.wait_message([p.code, "Bukan prioritas tahun ini."])
    assert "/usulan" in told.text
    row = await stored(db, sqlite_url, p.id)
    assert (row.status, row.decision_note) == ("ditolak", "Bukan prioritas tahun ini.")
    # The reject button of the decided card, pressed once more: the officer is reminded, nothing changes.
    answer = await officer.press(data=ReviewCb(action="no", id=p.id, v=p.version).pack())
    assert answer.show_alert and answer.text == t("You have already decided on this proposal: {status}.").format(
        status=t("rejected")
    )


async def test_revision_of_two_parts_and_the_change_summary(tg, launch, sqlite_url, db, tmp_path):
    await launch(sqlite_url)
    officer = tg.user("Rina", language_code="id")
    head = tg.user("Budi", language_code="id")
    await start_chat(officer, head)
    w = await seed(db, sqlite_url, tmp_path, officer, head)
    p = await submitted(db, tg, w, "Semenisasi gang Melati")

    card = await open_card(officer, p.code)
    await officer.press(t("🔁 Request revision"), message=card)
    checklist = await officer.wait_message(t("Continue ▶"))
    answer = await officer.press(t("Continue ▶"), message=checklist)
    assert answer.show_alert and answer.text == t("Please tick at least one part first.")
    await officer.press("☐ " + t("Budget (RAB)"), message=checklist)
    await officer.wait_edit(checklist, contains="☑ " + t("Budget (RAB)"))
    await officer.press("☐ " + t("Photos of the current condition"), message=checklist)
    await officer.wait_edit(checklist, contains="☑ " + t("Photos of the current condition"))
    await officer.send("halo")  # text while the checklist waits: told what to do
    await officer.wait_message(
        t("Please tick the parts with the buttons above, then press Continue (or /batal to stop).")
    )
    await officer.press(t("Continue ▶"), message=checklist)
    await officer.wait_message(t("Please type a note for the Ketua RT: what exactly should be fixed?"))
    await officer.send("Harga semen terlalu tinggi; foto kurang jelas.")
    await officer.wait_edit(card)

    told = await head.wait_message([p.code, "Harga semen terlalu tinggi; foto kurang jelas."])
    assert t("Budget (RAB)") in told.text and t("Photos of the current condition") in told.text
    fix = next(b for b in told.buttons if b["text"] == t("✏️ Fix it now"))
    assert fix["callback_data"] == PropCb(action="open", id=p.id).pack()
    row = await stored(db, sqlite_url, p.id)
    assert (row.status, row.revision_parts, row.revision_note) == (
        "perlu_revisi", ["anggaran", "foto"], "Harga semen terlalu tinggi; foto kurang jelas.")

    # The Ketua RT fixes the budget and sends it again: the officer sees what changed.
    async with db(sqlite_url) as s:
        row = await proposals.get(s, p.id)
        semen = next(x for x in row.lines if x.description == "Semen")
        await proposals.replace_line(s, row, semen.id, Line("Semen", 60, "sak", 60_000), actor_id=head.id)
        program = await s.scalar(select(Program))
        await proposals.submit(s, head.id, p.id, None, _today(program), admin_ids=(ADMIN_ID,))
    notice = await officer.wait_message([p.code, t("🔎 Open the proposal")])
    await officer.press(t("🔎 Open the proposal"), message=notice)
    card = await officer.wait_message([p.code, "Rp 4.750.000 → Rp 5.100.000"])
    assert "Semen — 50 sak × Rp 65.000 = Rp 3.250.000 → Semen — 60 sak × Rp 60.000 = Rp 3.600.000" in card.text
    assert "Harga semen terlalu tinggi" in card.text  # the earlier request, for context
    # The card shown before the revision is out of date now.
    answer = await officer.press(data=ReviewCb(action="ok", id=p.id, v=p.version).pack())
    assert answer.show_alert and answer.text == t(
        "This proposal has changed since this card was shown. Here is the current version."
    )
    await officer.wait_message([p.code, "Rp 5.100.000", t("✅ Approve")])


async def test_forged_decision_from_another_kelurahan_is_refused_and_audited(tg, launch, sqlite_url, db, tmp_path):
    await launch(sqlite_url)
    officer = tg.user("Rina", language_code="id")
    other = tg.user("Tono", language_code="id")
    head = tg.user("Budi", language_code="id")
    await start_chat(officer, other, head)
    w = await seed(db, sqlite_url, tmp_path, officer, head, other=other)
    p = await submitted(db, tg, w, "Lampu jalan gang Anggrek")

    await other.send("/tinjau")
    await other.wait_message(t("No proposals are waiting for review. 👍"))
    for action in ("ok", "okn", "no", "open"):
        answer = await other.press(data=ReviewCb(action=action, id=p.id, v=p.version).pack())
        assert answer.show_alert and answer.text == t(OUT_OF_SCOPE), action
    answer = await head.press(data=ReviewCb(action="okn", id=p.id, v=p.version).pack())  # a Ketua RT, too
    assert answer.show_alert
    answer = await other.press(data="tj:ok:abc")  # garbage
    assert answer.answered
    async with db(sqlite_url) as s:
        denied = (await s.scalars(select(AuditLog).where(AuditLog.action.like("denied.proposal.%")))).all()
        assert sorted((d.action, d.actor_id) for d in denied) == sorted([
            ("denied.proposal.setujui", other.id),
            ("denied.proposal.setujui", other.id),
            ("denied.proposal.tolak", other.id),
            ("denied.proposal.view", other.id),
            ("denied.proposal.setujui", head.id),
        ])
        assert all(d.entity_id == str(p.id) and d.reason == "out_of_scope" for d in denied)
        assert not (await s.scalars(select(Outbox).where(Outbox.kind == "proposal.approved"))).all()
    assert (await stored(db, sqlite_url, p.id)).status == "diajukan"

    # The officer of the area approves without a note; the Ketua RT is told.
    card = await open_card(officer, p.code)
    await officer.press(t("✅ Approve"), message=card)
    await officer.press(t("✅ Approve without a note"))
    await officer.wait_edit(card)
    told = await head.wait_message(p.code)
    assert "Lampu jalan gang Anggrek" in told.text
    assert (await stored(db, sqlite_url, p.id)).status == "disetujui"


async def test_queue_is_paged_oldest_first(tg, launch, sqlite_url, db, tmp_path):
    await launch(sqlite_url)
    officer = tg.user("Rina", language_code="id")
    head = tg.user("Budi", language_code="id")
    await start_chat(officer, head)
    w = await seed(db, sqlite_url, tmp_path, officer, head)
    codes = [(await submitted(db, tg, w, f"Kegiatan nomor {i}")).code for i in range(6)]
    for code in codes:
        await officer.wait_message([code, "/tinjau"])  # the six notices came first

    await officer.send("/tinjau")
    await officer.wait_message(t("{count} proposal(s) waiting for your review, oldest first:").format(count=6))
    cards = [await officer.wait_message(t("❌ Reject")) for _ in range(5)]
    assert all(code in card.text for code, card in zip(codes[:5], cards, strict=True))
    await officer.wait_message(t("Showing {a}–{b} of {total}.").format(a=1, b=5, total=6))
    await officer.press(t("Next ▶"))
    last = await officer.wait_message(t("❌ Reject"))
    assert codes[5] in last.text


async def test_officer_opens_a_proposal_by_code_typed_loosely(tg, launch, sqlite_url, db, tmp_path):
    await launch(sqlite_url)
    officer = tg.user("Rina", language_code="id")
    head = tg.user("Budi", language_code="id")
    await start_chat(officer, head)
    w = await seed(db, sqlite_url, tmp_path, officer, head)
    p = await submitted(db, tg, w, "Lampu jalan gang Kenanga")
    loose = p.code.lower().replace("-", " ")  # "prl 2026 0001"
    card = await open_card(officer, p.code, f"/tinjau {loose}")
    assert "Lampu jalan gang Kenanga" in card.text
    await officer.send("/tinjau PRL-1999-0042")
    await officer.wait_message("PRL-1999-0042")
