"""Proposal service on SQLite and PostgreSQL: drafts, RAB totals, media limits, budget rules with
their numbers, submission (codes unique under concurrency, Kirim twice, stale buttons), withdrawal."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal

import pytest
from PIL import Image
from sqlalchemy import func, select, update

from bot.domain import budget
from bot.domain.permissions import Forbidden, Scope
from bot.domain.rab import RabLine as Line
from bot.domain.workflow import TransitionError
from bot.services import media, officers, proposals, users
from bot.services.wilayah import import_csv
from storage.db import begin_write
from storage.models import (
    AuditLog,
    Kelurahan,
    Media,
    Outbox,
    Program,
    ProgramCategory,
    Proposal,
    ProposalEvent,
    RTHead,
)
from storage.repositories import wilayah

YEAR = 2026
TODAY = dt.date(2026, 2, 2)
ADMIN = 1000
OFFICER_API = 21
OFFICER_LOK = 22
HEAD_LOK = 300
JT = 1_000_000


@dataclass
class World:
    program: Program
    rt_ids: list[int]  # RT 1..n of Api-Api
    heads: list[int]  # verified Ketua RT of each of them
    rt_lok: int  # RT 1 of Loktuan, head HEAD_LOK
    photo: Media
    pdf: Media
    store: media.LocalMediaStore


def png(seed: int = 0, size: tuple[int, int] = (8, 6)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (seed % 256, (seed // 256) % 256, 7)).save(buf, format="PNG")
    return buf.getvalue()


PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


async def setup_world(sessionmaker, tmp_path, n_rts: int = 2) -> World:
    rows = "".join(f"Bontang Utara,Api-Api,{i}\n" for i in range(1, n_rts + 1))
    report = await import_csv(sessionmaker, "kecamatan,kelurahan,rt\n" + rows + "Bontang Utara,Loktuan,1\n")
    assert not report.errors
    store = media.LocalMediaStore(tmp_path / "media")
    async with sessionmaker() as s:
        kels = {k.name: k for k in (await s.scalars(select(Kelurahan))).all()}
        api, lok = kels["Api-Api"], kels["Loktuan"]
        rt_ids = [(await wilayah.find_rt(s, api.id, i)).id for i in range(1, n_rts + 1)]
        rt_lok = (await wilayah.find_rt(s, lok.id, 1)).id
        heads = [100 + i for i in range(n_rts)]
        for uid in (ADMIN, OFFICER_API, OFFICER_LOK, HEAD_LOK, *heads):
            await users.ensure_user(s, uid, f"U{uid}", None, None)
        await officers.appoint(s, ADMIN, (ADMIN,), OFFICER_API, Scope.for_kelurahan(api.kecamatan_id, api.id))
        await officers.appoint(s, ADMIN, (ADMIN,), OFFICER_LOK, Scope.for_kelurahan(lok.kecamatan_id, lok.id))
        await begin_write(s)
        for uid, rt_id in (*zip(heads, rt_ids, strict=True), (HEAD_LOK, rt_lok)):
            s.add(RTHead(user_id=uid, rt_id=rt_id, full_name=f"Ketua {uid}", phone="+62811", status="terverifikasi"))
        program = Program(
            fiscal_year=YEAR,
            name="Prolita",
            budget_per_rt=50 * JT,
            code_prefix="PRL",
            submission_opens=dt.date(YEAR, 1, 1),
            submission_closes=dt.date(YEAR, 3, 31),
        )
        program.categories = [
            ProgramCategory(code="infrastruktur", name="Infrastruktur fisik", position=0, is_physical=True),
            ProgramCategory(code="sosbud", name="Sosial budaya", position=1, max_share_pct=30),
            ProgramCategory(code="ekonomi", name="Ekonomi", position=2),
        ]
        s.add(program)
        await s.commit()
        photo = await media.save_media(s, store, png(), "image/png")
        pdf = await media.save_media(s, store, PDF, "application/pdf", kind=media.KIND_DOCUMENT)
        program = await s.get(Program, program.id)
    return World(program, rt_ids, heads, rt_lok, photo, pdf, store)


async def complete_proposal(
    s, w: World, i: int = 0, *, amount: int | None = None, category: str = "infrastruktur", title="Semenisasi gang"
) -> Proposal:
    """A draft with everything a submission needs; one RAB line of ``amount`` when given."""
    rt_id, head = (w.rt_ids[i], w.heads[i]) if i >= 0 else (w.rt_lok, HEAD_LOK)
    p = await proposals.create_draft(s, head, rt_id, w.program)
    await proposals.update_fields(
        s, p, category_code=category, title=title, description="Jalan gang rusak, warga sepakat.", wizard_step="lokasi"
    )
    await proposals.set_location(s, p, 0.1335, 117.4988)
    if amount is None:
        await proposals.add_line(s, p, Line("Semen", 50, "sak", 65_000))
        await proposals.add_line(s, p, Line("Tukang", 10, "hari", 150_000))
    else:
        await proposals.add_line(s, p, Line("Paket pekerjaan", 1, "paket", amount))
    await proposals.attach_media(s, p, w.photo, "foto_awal", "AgAD-photo", "uq-photo")
    await proposals.attach_media(s, p, w.pdf, "bukti_musyawarah", "BQAD-doc", "uq-doc")
    await proposals.set_musyawarah(s, p, 25)
    return p


async def set_status(sessionmaker, proposal_id: int, status: str) -> None:
    async with sessionmaker() as s:
        await begin_write(s)
        await s.execute(update(Proposal).where(Proposal.id == proposal_id).values(status=status))
        await s.commit()


# --- drafts --------------------------------------------------------------------------------------


async def test_draft_lifecycle(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path)
    async with sessionmaker() as s:
        p = await proposals.create_draft(s, w.heads[0], w.rt_ids[0], w.program)
        assert (p.status, p.version, p.code, p.total_amount, p.fiscal_year) == ("draf", 1, None, 0, YEAR)
        with pytest.raises(Forbidden):
            await proposals.create_draft(s, w.heads[0], w.rt_ids[1], w.program)

        await proposals.update_fields(s, p, wizard_step="judul")
        assert (p.wizard_step, p.version) == ("judul", 1)  # navigation alone is not a content change
        await proposals.update_fields(s, p, category_code="sosbud", title="  Lomba   17an  ", wizard_step="uraian")
        assert (p.category_code, p.title, p.version, p.wizard_step) == ("sosbud", "Lomba 17an", 2, "uraian")

        drafts = await proposals.drafts_of(s, w.rt_ids[0], YEAR)
        assert [d.id for d in drafts] == [p.id]
        assert await proposals.drafts_of(s, w.rt_ids[1], YEAR) == []
        again = await proposals.get_for_rt_head(s, p.id, w.heads[0], w.rt_ids[0])
        assert again.title == "Lomba 17an"

    async with sessionmaker() as s:  # another RT's head with a forged id is refused and audited
        with pytest.raises(Forbidden):
            await proposals.get_for_rt_head(s, p.id, w.heads[1], w.rt_ids[1])
        denied = (await s.scalars(select(AuditLog).where(AuditLog.action == "denied.proposal.open"))).all()
        assert [(d.actor_id, d.entity_id) for d in denied] == [(w.heads[1], str(p.id))]
        # draft edits are not audited (only edits after submission are)
        assert not (await s.scalars(select(AuditLog).where(AuditLog.action == "proposal.edit"))).all()

    async with sessionmaker() as s:
        withdrawn = await proposals.withdraw(s, w.heads[0], p.id, "batal")
        assert withdrawn.status == "ditarik" and withdrawn.withdrawn_at is not None
        assert await proposals.drafts_of(s, w.rt_ids[0], YEAR) == []
        assert [x.status for x in await proposals.list_for_rt(s, w.rt_ids[0], YEAR)] == ["ditarik"]
        with pytest.raises(proposals.NotEditable):
            await proposals.update_fields(s, p, title="Tidak bisa lagi")
        with pytest.raises(TransitionError):
            await proposals.withdraw(s, w.heads[0], p.id, None)
        timeline = await proposals.timeline(s, p.id)
        assert [(e.action, e.from_status, e.to_status) for e in timeline] == [
            ("buat", None, "draf"),
            ("tarik", "draf", "ditarik"),
        ]
        assert not (await s.scalars(select(Outbox).where(Outbox.kind == "proposal.withdrawn"))).all()


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"title": "Abc"}, "title", "too_short"),
        ({"title": "x" * 121}, "title", "too_long"),
        ({"title": "   "}, "title", "required"),
        ({"description": "y" * 1001}, "description", "too_long"),
        ({"description": ""}, "description", "required"),
        ({"category_code": "olahraga"}, "category_code", "unknown_category"),
        ({"address": "z" * 256}, "address", "too_long"),
        ({"status": "disetujui"}, "status", "unknown_field"),
    ],
)
async def test_update_fields_refuses_bad_values(sessionmaker, tmp_path, fields, field, reason):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    async with sessionmaker() as s:
        p = await proposals.create_draft(s, w.heads[0], w.rt_ids[0], w.program)
        with pytest.raises(proposals.InvalidField) as e:
            await proposals.update_fields(s, p, **fields)
        assert (e.value.field, e.value.reason) == (field, reason)
        row = await s.get(Proposal, p.id, populate_existing=True)
        assert (row.version, row.status, row.title) == (1, "draf", None)


# --- RAB ------------------------------------------------------------------------------------------


async def test_rab_lines_keep_the_total(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    async with sessionmaker() as s:
        p = await proposals.create_draft(s, w.heads[0], w.rt_ids[0], w.program)
        a = await proposals.add_line(s, p, Line("Semen", 50, "sak", 65_000))
        b = await proposals.add_line(s, p, Line("Pasir", Decimal("2.5"), "m3", 250_001))
        c = await proposals.add_line(s, p, Line("Tukang", 10, "hari", 150_000))
        assert [x.total for x in (a, b, c)] == [3_250_000, 625_003, 1_500_000]  # 625 002,5 rounds half up
        assert p.total_amount == 5_375_003 and p.version == 4
        await proposals.replace_line(s, p, a.id, Line("Semen Tonasa", 40, "sak", 66_000))
        await proposals.remove_line(s, p, b.id)

    async with sessionmaker() as s:  # what is stored, read back fresh
        row = await s.get(Proposal, p.id)
        assert [(x.position, x.description, x.volume, x.total) for x in row.lines] == [
            (1, "Semen Tonasa", Decimal(40), 2_640_000),
            (2, "Tukang", Decimal(10), 1_500_000),
        ]
        assert row.total_amount == sum(x.total for x in row.lines) == 4_140_000
        with pytest.raises(proposals.LineNotFound):
            await proposals.remove_line(s, row, b.id)


@pytest.mark.parametrize(
    ("line", "field"),
    [
        (Line("Semen", 0, "sak", 65_000), "line.volume"),
        (Line("Semen", Decimal("0.0001"), "sak", 65_000), "line.volume"),
        (Line("Semen", 100_001, "sak", 65_000), "line.volume"),
        (Line("Semen", 1, "sak", 0), "line.unit_price"),
        (Line("Semen", 1, "sak", -5000), "line.unit_price"),
        (Line("  ", 1, "sak", 5000), "line.description"),
    ],
)
async def test_bad_rab_lines_are_refused(sessionmaker, tmp_path, line, field):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    async with sessionmaker() as s:
        p = await proposals.create_draft(s, w.heads[0], w.rt_ids[0], w.program)
        with pytest.raises(proposals.InvalidField) as e:
            await proposals.add_line(s, p, line)
        assert e.value.field == field


async def test_at_most_50_rab_lines(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    async with sessionmaker() as s:
        p = await proposals.create_draft(s, w.heads[0], w.rt_ids[0], w.program)
        for i in range(proposals.MAX_LINES):
            await proposals.add_line(s, p, Line(f"Barang {i}", 1, "buah", 1000))
        with pytest.raises(proposals.TooManyLines) as e:
            await proposals.add_line(s, p, Line("Satu lagi", 1, "buah", 1000))
        assert (e.value.limit, e.value.current) == (50, 50)
        assert p.total_amount == 50_000


async def test_several_rab_lines_of_one_message_are_one_write(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    async with sessionmaker() as s:
        p = await proposals.create_draft(s, w.heads[0], w.rt_ids[0], w.program)
        await proposals.add_line(s, p, Line("Semen", 50, "sak", 65_000))
        added = await proposals.add_lines(
            s, p, [Line("Pasir", 3, "m3", 250_000), Line("Tukang", 10, "hari", 150_000)], actor_id=w.heads[0]
        )
        assert [(x.position, x.description) for x in added] == [(2, "Pasir"), (3, "Tukang")]
        assert p.version == 3  # one edit for the two lines (the first line was the second version)
        with pytest.raises(proposals.InvalidField):  # one bad line: none of them is written
            await proposals.add_lines(s, p, [Line("Kayu", 1, "batang", 9_000), Line("Paku", 0, "kg", 20_000)])
    async with sessionmaker() as s:
        row = await s.get(Proposal, p.id)
        assert [x.description for x in row.lines] == ["Semen", "Pasir", "Tukang"]
        assert row.total_amount == 3_250_000 + 750_000 + 1_500_000 and row.version == 3


async def test_several_rab_lines_fill_up_to_the_limit(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    async with sessionmaker() as s:
        p = await proposals.create_draft(s, w.heads[0], w.rt_ids[0], w.program)
        await proposals.add_lines(s, p, [Line(f"Barang {i}", 1, "buah", 1000) for i in range(proposals.MAX_LINES - 1)])
        added = await proposals.add_lines(s, p, [Line("Terakhir", 1, "buah", 1000), Line("Lebih", 1, "buah", 1000)])
        assert [x.description for x in added] == ["Terakhir"]
        with pytest.raises(proposals.TooManyLines) as e:
            await proposals.add_lines(s, p, [Line("Satu lagi", 1, "buah", 1000)])
        assert (e.value.limit, e.value.current) == (50, 50)
        assert p.total_amount == 50_000


# --- media ----------------------------------------------------------------------------------------


async def test_photo_limit_album_all_or_nothing_and_duplicates(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    async with sessionmaker() as s:
        photos = [await media.save_media(s, w.store, png(i + 1), "image/png") for i in range(11)]
        p = await proposals.create_draft(s, w.heads[0], w.rt_ids[0], w.program)
        with pytest.raises(proposals.TooManyPhotos) as e:  # an album of 11
            await proposals.attach_media_batch(s, p, "foto_awal", [(m, f"f{m.id}", f"u{m.id}") for m in photos])
        assert (e.value.limit, e.value.current, e.value.adding) == (10, 0, 11)
        links = await proposals.attach_media_batch(s, p, "foto_awal", [(m, f"f{m.id}", None) for m in photos[:9]])
        assert [x.position for x in links] == list(range(1, 10))
        version = p.version
        same = await proposals.attach_media(s, p, photos[0], "foto_awal", "again", None)  # same content: no-op
        assert same.id == links[0].id and p.version == version
        await proposals.attach_media(s, p, photos[9], "foto_awal", "f10", None)
        with pytest.raises(proposals.TooManyPhotos) as e:
            await proposals.attach_media(s, p, photos[10], "foto_awal", "f11", None)
        assert (e.value.limit, e.value.current, e.value.adding) == (10, 10, 1)
        await proposals.remove_media(s, p, links[0].id)
        assert [x.position for x in p.media_of("foto_awal")] == list(range(1, 10))
        await proposals.attach_media(s, p, photos[10], "foto_awal", "f11", None)
        assert len(p.media_of("foto_awal")) == 10

    async with sessionmaker() as s:
        row = await s.get(Proposal, p.id)
        assert len(row.media_of("foto_awal")) == 10
        assert row.media_of("foto_awal")[0].file.sha256 == photos[1].sha256


# --- completeness and budget ------------------------------------------------------------------------


async def test_missing_parts_listed_in_wizard_order(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    async with sessionmaker() as s:
        p = await proposals.create_draft(s, w.heads[0], w.rt_ids[0], w.program)
        assert proposals.missing_parts(p, w.program) == [
            "kategori",
            "judul",
            "uraian",
            "anggaran",
            "foto",
            "bukti_musyawarah",
            "peserta_musyawarah",
        ]
        await proposals.update_fields(s, p, category_code="infrastruktur")
        assert "lokasi" in proposals.missing_parts(p, w.program)  # physical: the pin is required
        await proposals.update_fields(s, p, category_code="ekonomi")
        assert "lokasi" not in proposals.missing_parts(p, w.program)
        with pytest.raises(proposals.NotReady) as e:
            await proposals.submit(s, w.heads[0], p.id, p.version, TODAY)
        assert e.value.missing == ["judul", "uraian", "anggaran", "foto", "bukti_musyawarah", "peserta_musyawarah"]
        assert e.value.violations == []
        with pytest.raises(proposals.InvalidField):
            await proposals.set_musyawarah(s, p, 0)
        with pytest.raises(proposals.InvalidField):
            await proposals.set_location(s, p, 91.0, 117.0)


async def test_budget_overflow_is_explained_with_the_remaining_amount(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    async with sessionmaker() as s:
        first = await complete_proposal(s, w, amount=37_500_000)
        await proposals.submit(s, w.heads[0], first.id, first.version, TODAY)
        second = await complete_proposal(s, w, amount=15 * JT, title="Drainase gang")
        with pytest.raises(proposals.NotReady) as e:
            await proposals.submit(s, w.heads[0], second.id, second.version, TODAY)
        assert e.value.missing == []
        assert e.value.violations == [
            budget.Violation("over_ceiling", amount=15 * JT, ceiling=50 * JT, remaining=12_500_000)
        ]
        pos = await proposals.budget_position(s, w.rt_ids[0], w.program)
        assert pos == (50 * JT, 37_500_000, 12_500_000, {"infrastruktur": 37_500_000})
        assert pos.remaining == 12_500_000
        row = await s.get(Proposal, second.id, populate_existing=True)
        assert (row.status, row.code) == ("draf", None)
        # 12.5 jt fits exactly
        await proposals.replace_line(s, second, second.lines[0].id, Line("Paket pekerjaan", 1, "paket", 12_500_000))
        done = await proposals.submit(s, w.heads[0], second.id, second.version, TODAY)
        assert done.code == "PRL-2026-0002"


@pytest.mark.parametrize(
    ("other_status", "remaining"),
    [
        ("draf", 50 * JT),
        ("ditarik", 50 * JT),
        ("ditolak", 50 * JT),
        ("diajukan", 12_500_000),
        ("perlu_revisi", 12_500_000),
        ("disetujui", 12_500_000),
        ("selesai", 12_500_000),
    ],
)
async def test_which_statuses_count_against_the_ceiling(sessionmaker, tmp_path, other_status, remaining):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    async with sessionmaker() as s:
        other = await complete_proposal(s, w, amount=37_500_000)
    await set_status(sessionmaker, other.id, other_status)
    async with sessionmaker() as s:
        pos = await proposals.budget_position(s, w.rt_ids[0], w.program)
        assert pos.remaining == remaining
        this = await complete_proposal(s, w, amount=15 * JT, title="Drainase gang")
        violations = await proposals.check_submission(s, this, w.program, TODAY)
        assert [v.kind for v in violations] == ([] if remaining == 50 * JT else ["over_ceiling"])
        # another RT's budget is its own
        assert (await proposals.budget_position(s, w.rt_lok, w.program)).remaining == 50 * JT


async def test_category_max_share(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    async with sessionmaker() as s:
        first = await complete_proposal(s, w, amount=10 * JT, category="sosbud", title="Lomba 17an")
        await proposals.submit(s, w.heads[0], first.id, first.version, TODAY)
        second = await complete_proposal(s, w, amount=6 * JT, category="sosbud", title="Pentas seni")
        with pytest.raises(proposals.NotReady) as e:
            await proposals.submit(s, w.heads[0], second.id, second.version, TODAY)
        (v,) = e.value.violations
        assert (v.kind, v.limit, v.share_pct, v.category_total, v.remaining, v.category_name) == (
            "category_max",
            15 * JT,
            30,
            16 * JT,
            5 * JT,
            "Sosial budaya",
        )


@pytest.mark.parametrize(
    ("today", "kind"),
    [(dt.date(2025, 12, 31), "window_not_open"), (dt.date(2026, 4, 1), "window_closed"), (dt.date(2026, 3, 31), None)],
)
async def test_submission_window(sessionmaker, tmp_path, today, kind):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    async with sessionmaker() as s:
        p = await complete_proposal(s, w)
        if kind is None:
            assert (await proposals.submit(s, w.heads[0], p.id, p.version, today)).status == "diajukan"
            return
        with pytest.raises(proposals.NotReady) as e:
            await proposals.submit(s, w.heads[0], p.id, p.version, today)
        (v,) = e.value.violations
        assert (v.kind, v.opens, v.closes, v.today) == (kind, dt.date(2026, 1, 1), dt.date(2026, 3, 31), today)


# --- submission -------------------------------------------------------------------------------------


async def test_submit_gives_code_event_audit_and_notice_to_officers_in_scope(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    async with sessionmaker() as s:
        p = await complete_proposal(s, w)
        assert p.total_amount == 4_750_000
        done = await proposals.submit(s, w.heads[0], p.id, p.version, TODAY, admin_ids=(ADMIN,))
        assert (done.status, done.code, done.seq) == ("diajukan", "PRL-2026-0001", 1)
        assert done.submitted_at is not None
        notices = (await s.scalars(select(Outbox).where(Outbox.kind == "proposal.submitted"))).all()
        assert [(n.chat_id, n.payload["proposal_id"], n.payload["resubmission"]) for n in notices] == [
            (OFFICER_API, p.id, False)
        ]
        event = await s.get(ProposalEvent, notices[0].payload["event_id"])
        assert (event.action, event.from_status, event.to_status) == ("ajukan", "draf", "diajukan")
        snap = event.data["snapshot"]
        assert snap["total_amount"] == 4_750_000 and snap["photos"] == 1 and snap["evidence"] == 1
        assert [(x["description"], x["volume"], x["total"]) for x in snap["lines"]] == [
            ("Semen", "50", 3_250_000),
            ("Tukang", "10", 1_500_000),
        ]
        assert (snap["latitude"], snap["longitude"]) == (0.1335, 117.4988)
        audit = (await s.scalars(select(AuditLog).where(AuditLog.action == "proposal.submit"))).all()
        assert [(a.actor_id, a.after["code"]) for a in audit] == [(w.heads[0], "PRL-2026-0001")]
        with pytest.raises(proposals.NotEditable):  # submitted: no more editing
            await proposals.add_line(s, p, Line("Cat", 5, "kaleng", 100_000))


async def test_pressing_submit_twice_gives_one_code(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    async with sessionmaker() as s:
        p = await complete_proposal(s, w)
        version = p.version
        await proposals.submit(s, w.heads[0], p.id, version, TODAY)
        with pytest.raises(TransitionError) as e:
            await proposals.submit(s, w.heads[0], p.id, version, TODAY)
        assert (e.value.current, e.value.action) == ("diajukan", "ajukan")
        row = await s.get(Proposal, p.id, populate_existing=True)
        assert row.code == "PRL-2026-0001"
        events = (await s.scalars(select(ProposalEvent).where(ProposalEvent.action == "ajukan"))).all()
        assert len(events) == 1
        assert await s.scalar(select(func.count()).select_from(Outbox).where(Outbox.kind == "proposal.submitted")) == 1


async def test_stale_version_is_refused(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    async with sessionmaker() as s:
        p = await complete_proposal(s, w)
        old = p.version
        await proposals.update_fields(s, p, title="Semenisasi gang Mawar", expected_version=old)
        with pytest.raises(proposals.StaleVersion) as e:  # the old summary card's button
            await proposals.submit(s, w.heads[0], p.id, old, TODAY)
        assert (e.value.expected, e.value.current) == (old, old + 1)
        with pytest.raises(proposals.StaleVersion):
            await proposals.add_line(s, p, Line("Cat", 5, "kaleng", 100_000), expected_version=old)
        row = await s.get(Proposal, p.id, populate_existing=True)
        assert (row.status, row.code, len(row.lines)) == ("draf", None, 2)
        assert (await proposals.submit(s, w.heads[0], p.id, old + 1, TODAY)).status == "diajukan"


async def test_only_the_rt_head_submits(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=2)
    async with sessionmaker() as s:
        p = await complete_proposal(s, w, 0)
        with pytest.raises(Forbidden):
            await proposals.submit(s, w.heads[1], p.id, None, TODAY)
        with pytest.raises(Forbidden):
            await proposals.withdraw(s, w.heads[1], p.id, "iseng")
        denied = (await s.scalars(select(AuditLog.action).where(AuditLog.action.like("denied.%")))).all()
        assert sorted(denied) == ["denied.proposal.ajukan", "denied.proposal.tarik"]
        assert (await s.get(Proposal, p.id, populate_existing=True)).status == "draf"


async def test_twenty_concurrent_submissions_get_twenty_distinct_codes(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=20)
    ids = []
    async with sessionmaker() as s:
        for i in range(20):
            ids.append((await complete_proposal(s, w, i)).id)

    async def send(i: int) -> str:
        async with sessionmaker() as s:
            return (await proposals.submit(s, w.heads[i], ids[i], None, TODAY, admin_ids=(ADMIN,))).code

    codes = await asyncio.gather(*(send(i) for i in range(20)))
    assert sorted(codes) == [f"PRL-2026-{n:04d}" for n in range(1, 21)]
    async with sessionmaker() as s:
        stored = (await s.scalars(select(Proposal.code).where(Proposal.status == "diajukan"))).all()
        assert sorted(stored) == sorted(codes)
        assert await s.scalar(select(func.count()).select_from(Outbox).where(Outbox.kind == "proposal.submitted")) == 20


async def test_withdraw_submitted_tells_officers_and_frees_budget(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    async with sessionmaker() as s:
        p = await complete_proposal(s, w, amount=40 * JT)
        await proposals.submit(s, w.heads[0], p.id, None, TODAY)
        assert (await proposals.budget_position(s, w.rt_ids[0], w.program)).remaining == 10 * JT
        await proposals.withdraw(s, w.heads[0], p.id, "Sudah dibiayai CSR")
        assert (await proposals.budget_position(s, w.rt_ids[0], w.program)).remaining == 50 * JT
        notices = (await s.scalars(select(Outbox).where(Outbox.kind == "proposal.withdrawn"))).all()
        assert [(n.chat_id, n.payload["proposal_id"]) for n in notices] == [(OFFICER_API, p.id)]
        audit = await s.scalar(select(AuditLog).where(AuditLog.action == "proposal.withdraw"))
        assert (audit.before, audit.after, audit.reason) == (
            {"status": "diajukan"},
            {"status": "ditarik"},
            "Sudah dibiayai CSR",
        )
