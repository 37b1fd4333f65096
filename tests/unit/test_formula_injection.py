"""CWE-1236 in the files the bot writes: the XLSX recap (read back with openpyxl: no formula, no error
cell, every string a string cell with OWASP's quote in front where it started like a formula;
numbers and dates still numbers) and the /dataku JSON (the same quote, numbers untouched)."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal

from openpyxl import Workbook, load_workbook

from bot.services import privacy
from bot.services.export import Meta, ProposalRow, RabRow, Recap, RecapWorkbook, Summary

EVIL_TITLE = '=HYPERLINK("http://evil.example","klik")'
NOW = dt.datetime(2026, 5, 4, 23, 30, tzinfo=dt.UTC)


def _workbook_bytes() -> bytes:
    book = RecapWorkbook()
    book.add_proposals(
        [
            ProposalRow(
                code="PRL-2026-0001",
                kecamatan="=Kec",
                kelurahan="@Kel",
                rt=5,
                category="+Kategori",
                title=EVIL_TITLE,
                amount=4_750_000,
                status="pelaksanaan",
                submitted=dt.date(2026, 3, 2),
                decided=dt.date(2026, 3, 9),
                started=None,
                completed=None,
                progress=50,
                realised=-1,  # a real (if odd) negative number stays a number
            ),
            ProposalRow("PRL-2026-0002", "Bontang Utara", "Api-Api", 6, "Ekonomi", "\tPelatihan", 1_000_000,
                        "diajukan", None, None, None, None, None, None),
        ]
    )
    book.add_rab_lines(
        [
            RabRow("PRL-2026-0001", "Api-Api", 5, "pelaksanaan", 1, "@SUM(A1)", Decimal(2), "=sak", 65_000, 130_000),
            RabRow("PRL-2026-0001", "Api-Api", 5, "pelaksanaan", 2, "+1+1", Decimal("2.5"), "-m3", 100_000, 250_000),
            RabRow("PRL-2026-0001", "Api-Api", 5, "pelaksanaan", 3, "#N/A", Decimal(1), "ls", 10_000, 10_000),
            RabRow("PRL-2026-0001", "Api-Api", 5, "pelaksanaan", 4, "-", Decimal(1), "＝1+1", 10_000, 10_000),
        ]
    )
    meta = Meta("=Prolita", 2026, 50_000_000, "-Seluruh kota", "kota", NOW, "Asia/Makassar")
    total = Recap("TOTAL", "")
    buf = io.BytesIO()
    book.finish(Summary(meta, total, [Recap("=Kec", "@Kel", rts=3, ceiling=150_000_000)]), buf)
    return buf.getvalue()


def test_openpyxl_alone_would_write_a_formula() -> None:
    """Why the writer has to care: a plain openpyxl cell given the title is a formula."""
    wb = Workbook()
    wb.active["A1"] = EVIL_TITLE
    wb.active["A2"] = "#N/A"
    assert (wb.active["A1"].data_type, wb.active["A2"].data_type) == ("f", "e")


def test_recap_workbook_has_no_formula_and_user_text_is_quoted() -> None:
    wb = load_workbook(io.BytesIO(_workbook_bytes()))
    cells = [c for ws in wb for row in ws.iter_rows() for c in row if c.value is not None]
    assert cells
    assert not [c.coordinate for c in cells if c.data_type in ("f", "e")]
    assert all(c.data_type == "s" for c in cells if isinstance(c.value, str))

    usulan = wb["Usulan"]
    assert [c.value for c in usulan[2]][:6] == ["PRL-2026-0001", "'=Kec", "'@Kel", 5, "'+Kategori", "'" + EVIL_TITLE]
    assert usulan["F3"].value == "'\tPelatihan"
    assert (usulan["G2"].value, usulan["G2"].data_type, usulan["N2"].value) == (4_750_000, "n", -1)
    assert usulan["M2"].value == 0.5 and isinstance(usulan["I2"].value, dt.datetime)

    rab = [[c.value for c in row] for row in wb["RAB"].iter_rows(min_row=2)]
    assert [(r[5], r[6], r[7]) for r in rab] == [
        ("'@SUM(A1)", 2, "'=sak"),
        ("'+1+1", 2.5, "'-m3"),
        ("#N/A", 1, "ls"),  # a string cell, not Excel's error value
        ("-", 1, "'＝1+1"),  # a lone dash is no formula and is left as it is
    ]
    assert wb["RAB"]["F4"].data_type == "s"

    recap = wb["Rekap kelurahan"]
    assert (recap["A2"].value, recap["B2"].value, recap["C2"].value) == ("'=Kec", "'@Kel", 3)
    info = {r[0]: r[1] for r in wb["Info"].iter_rows(values_only=True) if r and len(r) > 1}
    assert (info["Program"], info["Wilayah"], info["Pagu per RT (Rp)"]) == ("'=Prolita", "'-Seluruh kota", 50_000_000)


def test_dataku_json_quotes_formula_starts_and_keeps_numbers() -> None:
    export = {
        "generated_at": NOW,
        "user": {"telegram_id": 123, "first_name": "=Siti", "last_name": None},
        "rt_registrations": [{"full_name": "@Budi", "phone": "+6281200000001"}],
        "proposals": [{"title": EVIL_TITLE, "total_amount": 4_750_000}],
        "progress_reports": [{"note": "+1+1", "percent": 50, "spent_total": 0}],
        "aspirations": [{"text": "-2+3 lampu", "reason": "\tx", "location": [-0.13, 117.5]}],
        "dialogs": [{"data": {"offset": -3, "draft": "@SUM(A1)"}}],
    }
    data = json.loads(privacy.to_json(export))
    assert data["user"] == {"telegram_id": 123, "first_name": "'=Siti", "last_name": None}
    assert data["rt_registrations"] == [{"full_name": "'@Budi", "phone": "+6281200000001"}]
    assert data["proposals"] == [{"title": "'" + EVIL_TITLE, "total_amount": 4_750_000}]
    assert data["progress_reports"][0]["note"] == "'+1+1"
    assert data["aspirations"] == [{"text": "'-2+3 lampu", "reason": "'\tx", "location": [-0.13, 117.5]}]
    assert data["dialogs"] == [{"data": {"offset": -3, "draft": "'@SUM(A1)"}}]
    assert data["generated_at"] == NOW.isoformat()
