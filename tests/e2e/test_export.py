"""/ekspor over HTTP against the real bot process: an officer gets an .xlsx that openpyxl opens, with
the totals in the caption and in the file; the menu button does the same; a resident and a revoked
officer are refused in plain words; a year without a programme is explained; a title and RAB lines
typed as spreadsheet formulas are text in the file, never formulas (CWE-1236)."""

from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from bot.services import officers, review, users
from fakeapi import make_jpeg, make_pdf
from handlers.common import BTN_EXPORT
from storage.models import AuditLog, Officer
from tests.e2e.conftest import ADMIN_ID, t
from tests.e2e.test_proposal_wizard import seed_people
from tests.e2e.test_review import seed, start_chat, submitted

pytestmark = pytest.mark.e2e

PREPARING = "⏳ Preparing the Excel recap of {year}…"
NOT_OFFICER = "The Excel recap is for kelurahan, kecamatan and city officers only."
NO_PROGRAMME = "There is no programme for the fiscal year {year}, so there is nothing to export."
REVOKED = (
    "Your officer appointment was revoked on {date}, so you can no longer export recaps. "
    "If this is a mistake, please contact the programme admin."
)


def fragment(msgid: str, placeholder: str) -> str:
    """The longest piece of a translated message around its placeholder, to wait for."""
    return max(t(msgid).split(placeholder), key=len).strip()


async def test_officer_exports_and_others_are_refused(sqlite_url, tg, launch, db, tmp_path):
    await launch(sqlite_url)
    admin = tg.user("Admin", id=ADMIN_ID, language_code="id")
    officer = tg.user("Rina", "Petugas", language_code="id")
    head = tg.user("Budi", language_code="id")
    await start_chat(admin, officer, head)
    w = await seed(db, sqlite_url, tmp_path, officer, head)
    approved = await submitted(db, tg, w, "Semenisasi gang Mawar")
    pending = await submitted(db, tg, w, "Lampu jalan")
    async with db(sqlite_url) as s:
        roles = await users.load_roles(s, officer.id, (ADMIN_ID,))
        await review.decide(s, officer.id, roles, approved.id, "setujui")
    year = approved.fiscal_year

    officer.mark_read()
    await officer.send("/ekspor")
    await officer.wait_message(t(PREPARING).format(year=year))
    doc = await officer.wait_message(predicate=lambda m: m.document is not None, timeout=20)
    assert doc.document["file_name"] == f"rekap-prolita-{year}-kel-api-api.xlsx"
    assert "Rp 9.500.000" in doc.caption and "Rp 4.750.000" in doc.caption  # proposed; approved
    wb = load_workbook(io.BytesIO(await officer.download(doc)))
    assert wb.sheetnames == ["Info", "Usulan", "RAB", "Rekap kelurahan"]
    codes = [r[0] for r in wb["Usulan"].iter_rows(min_row=2, values_only=True)]
    assert codes == [approved.code, pending.code]
    meta = {r[0]: r[1] for r in wb["Info"].iter_rows(values_only=True) if r and len(r) > 1}
    assert (meta["Total diusulkan (Rp)"], meta["Total disetujui (Rp)"]) == (9_500_000, 4_750_000)

    await officer.send(t(BTN_EXPORT))  # the menu button
    await officer.wait_message(predicate=lambda m: m.document is not None, timeout=20)
    await officer.send(f"/ekspor {year - 7}")
    await officer.wait_message(t(NO_PROGRAMME).format(year=year - 7))  # said so, no file

    await head.send("/ekspor")
    await head.wait_message(t(NOT_OFFICER))

    async with db(sqlite_url) as s:
        officer_id = await s.scalar(select(Officer.id).where(Officer.user_id == officer.id))
        await officers.revoke(s, ADMIN_ID, (ADMIN_ID,), officer_id)
    officer.mark_read()
    await officer.send("/ekspor")
    await officer.wait_message(fragment(REVOKED, "{date}"))  # the revocation is named, with its date

    async with db(sqlite_url) as s:
        audit = (await s.scalars(select(AuditLog).where(AuditLog.action.like("%export%")))).all()
    assert sorted((a.action, a.actor_id) for a in audit) == sorted(
        [
            ("export.xlsx", officer.id),
            ("export.xlsx", officer.id),
            ("denied.export", head.id),
            ("denied.export", officer.id),
        ]
    )


FORMULA_TITLE = '=HYPERLINK("http://evil.example","klik")'
FORMULA_LINES = ("@SUM(A1) 2 sak x 65.000", "+1+1 1 ls x 50rb")


async def test_text_typed_as_formulas_is_never_a_formula_in_the_recap(db_url, tg, launch, db):
    """CWE-1236: a Ketua RT types a title and RAB lines that are spreadsheet formulas through the
    /usulan wizard; in the officer's /ekspor file no cell anywhere is a formula, the typed text is
    there as text with OWASP's quote in front, and the amounts are still numbers."""
    await launch(db_url)
    officer = tg.user("Rina", "Petugas", language_code="id")
    head = tg.user("Budi", language_code="id")
    await start_chat(officer, head)
    await seed_people(db, db_url, officer, [head])
    await head.wait_message("Budi Santoso", timeout=20)  # told of the verification before the wizard starts

    await head.send("/usulan")
    await head.wait_message(predicate=lambda m: "Infrastruktur fisik" in m.button_texts)
    await head.press("Infrastruktur fisik")
    await head.wait_message(t("Type a short <b>title</b>, e.g. <i>Semenisasi jalan gang RT 05</i>.")[:20])
    await head.send(FORMULA_TITLE)
    await head.send("-1+1 jalan gang rusak")
    await head.wait_message(t("📍 Send my current location"))
    await head.share_location(0.13370, 117.49500)
    await head.press(t("Skip ➡️"))
    await head.wait_message("Semen 50 sak x 65.000")
    await head.send("\n".join(FORMULA_LINES))
    await head.wait_message("Rp 180.000")  # 2 × 65.000 + 1 × 50.000
    await head.press(t("✅ Done, next"))
    await head.wait_message(t("Send <b>1 to 10 photos</b> of the site as it is now (several at once is fine). "
                              "Photos so far: {n}.")[:30])
    await head.send_photo(make_jpeg(text="1"))
    await head.wait_message("📷")
    await head.press(t("➡️ Next"))
    await head.wait_message("PDF")
    await head.send_document(make_pdf("Berita acara"), file_name="berita-acara.pdf", mime_type="application/pdf")
    await head.wait_message("1")
    await head.press(t("➡️ Next"))
    await head.send("20 orang")
    summary = await head.wait_message("HYPERLINK")
    await head.press(t("📨 Send"), message=summary)
    sent = await head.wait_message("PRL-")
    code = next(w for w in sent.text.split() if w.startswith("PRL-")).strip(".,:;()<>b/")

    officer.mark_read()
    await officer.send("/ekspor")
    doc = await officer.wait_message(predicate=lambda m: m.document is not None, timeout=20)
    wb = load_workbook(io.BytesIO(await officer.download(doc)))
    cells = [c for ws in wb for row in ws.iter_rows() for c in row if c.value is not None]
    formulas = [(c.parent.title, c.coordinate, c.value) for c in cells if c.data_type == "f"]
    assert not formulas
    assert all(c.data_type == "s" for c in cells if isinstance(c.value, str))
    [row] = wb["Usulan"].iter_rows(min_row=2, values_only=True)
    assert (row[0], row[5], row[6]) == (code, "'" + FORMULA_TITLE, 180_000)
    lines = [(r[5], r[6], r[7], r[9]) for r in wb["RAB"].iter_rows(min_row=2, values_only=True)]
    assert lines == [("'@SUM(A1)", 2, "sak", 130_000), ("'+1+1", 1, "ls", 50_000)]
