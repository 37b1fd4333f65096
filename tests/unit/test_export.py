"""The XLSX recap on SQLite and PostgreSQL: proposals across two kelurahan in every interesting status
(in progress, selesai, rejected, withdrawn, a draft that must not appear), the file opened with
openpyxl and every total checked against the database; a kelurahan officer's export leaves the other
kelurahan out; non-officers and revoked officers are refused (and audited); the CLI end to end."""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from bot.domain.permissions import Forbidden, Scope
from bot.services import export, officers, progress, proposals, review, users
from storage.db import create_engine, create_sessionmaker
from storage.migrate import upgrade
from storage.models import (
    RT,
    AuditLog,
    Kelurahan,
    Officer,
    ProgressReport,
    Proposal,
    ProposalCompletion,
    RabLine,
)
from tests.unit.test_progress_service import _roles, approved_proposal, good_photo
from tests.unit.test_proposals_service import (
    ADMIN,
    OFFICER_API,
    OFFICER_LOK,
    TODAY,
    YEAR,
    complete_proposal,
    setup_world,
)

ROOT = Path(__file__).resolve().parents[2]
APPROVED = ("disetujui", "pelaksanaan", "menunggu_verifikasi_selesai", "selesai")
EXCLUDED = ("ditolak", "ditarik")
NOW = dt.datetime(2026, 5, 4, 23, 30, tzinfo=dt.UTC)  # 07.30 WITA on 5 May


async def seed(sessionmaker, tmp_path):
    """Api-Api RT 1: in progress (50 %, Rp 2.000.000 spent) and a draft; RT 2: selesai (realised
    Rp 4.500.000); RT 3: rejected; RT 4: withdrawn; Loktuan RT 1: approved, no report yet."""
    w = await setup_world(sessionmaker, tmp_path, n_rts=4)
    officer = await _roles(sessionmaker, OFFICER_API)
    running = await approved_proposal(sessionmaker, w, 0)
    done = await approved_proposal(sessionmaker, w, 1, amount=6_000_000, title="Drainase")
    await approved_proposal(sessionmaker, w, -1, amount=12_345_678, category="ekonomi", title="Pelatihan UMKM")
    async with sessionmaker() as s:
        await progress.report(
            s, w.heads[0], running.id, percent=50, spent_total=2_000_000, photos=[await good_photo(s, w, 1)]
        )
        first = await progress.report(
            s, w.heads[1], done.id, percent=40, spent_total=1_000_000, photos=[await good_photo(s, w, 2)]
        )
        last = await progress.report(
            s, w.heads[1], done.id, percent=100, spent_total=4_500_000, photos=[await good_photo(s, w, 3)]
        )
        await progress.verify(s, OFFICER_API, officer, first.id, "terverifikasi")
        await progress.verify(s, OFFICER_API, officer, last.id, "terverifikasi")
        rejected = await complete_proposal(s, w, 2, amount=7_000_000, title="Gapura")
        rejected = await proposals.submit(s, w.heads[2], rejected.id, rejected.version, TODAY, admin_ids=(ADMIN,))
        await review.decide(s, OFFICER_API, officer, rejected.id, "tolak", note="Bukan prioritas")
        withdrawn = await complete_proposal(s, w, 3, amount=3_000_000, title="Posyandu")
        withdrawn = await proposals.submit(s, w.heads[3], withdrawn.id, withdrawn.version, TODAY, admin_ids=(ADMIN,))
        await proposals.withdraw(s, w.heads[3], withdrawn.id, "Batal", admin_ids=(ADMIN,))
        await complete_proposal(s, w, 0, amount=1_000_000, title="Masih draf")  # never submitted
    return w


async def expected(s, scope_kelurahan: str | None = None) -> dict[str, int]:
    """The totals straight from the database (independently of bot.services.export)."""
    listed = select(Proposal).join(RT).join(Kelurahan).where(Proposal.code.is_not(None), Proposal.fiscal_year == YEAR)
    if scope_kelurahan:
        listed = listed.where(Kelurahan.name == scope_kelurahan)
    rows = (await s.scalars(listed)).all()
    counted = [p for p in rows if p.status not in EXCLUDED]
    realised = 0
    for p in counted:
        if p.status == "selesai":
            realised += (await s.get(ProposalCompletion, p.id)).realised_amount
        elif p.status in APPROVED:
            latest = await s.scalar(
                select(ProgressReport)
                .where(ProgressReport.proposal_id == p.id)
                .order_by(ProgressReport.created_at.desc(), ProgressReport.id.desc())
                .limit(1)
            )
            realised += latest.spent_total if latest else 0
    rts = select(func.count(RT.id)).join(Kelurahan)
    if scope_kelurahan:
        rts = rts.where(Kelurahan.name == scope_kelurahan)
    n_rts = await s.scalar(rts)
    rab = await s.scalar(
        select(func.coalesce(func.sum(RabLine.total), 0)).where(RabLine.proposal_id.in_([p.id for p in counted]))
    )
    return {
        "codes": sorted(p.code for p in rows),
        "listed": len(rows),
        "counted": len(counted),
        "proposed": sum(p.total_amount for p in counted),
        "approved": sum(p.total_amount for p in counted if p.status in APPROVED),
        "realised": realised,
        "rts": n_rts,
        "rts_with": len({p.rt_id for p in counted}),
        "ceiling": n_rts * 50_000_000,
        "rab_lines": await s.scalar(
            select(func.count(RabLine.id)).where(RabLine.proposal_id.in_([p.id for p in rows]))
        ),
        "rab_total": rab,
    }


def table(ws) -> tuple[list[str], list[dict[str, object]]]:
    rows = list(ws.iter_rows(values_only=True))
    header = list(rows[0])
    return header, [dict(zip(header, r, strict=False)) for r in rows[1:]]


def info(ws) -> dict[str, object]:
    return {r[0]: r[1] for r in ws.iter_rows(values_only=True) if r and r[0] is not None and len(r) > 1}


async def run_export(sessionmaker, scope: Scope, **kw) -> tuple[export.Summary, object]:
    buf = io.BytesIO()
    async with sessionmaker() as s:
        summary = await export.export(s, scope, YEAR, buf, now=NOW, **kw)
    return summary, load_workbook(io.BytesIO(buf.getvalue()))


async def test_city_export_matches_the_database(sessionmaker, tmp_path):
    await seed(sessionmaker, tmp_path)
    seen: list[tuple[int, int]] = []
    summary, wb = await run_export(
        sessionmaker, Scope.for_kota(), batch=2, on_progress=lambda d, t: seen.append((d, t))
    )
    async with sessionmaker() as s:
        want = await expected(s)
    assert wb.sheetnames == ["Info", "Usulan", "RAB", "Rekap kelurahan"]
    assert seen[0] == (0, 5) and seen[-1] == (5, 5)  # streamed two at a time

    # Usulan: every listed proposal once, in code order; no draft; typed cells
    ws = wb["Usulan"]
    _header, rows = table(ws)
    assert [r["Kode"] for r in rows] == want["codes"]
    assert "Masih draf" not in [r["Judul"] for r in rows]
    by_title = {r["Judul"]: r for r in rows}
    assert by_title["Drainase"]["Status"] == "Selesai"
    assert (by_title["Drainase"]["Progres (%)"], by_title["Drainase"]["Realisasi (Rp)"]) == (1, 4_500_000)
    assert by_title["Semenisasi gang"]["Status"] == "Pelaksanaan"
    assert (by_title["Semenisasi gang"]["Progres (%)"], by_title["Semenisasi gang"]["Realisasi (Rp)"]) == (
        0.5,
        2_000_000,
    )
    assert by_title["Pelatihan UMKM"]["Kategori"] == "Ekonomi"
    assert (by_title["Pelatihan UMKM"]["Kelurahan"], by_title["Pelatihan UMKM"]["Realisasi (Rp)"]) == ("Loktuan", 0)
    assert by_title["Gapura"]["Status"] == "Ditolak" and by_title["Gapura"]["Realisasi (Rp)"] is None
    assert by_title["Posyandu"]["Status"] == "Ditarik"
    assert isinstance(by_title["Drainase"]["Tgl diajukan"], dt.datetime)  # a real date cell
    assert isinstance(by_title["Drainase"]["Tgl selesai"], dt.datetime)
    assert sum(r["Jumlah usulan (Rp)"] for r in rows if r["Status"] not in ("Ditolak", "Ditarik")) == want["proposed"]
    assert ws["A1"].font.b and ws.freeze_panes == "A2" and ws.auto_filter.ref == f"A1:N{len(rows) + 1}"
    assert ws["G2"].number_format == "#,##0" and isinstance(ws["G2"].value, int)
    assert ws["I2"].number_format == "dd/mm/yyyy"
    assert ws.column_dimensions["F"].width == 40

    # RAB: every line of every listed proposal; totals of the counted ones match
    _, lines = table(wb["RAB"])
    assert len(lines) == want["rab_lines"] == summary.rab_lines
    assert sum(r["Jumlah (Rp)"] for r in lines if r["Status usulan"] not in ("Ditolak", "Ditarik")) == want["rab_total"]
    semen = next(r for r in lines if r["Uraian"] == "Semen")
    assert (semen["Volume"], semen["Satuan"], semen["Harga satuan (Rp)"], semen["Jumlah (Rp)"]) == (
        50,
        "sak",
        65_000,
        3_250_000,
    )

    # Rekap kelurahan: a row per kelurahan in scope, then TOTAL, then the notes
    _, recap = table(wb["Rekap kelurahan"])
    kel = {r["Kelurahan"]: r for r in recap if r["Kecamatan"] not in (None, "TOTAL") and r["Kelurahan"]}
    total = next(r for r in recap if r["Kecamatan"] == "TOTAL")
    assert total["Jumlah RT"] == want["rts"] and total["Total pagu (Rp)"] == want["ceiling"]
    assert (total["Diusulkan (Rp)"], total["Disetujui (Rp)"], total["Realisasi (Rp)"]) == (
        want["proposed"],
        want["approved"],
        want["realised"],
    )
    assert total["RT mengusulkan"] == want["rts_with"]
    assert total["Usulan dihitung"] == want["counted"]
    assert (total["Ditolak"], total["Ditarik"], total["Selesai"], total["Pelaksanaan"], total["Disetujui"]) == (
        1,
        1,
        1,
        1,
        1,
    )
    assert total["Serapan (% pagu)"] == pytest.approx(want["realised"] / want["ceiling"])
    assert sum(r["Diusulkan (Rp)"] for r in kel.values()) == want["proposed"]
    async with sessionmaker() as s:
        api = await expected(s, "Api-Api")
        lok = await expected(s, "Loktuan")
    assert (kel["Api-Api"]["Diusulkan (Rp)"], kel["Api-Api"]["Realisasi (Rp)"], kel["Api-Api"]["Jumlah RT"]) == (
        api["proposed"],
        api["realised"],
        api["rts"],
    )
    assert (kel["Loktuan"]["Disetujui (Rp)"], kel["Loktuan"]["RT mengusulkan"]) == (lok["approved"], 1)
    notes = [
        r["Kecamatan"] for r in recap if isinstance(r["Kecamatan"], str) and r["Kecamatan"].startswith("Realisasi:")
    ]
    assert notes and "laporan progres terakhir" in notes[0]

    # Info: programme, year, scope, generated at (WITA), totals
    meta = info(wb["Info"])
    assert (meta["Program"], meta["Tahun anggaran"], meta["Wilayah"]) == ("Prolita", YEAR, "Seluruh kota")
    assert meta["Dibuat pada (WITA)"] == dt.datetime(2026, 5, 5, 7, 30)
    assert (meta["Total diusulkan (Rp)"], meta["Total disetujui (Rp)"], meta["Total realisasi (Rp)"]) == (
        want["proposed"],
        want["approved"],
        want["realised"],
    )
    assert (meta["Total pagu (Rp)"], meta["Usulan dicantumkan"]) == (want["ceiling"], want["listed"])
    assert summary.meta.filename == "rekap-prolita-2026-kota.xlsx"


async def test_kelurahan_officer_sees_only_their_kelurahan(sessionmaker, tmp_path):
    await seed(sessionmaker, tmp_path)
    roles = await _roles(sessionmaker, OFFICER_API)
    async with sessionmaker() as s:
        scope = await export.officer_scope(s, OFFICER_API, roles)
        want = await expected(s, "Api-Api")
    summary, wb = await run_export(sessionmaker, scope)
    _, rows = table(wb["Usulan"])
    assert [r["Kode"] for r in rows] == want["codes"]
    assert {r["Kelurahan"] for r in rows} == {"Api-Api"}
    _, recap = table(wb["Rekap kelurahan"])
    assert [r["Kelurahan"] for r in recap if r["Kecamatan"] == "Bontang Utara"] == ["Api-Api"]
    assert (summary.total.proposed, summary.total.realised, summary.total.rts) == (
        want["proposed"],
        want["realised"],
        want["rts"],
    )
    assert summary.meta.filename == "rekap-prolita-2026-kel-api-api.xlsx"
    assert info(wb["Info"])["Wilayah"] == "Kelurahan Api-Api, Kecamatan Bontang Utara"


async def test_non_officers_and_revoked_officers_are_refused_and_audited(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    async with sessionmaker() as s:
        with pytest.raises(Forbidden) as refused:
            await export.officer_scope(s, w.heads[0], await users.load_roles(s, w.heads[0], (ADMIN,)))
        assert refused.value.reason == "not_officer"
        officer_id = await s.scalar(select(Officer.id).where(Officer.user_id == OFFICER_LOK))
        await officers.revoke(s, ADMIN, (ADMIN,), officer_id)
        roles = await users.load_roles(s, OFFICER_LOK, (ADMIN,))
        with pytest.raises(export.ScopeRevoked) as revoked:
            await export.officer_scope(s, OFFICER_LOK, roles)
        assert revoked.value.revoked_at is not None
        denied = (await s.scalars(select(AuditLog).where(AuditLog.action == "denied.export"))).all()
        assert sorted((a.actor_id, a.reason) for a in denied) == sorted(
            [(w.heads[0], "not_officer"), (OFFICER_LOK, "scope_revoked")]
        )
        admin = await users.load_roles(s, ADMIN, (ADMIN,))
        assert await export.officer_scope(s, ADMIN, admin) == Scope.for_kota()


async def test_places_years_and_an_empty_area(sessionmaker, tmp_path):
    await setup_world(sessionmaker, tmp_path, n_rts=2)
    async with sessionmaker() as s:
        kel = await export.scope_for_place(s, kelurahan="api api")
        assert kel.level == "kelurahan"
        assert (await export.scope_for_place(s, kecamatan="BONTANG-UTARA")).level == "kecamatan"
        assert await export.scope_for_place(s) == Scope.for_kota()
        with pytest.raises(export.PlaceNotFound) as missing:
            await export.scope_for_place(s, kelurahan="Nowhere")
        assert "Loktuan" in missing.value.known
        with pytest.raises(export.NoProgram):
            await export.export(s, Scope.for_kota(), YEAR - 1, io.BytesIO())
    summary, wb = await run_export(sessionmaker, kel)  # no proposals at all: a valid file with zeros
    assert summary.total.listed == 0 and summary.total.ceiling == 2 * 50_000_000
    assert summary.total.absorption == 0
    assert table(wb["Usulan"])[1] == []


async def test_record_writes_the_audit_row(sessionmaker, tmp_path):
    await setup_world(sessionmaker, tmp_path, n_rts=1)
    summary, _ = await run_export(sessionmaker, Scope.for_kota())
    async with sessionmaker() as s:
        await export.record(s, OFFICER_API, summary, via="telegram")
        row = await s.scalar(select(AuditLog).where(AuditLog.action == "export.xlsx"))
    assert (row.actor_id, row.entity_id, row.reason, row.after["year"]) == (
        OFFICER_API,
        "rekap-prolita-2026-kota.xlsx",
        "telegram",
        YEAR,
    )


# --- the command line -------------------------------------------------------------------------------


def _cli(db_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DATABASE_", "PROGRAM_", "FISCAL_"))}
    env.update(DATABASE_URL=f"sqlite+aiosqlite:///{db_file}", PYTHONPATH=str(ROOT), LOG_LEVEL="WARNING")
    return subprocess.run(
        [sys.executable, "-m", "bot", "export", *args],
        cwd=db_file.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_cli_export(tmp_path):
    db_file = tmp_path / "cli.db"
    engine = create_engine(f"sqlite+aiosqlite:///{db_file}")
    await upgrade(engine)
    sm = create_sessionmaker(engine)
    try:
        await seed(sm, tmp_path)
        async with sm() as s:
            want = await expected(s, "Api-Api")
    finally:
        await engine.dispose()

    out = tmp_path / "recap.xlsx"
    done = _cli(db_file, "--year", str(YEAR), "--out", str(out), "--kelurahan", "Api-Api")
    assert done.returncode == 0, done.stderr
    assert "] 4/4 proposals" in done.stderr  # the progress bar
    assert "Kelurahan Api-Api" in done.stdout and "Rp 10.750.000" in done.stdout
    wb = load_workbook(out)
    meta = info(wb["Info"])
    assert (meta["Total diusulkan (Rp)"], meta["Total realisasi (Rp)"]) == (want["proposed"], want["realised"])
    assert not list(tmp_path.glob("*.part"))

    city = _cli(db_file, "--year", str(YEAR), "--out", str(tmp_path / "city.xlsx"))
    assert city.returncode == 0, city.stderr
    assert "Seluruh kota" in city.stdout

    unknown = _cli(db_file, "--year", str(YEAR), "--out", str(tmp_path / "x.xlsx"), "--kelurahan", "Nowhere")
    assert unknown.returncode == 2 and "kelurahan 'Nowhere' is not known" in unknown.stderr
    assert "Api-Api" in unknown.stderr
    no_year = _cli(db_file, "--year", "2019", "--out", str(tmp_path / "y.xlsx"))
    assert no_year.returncode == 1 and "no programme for the fiscal year 2019" in no_year.stderr
    bad_out = _cli(db_file, "--out", str(tmp_path / "recap.csv"))
    assert bad_out.returncode == 2 and ".xlsx" in bad_out.stderr
    assert not (tmp_path / "x.xlsx").exists() and not (tmp_path / "y.xlsx").exists()
