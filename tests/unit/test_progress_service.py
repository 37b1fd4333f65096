"""Progress service on SQLite and PostgreSQL: reports move the proposal through pelaksanaan to
selesai, bad input is refused with nothing half-saved, evidence comes out flagged (far away, before
approval, reused photo, over budget), and of two officers verifying at once exactly one wins."""

from __future__ import annotations

import asyncio
import datetime as dt
import io

import pytest
from PIL import Image
from sqlalchemy import func, select

from bot.domain import evidence
from bot.domain.permissions import Forbidden
from bot.domain.workflow import TransitionError
from bot.services import media, progress, proposals, review, users
from bot.services.progress import EvidenceFile
from fakeapi.media import make_jpeg, make_scene_jpeg
from storage.models import (
    AuditLog,
    Outbox,
    ProgressMedia,
    ProgressReport,
    Proposal,
    ProposalCompletion,
    ProposalEvent,
)
from tests.unit.test_proposals_service import (
    ADMIN,
    HEAD_LOK,
    OFFICER_API,
    OFFICER_LOK,
    TODAY,
    YEAR,
    complete_proposal,
    setup_world,
)

SITE = (0.1335, 117.4988)  # where complete_proposal puts the work
NEAR = (SITE[0] + 0.0004, SITE[1] + 0.0003)  # ~55 m
FAR = (SITE[0] + 0.0135, SITE[1])  # ~1.5 km
APPROVED_AMOUNT = 4_750_000  # complete_proposal's RAB: 50 sak × 65.000 + 10 hari × 150.000


def now_wita() -> dt.datetime:
    return dt.datetime.now(evidence.WITA).replace(tzinfo=None, microsecond=0)


def site_photo(seed: int, *, taken_at: dt.datetime | None = None, gps: tuple[float, float] | None = None) -> bytes:
    """A JPEG of a scene of its own (distinct perceptual hash per seed) with make_jpeg's EXIF."""
    return make_scene_jpeg(seed, taken_at=taken_at, gps=gps)


async def stored(s, w, data: bytes) -> EvidenceFile:
    row = await media.save_media(s, w.store, data, "image/jpeg")
    exif, phash = await progress.analyse_photo(data)
    return EvidenceFile(row, f"AgAD-{row.id}", f"uq-{row.id}", exif, phash)


async def good_photo(s, w, seed: int) -> EvidenceFile:
    return await stored(s, w, site_photo(seed, taken_at=now_wita(), gps=NEAR))


async def _roles(sessionmaker, uid):
    async with sessionmaker() as s:
        return await users.load_roles(s, uid, (ADMIN,))


async def approved_proposal(sessionmaker, w, i: int = 0, **kw) -> Proposal:
    head = w.heads[i] if i >= 0 else HEAD_LOK
    officer = OFFICER_API if i >= 0 else OFFICER_LOK
    async with sessionmaker() as s:
        p = await complete_proposal(s, w, i, **kw)
        p = await proposals.submit(s, head, p.id, p.version, TODAY, admin_ids=(ADMIN,))
    roles = await _roles(sessionmaker, officer)
    async with sessionmaker() as s:
        return await review.decide(s, officer, roles, p.id, "setujui")


async def status_of(s, proposal_id: int) -> str:
    return (await s.get(Proposal, proposal_id, populate_existing=True)).status


async def count(s, model) -> int:
    return await s.scalar(select(func.count()).select_from(model))


def flag_kinds(report: ProgressReport) -> list[str]:
    return [f["kind"] for f in report.flags]


# --- reports ------------------------------------------------------------------------------------


async def test_first_report_moves_to_pelaksanaan_with_event_audit_and_notice(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    p = await approved_proposal(sessionmaker, w)
    head = w.heads[0]
    async with sessionmaker() as s:
        photo = await good_photo(s, w, 1)
        receipt = await stored(s, w, site_photo(101))
        r = await progress.report(
            s,
            head,
            p.id,
            percent=30,
            spent_total=1_000_000,
            note="Pengecoran tahap 1",
            location=NEAR,
            photos=[photo],
            receipts=[tuple(receipt)],
            admin_ids=(ADMIN,),
        )
        assert (r.status, r.percent, r.spent_total, r.flags) == ("menunggu", 30, 1_000_000, [])
        assert await status_of(s, p.id) == "pelaksanaan"
        assert [(m.kind, m.position) for m in r.media] == [("foto_progres", 0), ("nota", 0)]
        pm = r.media_of("foto_progres")[0]
        assert pm.exif_lat == pytest.approx(NEAR[0]) and pm.exif_taken_at.tzinfo is not None
        assert pm.phash == photo.phash and pm.telegram_file_id == photo.file_id
        ev = await s.scalar(select(ProposalEvent).where(ProposalEvent.action == "lapor_progres"))
        assert (ev.from_status, ev.to_status, ev.actor_id, ev.data["report_id"]) == (
            "disetujui",
            "pelaksanaan",
            head,
            r.id,
        )
        log = await s.scalar(select(AuditLog).where(AuditLog.action == "progress.report"))
        assert (log.actor_id, log.entity_id, log.after["percent"]) == (head, str(p.id), 30)
        notice = await s.scalar(select(Outbox).where(Outbox.kind == "progress.reported"))
        assert notice.chat_id == OFFICER_API and notice.payload["report_id"] == r.id

        r2 = await progress.report(s, head, p.id, percent=60, spent_total=2_500_000, photos=[await good_photo(s, w, 2)])
        assert await status_of(s, p.id) == "pelaksanaan" and r2.flags == []
        tl = await progress.timeline(s, p.id)
        assert [(e.percent, e.photos, e.receipts, e.spent_total) for e in tl] == [
            (30, 1, 1, 1_000_000),
            (60, 1, 0, 2_500_000),
        ]


async def test_complete_report_verified_closes_with_realised_and_unspent(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    p = await approved_proposal(sessionmaker, w)
    head = w.heads[0]
    officer = await _roles(sessionmaker, OFFICER_API)
    async with sessionmaker() as s:
        first = await progress.report(
            s, head, p.id, percent=50, spent_total=2_000_000, photos=[await good_photo(s, w, 1)]
        )
        done = await progress.report(
            s, head, p.id, percent=100, spent_total=4_500_000, photos=[await good_photo(s, w, 2)]
        )
        assert await status_of(s, p.id) == "menunggu_verifikasi_selesai"
        with pytest.raises(TransitionError):  # nothing more until an officer has looked
            await progress.report(s, head, p.id, percent=100, spent_total=4_500_000, photos=[await good_photo(s, w, 3)])

        await progress.verify(s, OFFICER_API, officer, first.id, "terverifikasi")
        assert await status_of(s, p.id) == "menunggu_verifikasi_selesai"
        assert await progress.completion_of(s, p.id) is None

        verified = await progress.verify(s, OFFICER_API, officer, done.id, "terverifikasi", note="Sesuai")
        assert (verified.status, verified.verified_by, verified.officer_note) == (
            "terverifikasi",
            OFFICER_API,
            "Sesuai",
        )
        assert await status_of(s, p.id) == "selesai"
        c = await progress.completion_of(s, p.id)
        assert (c.realised_amount, c.unspent, c.verified_by, c.report_id) == (4_500_000, 250_000, OFFICER_API, done.id)
        ev = await s.scalar(select(ProposalEvent).where(ProposalEvent.action == "verifikasi_selesai"))
        assert (ev.from_status, ev.to_status, ev.data["unspent"]) == ("menunggu_verifikasi_selesai", "selesai", 250_000)
        notices = (await s.scalars(select(Outbox).where(Outbox.kind == "progress.verified").order_by(Outbox.id))).all()
        assert [(n.chat_id, n.payload["completed"]) for n in notices] == [(head, False), (head, True)]
        with pytest.raises(progress.AlreadyVerified):
            await progress.verify(s, OFFICER_API, officer, done.id, "terverifikasi")
        with pytest.raises(TransitionError):
            await progress.report(s, head, p.id, percent=100, spent_total=4_500_000, photos=[await good_photo(s, w, 4)])


async def test_more_evidence_round_trip(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    p = await approved_proposal(sessionmaker, w)
    head = w.heads[0]
    officer = await _roles(sessionmaker, OFFICER_API)
    async with sessionmaker() as s:
        done = await progress.report(
            s, head, p.id, percent=100, spent_total=4_750_000, photos=[await good_photo(s, w, 1)]
        )
        assert await status_of(s, p.id) == "menunggu_verifikasi_selesai"  # straight from disetujui
        with pytest.raises(progress.DecisionIncomplete) as e:
            await progress.verify(s, OFFICER_API, officer, done.id, "minta_bukti", note="  ")
        assert e.value.missing == ("note",)
        asked = await progress.verify(s, OFFICER_API, officer, done.id, "minta_bukti", note="Foto dari depan gang")
        assert asked.status == "perlu_bukti"
        assert await status_of(s, p.id) == "pelaksanaan"
        notice = await s.scalar(select(Outbox).where(Outbox.kind == "progress.more_evidence"))
        assert (notice.chat_id, notice.payload["note"], notice.payload["report_id"]) == (
            head,
            "Foto dari depan gang",
            done.id,
        )
        again = await progress.report(
            s, head, p.id, percent=100, spent_total=4_750_000, photos=[await good_photo(s, w, 2)]
        )
        await progress.verify(s, OFFICER_API, officer, again.id, "terverifikasi")
        assert await status_of(s, p.id) == "selesai"
        assert (await progress.completion_of(s, p.id)).unspent == 0
        assert [e.status for e in await progress.timeline(s, p.id)] == ["perlu_bukti", "terverifikasi"]


async def test_backwards_needs_a_reason(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    p = await approved_proposal(sessionmaker, w)
    head = w.heads[0]
    async with sessionmaker() as s:
        await progress.report(s, head, p.id, percent=80, spent_total=3_000_000, photos=[await good_photo(s, w, 1)])
        with pytest.raises(progress.PercentRefused) as e:
            await progress.report(s, head, p.id, percent=50, spent_total=3_000_000)
        assert (e.value.kind, e.value.previous, e.value.new) == ("backwards_needs_reason", 80, 50)
        assert await count(s, ProgressReport) == 1
        r = await progress.report(
            s, head, p.id, percent=50, spent_total=3_000_000, backwards_reason="Cor retak, dibongkar ulang"
        )
        assert (r.percent, r.backwards_reason) == (50, "Cor retak, dibongkar ulang")
        forward = await progress.report(s, head, p.id, percent=70, spent_total=3_200_000, backwards_reason="ignored")
        assert forward.backwards_reason is None


async def test_complete_without_photo_is_refused_and_nothing_is_saved(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    p = await approved_proposal(sessionmaker, w)
    async with sessionmaker() as s:
        receipt = await stored(s, w, site_photo(7))
        with pytest.raises(progress.PercentRefused) as e:
            await progress.report(s, w.heads[0], p.id, percent=100, spent_total=4_000_000, receipts=[receipt])
        assert e.value.kind == "complete_needs_photo"
        assert (await count(s, ProgressReport), await count(s, ProgressMedia)) == (0, 0)
        assert await status_of(s, p.id) == "disetujui"
        assert not (await s.scalars(select(Outbox).where(Outbox.kind == "progress.reported"))).all()


@pytest.mark.parametrize(("kw", "field"), [({"spent_total": -1}, "spent_total"), ({"note": "x" * 1001}, "note")])
async def test_invalid_input_refused(sessionmaker, tmp_path, kw, field):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    p = await approved_proposal(sessionmaker, w)
    async with sessionmaker() as s:
        with pytest.raises(proposals.InvalidField) as e:
            await progress.report(s, w.heads[0], p.id, **{"percent": 10, "spent_total": 0, **kw})
        assert e.value.field == field
        with pytest.raises(progress.PercentRefused):
            await progress.report(s, w.heads[0], p.id, percent=120, spent_total=0)
        assert await count(s, ProgressReport) == 0


async def test_head_of_another_rt_is_refused_and_audited(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=2)
    p = await approved_proposal(sessionmaker, w, 0)
    async with sessionmaker() as s:
        for intruder in (w.heads[1], HEAD_LOK, OFFICER_API):
            with pytest.raises(Forbidden) as e:
                await progress.report(s, intruder, p.id, percent=10, spent_total=0)
            assert e.value.reason == "not_your_rt"
        denied = (await s.scalars(select(AuditLog).where(AuditLog.action == "denied.progress.lapor"))).all()
        assert sorted((d.actor_id, d.entity_id, d.reason) for d in denied) == sorted(
            (u, str(p.id), "not_your_rt") for u in (w.heads[1], HEAD_LOK, OFFICER_API)
        )
        assert await count(s, ProgressReport) == 0
        assert await status_of(s, p.id) == "disetujui"


async def test_report_on_rejected_or_unapproved_proposal_is_refused(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    head = w.heads[0]
    officer = await _roles(sessionmaker, OFFICER_API)
    async with sessionmaker() as s:
        p = await complete_proposal(s, w, 0, amount=1_000_000)
        with pytest.raises(TransitionError) as e:  # a draft
            await progress.report(s, head, p.id, percent=10, spent_total=0)
        assert e.value.current == "draf"
        p = await proposals.submit(s, head, p.id, p.version, TODAY, admin_ids=(ADMIN,))
        with pytest.raises(TransitionError):  # waiting for review
            await progress.report(s, head, p.id, percent=10, spent_total=0)
        await review.decide(s, OFFICER_API, officer, p.id, "tolak", note="Bukan prioritas")
        with pytest.raises(TransitionError) as e:
            await progress.report(s, head, p.id, percent=100, spent_total=0, photos=[await good_photo(s, w, 1)])
        assert (e.value.current, e.value.action) == ("ditolak", "lapor_selesai")
        with pytest.raises(proposals.ProposalNotFound):
            await progress.report(s, head, 999_999, percent=10, spent_total=0)
        assert await count(s, ProgressReport) == 0
        assert await progress.approved_proposals_of(s, w.rt_ids[0], YEAR) == []


async def test_spending_above_approved_needs_a_note_and_is_flagged(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    p = await approved_proposal(sessionmaker, w)
    head = w.heads[0]
    async with sessionmaker() as s:
        with pytest.raises(progress.OverBudgetNeedsNote) as e:
            await progress.report(s, head, p.id, percent=90, spent_total=APPROVED_AMOUNT + 250_000)
        assert (e.value.spent, e.value.approved, e.value.over) == (APPROVED_AMOUNT + 250_000, APPROVED_AMOUNT, 250_000)
        assert await count(s, ProgressReport) == 0
        r = await progress.report(
            s,
            head,
            p.id,
            percent=90,
            spent_total=APPROVED_AMOUNT + 250_000,
            over_budget_note="Harga semen naik; selisih ditanggung swadaya warga",
        )
        assert r.flags == [
            {
                "kind": "over_budget",
                "detail": {"spent": APPROVED_AMOUNT + 250_000, "approved": APPROVED_AMOUNT, "over": 250_000},
                "file": None,
                "media_id": None,
                "position": None,
            }
        ]
        assert r.over_budget_note.startswith("Harga semen")
        notice = await s.scalar(select(Outbox).where(Outbox.kind == "progress.reported"))
        assert notice.payload["flags"] == ["over_budget"]


async def test_far_away_and_before_approval_photos_are_flagged(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    p = await approved_proposal(sessionmaker, w)
    async with sessionmaker() as s:
        ok = await good_photo(s, w, 1)
        far = await stored(s, w, site_photo(2, taken_at=now_wita(), gps=FAR))
        old = await stored(s, w, site_photo(3, taken_at=dt.datetime(2025, 12, 1, 9, 0), gps=NEAR))
        bare = await stored(s, w, site_photo(4))  # compressed by Telegram: no EXIF
        r = await progress.report(
            s, w.heads[0], p.id, percent=40, spent_total=1_000_000, photos=[ok, far, old, bare], location=FAR
        )
        by_position = {(f["file"], f["position"]): f for f in r.flags}
        assert sorted(by_position, key=str) == sorted(
            [(None, None), ("foto_progres", 1), ("foto_progres", 2), ("foto_progres", 3)], key=str
        )
        pin = by_position[(None, None)]
        assert (pin["kind"], pin["detail"]["source"]) == ("far_from_site", "pin")
        flagged_far = by_position[("foto_progres", 1)]
        assert (flagged_far["kind"], flagged_far["media_id"]) == ("far_from_site", far.media.id)
        assert flagged_far["detail"]["distance_m"] == pytest.approx(1501, abs=5)
        before = by_position[("foto_progres", 2)]
        assert before["kind"] == "taken_before_approval"
        assert before["detail"]["taken_at"] == "2025-12-01T01:00:00+00:00"
        assert by_position[("foto_progres", 3)]["kind"] == "no_exif"
        notice = await s.scalar(select(Outbox).where(Outbox.kind == "progress.reported"))
        assert notice.payload["flags"] == ["far_from_site", "no_exif", "taken_before_approval"]


async def test_reused_photo_is_flagged_in_a_later_report_of_any_proposal(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=2)
    p1 = await approved_proposal(sessionmaker, w, 0)
    p2 = await approved_proposal(sessionmaker, w, 1)
    data = make_jpeg(taken_at=now_wita(), gps=NEAR)
    async with sessionmaker() as s:
        first = await progress.report(
            s, w.heads[0], p1.id, percent=30, spent_total=0, photos=[await stored(s, w, data)]
        )
        assert first.flags == []
        # the same photo again, as Telegram would send it again: same bytes, same stored file
        again = await progress.report(
            s,
            w.heads[0],
            p1.id,
            percent=60,
            spent_total=0,
            photos=[await good_photo(s, w, 9), await stored(s, w, data)],
        )
        [flag] = again.flags
        assert (flag["kind"], flag["position"], flag["detail"]["distance"]) == ("reused_photo", 1, 0)
        assert (flag["detail"]["report_id"], flag["detail"]["proposal_id"]) == (first.id, p1.id)
        # a re-encoded, slightly smaller copy sent for another RT's proposal
        copy = io.BytesIO()
        Image.open(io.BytesIO(data)).resize((600, 450)).save(copy, "JPEG", quality=70)
        other = await progress.report(
            s, w.heads[1], p2.id, percent=20, spent_total=0, photos=[await stored(s, w, copy.getvalue())]
        )
        assert [f["kind"] for f in other.flags] == ["no_exif", "reused_photo"]  # re-saving dropped the EXIF
        assert other.flags[1]["detail"]["proposal_id"] == p1.id


async def test_reused_receipt_is_flagged_as_a_receipt(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    p = await approved_proposal(sessionmaker, w)
    head = w.heads[0]
    receipt = make_scene_jpeg(77)  # a scan of a receipt: no EXIF
    async with sessionmaker() as s:
        first_receipt = await stored(s, w, receipt)
        first = await progress.report(
            s, head, p.id, percent=30, spent_total=1_000_000,
            photos=[await good_photo(s, w, 1)], receipts=[first_receipt],
        )  # fmt: skip
        assert first.flags == []  # receipts are not checked for EXIF, distance or capture time
        # the same receipt again, behind a new one: flagged as receipt 2, pointing at the first report
        receipts = [await stored(s, w, make_scene_jpeg(78)), await stored(s, w, receipt)]
        again = await progress.report(
            s, head, p.id, percent=60, spent_total=2_000_000, photos=[await good_photo(s, w, 2)], receipts=receipts
        )
        [flag] = again.flags
        assert {k: flag[k] for k in ("kind", "file", "position", "media_id")} == {
            "kind": "reused_photo",
            "file": "nota",
            "position": 1,
            "media_id": first_receipt.media.id,
        }
        assert (flag["detail"]["distance"], flag["detail"]["report_id"], flag["detail"]["proposal_id"]) == (
            0,
            first.id,
            p.id,
        )
        assert flag["detail"]["media_id"] == first_receipt.media.id
        notice = (await s.scalars(select(Outbox).where(Outbox.kind == "progress.reported").order_by(Outbox.id))).all()
        assert notice[-1].payload["flags"] == ["reused_photo"]


# --- verification -----------------------------------------------------------------------------------------


async def test_verification_is_scoped_and_refusals_audited(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    p = await approved_proposal(sessionmaker, w)
    lok = await _roles(sessionmaker, OFFICER_LOK)
    head_roles = await _roles(sessionmaker, w.heads[0])
    async with sessionmaker() as s:
        r = await progress.report(s, w.heads[0], p.id, percent=30, spent_total=0, photos=[await good_photo(s, w, 1)])
        with pytest.raises(Forbidden):
            await progress.verify(s, OFFICER_LOK, lok, r.id, "terverifikasi")
        with pytest.raises(Forbidden):
            await progress.verify(s, w.heads[0], head_roles, r.id, "minta_bukti", note="x")
        denied = (await s.scalars(select(AuditLog).where(AuditLog.action.like("denied.progress.%")))).all()
        assert sorted((d.action, d.actor_id, d.entity_id, d.reason) for d in denied) == [
            ("denied.progress.minta_bukti", w.heads[0], str(r.id), "out_of_scope"),
            ("denied.progress.terverifikasi", OFFICER_LOK, str(r.id), "out_of_scope"),
        ]
        assert (await progress.get_report(s, r.id)).status == "menunggu"
        with pytest.raises(progress.ReportNotFound):
            await progress.verify(s, OFFICER_LOK, lok, 999_999, "terverifikasi")
        with pytest.raises(ValueError):
            await progress.verify(s, OFFICER_LOK, lok, r.id, "setujui")


async def test_pending_queue_follows_scope(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=2)
    p0 = await approved_proposal(sessionmaker, w, 0)
    p1 = await approved_proposal(sessionmaker, w, 1)
    plok = await approved_proposal(sessionmaker, w, -1)
    api, lok, admin = [await _roles(sessionmaker, u) for u in (OFFICER_API, OFFICER_LOK, ADMIN)]
    async with sessionmaker() as s:
        r0 = await progress.report(s, w.heads[0], p0.id, percent=10, spent_total=0)
        r1 = await progress.report(s, w.heads[1], p1.id, percent=10, spent_total=0)
        rl = await progress.report(s, HEAD_LOK, plok.id, percent=10, spent_total=0)
        rows, total = await progress.pending_in_scope(s, api.scope, limit=1)
        assert (total, [r.id for r in rows]) == (2, [r0.id])
        rows, _ = await progress.pending_in_scope(s, api.scope, limit=1, offset=1)
        assert [r.id for r in rows] == [r1.id]
        rows, total = await progress.pending_in_scope(s, lok.scope)
        assert (total, [r.id for r in rows]) == (1, [rl.id])
        await progress.verify(s, OFFICER_API, api, r0.id, "terverifikasi")
        rows, total = await progress.pending_in_scope(s, admin.scope, limit=10)
        assert (total, {r.id for r in rows}) == (2, {r1.id, rl.id})
        assert [x.id for x in await progress.approved_proposals_of(s, w.rt_ids[0], YEAR)] == [p0.id]


async def test_two_officers_verifying_at_once_exactly_one_wins(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    p = await approved_proposal(sessionmaker, w)
    async with sessionmaker() as s:
        r = await progress.report(
            s, w.heads[0], p.id, percent=100, spent_total=4_000_000, photos=[await good_photo(s, w, 1)]
        )
    officer, admin = await _roles(sessionmaker, OFFICER_API), await _roles(sessionmaker, ADMIN)

    async def act(uid, roles, action, note=None):
        async with sessionmaker() as s:
            try:
                await progress.verify(s, uid, roles, r.id, action, note)
                return "won"
            except progress.AlreadyVerified:
                return "lost"

    results = await asyncio.gather(
        act(OFFICER_API, officer, "terverifikasi"), act(ADMIN, admin, "minta_bukti", "Foto nota kurang jelas")
    )
    assert sorted(results) == ["lost", "won"]
    async with sessionmaker() as s:
        decisions = (
            await s.scalars(
                select(AuditLog).where(AuditLog.action.in_(["progress.terverifikasi", "progress.minta_bukti"]))
            )
        ).all()
        assert len(decisions) == 1
        notices = (
            await s.scalars(select(Outbox).where(Outbox.kind.in_(["progress.verified", "progress.more_evidence"])))
        ).all()
        assert len(notices) == 1
        completions = await count(s, ProposalCompletion)
        if results[0] == "won":
            assert (await status_of(s, p.id), completions) == ("selesai", 1)
        else:
            assert (await status_of(s, p.id), completions) == ("pelaksanaan", 0)
