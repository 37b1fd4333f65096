"""The officer's verification of progress reports over HTTP against the real bot process:
/verifikasi_progres with the overview image and the card whose evidence checks are in plain words
(a far-away photo, a reused photo, one without EXIF, one taken before the approval); Terverifikasi;
Minta bukti tambahan with a note that reaches the Ketua RT; the 100 % report closing the proposal
with its realised amount; the proposal card's progress timeline; forged and late presses."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from bot.domain import evidence
from bot.services import media, progress, review, users
from bot.services.progress import EvidenceFile
from fakeapi.media import make_scene_jpeg
from handlers.common import short_day
from handlers.progress.callbacks import ProgCb
from handlers.progress.verify_render import VerifyProgressCb
from storage.models import AuditLog, Outbox, ProgressReport, Proposal, ProposalCompletion, ProposalEvent
from tests.e2e.conftest import ADMIN_ID, t
from tests.e2e.test_review import World, seed, start_chat, submitted

pytestmark = pytest.mark.e2e

SITE = (0.1335, 117.4988)  # where submitted() pins the work
NEAR = (SITE[0] + 0.0004, SITE[1] + 0.0003)  # ~55 m
FAR = (SITE[0] + 0.0135, SITE[1])  # ~1,5 km
OUT_OF_SCOPE = "This report is outside your area. The attempt was recorded."


def now_wita() -> dt.datetime:
    return dt.datetime.now(evidence.WITA).replace(tzinfo=None, microsecond=0)


async def approved(db, tg, w: World, officer, title: str) -> Proposal:
    p = await submitted(db, tg, w, title)
    async with db(w.url) as s:
        roles = await users.load_roles(s, officer.id, (ADMIN_ID,))
        return await review.decide(s, officer.id, roles, p.id, "setujui")


async def evidence_file(s, tg, w: World, data: bytes) -> EvidenceFile:
    """A photo sent uncompressed (EXIF kept), stored in the bot's MEDIA_DIR like the wizard does."""
    sent = tg.world.store_file(data, "document", file_name="foto.jpg", mime_type="image/jpeg")
    row = await media.save_media(s, w.store, data, "image/jpeg")
    exif, phash = await progress.analyse_photo(data)
    return EvidenceFile(row, sent.file_id, sent.file_unique_id, exif, phash)


async def reported(
    db, tg, w: World, p: Proposal, percent: int, spent: int, photos: list[bytes], **kw
) -> ProgressReport:
    async with db(w.url) as s:
        files = [await evidence_file(s, tg, w, data) for data in photos]
        receipts = [await evidence_file(s, tg, w, data) for data in kw.pop("receipts", [])]
        return await progress.report(
            s, w.head_id, p.id, percent=percent, spent_total=spent, photos=files, receipts=receipts,
            admin_ids=(ADMIN_ID,), **kw,
        )  # fmt: skip


def photo_flag(n: int, what: str) -> str:
    return t("{subject}: {what}").format(subject=t("Photo {n}").format(n=n), what=what)


async def test_flags_more_evidence_and_completion(db_url, tg, launch, db, tmp_path):
    await launch(db_url)
    officer = tg.user("Rina", language_code="id")
    head = tg.user("Budi", language_code="id")
    await start_chat(officer, head)
    w = await seed(db, db_url, tmp_path, officer, head)
    p = await approved(db, tg, w, officer, "Semenisasi gang Mawar")

    first = await reported(
        db, tg, w, p, 30, 1_000_000, [make_scene_jpeg(1, taken_at=now_wita(), gps=NEAR)],
        note="Pengecoran tahap 1", location=NEAR, receipts=[make_scene_jpeg(50)],
    )  # fmt: skip
    ten_days_ago = now_wita() - dt.timedelta(days=10)
    second = await reported(
        db,
        tg,
        w,
        p,
        60,
        2_500_000,
        [
            make_scene_jpeg(2, taken_at=now_wita(), gps=FAR),  # 1: far from the site
            make_scene_jpeg(1, taken_at=now_wita(), gps=NEAR),  # 2: the first report's photo again
            make_scene_jpeg(3),  # 3: no EXIF at all
            make_scene_jpeg(4, taken_at=ten_days_ago, gps=NEAR),  # 4: before approval
        ],
        location=NEAR,
    )
    async with db(db_url) as s:
        approval = await s.scalar(
            select(ProposalEvent).where(ProposalEvent.proposal_id == p.id, ProposalEvent.action == "setujui")
        )
    assert sorted(f["kind"] for f in second.flags) == sorted(
        [evidence.FAR_FROM_SITE, evidence.REUSED_PHOTO, evidence.NO_EXIF, evidence.TAKEN_BEFORE_APPROVAL]
    )
    for _ in range(2):  # the officer is told of both reports
        notice = await officer.wait_message([p.code, t("🔎 Check the report")], timeout=15)
    assert "60%" in notice.text

    await officer.send("/verifikasi_progres")
    await officer.wait_message(
        t("{count} progress report(s) waiting for your verification, oldest first:").format(count=2)
    )
    sheet1 = await officer.wait_message(predicate=lambda m: m.photo is not None)
    assert p.code in sheet1.caption
    card1 = await officer.wait_message([p.code, "30%", t("✅ Verified")])
    assert "Pengecoran tahap 1" in card1.text and "Budi Santoso" in card1.text
    assert t("✅ Evidence checks: nothing flagged.") in card1.text
    sheet2 = await officer.wait_message(predicate=lambda m: m.photo is not None)
    assert t("Flagged photos are framed in red.") in sheet2.caption
    card2 = await officer.wait_message([p.code, "60%", t("✅ Verified")])
    for seen in (
        "30% → 60%",
        "Rp 2.500.000",
        "Rp 4.750.000",
        photo_flag(1, t("taken {distance} from the proposal site").format(distance="1,5 km")),
        photo_flag(2, t("the same picture as in the report of {date} on {code}").format(
            date=short_day(first.created_at), code=p.code)),
        photo_flag(3, t("no capture time or GPS in the file (probably sent compressed)")),
        photo_flag(4, t("taken on {taken}, before the approval on {approved}").format(
            taken=short_day(ten_days_ago.replace(tzinfo=evidence.WITA)), approved=short_day(approval.at))),
    ):  # fmt: skip
        assert seen in card2.text, (seen, card2.text)
    assert t("🖼 Photos ({count})").format(count=4) in card2.button_texts

    # The photos as an album of the originals, the receipt of the first report.
    await officer.press(t("🖼 Photos ({count})").format(count=4), message=card2)
    # (notices of the seeded reports may still be arriving in between: only the photos count)
    album = [await officer.wait_message(predicate=lambda m: bool(m.photo) and bool(m.media_group_id)) for _ in range(4)]
    assert all(m.photo for m in album) and p.code in (album[0].caption or "")
    await officer.press(t("🧾 Receipts ({count})").format(count=1), message=card1)
    await officer.wait_message(predicate=lambda m: (m.photo or m.document) is not None)

    # Terverifikasi on the first report: the card says so, the Ketua RT is told.
    await officer.press(t("✅ Verified"), message=card1)
    decided = await officer.wait_edit(card1)
    assert "Rina" in decided.text and t("✅ Verified") not in decided.button_texts
    told = await head.wait_message([p.code, "30%"], timeout=15)
    assert "Semenisasi gang Mawar" in told.text

    # Minta bukti tambahan on the second: a sticker is not a note; the note goes to the Ketua RT.
    await officer.press(t("📝 Ask for more evidence"), message=card2)
    await officer.wait_message(p.code)
    await officer.send_sticker()
    await officer.wait_message(t("Please type the note as text, or /batal to stop."))
    await officer.send("Foto 1 bukan di lokasi; kirim foto dari gang Mawar.")
    decided = await officer.wait_edit(card2)
    assert "Foto 1 bukan di lokasi" in decided.text
    told = await head.wait_message([p.code, "Foto 1 bukan di lokasi; kirim foto dari gang Mawar."], timeout=15)
    button = next(b for b in told.buttons if b["text"] == t("📈 Send a new report"))
    assert button["callback_data"] == ProgCb(action="start", id=p.id).pack()

    # The 100 % report: the officer opens it from the notice and verifies it: the proposal is selesai.
    last = await reported(
        db, tg, w, p, 100, 4_500_000, [make_scene_jpeg(5, taken_at=now_wita(), gps=NEAR)], location=NEAR
    )
    notice = await officer.wait_message([p.code, "100%", t("🔎 Check the report")], timeout=15)
    await officer.press(t("🔎 Check the report"), message=notice)
    card3 = await officer.wait_message([p.code, "60% → 100%", t("✅ Verified")])
    # It answers the request for more evidence on the 60 % report: the card says so, with the note.
    answers = t("↩️ Sent after the request for more evidence on the {percent}% report ({date}): «{note}»")
    note = "Foto 1 bukan di lokasi; kirim foto dari gang Mawar."
    assert answers.format(percent=60, date=short_day(second.created_at), note=note) in card3.text
    assert answers.split("{")[0] not in card1.text + card2.text
    await officer.press(t("✅ Verified"), message=card3)
    decided = await officer.wait_edit(card3)
    assert "Rp 4.500.000" in decided.text and "Rp 250.000" in decided.text
    told = await head.wait_message([p.code, "Rp 4.500.000", "Rp 250.000"], timeout=15)
    async with db(db_url) as s:
        assert (await s.get(Proposal, p.id)).status == "selesai"
        done = await s.get(ProposalCompletion, p.id)
        assert (done.report_id, done.realised_amount, done.unspent, done.verified_by) == (
            last.id,
            4_500_000,
            250_000,
            officer.id,
        )
        statuses = dict((await s.execute(select(ProgressReport.id, ProgressReport.status))).all())
        assert statuses == {first.id: "terverifikasi", second.id: "perlu_bukti", last.id: "terverifikasi"}

    # The officer's proposal card now shows the progress timeline.
    await officer.send(f"/tinjau {p.code}")
    card = await officer.wait_message([p.code, t("<b>Progress</b>")])
    for seen in ("30%", "60%", "100%", t("🚩 {count} flag(s)").format(count=4), "Rp 250.000"):
        assert seen in card.text, seen


async def test_forged_and_late_presses(tg, launch, sqlite_url, db, tmp_path):
    await launch(sqlite_url)
    admin = tg.user("Admin", id=ADMIN_ID, language_code="id")
    officer = tg.user("Rina", language_code="id")
    other = tg.user("Tono", language_code="id")
    head = tg.user("Budi", language_code="id")
    resident = tg.user("Siti", language_code="id")
    await start_chat(admin, officer, other, head, resident)
    w = await seed(db, sqlite_url, tmp_path, officer, head, other=other)
    p = await approved(db, tg, w, officer, "Lampu jalan gang Anggrek")
    r = await reported(db, tg, w, p, 40, 1_000_000, [make_scene_jpeg(7, taken_at=now_wita(), gps=NEAR)])

    await resident.send("/verifikasi_progres")
    await resident.wait_message(t("This menu is for officers only."))
    await other.send("/verifikasi_progres")
    await other.wait_message(t("No progress reports are waiting for verification. 👍"))
    for action in ("ok", "more", "open", "foto"):
        answer = await other.press(data=VerifyProgressCb(action=action, id=r.id).pack())
        assert answer.show_alert and answer.text == t(OUT_OF_SCOPE), action
    answer = await head.press(data=VerifyProgressCb(action="ok", id=r.id).pack())  # a Ketua RT, too
    assert answer.show_alert and answer.text == t(OUT_OF_SCOPE)
    answer = await other.press(data="vp:ok:abc")  # garbage
    assert answer.answered
    answer = await officer.press(data=VerifyProgressCb(action="ok", id=r.id + 1000).pack())  # no such report
    assert answer.show_alert
    async with db(sqlite_url) as s:
        denied = (await s.scalars(select(AuditLog).where(AuditLog.action.like("denied.progress.%")))).all()
        assert sorted((d.action, d.actor_id) for d in denied) == sorted([
            ("denied.progress.terverifikasi", other.id),
            ("denied.progress.minta_bukti", other.id),
            ("denied.progress.view", other.id),
            ("denied.progress.view", other.id),
            ("denied.progress.terverifikasi", head.id),
        ])  # fmt: skip
        assert all(d.entity_id == str(r.id) and d.reason == "out_of_scope" for d in denied)
        assert not (await s.scalars(select(Outbox).where(Outbox.kind == "progress.verified"))).all()
        assert (await s.get(ProgressReport, r.id)).status == "menunggu"

    # The proposal's own code opens its pending report; the area's officer verifies it.
    await officer.send(f"/verifikasi_progres {p.code.lower()}")
    card = await officer.wait_message([p.code, "40%", t("✅ Verified")])
    await officer.press(t("✅ Verified"), message=card)
    await officer.wait_edit(card)
    # The admin (city-wide) pressing the old button later: told who decided, nothing changes.
    answer = await admin.press(data=VerifyProgressCb(action="more", id=r.id).pack())
    assert answer.show_alert and "Rina" in answer.text and t("✅ verified") in answer.text
    answer = await admin.press(data=VerifyProgressCb(action="ok", id=r.id).pack())
    assert answer.show_alert and "Rina" in answer.text
    async with db(sqlite_url) as s:
        row = await s.get(ProgressReport, r.id)
        assert (row.status, row.verified_by) == ("terverifikasi", officer.id)
