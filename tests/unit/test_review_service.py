"""Officer review on SQLite and PostgreSQL: queue by scope, forged decisions refused and audited,
one of two concurrent decisions wins, the revision round trip with its change summary, and the
notice written in the same transaction as the decision."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event, select

from bot.domain.permissions import Forbidden
from bot.domain.rab import RabLine as Line
from bot.services import outbox, proposals, review, users
from storage.models import AuditLog, Outbox, Proposal, ProposalEvent
from tests.unit.test_proposals_service import (
    ADMIN,
    HEAD_LOK,
    OFFICER_API,
    OFFICER_LOK,
    TODAY,
    complete_proposal,
    setup_world,
)


async def _roles(sessionmaker, uid):
    async with sessionmaker() as s:
        return await users.load_roles(s, uid, (ADMIN,))


async def _submitted(sessionmaker, w, i=0, **kw) -> Proposal:
    async with sessionmaker() as s:
        p = await complete_proposal(s, w, i, **kw)
        head = w.heads[i] if i >= 0 else HEAD_LOK
        return await proposals.submit(s, head, p.id, p.version, TODAY, admin_ids=(ADMIN,))


async def test_queue_follows_scope_oldest_first_and_pages(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=3)
    subs = [await _submitted(sessionmaker, w, i) for i in (2, 0, 1)]
    lok = await _submitted(sessionmaker, w, -1)
    async with sessionmaker() as s:
        draft = await proposals.create_draft(s, w.heads[0], w.rt_ids[0], w.program)
    api_roles, lok_roles, admin_roles = [await _roles(sessionmaker, u) for u in (OFFICER_API, OFFICER_LOK, ADMIN)]
    async with sessionmaker() as s:
        rows, total = await review.queue(s, api_roles.scope, limit=2, offset=0)
        assert total == 3 and [r.id for r in rows] == [subs[0].id, subs[1].id]
        rows, _ = await review.queue(s, api_roles.scope, limit=2, offset=2)
        assert [r.id for r in rows] == [subs[2].id]
        rows, total = await review.queue(s, lok_roles.scope, limit=5)
        assert (total, [r.id for r in rows]) == (1, [lok.id])
        rows, total = await review.queue(s, admin_roles.scope, limit=10)
        assert total == 4 and draft.id not in [r.id for r in rows]


async def test_officer_of_another_kelurahan_is_refused_and_audited(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    p = await _submitted(sessionmaker, w)
    other = await _roles(sessionmaker, OFFICER_LOK)
    warga = await _roles(sessionmaker, w.heads[0])  # a Ketua RT is no officer
    async with sessionmaker() as s:
        with pytest.raises(Forbidden):
            await review.decide(s, OFFICER_LOK, other, p.id, "setujui")
        with pytest.raises(Forbidden):
            await review.decide(s, w.heads[0], warga, p.id, "tolak", note="x")
        with pytest.raises(Forbidden):
            await review.get_in_scope(s, OFFICER_LOK, other, p.id)
        denied = (await s.scalars(select(AuditLog).where(AuditLog.action.like("denied.proposal.%")))).all()
        assert sorted((d.action, d.actor_id, d.entity_id, d.reason) for d in denied) == [
            ("denied.proposal.setujui", OFFICER_LOK, str(p.id), "out_of_scope"),
            ("denied.proposal.tolak", w.heads[0], str(p.id), "out_of_scope"),
            ("denied.proposal.view", OFFICER_LOK, str(p.id), "out_of_scope"),
        ]
        row = await s.get(Proposal, p.id, populate_existing=True)
        assert (row.status, row.decided_by) == ("diajukan", None)
        assert not (await s.scalars(select(Outbox).where(Outbox.kind.like("proposal.approved")))).all()


@pytest.mark.parametrize(
    ("action", "kw", "missing", "unknown"),
    [
        ("tolak", {}, ("reason",), ()),
        ("tolak", {"note": "   "}, ("reason",), ()),
        ("minta_revisi", {"note": "Perbaiki"}, ("parts",), ()),
        ("minta_revisi", {"parts": ["anggaran"]}, ("note",), ()),
        ("minta_revisi", {"parts": ["anggaran", "warna"], "note": "x"}, (), ("warna",)),
    ],
)
async def test_decision_needs_its_inputs(sessionmaker, tmp_path, action, kw, missing, unknown):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    p = await _submitted(sessionmaker, w)
    officer = await _roles(sessionmaker, OFFICER_API)
    async with sessionmaker() as s:
        with pytest.raises(review.DecisionIncomplete) as e:
            await review.decide(s, OFFICER_API, officer, p.id, action, **kw)
        assert (e.value.missing, e.value.unknown_parts) == (missing, unknown)
        assert (await s.get(Proposal, p.id, populate_existing=True)).status == "diajukan"


@pytest.mark.parametrize(
    ("action", "kw", "status", "kind"),
    [
        ("setujui", {}, "disetujui", "proposal.approved"),
        ("setujui", {"note": "Lanjutkan"}, "disetujui", "proposal.approved"),
        ("tolak", {"note": "Bukan prioritas"}, "ditolak", "proposal.rejected"),
        (
            "minta_revisi",
            {"parts": ["foto", "anggaran"], "note": "Foto buram"},
            "perlu_revisi",
            "proposal.revision_requested",
        ),
    ],
)
async def test_decision_event_audit_and_notice_commit_together(sessionmaker, tmp_path, action, kw, status, kind):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    p = await _submitted(sessionmaker, w)
    officer = await _roles(sessionmaker, OFFICER_API)
    commits: list[set[str]] = []
    async with sessionmaker() as s:
        flushed: set[str] = set()

        def after_flush(session, _ctx):
            flushed.update(type(o).__name__ for o in (*session.new, *session.dirty))

        def after_commit(_session):
            commits.append(set(flushed))
            flushed.clear()

        event.listen(s.sync_session, "after_flush", after_flush)
        event.listen(s.sync_session, "after_commit", after_commit)
        decided = await review.decide(s, OFFICER_API, officer, p.id, action, **kw)
        assert decided.status == status
        assert {"Proposal", "ProposalEvent", "AuditLog", "Outbox"} <= commits[-1]
        notice = await s.scalar(select(Outbox).where(Outbox.kind == kind))
        assert notice.chat_id == w.heads[0] and notice.payload["proposal_id"] == p.id
        ev = await s.get(ProposalEvent, notice.payload["event_id"])
        assert (ev.action, ev.from_status, ev.to_status, ev.actor_id, ev.note) == (
            action,
            "diajukan",
            status,
            OFFICER_API,
            kw.get("note"),
        )
        if action == "minta_revisi":
            assert notice.payload["parts"] == ["anggaran", "foto"]  # in PARTS order
            assert (decided.revision_parts, decided.revision_note) == (["anggaran", "foto"], "Foto buram")
        with pytest.raises(review.AlreadyDecided) as e:
            await review.decide(s, OFFICER_API, officer, p.id, action, **kw)
        assert e.value.status == status


async def test_failed_decision_leaves_no_notice_and_no_change(sessionmaker, tmp_path, monkeypatch):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    p = await _submitted(sessionmaker, w)
    officer = await _roles(sessionmaker, OFFICER_API)

    def broken(*args, **kwargs):
        raise RuntimeError("crash between the change and its notice")

    monkeypatch.setattr(outbox, "enqueue", broken)
    async with sessionmaker() as s:
        with pytest.raises(RuntimeError):
            await review.decide(s, OFFICER_API, officer, p.id, "setujui")
    async with sessionmaker() as s:
        assert (await s.get(Proposal, p.id)).status == "diajukan"
        assert not (await s.scalars(select(ProposalEvent).where(ProposalEvent.action == "setujui"))).all()
        assert not (await s.scalars(select(AuditLog).where(AuditLog.action == "proposal.setujui"))).all()


async def test_two_concurrent_decisions_exactly_one_wins(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    p = await _submitted(sessionmaker, w)
    officer, admin = await _roles(sessionmaker, OFFICER_API), await _roles(sessionmaker, ADMIN)

    async def act(uid, roles, action, **kw):
        async with sessionmaker() as s:
            try:
                await review.decide(s, uid, roles, p.id, action, **kw)
                return "won"
            except review.AlreadyDecided:
                return "lost"

    results = await asyncio.gather(
        act(OFFICER_API, officer, "setujui"), act(ADMIN, admin, "tolak", note="Anggaran tidak wajar")
    )
    assert sorted(results) == ["lost", "won"]
    async with sessionmaker() as s:
        decisions = (
            await s.scalars(select(AuditLog).where(AuditLog.action.in_(["proposal." + a for a in review.ACTIONS])))
        ).all()
        assert len(decisions) == 1
        notices = (await s.scalars(select(Outbox).where(Outbox.kind.in_(tuple(review.NOTICE_KIND.values()))))).all()
        assert len(notices) == 1
        row = await s.get(Proposal, p.id)
        assert row.status == ("disetujui" if results[0] == "won" else "ditolak")


async def test_revision_round_trip_shows_what_changed_and_keeps_the_code(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    p = await _submitted(sessionmaker, w)
    assert p.code == "PRL-2026-0001"
    officer = await _roles(sessionmaker, OFFICER_API)
    head = w.heads[0]
    async with sessionmaker() as s:
        assert await review.changes_since_last_submission(s, p) is None  # first submission
        await review.decide(
            s, OFFICER_API, officer, p.id, "minta_revisi", parts=["anggaran"], note="Harga semen terlalu tinggi"
        )
        notice = await s.scalar(select(Outbox).where(Outbox.kind == "proposal.revision_requested"))
        assert notice.chat_id == head
        assert [d.id for d in await proposals.drafts_of(s, w.rt_ids[0], 2026)] == [p.id]

    async with sessionmaker() as s:
        p = await proposals.get_for_rt_head(s, p.id, head, w.rt_ids[0])
        assert proposals.editable_parts(p) == ("anggaran",)
        with pytest.raises(proposals.NotEditable) as e:  # only the flagged part reopens
            await proposals.update_fields(s, p, title="Judul baru sekali")
        assert e.value.part == "uraian"
        with pytest.raises(proposals.NotEditable):
            await proposals.attach_media(s, p, w.photo, "bukti_musyawarah", "x", None)
        semen = next(x for x in p.lines if x.description == "Semen")
        await proposals.replace_line(s, p, semen.id, Line("Semen", 50, "sak", 60_000))
        await proposals.add_line(s, p, Line("Cat", 5, "kaleng", 100_000))
        edits = (await s.scalars(select(AuditLog).where(AuditLog.action == "proposal.edit"))).all()
        assert len(edits) == 2  # edits after submission are audited
        pending = await review.changes_since_last_submission(s, p)
        assert (pending["total_before"], pending["total_after"]) == (4_750_000, 5_000_000)

        again = await proposals.submit(s, head, p.id, p.version, TODAY, admin_ids=(ADMIN,))
        assert (again.status, again.code) == ("diajukan", "PRL-2026-0001")

    async with sessionmaker() as s:
        row = await s.get(Proposal, p.id)
        changes = await review.changes_since_last_submission(s, row)
        assert (changes["total_before"], changes["total_after"]) == (4_750_000, 5_000_000)
        assert [(c["before"]["unit_price"], c["after"]["unit_price"]) for c in changes["lines_changed"]] == [
            (65_000, 60_000)
        ]
        assert [(c["before"]["total"], c["after"]["total"]) for c in changes["lines_changed"]] == [
            (3_250_000, 3_000_000)
        ]
        assert [(x["description"], x["total"]) for x in changes["lines_added"]] == [("Cat", 500_000)]
        assert changes["lines_removed"] == [] and changes["fields"] == {}
        resub = (await s.scalars(select(Outbox).where(Outbox.kind == "proposal.submitted").order_by(Outbox.id))).all()
        assert [(n.chat_id, n.payload["resubmission"]) for n in resub] == [(OFFICER_API, False), (OFFICER_API, True)]
        timeline = await proposals.timeline(s, p.id)
        assert [(e.action, e.to_status) for e in timeline] == [
            ("buat", "draf"),
            ("ajukan", "diajukan"),
            ("minta_revisi", "perlu_revisi"),
            ("ajukan", "diajukan"),
        ]
        rows, total = await review.queue(s, officer.scope, limit=5)
        assert total == 1 and rows[0].id == p.id
        approved = await review.decide(s, OFFICER_API, officer, p.id, "setujui", expected_version=row.version)
        assert approved.status == "disetujui"


async def test_old_card_of_a_revised_proposal_is_stale(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    p = await _submitted(sessionmaker, w)
    card_version = p.version
    officer = await _roles(sessionmaker, OFFICER_API)
    async with sessionmaker() as s:
        await review.decide(s, OFFICER_API, officer, p.id, "minta_revisi", parts=["anggaran"], note="Rinci lagi")
        await proposals.add_line(s, p, Line("Cat", 5, "kaleng", 100_000))
        await proposals.submit(s, w.heads[0], p.id, None, TODAY)
        with pytest.raises(proposals.StaleVersion):
            await review.decide(s, OFFICER_API, officer, p.id, "setujui", expected_version=card_version)
        assert (await s.get(Proposal, p.id, populate_existing=True)).status == "diajukan"
