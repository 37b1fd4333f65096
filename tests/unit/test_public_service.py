"""Public reads on SQLite and PostgreSQL: the card of a proposal by its code (nothing personal,
drafts hidden, withdrawn shown as withdrawn), codes as people type them, the closest existing
code, the latest photos, and the browse totals per kelurahan and per RT."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from bot.services import progress, proposals, public, users
from storage.db import begin_write
from storage.models import Program, ProgramCategory
from tests.unit.test_progress_service import ADMIN, approved_proposal, good_photo
from tests.unit.test_proposals_service import OFFICER_API, TODAY, YEAR, complete_proposal, setup_world

PERSONAL = ("U10", "Ketua 10", "+62811", "Rina", str(OFFICER_API))  # names, phones, ids of setup_world


async def submitted(sessionmaker, w, i: int = 0, **kw):
    async with sessionmaker() as s:
        p = await complete_proposal(s, w, i, **kw)
        return await proposals.submit(s, w.heads[i], p.id, p.version, TODAY, admin_ids=(ADMIN,))


async def test_card_of_an_approved_proposal_with_progress(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    p = await approved_proposal(sessionmaker, w)
    async with sessionmaker() as s:
        before = await public.card(s, p.id)
        assert before.approved and before.photos_kind == public.PHOTOS_INITIAL and len(before.photos) == 1
        assert [e.action for e in before.events] == ["ajukan", "setujui"]  # "draft started" is private
        photos = [await good_photo(s, w, n) for n in range(1, 5)]
        await progress.report(s, w.heads[0], p.id, percent=40, spent_total=1_500_000, note="Pak Joko", photos=photos)

        c = await public.card(s, p.id)
        assert c.proposal.code == "PRL-2026-0001" and c.category == "Infrastruktur fisik"
        assert [(e.percent, e.spent_total) for e in c.progress] == [(40, 1_500_000)]
        assert c.photos_kind == public.PHOTOS_PROGRESS and len(c.photos) == public.PHOTOS_SHOWN == 3
        assert [e.action for e in c.events] == ["ajukan", "setujui"]  # reports have their own lines
        assert all(isinstance(e, public.PublicEvent) for e in c.events)  # dates and steps, no notes
        assert c.completion is None


async def test_drafts_are_not_public_and_withdrawn_shows_as_withdrawn(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    async with sessionmaker() as s:
        draft = await complete_proposal(s, w, 0)
        assert await public.card(s, draft.id) is None
        assert await public.card(s, 999_999) is None
    p = await submitted(sessionmaker, w)
    async with sessionmaker() as s:
        await proposals.withdraw(s, w.heads[0], p.id, "Pak RW tidak setuju")
        c = await public.card(s, p.id)
        assert c.proposal.status == "ditarik" and not c.approved and c.progress == []
        assert [e.action for e in c.events] == ["ajukan", "tarik"]
        found = await public.lookup(s, "prl 2026 1", "PRL", YEAR)
        assert found.outcome == public.FOUND and found.proposal.id == p.id


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        ("PRL-2026-0002", public.FOUND),
        ("prl 2026 2", public.FOUND),
        ("PRL20260002", public.FOUND),
        ("  prl/2026/02 ", public.FOUND),
        ("cek PRL-2026-0002 ya", public.FOUND),
        ("<b>PRL-2026-0002</b>", public.FOUND),
        ("PRL-2026-0009", public.NOT_FOUND),
        ("PRL-2031-0001", public.NOT_FOUND),
        ("PRL-26-1", public.MALFORMED),
        ("prl", public.NOT_A_CODE),
        ("'; DROP TABLE proposals; --", public.NOT_A_CODE),
        ("<b>halo</b>", public.NOT_A_CODE),
        ("", public.NOT_A_CODE),
    ],
)
async def test_lookup_as_people_type_codes(sessionmaker, tmp_path, text, outcome):
    w = await setup_world(sessionmaker, tmp_path, n_rts=2)
    await submitted(sessionmaker, w, 0)
    second = await submitted(sessionmaker, w, 1)
    async with sessionmaker() as s:
        found = await public.lookup(s, text, "PRL", YEAR)
    assert found.outcome == outcome
    assert found.example == "PRL-2026-0001"
    if outcome == public.FOUND:
        assert found.proposal.id == second.id and found.code == "PRL-2026-0002"


async def test_closest_code(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=3)
    ps = [await submitted(sessionmaker, w, i, amount=1_000_000) for i in range(3)]  # 0001, 0002, 0003
    async with sessionmaker() as s:
        await complete_proposal(s, w, 0, amount=1_000_000)  # a draft: never suggested
        found = await public.lookup(s, "PRL-2026-0009", "PRL", YEAR)
        assert (found.outcome, found.code, found.year_known) == (public.NOT_FOUND, "PRL-2026-0009", True)
        assert found.suggestion.id == ps[2].id
        assert (await public.closest(s, "PRL", YEAR, 2)).id == ps[0].id  # a tie: the lower number
        assert await public.closest(s, "XYZ", YEAR, 1) is None

        # another year: the same number in the nearest year
        missing = await public.lookup(s, "PRL-2024-0003", "PRL", YEAR)
        assert (missing.outcome, missing.year_known, missing.suggestion.id) == (public.NOT_FOUND, False, ps[2].id)

        # a proposal of 2025 (same prefix): found by its code; nearest for 2025 stays in 2025
        await begin_write(s)
        old = Program(
            fiscal_year=2025,
            name="Prolita",
            budget_per_rt=50_000_000,
            code_prefix="PRL",
            submission_opens=dt.date(2025, 1, 1),
            submission_closes=dt.date(2025, 12, 31),
        )
        old.categories = [ProgramCategory(code="infrastruktur", name="Infrastruktur", position=0, is_physical=True)]
        s.add(old)
        await s.commit()
    w25 = dataclasses.replace(w, program=old)
    async with sessionmaker() as s:
        p25 = await complete_proposal(s, w25, 0, amount=2_000_000)
        p25 = await proposals.submit(s, w.heads[0], p25.id, p25.version, dt.date(2025, 6, 1))
        assert p25.code == "PRL-2025-0001"
        found = await public.lookup(s, "prl 2025 1", "PRL", YEAR)
        assert found.outcome == public.FOUND and found.proposal.id == p25.id
        near = await public.lookup(s, "PRL-2025-0007", "PRL", YEAR)
        assert near.year_known and near.suggestion.id == p25.id


async def test_browse_totals(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=3)
    a = await approved_proposal(sessionmaker, w, 0)  # RT 1: Rp 4.750.000 approved
    async with sessionmaker() as s:
        await progress.report(
            s, w.heads[0], a.id, percent=50, spent_total=2_000_000, photos=[await good_photo(s, w, 1)]
        )
    await submitted(sessionmaker, w, 0, amount=3_000_000)  # RT 1: waiting
    await submitted(sessionmaker, w, 1, amount=1_000_000)  # RT 2: waiting
    async with sessionmaker() as s:
        await complete_proposal(s, w, 2)  # RT 3: only a draft (not public)
        program = await s.get(Program, w.program.id)
        rt = await public.get_rt(s, w.rt_ids[0])
        kecamatan = [k.name for k in await public.kecamatan_list(s)]
        assert "Bontang Utara" in kecamatan  # the migration's master data: all of Bontang
        totals = {t.kelurahan.name: t for t in await public.kelurahan_totals(s, rt.kelurahan.kecamatan_id, YEAR)}
        api, lok = totals["Api-Api"], totals["Loktuan"]
        rts = await public.rts_of(s, rt.kelurahan_id, YEAR)
        assert [(e.rt.number, e.proposals) for e in rts[:3]] == [(1, 2), (2, 1), (3, 0)]
        assert all(e.proposals == 0 for e in rts[3:])
        assert (api.rts, api.proposals, api.approved, api.approved_total, api.realised_total) == (
            len(rts),
            3,
            1,
            4_750_000,
            2_000_000,
        )
        assert (lok.proposals, lok.approved_total, lok.realised_total) == (0, 0, 0) and lok.rts >= 1
        assert (await public.kelurahan_total(s, rt.kelurahan_id, YEAR)) == api
        assert await public.kelurahan_total(s, 999_999, YEAR) is None
        rt1 = await public.rt_summary(s, w.rt_ids[0], program)
        assert (rt1.ceiling, rt1.approved_total, rt1.waiting_total, rt1.remaining, rt1.realised_total) == (
            50_000_000,
            4_750_000,
            3_000_000,
            50_000_000 - 4_750_000 - 3_000_000,
            2_000_000,
        )
        assert [p.code for p in rt1.proposals] == ["PRL-2026-0001", "PRL-2026-0002"]
        rt3 = await public.rt_summary(s, w.rt_ids[2], program)
        assert (rt3.proposals, rt3.remaining, rt3.approved_total) == ([], 50_000_000, 0)
        assert await public.rt_summary(s, 999_999, program) is None
        assert await public.kelurahan_totals(s, 999_999, YEAR) == []


async def test_completed_proposal_realised(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    p = await approved_proposal(sessionmaker, w)
    async with sessionmaker() as s:
        officer = await users.load_roles(s, OFFICER_API, (ADMIN,))
    async with sessionmaker() as s:
        done = await progress.report(
            s, w.heads[0], p.id, percent=100, spent_total=4_500_000, photos=[await good_photo(s, w, 1)]
        )
        await progress.verify(s, OFFICER_API, officer, done.id, "terverifikasi")
        c = await public.card(s, p.id)
        assert c.proposal.status == "selesai" and c.completion.realised_amount == 4_500_000
        assert c.completion.unspent == 250_000
        assert [e.action for e in c.events] == ["ajukan", "setujui", "lapor_selesai", "verifikasi_selesai"]
        program = await s.get(Program, w.program.id)
        summary = await public.rt_summary(s, w.rt_ids[0], program)
        assert summary.realised_total == 4_500_000
