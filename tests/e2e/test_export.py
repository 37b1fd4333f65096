"""/ekspor over HTTP against the real bot process: an officer gets an .xlsx that openpyxl opens, with
the totals in the caption and in the file; the menu button does the same; a resident and a revoked
officer are refused in plain words; a year without a programme is explained."""

from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from bot.services import officers, review, users
from handlers.common import BTN_EXPORT
from storage.models import AuditLog, Officer
from tests.e2e.conftest import ADMIN_ID, t
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
