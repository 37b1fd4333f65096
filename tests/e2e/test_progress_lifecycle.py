"""A proposal from approval to *selesai* through the chat only, over HTTP against the real bot
process: the Ketua RT reports with /progres (photos sent as files, so their EXIF is kept), the
officer checks each report in /verifikasi_progres. The second report reuses a photo of the first
and has one taken far from the site: both come out flagged in the officer's card, the officer asks
for more evidence, the Ketua RT gets the note with a button and reports again; the 100 % report is
verified and the proposal closes with its realised amount and the unspent remainder."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from bot.domain import evidence
from fakeapi import make_pdf
from fakeapi.media import make_scene_jpeg
from handlers.common import short_day
from storage.models import AuditLog, ProgressReport, Proposal, ProposalCompletion
from tests.e2e.conftest import t
from tests.e2e.test_progress_report import APPROVED, NEAR, SITE, approval_seen, approved
from tests.e2e.test_review import seed, start_chat

pytestmark = pytest.mark.e2e

FAR = (SITE[0] + 0.0135, SITE[1])  # ~1.5 km north of the site


def photo(seed_: int, gps: tuple[float, float] = NEAR) -> bytes:
    taken = dt.datetime.now(evidence.WITA).replace(tzinfo=None, microsecond=0)
    return make_scene_jpeg(seed_, taken_at=taken, gps=gps)


async def report(head, code: str, percent: int, photos: list[bytes], spent: str, *, receipt: bytes | None, note: str):
    """One /progres report through the chat; ``receipt`` None: the spending did not change."""
    await head.wait_message(code)
    await head.wait_message(predicate=lambda m: "25%" in m.button_texts)
    await head.send(f"{percent}%")
    await head.wait_message("📎")
    await head.send_album([(f"lokasi-{percent}-{i}.jpg", data) for i, data in enumerate(photos, 1)])
    saved = await head.wait_message("📷", predicate=lambda m: str(len(photos)) in m.text, timeout=20)
    await head.press(t("➡️ Next"), message=saved)
    await head.wait_message(t("📍 Send my current location"))
    await head.press(t("📍 Send my current location"), location=NEAR)
    await head.wait_message(predicate=lambda m: t("Skip ➡️") in m.button_texts)  # the note
    await head.send(note)
    spending = await head.wait_message(APPROVED)
    if receipt is None:
        same = next(b for b in spending.button_texts if b.startswith(t("Same as last report: {amount}")[:10]))
        await head.press(same, message=spending)
        ask = await head.wait_message("nota/kuitansi")
        await head.press(t("Skip ➡️"), message=ask)
    else:
        await head.send(spent)
        await head.wait_message("nota/kuitansi")
        await head.send_document(receipt, file_name="nota.pdf", mime_type="application/pdf")
        saved = await head.wait_message("🧾")
        await head.press(t("➡️ Next"), message=saved)
    summary = await head.wait_message(t("📨 Send report"))
    await head.press(t("📨 Send report"), message=summary)
    await head.wait_message([code, f"{percent}%"])


async def open_report(officer, code: str, percent: int):
    """/verifikasi_progres: the overview image of the site photos, then the card of the report."""
    await officer.send("/verifikasi_progres")
    sheet = await officer.wait_message(code, predicate=lambda m: m.kind == "photo")
    card = await officer.wait_message([code, f"{percent}%"], predicate=lambda m: t("✅ Verified") in m.button_texts)
    return sheet, card


async def test_approval_to_selesai_with_flags_and_more_evidence(db_url, tg, launch, db, tmp_path):
    await launch(db_url)
    officer = tg.user("Rina", language_code="id")
    head = tg.user("Budi", language_code="id")
    await start_chat(officer, head)
    w = await seed(db, db_url, tmp_path, officer, head)
    p = await approved(db, tg, w, officer, "Semenisasi gang Mawar")
    await approval_seen(head, p)  # so that no "✅ … PRL-…" below is the approval arriving late
    first_photo = photo(31)

    # Report 1: 40 %, two good photos, Rp 1.500.000 with a receipt → verified.
    await head.send("/progres")
    await report(head, p.code, 40, [first_photo, photo(32)], "1,5jt", receipt=make_pdf("nota 1"), note="Mulai cor.")
    await officer.wait_message(["📸", p.code, "40%"])  # the officer is told of the new report
    _, card = await open_report(officer, p.code, 40)
    assert "🚩" not in card.text
    await officer.press(t("✅ Verified"), message=card)
    await officer.wait_message(predicate=lambda m: p.code in m.text and "✅" in m.text and not m.buttons)
    await head.wait_message([p.code, "✅"])

    # Report 2: 70 %, a photo taken 1.5 km away and the first report's photo again.
    await head.send("/progres")
    await report(head, p.code, 70, [photo(33, gps=FAR), first_photo], "3jt", receipt=make_pdf("nota 2"),
                 note="Sudah 70 meter.")  # fmt: skip
    sheet, card = await open_report(officer, p.code, 70)
    assert "🚩" in card.text
    far_line = t("taken {distance} from the proposal site").split("{")[0]
    assert f"{t('Photo {n}').format(n=1)}: {far_line}" in card.text and "1,5 km" in card.text
    reused_line = t("the same picture as in the report of {date} on {code}").split("{")[0]
    assert f"{t('Photo {n}').format(n=2)}: {reused_line}" in card.text
    assert sheet.caption == " ".join((
        t("🖼 Site photos of the report on {code} ({percent}%): {count}, numbered as in the checks.")
        .format(code=p.code, percent=70, count=2),
        t("Flagged photos are framed in red."),
    ))  # fmt: skip
    async with db(db_url) as s:
        second = await s.scalar(select(ProgressReport).where(ProgressReport.percent == 70))
        assert {(f["kind"], f["position"]) for f in second.flags} >= {
            (evidence.FAR_FROM_SITE, 0),
            (evidence.REUSED_PHOTO, 1),
        }

    # Minta bukti tambahan: the note goes to the Ketua RT, with a button to report again.
    await officer.press(t("📝 Ask for more evidence"), message=card)
    await officer.wait_message(predicate=lambda m: t("✖️ Cancel") in m.button_texts)
    asked = "Foto 1 bukan di lokasi dan foto 2 sama dengan laporan lalu. Mohon kirim foto baru."
    await officer.send(asked)
    await officer.wait_message([p.code, "📝"])
    notice = await head.wait_message("Foto 1 bukan di lokasi", predicate=lambda m: bool(m.buttons))
    await head.press(t("📈 Send a new report"), message=notice)
    await report(head, p.code, 70, [photo(34), photo(35)], "", receipt=None, note="Foto baru dari lokasi.")
    _, card = await open_report(officer, p.code, 70)
    assert "🚩" not in card.text
    # The new report's card says which request it answers, with the officer's note.
    answers = t("↩️ Sent after the request for more evidence on the {percent}% report ({date}): «{note}»")
    assert answers.format(percent=70, date=short_day(second.created_at), note=asked) in card.text
    await officer.press(t("✅ Verified"), message=card)
    await head.wait_message([p.code, "✅"])

    # Report 3: 100 %, Rp 4.500.000 → waiting for completion verification → verified: selesai.
    await head.send("/progres")
    await report(head, p.code, 100, [photo(36), photo(37)], "4,5jt", receipt=make_pdf("nota 3"), note="Selesai.")
    async with db(db_url) as s:
        assert (await s.get(Proposal, p.id)).status == "menunggu_verifikasi_selesai"
    _, card = await open_report(officer, p.code, 100)
    assert answers.split("{")[0] not in card.text  # the 70 % report before it was verified
    await officer.press(t("✅ Verified"), message=card)
    done = await head.wait_message(["Rp 4.500.000", "Rp 250.000"])
    assert p.code in done.text

    async with db(db_url) as s:
        final = await s.get(Proposal, p.id)
        assert final.status == "selesai"
        completion = await s.get(ProposalCompletion, p.id)
        assert (completion.realised_amount, completion.unspent, completion.verified_by) == (
            4_500_000,
            250_000,
            officer.id,
        )
        reports = (
            await s.scalars(
                select(ProgressReport).where(ProgressReport.proposal_id == p.id).order_by(ProgressReport.id)
            )
        ).all()
        assert [(r.percent, r.status) for r in reports] == [
            (40, "terverifikasi"),
            (70, "perlu_bukti"),
            (70, "terverifikasi"),
            (100, "terverifikasi"),
        ]
        assert reports[1].officer_note.startswith("Foto 1 bukan di lokasi")
        actions = [a.action for a in (await s.scalars(select(AuditLog).order_by(AuditLog.id))).all()]
        assert actions.count("progress.report") == 4 and "progress.minta_bukti" in actions

    # The officer's proposal card now shows the whole timeline and the close.
    await officer.send(f"/tinjau {p.code}")
    card = await officer.wait_message([p.code, t("<b>Progress</b>"), "100%"])
    assert "🏁" in card.text and "Rp 250.000" in card.text
