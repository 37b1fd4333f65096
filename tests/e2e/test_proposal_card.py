"""The Ketua RT's proposal card over HTTP against the real bot process: /usulanku lists the year's
proposals with a button each; the card shows the RAB, the history, the progress timeline and the
"report progress" button (approved / in progress), the latest report's photos, and — once the
work is verified complete — what was realised and what is unspent. Forged card buttons are refused."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.services import progress, users
from handlers.progress.callbacks import ProgCb
from handlers.proposals.card import CardCb
from storage.models import AuditLog
from tests.e2e.conftest import ADMIN_ID, t
from tests.e2e.test_public import STALE, approve, report
from tests.e2e.test_review import seed, start_chat, submitted

pytestmark = pytest.mark.e2e


async def test_rt_head_opens_cards_from_usulanku(tg, launch, sqlite_url, db, tmp_path):
    await launch(sqlite_url)
    officer = tg.user("Rina", "Petugas", language_code="id")
    head = tg.user("Budi", language_code="id")
    warga = tg.user("Siti", language_code="id")
    await start_chat(officer, head, warga)
    w = await seed(db, sqlite_url, tmp_path, officer, head)
    working = await submitted(db, tg, w, "Semenisasi gang Mawar")
    await approve(db, w, officer, working.id, note="Silakan mulai")
    await report(db, tg, w, working.id, 40, 1_500_000, photos=2, note="Tahap 1")
    waiting = await submitted(db, tg, w, "Pelatihan UMKM")
    done = await submitted(db, tg, w, "Lampu jalan gang Anggrek")
    await approve(db, w, officer, done.id)
    last = await report(db, tg, w, done.id, 100, 4_500_000, photos=1, note="Selesai")
    async with db(sqlite_url) as s:
        roles = await users.load_roles(s, officer.id, (ADMIN_ID,))
        await progress.verify(s, officer.id, roles, last, "terverifikasi")

    await head.send("/usulanku")
    listing = await head.wait_message([working.code, waiting.code, done.code, t("Tap a proposal to see its card.")])
    labels = {b["text"]: b["callback_data"] for b in listing.buttons}
    assert labels[f"📄 {working.code} · Semenisasi gang Mawar"] == CardCb(action="open", id=working.id).pack()

    # Approved and in progress: RAB, history (with the officer's note to them), progress, report button.
    await head.press(f"📄 {working.code} · Semenisasi gang Mawar", message=listing)
    card = await head.wait_message([working.code, t("in progress")])
    for seen in (
        "Infrastruktur fisik",
        "Rp 4.750.000",
        "Semen — 50 sak × Rp 65.000 = Rp 3.250.000",
        t("<b>History</b>"),
        t("approved") + ": Silakan mulai",
        t("<b>Progress</b>"),
        "40%",
        t("Realised so far: {spent} of {approved} ({share}%).").format(
            spent="Rp 1.500.000", approved="Rp 4.750.000", share=32
        ),
    ):
        assert seen in card.text, seen
    buttons = {b["text"]: b["callback_data"] for b in card.buttons}
    assert buttons[t("📈 Report progress")] == ProgCb(action="start", id=working.id).pack()
    await head.press(t("🖼 Photos ({count})").format(count=2), message=card)
    # The album's two photos (seeded notices may still be arriving in between: skip those).
    album = [await head.wait_message(predicate=lambda m: bool(m.photo)) for _ in range(2)]
    assert all(m.photo for m in album) and album[0].media_group_id == album[1].media_group_id

    # Waiting for review: no progress section, no report button.
    await head.press(f"📄 {waiting.code} · Pelatihan UMKM", message=listing)
    card = await head.wait_message([waiting.code, t("submitted, waiting for review")])
    assert t("<b>Progress</b>") not in card.text and not card.buttons

    # Completed: realised and unspent; nothing more to report.
    await head.press(f"📄 {done.code} · Lampu jalan gang Anggrek", message=listing)
    card = await head.wait_message([done.code, t("completed")])
    assert "Rp 4.500.000" in card.text and "Rp 250.000" in card.text
    assert t("📈 Report progress") not in card.button_texts

    # Someone else pressing a (forged) card button: refused and audited.
    answer = await warga.press(data=CardCb(action="open", id=working.id).pack())
    assert answer.show_alert and answer.text == t(STALE)
    answer = await warga.press(data=CardCb(action="foto", id=working.id).pack())
    assert answer.show_alert and answer.text == t(STALE)
    async with db(sqlite_url) as s:
        denied = (await s.scalars(select(AuditLog).where(AuditLog.action == "denied.stale_button"))).all()
        assert {d.actor_id for d in denied} == {warga.id}
