"""Data scale: a city-decade of data, then the reads that must stay fast on it.

    python -m bench.datascale                                  # 100,000 proposals, 500,000 reports, SQLite
    python -m bench.datascale --db postgresql
    python -m bench.datascale --proposals 1000 --reports 5000  # a quick look

The generator writes 10 fiscal years of proposals over Bontang's 499 RTs (PRL-YYYY-NNNN codes, 3 RAB
lines each, statuses as a decade would leave them, the current year still under review), progress
reports spread over the approved ones, and the proposal timeline events. Then a separate process (so
its peak RSS is the workload's, not the generator's) times, through the bot's own services:
status-by-code lookups (p50/p99 over 1,000 random codes, as /cek answers them: lookup + card), one
digest per officer, the full-year XLSX export of the current year city-wide, and the reused-photo
check of a new 10-photo report against every site photo stored (2 per generated report).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import func, insert, select, text

from bench.common import (
    ADMIN_ID,
    HEAD_ID_BASE,
    OFFICER_ID_BASE,
    ROOT,
    Latencies,
    fresh_database,
    machine,
    ms,
    peak_rss_mb,
    prepare,
    table,
    workdir,
)

YEARS = 10
LINES_PER_PROPOSAL = 3
PHOTOS_PER_REPORT = 2  # site photos with a perceptual hash each (one shared file: the bench needs only hashes)
REPORT_PHOTOS = 10  # photos of the new report whose reuse check is timed
REUSE_CHECKS = 20
CHUNK = 5000


@dataclass
class Generated:
    proposals: int = 0
    rab_lines: int = 0
    reports: int = 0
    photos: int = 0
    events: int = 0
    seconds: float = 0.0


@dataclass
class Measured:
    lookups: Latencies | None = None
    lookups_found: int = 0
    digests: Latencies | None = None
    digest_count: int = 0
    digests_total_s: float = 0.0
    export_s: float = 0.0
    export_rows: int = 0
    export_rab_lines: int = 0
    export_mb: float = 0.0
    reuse_checks: Latencies | None = None
    reuse_hashes: int = 0
    reuse_read: int = 0  # most stored hashes one check read (through the band indexes)
    peak_rss_mb: float = 0.0


@dataclass
class ScaleResult:
    db: str
    generated: Generated = field(default_factory=Generated)
    measured: Measured = field(default_factory=Measured)
    db_mb: float = 0.0


def _status(rng: random.Random, year: int, current: int) -> str:
    r = rng.random()
    if year == current:  # the year under way: much still waiting
        table_ = ((0.35, "diajukan"), (0.45, "perlu_revisi"), (0.65, "disetujui"), (0.85, "pelaksanaan"),
                  (0.92, "ditolak"), (0.97, "menunggu_verifikasi_selesai"), (1.0, "selesai"))  # fmt: skip
    else:
        table_ = ((0.02, "diajukan"), (0.05, "disetujui"), (0.10, "pelaksanaan"), (0.25, "ditolak"),
                  (0.28, "ditarik"), (0.30, "menunggu_verifikasi_selesai"), (1.0, "selesai"))  # fmt: skip
    return next(s for bound, s in table_ if r < bound)


REPORTED = frozenset({"disetujui", "pelaksanaan", "menunggu_verifikasi_selesai", "selesai"})
DECIDED = REPORTED | {"ditolak", "perlu_revisi"}


async def generate(url: str, n_proposals: int, n_reports: int, seed: int = 1) -> Generated:
    from bot.config import load_settings
    from bot.services import programs
    from storage.db import create_engine, create_sessionmaker
    from storage.models import (
        REG_VERIFIED,
        RT,
        SCOPE_KECAMATAN,
        SCOPE_KELURAHAN,
        SCOPE_KOTA,
        CodeSequence,
        Kelurahan,
        Media,
        Officer,
        ProgressMedia,
        ProgressReport,
        Proposal,
        ProposalEvent,
        RabLine,
        RTHead,
        User,
        phash_bands,
    )

    rng = random.Random(seed)
    started = time.perf_counter()
    out = Generated()
    settings = load_settings()
    current = settings.current_fiscal_year()
    years = list(range(current - YEARS + 1, current + 1))
    await prepare(url)
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as s:
            program_ids = {y: (await programs.ensure(s, settings, y)).id for y in years}
            rts = (await s.execute(select(RT.id, RT.kelurahan_id).order_by(RT.id))).all()
            kels = (await s.execute(select(Kelurahan.id, Kelurahan.kecamatan_id))).all()
            now = dt.datetime.now(dt.UTC)
            users = [{"id": ADMIN_ID, "first_name": "Admin"}]
            users += [{"id": HEAD_ID_BASE + i, "first_name": f"Ketua{i}"} for i in range(len(rts))]
            officers = []
            for kel_id, kec_id in kels:
                officers.append((OFFICER_ID_BASE + kel_id, SCOPE_KELURAHAN, kec_id, kel_id))
            for kec_id in sorted({k for _, k in kels}):
                officers.append((OFFICER_ID_BASE + 10_000 + kec_id, SCOPE_KECAMATAN, kec_id, None))
            officers.append((OFFICER_ID_BASE + 99_999, SCOPE_KOTA, None, None))
            users += [{"id": uid, "first_name": f"Petugas{uid}"} for uid, *_ in officers]
            await s.execute(insert(User), users)
            await s.execute(insert(Officer), [
                {"user_id": uid, "scope": sc, "kecamatan_id": kec, "kelurahan_id": kel, "appointed_by": ADMIN_ID,
                 "appointed_at": now} for uid, sc, kec, kel in officers
            ])  # fmt: skip
            await s.execute(insert(RTHead), [
                {"user_id": HEAD_ID_BASE + i, "rt_id": rt_id, "full_name": f"Ketua {i}", "phone": f"+62812{i:07d}",
                 "status": REG_VERIFIED, "decided_by": ADMIN_ID, "decided_at": now, "created_at": now}
                for i, (rt_id, _k) in enumerate(rts)
            ])  # fmt: skip
            media_id = (await s.execute(insert(Media).values(
                sha256="0" * 64, path="00/00/bench.jpg", mime="image/jpeg", size=1, created_at=now,
            ).returning(Media.id))).scalar_one()  # fmt: skip
            await s.commit()

            per_year = [n_proposals // YEARS + (1 if i < n_proposals % YEARS else 0) for i in range(YEARS)]
            reported_total = 0
            plan: list[tuple[int, int, str]] = []  # (year, seq, status)
            for year, count in zip(years, per_year, strict=True):
                for seq in range(1, count + 1):
                    status = _status(rng, year, current)
                    plan.append((year, seq, status))
                    reported_total += status in REPORTED
            base, extra = divmod(n_reports, max(1, reported_total))
            categories = ("infrastruktur", "sosbud", "ekonomi", "kespen")
            next_id = 1
            next_report_id = 1
            report_left_extra = extra
            for chunk_start in range(0, len(plan), CHUNK):
                props, lines, reports, events, photos = [], [], [], [], []
                for year, seq, status in plan[chunk_start : chunk_start + CHUNK]:
                    pid = next_id
                    next_id += 1
                    rt_index = rng.randrange(len(rts))
                    head = HEAD_ID_BASE + rt_index
                    jan1 = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
                    spread = 120 if year < current else max(1, (now - jan1).days)
                    created = jan1 + dt.timedelta(days=rng.randrange(spread), seconds=rng.randrange(86_400))
                    created = min(created, now - dt.timedelta(hours=1))
                    submitted = created + dt.timedelta(hours=rng.randrange(1, 48))
                    decided = submitted + dt.timedelta(days=rng.randrange(1, 10)) if status in DECIDED else None
                    if decided is not None and decided > now:
                        decided = now - dt.timedelta(minutes=5)
                    amounts = [rng.randrange(5, 200) * 50_000 for _ in range(LINES_PER_PROPOSAL)]
                    props.append({
                        "id": pid, "program_id": program_ids[year], "fiscal_year": year, "rt_id": rts[rt_index][0],
                        "created_by": head, "status": status, "code": f"PRL-{year}-{seq:04d}", "seq": seq,
                        "category_code": categories[seq % 4], "title": f"Usulan {seq} tahun {year}",
                        "description": "Perbaikan sarana lingkungan RT untuk warga.", "attendees": 20 + seq % 30,
                        "total_amount": sum(amounts), "version": 1, "submitted_at": submitted, "decided_at": decided,
                        "decided_by": OFFICER_ID_BASE + rts[rt_index][1] if decided else None,
                        "created_at": created, "updated_at": decided or submitted,
                    })  # fmt: skip
                    lines += [
                        {"proposal_id": pid, "position": pos, "description": f"Bahan {pos}", "volume": 10,
                         "unit": "unit", "unit_price": amount // 10, "total": amount}
                        for pos, amount in enumerate(amounts, 1)
                    ]  # fmt: skip
                    events.append({"proposal_id": pid, "at": submitted, "actor_id": head, "action": "ajukan",
                                   "from_status": "draf", "to_status": "diajukan"})  # fmt: skip
                    if decided is not None:
                        events.append({"proposal_id": pid, "at": decided, "actor_id": OFFICER_ID_BASE,
                                       "action": "tolak" if status == "ditolak" else "setujui",
                                       "from_status": "diajukan", "to_status": status})  # fmt: skip
                    if status in REPORTED:
                        k = base + (1 if report_left_extra > 0 else 0)
                        report_left_extra -= 1 if report_left_extra > 0 else 0
                        for r in range(k):
                            at = (decided or submitted) + dt.timedelta(days=3 * (r + 1), minutes=r)
                            for n in range(PHOTOS_PER_REPORT):
                                phash = f"{rng.getrandbits(64):016x}"
                                bands = dict(zip(("phash_b0", "phash_b1", "phash_b2", "phash_b3"), phash_bands(phash),
                                                 strict=True))  # as the model's validator sets them
                                photos.append({"report_id": next_report_id, "media_id": media_id,
                                               "kind": "foto_progres", "position": n, "phash": phash,
                                               "created_at": at, **bands})  # fmt: skip
                            reports.append({
                                "id": next_report_id, "proposal_id": pid, "reporter_id": head,
                                "percent": min(100, (r + 1) * 100 // k),
                                "note": "Pekerjaan berjalan.", "spent_total": sum(amounts) * (r + 1) // k, "flags": [],
                                "status": "terverifikasi" if r < k - 1 or status == "selesai" else "menunggu",
                                "created_at": min(at, now - dt.timedelta(minutes=1)),
                            })  # fmt: skip
                            next_report_id += 1
                await s.execute(insert(Proposal), props)
                tables = ((lines, RabLine), (events, ProposalEvent), (reports, ProgressReport), (photos, ProgressMedia))
                for rows_, model in tables:
                    for i in range(0, len(rows_), CHUNK):
                        await s.execute(insert(model), rows_[i : i + CHUNK])
                await s.commit()
                out.proposals += len(props)
                out.rab_lines += len(lines)
                out.reports += len(reports)
                out.photos += len(photos)
                out.events += len(events)
                print(f"  generated {out.proposals}/{len(plan)} proposals, {out.reports} reports", flush=True)
            await s.execute(insert(CodeSequence), [
                {"prefix": "PRL", "fiscal_year": y, "last": c} for y, c in zip(years, per_year, strict=True)
            ])  # fmt: skip
            await s.commit()
            if url.startswith("postgresql"):
                for table_name in ("proposals", "progress_reports"):
                    await s.execute(
                        text(f"SELECT setval(pg_get_serial_sequence('{table_name}', 'id'), max(id)) FROM {table_name}")
                    )
                await s.commit()
    finally:
        await engine.dispose()
    out.seconds = time.perf_counter() - started
    return out


async def measure(url: str, out_dir: Path, lookups: int, seed: int = 2) -> Measured:
    from bot.config import load_settings
    from bot.domain import evidence
    from bot.domain.permissions import CITY_SCOPE
    from bot.services import digests, export, public
    from storage.db import create_engine, create_sessionmaker
    from storage.models import MEDIA_FOTO_PROGRES, Officer, ProgressMedia, Proposal
    from storage.repositories import progress as progress_repo

    settings = load_settings()
    year = settings.current_fiscal_year()
    m = Measured()
    rng = random.Random(seed)
    engine = create_engine(url)
    try:
        sm = create_sessionmaker(engine)
        async with sm() as s:
            codes = list((await s.scalars(select(Proposal.code).where(Proposal.code.is_not(None)))).all())
            officer_ids = list((await s.scalars(select(Officer.user_id).where(Officer.revoked_at.is_(None)))).all())
        sample = [rng.choice(codes) for _ in range(lookups)] if codes else []
        times = []
        for code in sample:
            typed = code.lower().replace("-", " ") if rng.random() < 0.3 else code  # as people type it
            async with sm() as s:
                t0 = time.perf_counter()
                found = await public.lookup(s, typed, "PRL", year)
                if found.outcome == public.FOUND:
                    await public.card(s, found.proposal.id)
                    m.lookups_found += 1
                times.append(time.perf_counter() - t0)
        m.lookups = Latencies.of(times)
        times = []
        now = dt.datetime.now(dt.UTC)
        t_all = time.perf_counter()
        for uid in officer_ids:
            async with sm() as s:
                t0 = time.perf_counter()
                d = await digests.digest_for(s, uid, now, settings)
                times.append(time.perf_counter() - t0)
                m.digest_count += d is not None
        m.digests_total_s = time.perf_counter() - t_all
        m.digests = Latencies.of(times)
        target = out_dir / f"rekap-{year}.xlsx"
        async with sm() as s:
            t0 = time.perf_counter()
            summary = await export.export(s, CITY_SCOPE, year, target, tz=settings.timezone)
            m.export_s = time.perf_counter() - t0
        m.export_rows = sum(summary.total.by_status.values()) if summary.total.by_status else 0
        m.export_rab_lines = summary.rab_lines
        m.export_mb = target.stat().st_size / 1e6
        # A new report's 10 site photos checked for reuse against the stored ones, as progress.report does
        # (reading, through the band indexes, only those that can be near).
        times = []
        for _ in range(REUSE_CHECKS):
            new = [f"{rng.getrandbits(64):016x}" for _ in range(REPORT_PHOTOS)]
            async with sm() as s:
                t0 = time.perf_counter()
                first_by_hash: dict[str, object] = {}
                stored = await progress_repo.photo_hashes(
                    s, MEDIA_FOTO_PROGRES, near=new, distance=evidence.HASH_DISTANCE
                )
                for row in stored:
                    first_by_hash.setdefault(row.phash, row)
                for phash in new:
                    evidence.closest_hash(phash, first_by_hash)
                times.append(time.perf_counter() - t0)
                m.reuse_read = max(m.reuse_read, len(stored))
        async with sm() as s:
            m.reuse_hashes = await s.scalar(select(func.count()).select_from(ProgressMedia))
        m.reuse_checks = Latencies.of(times)
    finally:
        await engine.dispose()
    m.peak_rss_mb = peak_rss_mb()
    return m


def _db_size_mb(url: str) -> float:
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 1e6
    return float("nan")


async def _pg_size_mb(url: str) -> float:
    from storage.db import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as c:
            return float(await c.scalar(text("SELECT pg_database_size(current_database())"))) / 1e6
    finally:
        await engine.dispose()


async def run(db: str, n_proposals: int, n_reports: int, lookups: int, pg_url: str | None) -> ScaleResult:
    result = ScaleResult(db)
    with workdir("datascale") as tmp:
        tmpdir = Path(tmp)
        async with fresh_database(db, tmpdir, pg_url) as url:
            result.generated = await generate(url, n_proposals, n_reports)
            result.db_mb = _db_size_mb(url) if db == "sqlite" else await _pg_size_mb(url)
            print(f"  generated in {result.generated.seconds:.0f} s; measuring in a fresh process", flush=True)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.datascale", "--measure", url, "--out-dir", str(tmpdir),
                "--lookups", str(lookups), env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            stdout, stderr = await proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(f"measuring failed:\n{stderr.decode(errors='replace')[-4000:]}")
            data = json.loads(stdout.decode().strip().splitlines()[-1])
            result.measured = Measured(**{
                k: (Latencies(**v) if k in ("lookups", "digests", "reuse_checks") and v else v) for k, v in data.items()
            })  # fmt: skip
    return result


def summary(results: list[ScaleResult]) -> str:
    rows = []
    for r in results:
        g, m = r.generated, r.measured
        rows.append([
            r.db, g.proposals, g.rab_lines, g.reports, g.photos, f"{r.db_mb:.0f}",
            m.lookups.count if m.lookups else 0, ms(m.lookups.p50) if m.lookups else "-",
            ms(m.lookups.p99) if m.lookups else "-",
            f"{m.digests.count if m.digests else 0} ({m.digest_count} non-empty)",
            ms(m.digests.p50) if m.digests else "-", ms(m.digests.max) if m.digests else "-",
            f"{m.export_s:.1f}", m.export_rows, m.export_rab_lines, f"{m.export_mb:.1f}",
            ms(m.reuse_checks.p50) if m.reuse_checks else "-", ms(m.reuse_checks.max) if m.reuse_checks else "-",
            m.reuse_read,
            f"{m.peak_rss_mb:.0f}",
        ])  # fmt: skip
    return table(
        ["db", "proposals", "RAB lines", "reports", "photo hashes", "DB MB", "lookups", "lookup p50 ms",
         "lookup p99 ms", "digests", "digest p50 ms", "digest max ms", "export s", "export proposals",
         "export RAB lines", "XLSX MB", "reuse check p50 ms", "reuse check max ms",
         "hashes read per check", "peak RSS MB"],
        rows,
    )  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.datascale", description=__doc__.split("\n\n")[0])
    p.add_argument("--proposals", type=int, default=100_000)
    p.add_argument("--reports", type=int, default=500_000)
    p.add_argument("--lookups", type=int, default=1000, help="random status-by-code lookups to time")
    p.add_argument("--db", default="sqlite", help="sqlite, postgresql, or both (comma-separated)")
    p.add_argument("--pg-url", help="PostgreSQL server (default TEST_DATABASE_URL or the local one)")
    p.add_argument("--json", type=Path, help="append the results as JSON lines to this file")
    p.add_argument("--measure", metavar="DATABASE_URL", help=argparse.SUPPRESS)  # the measuring child process
    p.add_argument("--out-dir", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.db = [d.strip() for d in args.db.split(",") if d.strip()]
    if any(d not in ("sqlite", "postgresql") for d in args.db):
        p.error("--db: sqlite and/or postgresql")
    if not 10 <= args.proposals <= 1_000_000 or not 0 <= args.reports <= 5_000_000:
        p.error("--proposals: 10 to 1,000,000; --reports: 0 to 5,000,000")
    if not 1 <= args.lookups <= 100_000:
        p.error("--lookups: 1 to 100,000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.measure:
        m = asyncio.run(measure(args.measure, args.out_dir or Path.cwd(), args.lookups))
        print(json.dumps(asdict(m)))
        return 0
    print(f"Machine: {machine()}")
    print(f"Command: python -m bench.datascale {' '.join(sys.argv[1:])}".rstrip(), flush=True)
    results = []
    for db in args.db:
        print(f"... {db}: {args.proposals} proposals, {args.reports} progress reports", flush=True)
        r = asyncio.run(run(db, args.proposals, args.reports, args.lookups, args.pg_url))
        results.append(r)
        if args.json:
            with args.json.open("a") as fh:
                fh.write(json.dumps(asdict(r), default=str) + "\n")
    print("\nData scale (lookup = /cek by code: lookup + card; digest = one per officer; export = current year, "
          "city-wide XLSX; reuse check = a 10-photo report against the stored photo hashes; peak RSS of the "
          "measuring process)")  # fmt: skip
    print(summary(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
