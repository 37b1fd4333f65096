"""Residents over HTTP against the real bot process: a code sent as plain text (in any form) or with
/cek returns the public card with its photos and nothing personal; an unknown code gets the closest
one as a button; HTML and SQL-ish text is answered safely; /jelajah goes kecamatan → kelurahan → RT
(paged) → the RT's proposals with ceiling / approved / remaining, opens a card and comes back."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.domain.timefmt import format_short_date
from bot.services import media, progress, proposals, review, users
from bot.services.progress import EvidenceFile
from fakeapi import make_jpeg
from handlers.public import PubCb
from storage.models import RT, AuditLog, Program, Proposal, ProposalEvent
from storage.repositories import wilayah
from tests.e2e.conftest import ADMIN_ID, t
from tests.e2e.test_review import World, seed, start_chat, submitted

pytestmark = pytest.mark.e2e

HEAD_NAME, HEAD_PHONE = "Budi Santoso", "+6281200000001"  # what tests.e2e.test_review.seed registers
STALE = "This button is no longer valid. Please use the latest message, or type /start."
WITA = ZoneInfo("Asia/Makassar")  # the bot's TIMEZONE


def entity_texts(message, kind: str) -> list[str]:
    """The texts a message shows with an entity of ``kind`` (offsets count UTF-16 code units)."""
    raw = (message.text or message.caption or "").encode("utf-16-le")
    entities = message.entities or message.caption_entities
    return [
        raw[2 * e["offset"] : 2 * (e["offset"] + e["length"])].decode("utf-16-le")
        for e in entities
        if e["type"] == kind
    ]


async def approve(db, w: World, officer, proposal_id: int, note: str | None = None) -> None:
    async with db(w.url) as s:
        roles = await users.load_roles(s, officer.id, (ADMIN_ID,))
        await review.decide(s, officer.id, roles, proposal_id, "setujui", note=note)


async def report(db, tg, w: World, proposal_id: int, percent: int, spent: int, photos: int, note: str) -> int:
    """A progress report by the Ketua RT with ``photos`` site photos known to the fake Telegram."""
    async with db(w.url) as s:
        files = []
        for i in range(photos):
            data = make_jpeg(color=(200, 40 * i + 20, 60), text=f"progres {percent} {i}")
            biggest = tg.world.store_photo(data)[-1]
            row = await media.save_media(s, w.store, biggest.data, "image/jpeg")
            exif, phash = await progress.analyse_photo(biggest.data)
            files.append(EvidenceFile(row, biggest.file_id, biggest.file_unique_id, exif, phash))
        r = await progress.report(
            s, w.head_id, proposal_id, percent=percent, spent_total=spent, note=note, photos=files
        )
        return r.id


def assert_nothing_personal(text: str, *people) -> None:
    for secret in (HEAD_NAME, "Budi", HEAD_PHONE, "62812", *(str(p.id) for p in people), "Rina", "Pak Joko"):
        assert secret not in text, secret


async def test_code_in_any_form_cek_and_bad_input(tg, launch, sqlite_url, db, tmp_path):
    await launch(sqlite_url)
    officer = tg.user("Rina", "Petugas", language_code="id")
    head = tg.user("Budi", language_code="id")
    warga = tg.user("Siti", language_code="id")
    await start_chat(officer, head, warga)
    w = await seed(db, sqlite_url, tmp_path, officer, head)
    p = await submitted(db, tg, w, "Semenisasi gang Mawar")
    await approve(db, w, officer, p.id, note="Disetujui Rina, hubungi Budi di 081200000001")
    await report(db, tg, w, p.id, 40, 1_500_000, photos=2, note="Dikerjakan Pak Joko")

    # A code typed loosely, as plain text outside any dialog: the public card, then the latest photos.
    year = p.fiscal_year  # the bot process's fiscal year (this year)
    assert p.code == f"PRL-{year}-0001"
    await warga.send(f"prl {year} 1")
    card = await warga.wait_message([p.code, "Semenisasi gang Mawar"])
    for seen in (
        "RT 05",
        "Api-Api",
        "Bontang Utara",
        "Infrastruktur fisik",
        "Rp 4.750.000",
        t("in progress"),
        "40%",
        "Rp 1.500.000",
    ):
        assert seen in card.text, seen
    # The public timeline: a bold "History" heading, then sent and approved with their local dates
    # (the progress report has its own section).
    async with db(sqlite_url) as s:
        events = (
            await s.scalars(select(ProposalEvent).where(ProposalEvent.proposal_id == p.id).order_by(ProposalEvent.id))
        ).all()
    dated = {e.action: format_short_date(e.at.astimezone(WITA).date()) for e in events}
    lines = card.text.split("\n")
    heading = lines.index(t("<b>History</b>"))
    assert lines[heading + 1 : heading + 3] == [
        f"• {dated['ajukan']} — {t('sent')}",
        f"• {dated['setujui']} — {t('approved')}",
    ]
    assert lines[heading + 3] == ""
    assert t("<b>History</b>") in entity_texts(card, "bold")
    assert_nothing_personal(card.text, officer, head)
    assert t("🗺 All proposals of {rt}").format(rt="RT 05") in card.button_texts
    album = await warga.wait_messages(2)
    assert all(m.photo for m in album) and album[0].media_group_id == album[1].media_group_id
    assert p.code in (album[0].caption or "")

    await warga.send(f"PRL{year}0001")
    await warga.wait_message([p.code, "Semenisasi gang Mawar", "40%"])
    await warga.wait_messages(2)

    # /cek without a code asks for it; an unknown code gets the closest one as a button.
    await warga.send("/cek")
    await warga.wait_message(
        t("Please type the proposal code, for example <code>{example}</code>.").format(example=p.code)
    )
    await warga.send(f"PRL-{year}-0009")
    unknown = await warga.wait_message(
        t("No proposal has the code <code>{code}</code>.").format(code=f"PRL-{year}-0009")
    )
    assert "Semenisasi gang Mawar" in unknown.text
    await warga.press(t("🔍 Open {code}").format(code=p.code), message=unknown)
    await warga.wait_message([p.code, "Semenisasi gang Mawar", "40%"])
    await warga.wait_messages(2)

    # A code of another year: explained, with the same number this year offered.
    await warga.send(f"/cek prl-{year - 1}-0001")
    other_year = await warga.wait_message(t("There are no proposals from {year}.").format(year=year - 1))
    assert t("🔍 Open {code}").format(code=p.code) in other_year.button_texts

    # In the /cek dialog, /jelajah still browses (and ends the dialog).
    await warga.send("/cek")
    await warga.wait_message(p.code)
    await warga.send("/jelajah")
    await warga.wait_message(["Bontang Utara", "Bontang Selatan"])

    # HTML and SQL-ish text: explained, shown back as plain text (never as markup), nothing harmed.
    await warga.send("/cek")
    await warga.wait_message(p.code)
    await warga.send("<b>halo</b>")
    reply = await warga.wait_message("<b>halo</b>")
    assert not any(e["type"] == "bold" and e["length"] == 4 for e in reply.entities)
    await warga.send("'; DROP TABLE proposals; --")
    await warga.wait_message("'; DROP TABLE proposals; --")
    await warga.send("PRL-26-1")  # looks like a code, but is incomplete
    await warga.wait_message(p.code)
    await warga.send(f"PRL {year} 0001")  # still in the /cek dialog: read as the code
    await warga.wait_message([p.code, "Semenisasi gang Mawar"])
    await warga.wait_messages(2)
    await warga.send("<i>apa kabar</i>")  # outside a dialog, not a code: the usual "not understood"
    await warga.wait_message(t("Sorry, I did not understand. Please use the buttons below, or type /bantuan for help."))
    async with db(sqlite_url) as s:
        assert await s.scalar(select(func.count()).select_from(Proposal)) == 1

    # A forged button for a proposal that is not public (a draft): refused and audited.
    async with db(sqlite_url) as s:
        program = await s.scalar(select(Program))
        draft = await proposals.create_draft(s, head.id, w.rt_id, program)
    answer = await warga.press(data=PubCb(action="card", id=draft.id).pack())
    assert answer.show_alert and answer.text == t(STALE)
    async with db(sqlite_url) as s:
        denied = await s.scalar(select(AuditLog).where(AuditLog.action == "denied.stale_button"))
        assert denied.actor_id == warga.id and f"pub:card:{draft.id}" in denied.reason


async def test_browse_down_to_an_rt_and_open_a_proposal(tg, launch, sqlite_url, db, tmp_path):
    await launch(sqlite_url)
    officer = tg.user("Rina", "Petugas", language_code="id")
    head = tg.user("Budi", language_code="id")
    warga = tg.user("Andi", language_code="id")
    await start_chat(officer, head, warga)
    w = await seed(db, sqlite_url, tmp_path, officer, head)
    p1 = await submitted(db, tg, w, "Semenisasi gang Mawar")
    await approve(db, w, officer, p1.id)
    p2 = await submitted(db, tg, w, "Pelatihan <b>UMKM</b> & 'kue'")

    await warga.press(t("🗺 Browse RTs"))  # the residents' menu button, like /jelajah
    places = await warga.wait_message("Bontang Utara")
    await warga.press("Bontang Utara", message=places)
    kel = await warga.wait_edit(places, contains="Api-Api")
    async with db(sqlite_url) as s:
        n_rts = len(await wilayah.list_rts(s, (await s.get(RT, w.rt_id)).kelurahan_id))
    line = t(
        "{rts} RT · {proposals} proposal(s), {approved} approved · approved {approved_total} · realised {realised}"
    )
    assert line.format(rts=n_rts, proposals=2, approved=1, approved_total="Rp 4.750.000", realised="Rp 0") in kel.text
    await warga.press("Api-Api", message=kel)
    rts = await warga.wait_edit(kel, contains="RT 05 (2)")
    assert n_rts > 24 and "RT 01" in rts.button_texts and "RT 25" not in rts.button_texts  # 24 per page
    await warga.press(t("Next ▶"), message=rts)
    page2 = await warga.wait_edit(rts, contains=f"RT {n_rts:02d}")
    await warga.press(t("◀ Previous"), message=page2)
    rts = await warga.wait_edit(page2, contains="RT 05 (2)")
    await warga.press("RT 05 (2)", message=rts)
    rt = await warga.wait_edit(rts, contains=p1.code)
    for seen in (
        t("Ceiling: {amount}").format(amount="Rp 50.000.000"),
        t("Approved: {amount}").format(amount="Rp 4.750.000"),
        t("Waiting for a decision: {amount}").format(amount="Rp 4.750.000"),
        t("Remaining: <b>{amount}</b>").format(amount="Rp 40.500.000"),
        p2.code,
        "Pelatihan <b>UMKM</b> & 'kue'",
    ):  # the title shown as typed, not as markup
        assert seen in rt.text, seen
    assert_nothing_personal(rt.text, officer, head)

    await warga.press(f"{p1.code} · Semenisasi gang Mawar", message=rt)
    card = await warga.wait_edit(rt, contains=[p1.code, t("approved"), t("No progress report yet.")])
    assert_nothing_personal(card.text, officer, head)
    photo = await warga.wait_message(predicate=lambda m: bool(m.photo))  # before any report: the site before
    assert p1.code in (photo.caption or "")
    await warga.press(t("⬅️ Back"), message=card)
    rt = await warga.wait_edit(card, contains=t("Ceiling: {amount}").format(amount="Rp 50.000.000"))
    await warga.press(t("⬅️ Back"), message=rt)
    rts = await warga.wait_edit(rt, contains="RT 05 (2)")
    await warga.press(t("⬅️ Back"), message=rts)
    kel = await warga.wait_edit(rts, contains="Api-Api")
    await warga.press(t("⬅️ Back"), message=kel)
    await warga.wait_edit(kel, contains="Bontang Selatan")

    # The waiting proposal's card: amount requested, no progress section; a forged RT id is refused.
    await warga.send(f"/cek {p2.code.lower()}")
    card2 = await warga.wait_message([p2.code, t("submitted, waiting for review")])
    assert "Pelatihan <b>UMKM</b> & 'kue'" in card2.text and t("<b>Progress</b>") not in card2.text
    answer = await warga.press(data=PubCb(action="rt", id=987_654).pack())
    assert answer.show_alert and answer.text == t(STALE)
