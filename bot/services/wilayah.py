"""Master data import: kecamatan -> kelurahan -> RT from a CSV (``kecamatan,kelurahan,rt``).

The whole file is validated before anything is written; one bad row means nothing is written and
every problem is reported with its line number (the header is line 1). A good file is written in
one transaction, skipping RTs that already exist, so re-importing the same file changes nothing.

Names are matched to existing rows tolerantly (``"Kel. Api Api"`` is ``"Api-Api"``); names that do
not exist yet are created with the file's spelling (minus a ``Kel.``/``Kecamatan`` style prefix), so
another city is just another CSV. Messages are in English for the IT officer running the import.
"""

from __future__ import annotations

import asyncio
import csv
import inspect
import io
import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain.wilayah import RT_MAX, RT_MIN, normalize_place, parse_rt_number
from storage.db import begin_write
from storage.models import RT, Kecamatan, Kelurahan

__all__ = ["COLUMNS", "SAMPLE_CSV", "ImportReport", "ensure_sample_wilayah", "import_csv"]

SAMPLE_CSV = Path(__file__).resolve().parent.parent / "data" / "wilayah_bontang.csv"
COLUMNS = ("kecamatan", "kelurahan", "rt")
NAME_MAX = 80  # kecamatan.name / kelurahan.name column length
_CHUNK = 100

# on_progress(done, total): a plain function or a coroutine function.
ProgressCallback = Callable[[int, int], object]

_DISPLAY_PREFIX_RE = re.compile(r"^(?:kelurahan|kecamatan|kel|kec|desa)(?:\s*\.\s*|\s+)(?=\S)", re.IGNORECASE)


def _norm(name: str) -> str:
    return normalize_place(name)


def _display(name: str) -> str:
    """The spelling stored for a new name: the file's, without an administrative prefix."""
    s = " ".join(unicodedata.normalize("NFKC", name).split())
    while True:
        stripped = _DISPLAY_PREFIX_RE.sub("", s)
        if stripped == s:
            return s
        s = stripped


@dataclass
class ImportReport:
    written: bool = False
    rows: int = 0  # data rows read (blank lines not counted)
    kecamatan_created: int = 0
    kecamatan_present: int = 0
    kelurahan_created: int = 0
    kelurahan_present: int = 0
    rt_created: int = 0
    rt_present: int = 0
    duplicates: int = 0  # rows repeating an earlier row of the same file (not an error)
    errors: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        if self.errors:
            return f"{len(self.errors)} error(s) in {self.rows} row(s); nothing was written."
        verb = "Imported" if self.written else "Checked (nothing written)"
        return (
            f"{verb}: {self.rows} row(s); kecamatan {self.kecamatan_created} new, "
            f"{self.kecamatan_present} present; kelurahan {self.kelurahan_created} new, "
            f"{self.kelurahan_present} present; RT {self.rt_created} new, {self.rt_present} present; "
            f"{self.duplicates} duplicate row(s)."
        )


@dataclass(frozen=True)
class _Row:
    line: int
    kec_key: str
    kec_name: str
    kel_key: str
    kel_name: str
    rt: int


class _BadFile(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


# --- reading and validation (no database) ---------------------------------------------------------


async def _load_text(source: str | bytes | os.PathLike[str]) -> str:
    """``bytes`` are file contents; a ``str`` with a line break is CSV text; else it is a path."""
    if isinstance(source, str) and ("\n" in source or "\r" in source):
        return source.removeprefix("\ufeff")
    if isinstance(source, bytes):
        raw = source
    else:
        raw = await asyncio.to_thread(Path(source).read_bytes)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise _BadFile(line, "the file is not UTF-8 text; save it as 'CSV UTF-8' and try again") from exc


def _delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > counts[","] else ","


def _parse(content: str, report: ImportReport) -> list[_Row]:
    """Rows of the file, one per distinct RT; problems go to ``report.errors``."""
    reader_line = [1]
    try:
        return _parse_rows(content, report, reader_line)
    except csv.Error as exc:  # NUL bytes, a field over the csv size limit, ...
        report.errors.append((reader_line[0], f"the file cannot be read as CSV here: {exc}"))
        return []


def _parse_rows(content: str, report: ImportReport, reader_line: list[int]) -> list[_Row]:
    lines = content.splitlines()
    first = next((ln for ln in lines if ln.strip()), None)
    if first is None:
        report.errors.append((1, "the file is empty; expected a header line 'kecamatan,kelurahan,rt'"))
        return []
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=_delimiter(first))

    header: list[str] | None = None
    for cells in reader:
        if any(c.strip() for c in cells):
            header = [c.strip().removeprefix("\ufeff").casefold() for c in cells]
            break
    assert header is not None  # a non-blank line exists
    header_line = reader.line_num
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        report.errors.append(
            (
                header_line,
                f"the header is missing column(s) {', '.join(missing)}; "
                f"expected the columns {', '.join(COLUMNS)} (found: {', '.join(header) or 'nothing'})",
            )
        )
        return []
    idx = {c: header.index(c) for c in COLUMNS}

    rows: list[_Row] = []
    seen: set[tuple[str, str, int]] = set()
    home: dict[str, tuple[str, str, int]] = {}  # kelurahan key -> (kecamatan key, name, line)
    for cells in reader:
        line = reader_line[0] = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        report.rows += 1
        absent = [c for c in COLUMNS if idx[c] >= len(cells)]
        if absent:
            report.errors.append(
                (line, f"missing column(s) {', '.join(absent)} (the row has {len(cells)} of {len(header)})")
            )
            continue
        kec_raw, kel_raw, rt_raw = (cells[idx[c]].strip() for c in COLUMNS)
        problems: list[str] = []
        kec_key, kel_key = _norm(kec_raw), _norm(kel_raw)
        for what, raw, key in (("kecamatan", kec_raw, kec_key), ("kelurahan", kel_raw, kel_key)):
            if not key:
                problems.append(f"empty {what}" + (f" name {raw!r}" if raw else ""))
            elif any(unicodedata.category(ch) == "Cc" for ch in raw):
                problems.append(f"{what} name contains control characters")
            elif len(_display(raw)) > NAME_MAX:
                problems.append(f"{what} name is longer than {NAME_MAX} characters")
        rt = parse_rt_number(rt_raw)
        if rt is None:
            shown = repr(rt_raw) if rt_raw else "(empty)"
            problems.append(
                f"bad RT number {shown}: expected a number from {RT_MIN} to {RT_MAX} such as 5, 05 or 'RT 05'"
            )
        if kec_key and kel_key and not problems:
            first_home = home.setdefault(kel_key, (kec_key, _display(kec_raw), line))
            if first_home[0] != kec_key:
                problems.append(
                    f"kelurahan {_display(kel_raw)!r} is listed under kecamatan {_display(kec_raw)!r} here "
                    f"but under {first_home[1]!r} on line {first_home[2]}; "
                    "a kelurahan belongs to one kecamatan only"
                )
        if problems:
            report.errors.extend((line, p) for p in problems)
            continue
        assert rt is not None
        if (kec_key, kel_key, rt) in seen:
            report.duplicates += 1
            continue
        seen.add((kec_key, kel_key, rt))
        rows.append(_Row(line, kec_key, _display(kec_raw), kel_key, _display(kel_raw), rt))
    if not report.rows and not report.errors:
        report.errors.append((header_line, "the file has a header but no data rows"))
    return rows


# --- writing -------------------------------------------------------------------------------------


async def _progress(cb: ProgressCallback | None, done: int, total: int) -> None:
    if cb is None:
        return
    result = cb(done, total)
    if inspect.isawaitable(result):
        await result


async def _write(
    session: AsyncSession, rows: list[_Row], report: ImportReport, on_progress: ProgressCallback | None
) -> None:
    if session.get_bind().dialect.name == "postgresql":
        # Imports are rare: serialise them (readers are not blocked) so two at once cannot collide.
        await session.execute(text("LOCK TABLE kecamatan, kelurahan, rt IN SHARE ROW EXCLUSIVE MODE"))

    kec_ids: dict[str, int] = {}
    kec_names: dict[int, str] = {}
    for kec_id, name in (
        await session.execute(select(Kecamatan.id, Kecamatan.name).order_by(Kecamatan.id))
    ).all():
        kec_ids.setdefault(_norm(name), kec_id)
        kec_names[kec_id] = name
    kel_ids: dict[tuple[int, str], int] = {}
    kel_elsewhere: dict[str, list[int]] = {}  # kelurahan key -> kecamatan ids holding that name
    for kel_id, kec_id, name in (
        await session.execute(
            select(Kelurahan.id, Kelurahan.kecamatan_id, Kelurahan.name).order_by(Kelurahan.id)
        )
    ).all():
        kel_ids.setdefault((kec_id, _norm(name)), kel_id)
        kel_elsewhere.setdefault(_norm(name), []).append(kec_id)

    # kecamatan and kelurahan, in file order
    file_kec: dict[str, int] = {}
    file_kel: dict[str, int] = {}
    for row in rows:
        if row.kec_key not in file_kec:
            kec_id = kec_ids.get(row.kec_key)
            if kec_id is None:
                kec_id = await session.scalar(
                    insert(Kecamatan).values(name=row.kec_name).returning(Kecamatan.id)
                )
                assert kec_id is not None
                kec_ids[row.kec_key] = kec_id
                kec_names[kec_id] = row.kec_name
                report.kecamatan_created += 1
            else:
                report.kecamatan_present += 1
            file_kec[row.kec_key] = kec_id
        if row.kel_key not in file_kel:
            kec_id = file_kec[row.kec_key]
            kel_id = kel_ids.get((kec_id, row.kel_key))
            if kel_id is None:
                others = [k for k in kel_elsewhere.get(row.kel_key, []) if k != kec_id]
                if others:
                    report.warnings.append(
                        (
                            row.line,
                            f"kelurahan {row.kel_name!r} already exists under kecamatan "
                            f"{kec_names[others[0]]!r}; another one is created under {row.kec_name!r} "
                            "(check the kecamatan spelling if that is not intended)",
                        )
                    )
                kel_id = await session.scalar(
                    insert(Kelurahan).values(kecamatan_id=kec_id, name=row.kel_name).returning(Kelurahan.id)
                )
                assert kel_id is not None
                kel_ids[(kec_id, row.kel_key)] = kel_id
                report.kelurahan_created += 1
            else:
                report.kelurahan_present += 1
            file_kel[row.kel_key] = kel_id

    # RTs
    existing: set[tuple[int, int]] = set()
    ids = sorted(set(file_kel.values()))
    for start in range(0, len(ids), 500):
        existing.update(
            (kel_id, number)
            for kel_id, number in (
                await session.execute(
                    select(RT.kelurahan_id, RT.number).where(RT.kelurahan_id.in_(ids[start : start + 500]))
                )
            ).all()
        )
    total = len(rows)
    await _progress(on_progress, 0, total)
    pending: list[dict[str, int]] = []
    for done, row in enumerate(rows, start=1):
        kel_id = file_kel[row.kel_key]
        if (kel_id, row.rt) in existing:
            report.rt_present += 1
        else:
            pending.append({"kelurahan_id": kel_id, "number": row.rt})
            report.rt_created += 1
        if done % _CHUNK == 0 or done == total:
            if pending:
                await session.execute(insert(RT), pending)
                pending = []
            await _progress(on_progress, done, total)


async def import_csv(
    sessionmaker: async_sessionmaker[AsyncSession],
    path_or_text: str | bytes | os.PathLike[str],
    *,
    on_progress: ProgressCallback | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Validate the whole CSV, then (if it has no errors) write it in one transaction.

    ``path_or_text``: a path (``str``/``Path``), the file's bytes, or CSV text (a ``str`` with a line
    break). ``on_progress(done, total)`` (sync or async) is called while RTs are written. With
    ``dry_run`` everything is checked and counted but the transaction is rolled back. A missing file
    raises ``FileNotFoundError``; problems in the file are returned in ``ImportReport.errors``.
    """
    report = ImportReport()
    try:
        content = await _load_text(path_or_text)
    except _BadFile as exc:
        report.errors.append((exc.line, exc.message))
        return report
    rows = _parse(content, report)
    if report.errors:
        return report
    async with sessionmaker() as session:
        await begin_write(session)
        await _write(session, rows, report, on_progress)
        if dry_run:
            await session.rollback()
        else:
            await session.commit()
            report.written = True
    return report


async def ensure_sample_wilayah(sessionmaker: async_sessionmaker[AsyncSession]) -> ImportReport | None:
    """Import the bundled Bontang RT list if the database has no RT at all (first start)."""
    async with sessionmaker() as session:
        if await session.scalar(select(RT.id).limit(1)) is not None:
            return None
    return await import_csv(sessionmaker, SAMPLE_CSV)
