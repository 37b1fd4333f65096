"""Demo data of the sandbox: personas, and a database seeded through the services (as the bot would).

Everything goes through ``bot.services`` so the rows, the audit log and the notification outbox are
exactly what the real flows produce. Photos and documents are given file ids in the fake Telegram's
format; :func:`telegram_files` lists them (with their bytes, read back from ``MEDIA_DIR``) so the
sandbox server can register them in its world at every start and the bot can send them again.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.permissions import Scope
from bot.domain.rab import RabLine
from bot.services import (
    aspirations,
    follows,
    media,
    officers,
    programs,
    progress,
    proposals,
    registration,
    review,
    users,
)
from bot.services.wilayah import ensure_sample_wilayah
from fakeapi import make_jpeg, make_pdf
from fakeapi.media import make_scene_jpeg
from fakeapi.state import World
from storage.db import begin_write, create_engine, create_sessionmaker
from storage.migrate import upgrade
from storage.models import (
    MEDIA_BUKTI_MUSYAWARAH,
    MEDIA_FOTO_AWAL,
    OUTBOX_PENDING,
    OUTBOX_SENT,
    REPORT_PENDING,
    RT,
    Kelurahan,
    Media,
    Outbox,
    Program,
    ProgressReport,
    Proposal,
    ProposalEvent,
    utcnow,
)

STATE_FILE = "sandbox.json"
DB_FILE = "sandbox.db"
MEDIA_DIR = "media"
LOG_FILE = "bot.log"
# What --fresh (or an unfinished first start) removes: only the sandbox's own files, never the folder.
OWN_FILES = (STATE_FILE, DB_FILE, DB_FILE + "-wal", DB_FILE + "-shm", DB_FILE + "-journal", LOG_FILE)

KELURAHAN = "Api-Api"
BONTANG = (0.1337, 117.4950)  # a point in Api-Api, Bontang Utara: the default shared location

ADMIN_ID = 6100000001
OFFICER_ID = 6100000002
HEAD_ID = 6100000011  # the main persona: Ketua RT 05 Api-Api


@dataclass
class Persona:
    id: int
    first_name: str
    last_name: str | None
    username: str | None
    phone: str | None
    role: str  # admin, petugas, ketua_rt, warga, baru
    title: str  # shown under the name in the picker
    language_code: str = "id"
    seeded: bool = True

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}" if self.last_name else self.first_name


PERSONAS: tuple[Persona, ...] = (
    Persona(HEAD_ID, "Budi", "Santoso", "budi_rt05", "+6281250000011", "ketua_rt",
            "Ketua RT 05 Api-Api · usulan di semua status, lapor progres (/progres)"),
    Persona(6100000012, "Sari", "Lestari", "sari_rt03", "+6281250000012", "ketua_rt",
            "Ketua RT 03 Api-Api · usulan ditolak, diajukan, dan selesai"),
    Persona(6100000013, "Joko", "Susilo", None, "+6281250000013", "ketua_rt",
            "Ketua RT 07 Api-Api · belum ada usulan"),
    Persona(OFFICER_ID, "Rina", "Wulandari", "rina_kel_apiapi", "+6281250000002", "petugas",
            "Petugas Kelurahan Api-Api · meninjau usulan (/tinjau) dan progres (/verifikasi_progres)"),
    Persona(ADMIN_ID, "Hendra", "Admin Kota", "hendra_admin", "+6281250000001", "admin",
            "Admin · mengangkat petugas (/petugas)"),
    Persona(6100000021, "Siti", "Aminah", "siti_warga", "+6281250000021", "warga",
            "Warga RT 05 Api-Api · mengikuti RT 05 (/ikuti), kirim aspirasi, /cek, /jelajah"),
    Persona(6100000022, "Andi", "Pratama", None, "+6281250000022", "warga",
            "Warga, belum terdaftar · bisa mencoba daftar sebagai Ketua RT (mis. RT 08)"),
)  # fmt: skip

# Ketua RT of Api-Api: persona id -> (RT number, full name for the registration)
HEADS = {HEAD_ID: 5, 6100000012: 3, 6100000013: 7}


class SandboxDataError(Exception):
    """The sandbox folder's data cannot be used (a damaged database or state file)."""


@dataclass
class SandboxState:
    """What the sandbox remembers between starts (``sandbox.json``): the bot token and the personas."""

    token: str
    personas: list[Persona] = field(default_factory=list)
    version: int = 1

    def save(self, folder: Path) -> None:
        data = {"version": self.version, "token": self.token, "personas": [asdict(p) for p in self.personas]}
        tmp = folder / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
        tmp.replace(folder / STATE_FILE)

    @classmethod
    def load(cls, folder: Path) -> SandboxState | None:
        path = folder / STATE_FILE
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(token=data["token"], personas=[Persona(**p) for p in data["personas"]],
                       version=data.get("version", 1))  # fmt: skip
        except (ValueError, KeyError, TypeError) as exc:
            raise SandboxDataError(f"{path} is damaged ({exc})") from None


def reset(folder: Path) -> None:
    """Remove the sandbox's own files (database, media, state, log); other files are left alone."""
    import shutil

    for name in OWN_FILES:
        (folder / name).unlink(missing_ok=True)
    shutil.rmtree(folder / MEDIA_DIR, ignore_errors=True)


def database_url(folder: Path) -> str:
    return f"sqlite+aiosqlite:///{(folder / DB_FILE).resolve()}"


def settings_for(folder: Path) -> Settings:
    """The settings the bot child will have (programme defaults still come from the environment)."""
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=database_url(folder),
        media_dir=folder / MEDIA_DIR,
        admin_ids=(ADMIN_ID,),
        redis_url=None,
    )


async def prepare_database(url: str) -> None:
    """Apply the migrations and import the bundled RT list (idempotent). A damaged file raises
    :class:`SandboxDataError`."""
    from sqlalchemy.exc import DatabaseError

    engine = create_engine(url)
    try:
        await upgrade(engine)
        await ensure_sample_wilayah(create_sessionmaker(engine))
    except DatabaseError as exc:
        raise SandboxDataError(f"the sandbox database is damaged ({exc.orig or exc})") from None
    finally:
        await engine.dispose()


# ---------------------------------------------------------------------------------------- seeding


class _Seeder:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.s = session
        self.settings = settings
        self.store = media.LocalMediaStore(settings.media_dir)
        self.files = World()  # only to mint file ids and photo sizes the way the fake Telegram does
        self.admins = (ADMIN_ID,)
        self.receipts = 0

    async def people(self) -> dict[int, int]:
        """Users, the Api-Api officer and the verified Ketua RT; returns persona id -> RT id."""
        s = self.s
        for p in PERSONAS:
            await users.ensure_user(s, p.id, p.first_name, p.last_name, p.username)
        kel = await s.scalar(select(Kelurahan).where(Kelurahan.name == KELURAHAN))
        if kel is None:
            raise SandboxDataError(f"kelurahan {KELURAHAN} is missing from the RT list")
        scope = Scope.for_kelurahan(kel.kecamatan_id, kel.id)
        await officers.appoint(s, ADMIN_ID, self.admins, OFFICER_ID, scope, first_name="Rina")
        roles = await users.load_roles(s, OFFICER_ID, self.admins)
        rts: dict[int, int] = {}
        for person in PERSONAS:
            number = HEADS.get(person.id)
            if number is None:
                continue
            rt = await s.scalar(select(RT).where(RT.kelurahan_id == kel.id, RT.number == number))
            reg = await registration.submit(s, person.id, person.full_name, person.phone or "", rt.id, self.admins)
            await registration.decide(s, OFFICER_ID, roles, reg.id, True, None)
            rts[person.id] = rt.id
        return rts

    def _today(self, program: Program) -> dt.date:
        return min(max(dt.date.today(), program.submission_opens), program.submission_closes)

    async def _photo(self, p: Any, label: str, color: tuple[int, int, int]) -> None:
        biggest = self.files.store_photo(make_jpeg(800, 600, color=color, text=label))[-1]
        stored = await media.save_media(self.s, self.store, biggest.data, "image/jpeg")
        await proposals.attach_media(self.s, p, stored, MEDIA_FOTO_AWAL, biggest.file_id, biggest.file_unique_id)

    async def _minutes(self, p: Any, title: str) -> None:
        pdf = make_pdf(f"Berita acara musyawarah: {title}")
        doc = self.files.store_file(pdf, "document", file_name="berita-acara.pdf", mime_type="application/pdf")
        stored = await media.save_media(self.s, self.store, pdf, "application/pdf", kind=media.KIND_DOCUMENT)
        await proposals.attach_media(self.s, p, stored, MEDIA_BUKTI_MUSYAWARAH, doc.file_id, doc.file_unique_id)

    async def proposal(
        self,
        head_id: int,
        rt_id: int,
        *,
        category: str,
        title: str,
        description: str,
        lines: list[RabLine],
        photos: int = 1,
        location: tuple[float, float] | None = None,
        attendees: int | None = 25,
        submit: bool = True,
    ) -> int:
        s = self.s
        program = await programs.ensure(s, self.settings, self.settings.current_fiscal_year())
        p = await proposals.create_draft(s, head_id, rt_id, program)
        p = await proposals.update_fields(s, p, category_code=category, title=title, description=description,
                                          wizard_step="Usulan:ringkasan")  # fmt: skip
        if location is not None:
            await proposals.set_location(s, p, *location)
        for line in lines:
            await proposals.add_line(s, p, line)
        colors = [(70, 130, 180), (120, 160, 90), (200, 140, 60), (150, 90, 160)]
        for i in range(photos):
            await self._photo(p, f"{title} ({i + 1})", colors[i % len(colors)])
        if attendees is not None:
            await self._minutes(p, title)
            await proposals.set_musyawarah(s, p, attendees)
        if submit:
            await proposals.submit(s, head_id, p.id, None, self._today(program), admin_ids=self.admins)
        return p.id

    async def decide(self, proposal_id: int, action: str, note: str | None, parts: list[str] | None = None) -> None:
        roles = await users.load_roles(self.s, OFFICER_ID, self.admins)
        await review.decide(self.s, OFFICER_ID, roles, proposal_id, action, note=note, parts=parts)

    async def _evidence(self, data: bytes, *, as_file: bool) -> progress.EvidenceFile:
        """Store a photo as the bot would: sent as a file it keeps its EXIF; sent as a photo Telegram
        recompresses it (the fake does the same), so its EXIF is gone."""
        if as_file:
            sent = self.files.store_file(data, "document", file_name="IMG.jpg", mime_type="image/jpeg")
            kept = data
        else:
            sent = self.files.store_photo(data)[-1]
            kept = sent.data
        stored = await media.save_media(self.s, self.store, kept, "image/jpeg")
        exif, phash = await progress.analyse_photo(kept)
        return progress.EvidenceFile(stored, sent.file_id, sent.file_unique_id, exif, phash)

    async def report(
        self,
        head_id: int,
        proposal_id: int,
        percent: int,
        spent: int,
        note: str,
        photos: list[tuple[int, tuple[float, float] | None, bool]],
        receipts: int = 1,
    ) -> int:
        """A progress report; ``photos`` are (scene seed, EXIF GPS or None, sent as a file)."""
        taken = dt.datetime.now(self.settings.tz).replace(tzinfo=None, microsecond=0)
        site = [
            await self._evidence(make_scene_jpeg(seed, taken_at=taken, gps=gps), as_file=as_file)
            for seed, gps, as_file in photos
        ]
        notes = []
        for _ in range(receipts):
            self.receipts += 1  # each receipt a picture of its own (a reused one would be flagged)
            notes.append(await self._evidence(make_scene_jpeg(9000 + self.receipts, height=480), as_file=False))
        row = await progress.report(
            self.s, head_id, proposal_id, percent=percent, spent_total=spent, note=note, photos=site,
            receipts=notes, admin_ids=self.admins,
        )  # fmt: skip
        return row.id

    async def verify(self, report_id: int) -> None:
        roles = await users.load_roles(self.s, OFFICER_ID, self.admins)
        await progress.verify(self.s, OFFICER_ID, roles, report_id, progress.ACTION_TERVERIFIKASI)


async def seed(settings: Settings) -> None:
    """Seed an empty (migrated, RTs imported) sandbox database with the demo people and proposals."""
    engine = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            seeder = _Seeder(session, settings)
            rts = await seeder.people()
            budi, sari = HEAD_ID, 6100000012
            semen = [RabLine("Semen", 50, "sak", 65_000), RabLine("Pasir", 3, "m3", 250_000),
                     RabLine("Tukang", 10, "hari", 150_000)]  # fmt: skip
            await seeder.proposal(
                budi, rts[budi], category="infrastruktur", title="Semenisasi jalan gang Mawar",
                description="Jalan gang rusak dan becek saat hujan; dipakai 40 KK setiap hari.",
                lines=semen, photos=2, location=(0.13350, 117.49880),
            )  # fmt: skip
            approved = await seeder.proposal(
                budi, rts[budi], category="infrastruktur", title="Lampu jalan tenaga surya",
                description="Enam titik lampu di jalan masuk RT yang gelap pada malam hari.",
                lines=[RabLine("Lampu PJU tenaga surya", 6, "unit", 1_750_000),
                       RabLine("Tiang dan pemasangan", 6, "titik", 400_000)],
                location=(0.13410, 117.49720),
            )  # fmt: skip
            await seeder.decide(approved, "setujui", "Disetujui. Mohon laporkan progres setiap minggu.")
            lamp_site, far = (0.13410, 117.49720), (0.14650, 117.49720)  # far: ~1.4 km north of the site
            first = await seeder.report(
                budi, approved, 25, 4_200_000, "Tiang sudah datang, dua titik sudah dicor.",
                photos=[(101, lamp_site, True), (102, lamp_site, True)],
            )  # fmt: skip
            await seeder.verify(first)
            # The report waiting for Rina: one photo far from the site, one reused, one without EXIF.
            await seeder.report(
                budi, approved, 60, 9_100_000, "Empat lampu sudah menyala.",
                photos=[(103, lamp_site, True), (104, far, True), (101, lamp_site, True), (105, None, False)],
                receipts=2,
            )  # fmt: skip
            revise = await seeder.proposal(
                budi, rts[budi], category="kespen", title="Pelatihan kader posyandu",
                description="Pelatihan dua hari untuk 20 kader posyandu RT 05.",
                lines=[RabLine("Konsumsi", 40, "kotak", 45_000), RabLine("Narasumber", 2, "hari", 750_000)],
            )  # fmt: skip
            await seeder.decide(revise, "minta_revisi", "Harga konsumsi terlalu tinggi; mohon tambahkan foto "
                                "kegiatan posyandu yang sekarang.", parts=["anggaran", "foto"])  # fmt: skip
            await seeder.proposal(
                budi, rts[budi], category="sosbud", title="Seragam senam lansia",
                description="Seragam untuk 30 peserta senam lansia setiap Minggu pagi.",
                lines=[RabLine("Kaos seragam", 30, "potong", 85_000)], attendees=None, submit=False,
            )  # fmt: skip
            rejected = await seeder.proposal(
                sari, rts[sari], category="ekonomi", title="Gerobak sampah RT",
                description="Dua gerobak sampah untuk pengangkutan dari rumah warga ke TPS.",
                lines=[RabLine("Gerobak sampah", 2, "unit", 3_500_000)],
            )  # fmt: skip
            await seeder.decide(rejected, "tolak", "Gerobak sampah sudah dianggarkan DLH Kota tahun ini.")
            paving = await seeder.proposal(
                sari, rts[sari], category="infrastruktur", title="Pavingisasi halaman posyandu",
                description="Halaman posyandu becek; paving 60 m2 agar ibu dan balita aman.",
                lines=[RabLine("Paving block", 60, "m2", 120_000), RabLine("Tukang", 6, "hari", 150_000)],
                photos=3, location=(0.13280, 117.49610),
            )  # fmt: skip
            await _waited(session, paving, dt.timedelta(days=12))  # past the SLA: escalated at start
            drain_site = (0.13300, 117.49660)
            drainage = await seeder.proposal(
                sari, rts[sari], category="infrastruktur", title="Perbaikan saluran drainase",
                description="Saluran tersumbat dan meluap saat hujan; 80 m saluran diperbaiki dan ditutup.",
                lines=[RabLine("Buis beton U-ditch", 40, "buah", 350_000), RabLine("Tukang", 8, "hari", 150_000)],
                location=drain_site,
            )  # fmt: skip
            await seeder.decide(drainage, "setujui", None)
            await seeder.verify(await seeder.report(
                sari, drainage, 50, 7_000_000, "Setengah saluran selesai.",
                photos=[(201, drain_site, True), (202, drain_site, True)],
            ))  # fmt: skip
            await seeder.verify(await seeder.report(
                sari, drainage, 100, 14_650_000, "Selesai, saluran sudah ditutup.",
                photos=[(203, drain_site, True), (204, drain_site, True), (205, drain_site, True)], receipts=2,
            ))  # fmt: skip
            # Siti follows RT 05 and has sent Budi an idea.
            siti = 6100000021
            await follows.follow_rt(session, siti, rts[budi])
            await aspirations.submit(
                session, siti, rts[budi], "Tolong pasang polisi tidur di depan TK Melati; anak-anak sering "
                "menyeberang dan motor kencang.",
            )  # fmt: skip
            await _settle_old_notices(session)
    finally:
        await engine.dispose()


async def _waited(session: AsyncSession, proposal_id: int, age: dt.timedelta) -> None:
    """Make a submitted proposal one that was sent ``age`` ago (its history moves with it), so the
    officer's escalation and the overdue count in the digest show at the sandbox's first start."""
    sent = utcnow() - age
    await begin_write(session)
    await session.execute(update(Proposal).where(Proposal.id == proposal_id).values(submitted_at=sent, created_at=sent))
    await session.execute(update(ProposalEvent).where(ProposalEvent.proposal_id == proposal_id).values(at=sent))
    await session.commit()


async def _settle_old_notices(session: AsyncSession) -> None:
    """The demo's history happened "before": only notices that still matter are left for the bot to
    deliver at its first start (decisions to the Ketua RT, proposals still waiting to the officer)."""
    pending = (await session.scalars(select(Outbox).where(Outbox.status == OUTBOX_PENDING))).all()
    for row in pending:
        keep = row.kind in (
            "proposal.approved", "proposal.rejected", "proposal.revision_requested", "aspiration.new"
        )  # fmt: skip
        if row.kind == "proposal.submitted":
            proposal = await session.get(Proposal, row.payload.get("proposal_id"))
            keep = proposal is not None and proposal.status == "diajukan"
        if row.kind == "progress.reported":
            report = await session.get(ProgressReport, row.payload.get("report_id"))
            keep = report is not None and report.status == REPORT_PENDING
        if not keep:
            row.status, row.sent_at = OUTBOX_SENT, utcnow()
    await session.commit()


async def telegram_files(settings: Settings) -> list[dict[str, Any]]:
    """Every stored file the bot knows by a Telegram file id, with its bytes (for the fake server's
    world): rows of any table with ``media_id`` and ``telegram_file_id`` (proposal photos and
    evidence, progress reports, ...)."""
    from storage.models import Base

    linked = [
        table for table in Base.metadata.tables.values()
        if {"media_id", "telegram_file_id"} <= set(table.c.keys())
    ]  # fmt: skip
    engine = create_engine(settings.database_url)
    store = media.LocalMediaStore(settings.media_dir)
    rows: list[Any] = []
    try:
        async with create_sessionmaker(engine)() as session:
            for table in linked:
                unique = table.c.get("telegram_file_unique_id")
                query = (
                    select(table.c.telegram_file_id, unique if unique is not None else table.c.telegram_file_id, Media)
                    .join(Media, Media.id == table.c.media_id)
                    .where(table.c.telegram_file_id.is_not(None))
                )
                rows.extend((await session.execute(query)).all())
    finally:
        await engine.dispose()
    found: dict[str, dict[str, Any]] = {}
    for file_id, unique_id, row in rows:
        if file_id in found or not store.exists(row.path):
            continue
        found[file_id] = {
            "file_id": file_id,
            "file_unique_id": unique_id if unique_id != file_id else None,
            "mime": row.mime,
            "data": store.open(row.path),
            "suffix": Path(row.path).suffix,
        }
    return list(found.values())
