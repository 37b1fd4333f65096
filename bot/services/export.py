"""The XLSX recap of a fiscal year for an officer's area (``/ekspor``) or the command line
(``prolita-bot export``): an "Info" sheet (programme, year, area, generated at, totals), "Usulan"
(one row per proposal), "RAB" (one row per budget line) and "Rekap kelurahan" (one row per kelurahan).

Listed: proposals of the fiscal year that have a code (sent at least once); drafts never are.
Rejected and withdrawn proposals are listed with their status but left out of every total.
Realised spending is the completion's realised amount for *selesai*, and the spending of the latest
progress report (verified or not) while the work is in progress.

Queries stream in batches (keyset pagination), and the workbook is openpyxl's write-only mode, so
100,000 proposals take bounded memory. The openpyxl writing runs in a worker thread
(``asyncio.to_thread``) so the bot keeps answering others meanwhile.

The workbook's text is Indonesian whatever the exporting officer's chat language: it is an official
document of the programme that gets forwarded, printed and filed, and its column headers must stay
the same for everyone who builds formulas or pivot tables on them. So the sheet names, headers and
labels below are literal Indonesian strings, deliberately not gettext'd (the chat messages around
the file are).

No cell is ever a formula (CWE-1236): every string (titles, RAB descriptions and units, place and
category names, the programme's name) goes through :func:`bot.domain.spreadsheet.neutralise` (a
single quote in front of a leading ``=``, ``+``, ``-``, ``@``, tab or CR, as OWASP recommends) and is
written as a string cell (``data_type "s"``: openpyxl would otherwise store ``"=…"`` as a formula and
``"#N/A"`` as an error). Amounts, counts, percentages and dates stay numbers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.permissions import LEVEL_KECAMATAN, LEVEL_KELURAHAN, Forbidden, Scope
from bot.domain.spreadsheet import neutralise
from bot.domain.timefmt import tz_abbreviation
from bot.domain.workflow import (
    DIAJUKAN,
    DISETUJUI,
    DITARIK,
    DITOLAK,
    DRAF,
    MENUNGGU_VERIFIKASI_SELESAI,
    PELAKSANAAN,
    PERLU_REVISI,
    SELESAI,
)
from bot.services import audit, programs
from bot.services.users import Roles
from storage.db import begin_write
from storage.models import (
    RT,
    Kecamatan,
    Kelurahan,
    Officer,
    Program,
    ProgressReport,
    Proposal,
    ProposalCompletion,
    RabLine,
)
from storage.repositories.wilayah import scope_filter

BATCH = 1000

# Statuses in the order of the workflow, with their label in the workbook.
STATUS_LABELS: dict[str, str] = {
    DIAJUKAN: "Diajukan",
    PERLU_REVISI: "Perlu revisi",
    DISETUJUI: "Disetujui",
    PELAKSANAAN: "Pelaksanaan",
    MENUNGGU_VERIFIKASI_SELESAI: "Menunggu verifikasi selesai",
    SELESAI: "Selesai",
    DITOLAK: "Ditolak",
    DITARIK: "Ditarik",
}
EXCLUDED = frozenset({DITOLAK, DITARIK})  # listed, never in a total
APPROVED = frozenset({DISETUJUI, PELAKSANAAN, MENUNGGU_VERIFIKASI_SELESAI, SELESAI})
IN_PROGRESS = frozenset({PELAKSANAAN, MENUNGGU_VERIFIKASI_SELESAI})

SHEET_INFO = "Info"
SHEET_PROPOSALS = "Usulan"
SHEET_RAB = "RAB"
SHEET_RECAP = "Rekap kelurahan"

MONEY = "#,##0"
PERCENT = "0.0%"
DATE = "dd/mm/yyyy"
DATETIME = "dd/mm/yyyy hh:mm"
VOLUME = "#,##0.###"

NOTE_REALISED = (
    "Realisasi: untuk usulan berstatus Selesai, jumlah realisasi yang diverifikasi saat penutupan; untuk "
    "usulan dalam pelaksanaan (Pelaksanaan, Menunggu verifikasi selesai), belanja menurut laporan progres "
    "terakhir (sudah atau belum diverifikasi); Disetujui tanpa laporan: 0."
)
NOTE_EXCLUDED = (
    "Usulan Ditolak dan Ditarik dicantumkan dengan statusnya tetapi tidak dihitung dalam total. "
    "Draf (belum pernah diajukan) tidak dicantumkan."
)
NOTE_ABSORPTION = "Serapan = realisasi ÷ total pagu (jumlah RT × pagu per RT)."
NOTE_RTS = "RT mengusulkan = RT yang mempunyai sedikitnya satu usulan yang dihitung (tidak ditolak/ditarik)."


# --- refusals and places --------------------------------------------------------------------------


class ScopeRevoked(Forbidden):
    """The user was an officer, but the appointment was revoked (``revoked_at``)."""

    def __init__(self, revoked_at: dt.datetime) -> None:
        super().__init__("scope_revoked")
        self.revoked_at = revoked_at


class NoProgram(LookupError):
    """No programme is set up for that fiscal year (so nothing was ever proposed in it)."""

    def __init__(self, year: int) -> None:
        super().__init__(year)
        self.year = year


class PlaceNotFound(LookupError):
    """``kind`` ("kelurahan" | "kecamatan") called ``name`` is unknown; ``known`` lists the names."""

    def __init__(self, kind: str, name: str, known: Sequence[str], *, ambiguous: bool = False) -> None:
        super().__init__(f"{kind} {name!r}")
        self.kind, self.name, self.known, self.ambiguous = kind, name, tuple(known), ambiguous


async def officer_scope(session: AsyncSession, actor_id: int, roles: Roles) -> Scope:
    """The area the user may export; Forbidden("not_officer") or ScopeRevoked, both audited."""
    if roles.scope is not None:
        return roles.scope
    revoked = await session.scalar(
        select(Officer)
        .where(Officer.user_id == actor_id, Officer.revoked_at.is_not(None))
        .order_by(Officer.revoked_at.desc())
        .limit(1)
    )
    reason = "not_officer" if revoked is None else "scope_revoked"
    await _deny(session, actor_id, reason)
    if revoked is None:
        raise Forbidden(reason)
    raise ScopeRevoked(revoked.revoked_at)


async def _deny(session: AsyncSession, actor_id: int, reason: str) -> None:
    await begin_write(session)
    audit.record(session, actor_id, "denied.export", "export", None, reason=reason)
    await session.commit()


def _norm(name: str) -> str:
    return re.sub(r"[\s\-_.]+", "", name.casefold().removeprefix("kel.").removeprefix("kec."))


async def scope_for_place(
    session: AsyncSession, *, kelurahan: str | None = None, kecamatan: str | None = None
) -> Scope:
    """The scope named on the command line (case, spaces and dashes ignored); city-wide by default."""
    if kelurahan:
        rows = (await session.execute(select(Kelurahan.id, Kelurahan.kecamatan_id, Kelurahan.name))).all()
        hits = [r for r in rows if _norm(r.name) == _norm(kelurahan)]
        if len(hits) != 1:
            raise PlaceNotFound("kelurahan", kelurahan, sorted({r.name for r in rows}), ambiguous=len(hits) > 1)
        return Scope.for_kelurahan(hits[0].kecamatan_id, hits[0].id)
    if kecamatan:
        rows = (await session.execute(select(Kecamatan.id, Kecamatan.name))).all()
        hits = [r for r in rows if _norm(r.name) == _norm(kecamatan)]
        if len(hits) != 1:
            raise PlaceNotFound("kecamatan", kecamatan, sorted(r.name for r in rows))
        return Scope.for_kecamatan(hits[0].id)
    return Scope.for_kota()


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.casefold()).strip("-") or "x"


async def describe_scope(session: AsyncSession, scope: Scope) -> tuple[str, str]:
    """(label for the workbook, slug for the file name) of a scope."""
    if scope.level == LEVEL_KELURAHAN:
        kel = await session.get(Kelurahan, scope.kelurahan_id)
        return f"Kelurahan {kel.name}, Kecamatan {kel.kecamatan.name}", "kel-" + slugify(kel.name)
    if scope.level == LEVEL_KECAMATAN:
        kec = await session.get(Kecamatan, scope.kecamatan_id)
        return f"Kecamatan {kec.name}", "kec-" + slugify(kec.name)
    return "Seluruh kota", "kota"


# --- rows and totals ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProposalRow:
    code: str
    kecamatan: str
    kelurahan: str
    rt: int
    category: str
    title: str
    amount: int
    status: str
    submitted: dt.date | None
    decided: dt.date | None
    started: dt.date | None  # first progress report
    completed: dt.date | None
    progress: int | None  # percent 0..100; None before approval
    realised: int | None  # None before approval and when excluded


@dataclass(frozen=True)
class RabRow:
    code: str
    kelurahan: str
    rt: int
    status: str
    position: int
    description: str
    volume: Decimal
    unit: str
    unit_price: int
    total: int


@dataclass
class Recap:
    """Totals of one kelurahan (or, as ``total``, of the whole export)."""

    kecamatan: str
    kelurahan: str
    rts: int = 0
    rts_with_proposals: int = 0
    by_status: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUS_LABELS, 0))
    ceiling: int = 0
    proposed: int = 0
    approved: int = 0
    realised: int = 0

    @property
    def listed(self) -> int:
        return sum(self.by_status.values())

    @property
    def counted(self) -> int:
        return sum(n for s, n in self.by_status.items() if s not in EXCLUDED)

    @property
    def absorption(self) -> float | None:
        """Realised ÷ ceiling (a fraction), None without a ceiling."""
        return self.realised / self.ceiling if self.ceiling else None

    def add(self, row: ProposalRow) -> None:
        self.by_status[row.status] = self.by_status.get(row.status, 0) + 1
        if row.status in EXCLUDED:
            return
        self.proposed += row.amount
        if row.status in APPROVED:
            self.approved += row.amount
            self.realised += row.realised or 0


@dataclass(frozen=True)
class Meta:
    program_name: str
    year: int
    budget_per_rt: int
    scope_label: str
    scope_slug: str
    generated_at: dt.datetime  # aware
    tz: str

    @property
    def filename(self) -> str:
        return f"rekap-{slugify(self.program_name)}-{self.year}-{self.scope_slug}.xlsx"

    @property
    def generated_local(self) -> dt.datetime:
        """Naive local time (Excel has no time zones)."""
        return self.generated_at.astimezone(ZoneInfo(self.tz)).replace(tzinfo=None, microsecond=0)


@dataclass
class Summary:
    meta: Meta
    total: Recap
    kelurahan: list[Recap]
    rab_lines: int = 0
    rab_total: int = 0  # of the counted proposals


# --- the workbook (pure: rows in, file out) ---------------------------------------------------------

PROPOSAL_COLUMNS: tuple[tuple[str, float, str | None], ...] = (
    ("Kode", 16, None),
    ("Kecamatan", 18, None),
    ("Kelurahan", 18, None),
    ("RT", 6, None),
    ("Kategori", 22, None),
    ("Judul", 40, None),
    ("Jumlah usulan (Rp)", 18, MONEY),
    ("Status", 26, None),
    ("Tgl diajukan", 13, DATE),
    ("Tgl keputusan", 13, DATE),
    ("Tgl mulai pelaksanaan", 13, DATE),
    ("Tgl selesai", 13, DATE),
    ("Progres (%)", 11, "0%"),
    ("Realisasi (Rp)", 18, MONEY),
)
RAB_COLUMNS: tuple[tuple[str, float, str | None], ...] = (
    ("Kode", 16, None),
    ("Kelurahan", 18, None),
    ("RT", 6, None),
    ("Status usulan", 26, None),
    ("No.", 5, None),
    ("Uraian", 40, None),
    ("Volume", 10, VOLUME),
    ("Satuan", 10, None),
    ("Harga satuan (Rp)", 16, MONEY),
    ("Jumlah (Rp)", 18, MONEY),
)
RECAP_COLUMNS: tuple[tuple[str, float, str | None], ...] = (
    ("Kecamatan", 18, None),
    ("Kelurahan", 18, None),
    ("Jumlah RT", 10, None),
    ("RT mengusulkan", 12, None),
    *((label, 12, None) for label in STATUS_LABELS.values()),
    ("Usulan dihitung", 12, None),
    ("Total pagu (Rp)", 18, MONEY),
    ("Diusulkan (Rp)", 18, MONEY),
    ("Disetujui (Rp)", 18, MONEY),
    ("Realisasi (Rp)", 18, MONEY),
    ("Serapan (% pagu)", 12, PERCENT),
)


class RecapWorkbook:
    """The write-only workbook. Sheets are created up front (in their final order) and rows appended
    as they stream in; ``finish`` writes the recap and the Info sheet and saves.

    openpyxl is imported here, when a recap is made, not when the bot starts: it pulls in numpy
    (memory).

    Every value goes into a cell through :meth:`_value` or :meth:`_cell`, which make a string a
    neutralised string cell (see the module's docstring)."""

    def __init__(self) -> None:
        from openpyxl import Workbook
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Font

        self.bold = Font(bold=True)
        self.wb = Workbook(write_only=True)
        self.info = self.wb.create_sheet(SHEET_INFO)
        self._probe = WriteOnlyCell(self.info)  # never written: asks openpyxl how it would type a string
        self.info.column_dimensions["A"].width = 38
        self.info.column_dimensions["B"].width = 44
        self.proposals = self._table(SHEET_PROPOSALS, PROPOSAL_COLUMNS)
        self.rab = self._table(SHEET_RAB, RAB_COLUMNS)
        self.recap = self._table(SHEET_RECAP, RECAP_COLUMNS)
        self.rows = {SHEET_PROPOSALS: 1, SHEET_RAB: 1, SHEET_RECAP: 1}

    def _cell(self, ws: Any, value: Any) -> Any:
        """A cell holding ``value``; a string is neutralised and the cell forced to a string cell."""
        from openpyxl.cell import WriteOnlyCell

        if not isinstance(value, str):
            return WriteOnlyCell(ws, value=value)
        cell = WriteOnlyCell(ws, value=neutralise(value))
        cell.data_type = "s"  # after the value: assigning "=…" would have made it "f"
        return cell

    def _value(self, ws: Any, value: Any) -> Any:
        """``value`` for an unstyled cell: a string neutralised, and as a plain value (cheaper than a
        cell) only when openpyxl stores it as a string anyway, else as a cell forced to a string."""
        if not isinstance(value, str):
            return value
        text = neutralise(value)
        if text[:1] not in ("=", "#"):  # openpyxl types only "=…" (formula) and "#…" (error) otherwise
            return text
        self._probe.value = text
        return text if self._probe.data_type == "s" else self._cell(ws, text)

    def _table(self, title: str, columns: Sequence[tuple[str, float, str | None]]) -> Any:
        from openpyxl.styles import Alignment
        from openpyxl.utils import get_column_letter

        ws = self.wb.create_sheet(title)
        for i, (_label, width, _fmt) in enumerate(columns, start=1):
            ws.column_dimensions[get_column_letter(i)].width = width
        ws.freeze_panes = "A2"
        header = []
        for label, _w, _f in columns:
            cell = self._cell(ws, label)
            cell.font = self.bold
            cell.alignment = Alignment(wrap_text=True, vertical="top")
            header.append(cell)
        ws.append(header)
        return ws

    def _append(self, ws: Any, columns: Sequence[tuple[str, float, str | None]], values: Iterable[Any], bold=False):
        cells = []
        for (_label, _w, fmt), value in zip(columns, values, strict=True):
            if not bold and (fmt is None or value is None):
                cells.append(self._value(ws, value))  # a plain value is much cheaper than a styled cell
                continue
            cell = self._cell(ws, value)
            if fmt is not None and value is not None:
                cell.number_format = fmt
            if bold:
                cell.font = self.bold
            cells.append(cell)
        ws.append(cells)
        self.rows[ws.title] += 1

    def add_proposals(self, rows: Iterable[ProposalRow]) -> None:
        for r in rows:
            self._append(
                self.proposals,
                PROPOSAL_COLUMNS,
                (
                    r.code,
                    r.kecamatan,
                    r.kelurahan,
                    r.rt,
                    r.category,
                    r.title,
                    r.amount,
                    STATUS_LABELS.get(r.status, r.status),
                    r.submitted,
                    r.decided,
                    r.started,
                    r.completed,
                    None if r.progress is None else r.progress / 100,
                    r.realised,
                ),
            )

    def add_rab_lines(self, rows: Iterable[RabRow]) -> None:
        for r in rows:
            volume = int(r.volume) if r.volume == r.volume.to_integral_value() else float(r.volume)
            self._append(
                self.rab,
                RAB_COLUMNS,
                (
                    r.code,
                    r.kelurahan,
                    r.rt,
                    STATUS_LABELS.get(r.status, r.status),
                    r.position,
                    r.description,
                    volume,
                    r.unit,
                    r.unit_price,
                    r.total,
                ),
            )

    @staticmethod
    def _recap_values(r: Recap) -> list[Any]:
        return [
            r.kecamatan,
            r.kelurahan,
            r.rts,
            r.rts_with_proposals,
            *(r.by_status.get(s, 0) for s in STATUS_LABELS),
            r.counted,
            r.ceiling,
            r.proposed,
            r.approved,
            r.realised,
            r.absorption,
        ]

    def _note(self, ws: Any, text: str) -> None:
        from openpyxl.styles import Font

        cell = self._cell(ws, text)
        cell.font = Font(italic=True)
        ws.append([cell])

    def finish(self, summary: Summary, target: str | Path | IO[bytes]) -> None:
        from openpyxl.utils import get_column_letter

        # auto filters over the data rows (written after the rows in the XML, so they can come last)
        for ws, columns in ((self.proposals, PROPOSAL_COLUMNS), (self.rab, RAB_COLUMNS)):
            ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{max(self.rows[ws.title], 2)}"
        for r in summary.kelurahan:
            self._append(self.recap, RECAP_COLUMNS, self._recap_values(r))
        last = max(self.rows[SHEET_RECAP], 2)
        self.recap.auto_filter.ref = f"A1:{get_column_letter(len(RECAP_COLUMNS))}{last}"
        self._append(self.recap, RECAP_COLUMNS, self._recap_values(summary.total), bold=True)
        self.recap.append([])
        for note in (NOTE_REALISED, NOTE_ABSORPTION, NOTE_RTS, NOTE_EXCLUDED):
            self._note(self.recap, note)
        self._write_info(summary)
        self.wb.save(target)

    def _write_info(self, summary: Summary) -> None:
        from openpyxl.styles import Alignment, Font

        ws, meta, t = self.info, summary.meta, summary.total
        zone = tz_abbreviation(meta.tz, meta.generated_at)

        def row(label: str, value: Any, fmt: str | None = None) -> None:
            cell = self._cell(ws, value)
            if fmt is not None and value is not None:
                cell.number_format = fmt
            cell.alignment = Alignment(horizontal="left")
            ws.append([self._value(ws, label), cell])

        title = self._cell(ws, f"Rekap {meta.program_name} Tahun Anggaran {meta.year}")
        title.font = Font(bold=True, size=14)
        ws.append([title])
        ws.append([])
        row("Program", meta.program_name)
        row("Tahun anggaran", meta.year)
        row("Wilayah", meta.scope_label)
        row(f"Dibuat pada ({zone})", meta.generated_local, DATETIME)
        row("Pagu per RT (Rp)", meta.budget_per_rt, MONEY)
        ws.append([])
        row("Jumlah kelurahan", len(summary.kelurahan))
        row("Jumlah RT", t.rts)
        row("RT mengusulkan", t.rts_with_proposals)
        row("Usulan dicantumkan", t.listed)
        row("Usulan dihitung (tidak ditolak/ditarik)", t.counted)
        for status, label in STATUS_LABELS.items():
            row(f"  {label}", t.by_status.get(status, 0))
        ws.append([])
        row("Total pagu (Rp)", t.ceiling, MONEY)
        row("Total diusulkan (Rp)", t.proposed, MONEY)
        row("Total disetujui (Rp)", t.approved, MONEY)
        row("Total realisasi (Rp)", t.realised, MONEY)
        row("Serapan (% pagu)", t.absorption, PERCENT)
        row("Baris RAB", summary.rab_lines)
        row("Total RAB usulan dihitung (Rp)", summary.rab_total, MONEY)
        ws.append([])
        for note in (NOTE_EXCLUDED, NOTE_REALISED, NOTE_ABSORPTION, NOTE_RTS):
            self._note(ws, note)


# --- queries --------------------------------------------------------------------------------------


def _local_date(value: dt.datetime | None, tz: ZoneInfo) -> dt.date | None:
    return None if value is None else value.astimezone(tz).date()


async def _kelurahan_in_scope(session: AsyncSession, scope: Scope, budget_per_rt: int) -> dict[int, Recap]:
    rows = await session.execute(
        select(Kelurahan.id, Kecamatan.name, Kelurahan.name, func.count(RT.id))
        .join(Kecamatan, Kelurahan.kecamatan_id == Kecamatan.id)
        .outerjoin(RT, RT.kelurahan_id == Kelurahan.id)
        .where(scope_filter(scope))
        .group_by(Kelurahan.id, Kecamatan.name, Kelurahan.name)
        .order_by(Kecamatan.name, Kelurahan.name)
    )
    return {
        kel_id: Recap(kecamatan=kec, kelurahan=kel, rts=n, ceiling=n * budget_per_rt)
        for kel_id, kec, kel, n in rows.all()
    }


def _listed(year: int, scope: Scope):
    return (
        select(
            Proposal.id,
            Proposal.seq,
            Proposal.code,
            Proposal.status,
            Proposal.category_code,
            Proposal.title,
            Proposal.total_amount,
            Proposal.submitted_at,
            Proposal.decided_at,
            Proposal.rt_id,
            RT.number,
            Kelurahan.id.label("kelurahan_id"),
            Kelurahan.name.label("kelurahan"),
            Kecamatan.name.label("kecamatan"),
        )
        .join(RT, Proposal.rt_id == RT.id)
        .join(Kelurahan, RT.kelurahan_id == Kelurahan.id)
        .join(Kecamatan, Kelurahan.kecamatan_id == Kecamatan.id)
        .where(
            Proposal.fiscal_year == year,
            Proposal.code.is_not(None),
            Proposal.status != DRAF,
            scope_filter(scope),
        )
    )


async def count_listed(session: AsyncSession, year: int, scope: Scope) -> int:
    return await session.scalar(select(func.count()).select_from(_listed(year, scope).subquery())) or 0


async def _batches(session: AsyncSession, year: int, scope: Scope, size: int):
    """The listed proposals in code order (seq, id), ``size`` at a time (keyset pagination)."""
    last: tuple[int, int] | None = None
    stmt = _listed(year, scope).order_by(Proposal.seq, Proposal.id).limit(size)
    while True:
        page = stmt
        if last is not None:
            page = stmt.where(or_(Proposal.seq > last[0], and_(Proposal.seq == last[0], Proposal.id > last[1])))
        rows = (await session.execute(page)).all()
        if not rows:
            return
        yield rows
        if len(rows) < size:
            return
        last = (rows[-1].seq, rows[-1].id)


async def _batch_details(session: AsyncSession, ids: list[int], *, with_lines: bool = True):
    reports: dict[int, list[Any]] = {}
    for r in (
        await session.execute(
            select(
                ProgressReport.proposal_id,
                ProgressReport.percent,
                ProgressReport.spent_total,
                ProgressReport.created_at,
            )
            .where(ProgressReport.proposal_id.in_(ids))
            .order_by(ProgressReport.proposal_id, ProgressReport.created_at, ProgressReport.id)
        )
    ).all():
        reports.setdefault(r.proposal_id, []).append(r)
    completions = {
        c.proposal_id: c
        for c in (
            await session.execute(
                select(
                    ProposalCompletion.proposal_id, ProposalCompletion.realised_amount, ProposalCompletion.completed_at
                ).where(ProposalCompletion.proposal_id.in_(ids))
            )
        ).all()
    }
    if not with_lines:
        return reports, completions, {}
    lines = (
        await session.execute(
            select(
                RabLine.proposal_id,
                RabLine.position,
                RabLine.description,
                RabLine.volume,
                RabLine.unit,
                RabLine.unit_price,
                RabLine.total,
            )
            .where(RabLine.proposal_id.in_(ids))
            .order_by(RabLine.proposal_id, RabLine.position, RabLine.id)
        )
    ).all()
    by_proposal: dict[int, list[Any]] = {}
    for line in lines:
        by_proposal.setdefault(line.proposal_id, []).append(line)
    return reports, completions, by_proposal


def _proposal_row(p: Any, reports: list[Any], completion: Any, categories: dict[str, str], tz: ZoneInfo) -> ProposalRow:
    latest = reports[-1] if reports else None
    progress: int | None = None
    realised: int | None = None
    if p.status == SELESAI:
        progress = 100
        realised = completion.realised_amount if completion is not None else (latest.spent_total if latest else 0)
    elif p.status in IN_PROGRESS or p.status == DISETUJUI:
        progress = latest.percent if latest else 0
        realised = latest.spent_total if latest else 0
    return ProposalRow(
        code=p.code,
        kecamatan=p.kecamatan,
        kelurahan=p.kelurahan,
        rt=p.number,
        category=categories.get(p.category_code or "", p.category_code or ""),
        title=p.title or "",
        amount=p.total_amount,
        status=p.status,
        submitted=_local_date(p.submitted_at, tz),
        decided=_local_date(p.decided_at, tz),
        started=_local_date(reports[0].created_at, tz) if reports else None,
        completed=_local_date(completion.completed_at, tz) if completion is not None else None,
        progress=progress,
        realised=realised,
    )


ProgressCallback = Callable[[int, int], None]


async def kelurahan_recaps(session: AsyncSession, scope: Scope, year: int) -> list[Recap] | None:
    """The recap sheet's figures per kelurahan in ``scope`` (ceiling, proposed, approved, realised),
    without writing a workbook; None when ``year`` has no programme."""
    program: Program | None = await programs.get(session, year)
    if program is None:
        return None
    recaps = await _kelurahan_in_scope(session, scope, program.budget_per_rt)
    utc = ZoneInfo("UTC")  # dates are not part of the totals
    async for rows in _batches(session, year, scope, BATCH):
        reports, completions, _ = await _batch_details(session, [p.id for p in rows], with_lines=False)
        for p in rows:
            recap = recaps.get(p.kelurahan_id)
            if recap is not None:
                recap.add(_proposal_row(p, reports.get(p.id, []), completions.get(p.id), {}, utc))
    return list(recaps.values())


async def export(
    session: AsyncSession,
    scope: Scope,
    year: int,
    target: str | Path | IO[bytes],
    *,
    tz: str = "Asia/Makassar",
    now: dt.datetime | None = None,
    batch: int = BATCH,
    on_progress: ProgressCallback | None = None,
) -> Summary:
    """Write the recap of ``year`` in ``scope`` to ``target`` (a path or a binary file); raises NoProgram."""
    program: Program | None = await programs.get(session, year)
    if program is None:
        raise NoProgram(year)
    zone = ZoneInfo(tz)
    label, slug = await describe_scope(session, scope)
    meta = Meta(program.name, year, program.budget_per_rt, label, slug, now or dt.datetime.now(dt.UTC), tz)
    categories = {c.code: c.name for c in program.categories}
    recaps = await _kelurahan_in_scope(session, scope, program.budget_per_rt)
    total_listed = await count_listed(session, year, scope)
    book = await asyncio.to_thread(RecapWorkbook)
    summary = Summary(meta, Recap("TOTAL", ""), list(recaps.values()))
    rts_counted: dict[int, set[int]] = {}
    done = 0
    if on_progress is not None:
        on_progress(0, total_listed)
    async for rows in _batches(session, year, scope, batch):
        reports, completions, lines = await _batch_details(session, [p.id for p in rows])
        proposal_rows: list[ProposalRow] = []
        rab_rows: list[RabRow] = []
        for p in rows:
            row = _proposal_row(p, reports.get(p.id, []), completions.get(p.id), categories, zone)
            proposal_rows.append(row)
            recap = recaps.get(p.kelurahan_id)
            if recap is not None:
                recap.add(row)
            if p.status not in EXCLUDED:
                rts_counted.setdefault(p.kelurahan_id, set()).add(p.rt_id)
            for no, line in enumerate(lines.get(p.id, []), start=1):
                rab_rows.append(
                    RabRow(
                        p.code,
                        p.kelurahan,
                        p.number,
                        p.status,
                        no,
                        line.description,
                        Decimal(line.volume),
                        line.unit,
                        line.unit_price,
                        line.total,
                    )
                )
                summary.rab_lines += 1
                if p.status not in EXCLUDED:
                    summary.rab_total += line.total
        await asyncio.to_thread(book.add_proposals, proposal_rows)
        await asyncio.to_thread(book.add_rab_lines, rab_rows)
        done += len(rows)
        if on_progress is not None:
            on_progress(min(done, max(total_listed, done)), max(total_listed, done))
    t = summary.total
    for kel_id, recap in recaps.items():
        recap.rts_with_proposals = len(rts_counted.get(kel_id, ()))
        t.rts += recap.rts
        t.rts_with_proposals += recap.rts_with_proposals
        t.ceiling += recap.ceiling
        t.proposed += recap.proposed
        t.approved += recap.approved
        t.realised += recap.realised
        for status, n in recap.by_status.items():
            t.by_status[status] = t.by_status.get(status, 0) + n
    await asyncio.to_thread(book.finish, summary, target)
    return summary


async def record(session: AsyncSession, actor_id: int | None, summary: Summary, *, via: str) -> None:
    """The export in the audit log (who, which year and area, what totals)."""
    t = summary.total
    await begin_write(session)
    audit.record(
        session,
        actor_id,
        "export.xlsx",
        "export",
        summary.meta.filename,
        after={
            "year": summary.meta.year,
            "scope": summary.meta.scope_label,
            "proposals": t.listed,
            "proposed": t.proposed,
            "approved": t.approved,
            "realised": t.realised,
        },
        reason=via,
    )
    await session.commit()
