"""Registration and officer services on SQLite and PostgreSQL: scope checks, one decision wins,
one verified Ketua RT per RT, audit rows and outbox notices written with the change."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from bot.domain.permissions import Forbidden, Scope
from bot.services import officers, registration, users
from bot.services.wilayah import import_csv
from storage.models import AuditLog, Kelurahan, Outbox, RTHead

ADMIN = 1000


async def _setup(sessionmaker):
    await import_csv(sessionmaker, "kecamatan,kelurahan,rt\nBontang Utara,Api-Api,1\nBontang Utara,Api-Api,2\n"
                                   "Bontang Utara,Loktuan,1\n")
    async with sessionmaker() as s:
        kels = {k.name: k for k in (await s.scalars(select(Kelurahan))).all()}
        from storage.repositories import wilayah

        api = kels["Api-Api"]
        rt1 = await wilayah.find_rt(s, api.id, 1)
        rt_lok = await wilayah.find_rt(s, kels["Loktuan"].id, 1)
        for uid, name in ((ADMIN, "Admin"), (11, "Budi"), (12, "Siti"), (21, "Petugas Api"), (22, "Petugas Lok")):
            await users.ensure_user(s, uid, name, None, None)
        await officers.appoint(s, ADMIN, (ADMIN,), 21, Scope.for_kelurahan(api.kecamatan_id, api.id))
        lok = kels["Loktuan"]
        await officers.appoint(s, ADMIN, (ADMIN,), 22, Scope.for_kelurahan(lok.kecamatan_id, lok.id))
        return rt1.id, rt_lok.id


async def _roles(sessionmaker, uid):
    async with sessionmaker() as s:
        return await users.load_roles(s, uid, (ADMIN,))


async def test_submit_notifies_officer_in_scope_and_records_consent(sessionmaker):
    rt1, _ = await _setup(sessionmaker)
    async with sessionmaker() as s:
        reg = await registration.submit(s, 11, "Budi Santoso", "+628111", rt1, (ADMIN,))
        assert reg.status == "menunggu"
        notices = (await s.scalars(select(Outbox).where(Outbox.kind == "registration.new"))).all()
        assert [n.chat_id for n in notices] == [21]
        with pytest.raises(registration.AlreadyRegistered):
            await registration.submit(s, 11, "Budi Santoso", "+628111", rt1, (ADMIN,))
    roles = await _roles(sessionmaker, 11)
    assert roles.pending is not None and roles.rt_head is None


async def test_officer_of_other_kelurahan_is_refused_and_audited(sessionmaker):
    rt1, _ = await _setup(sessionmaker)
    async with sessionmaker() as s:
        reg = await registration.submit(s, 11, "Budi Santoso", "+628111", rt1, (ADMIN,))
    other = await _roles(sessionmaker, 22)
    async with sessionmaker() as s:
        with pytest.raises(Forbidden):
            await registration.decide(s, 22, other, reg.id, True, None)
        denied = (await s.scalars(select(AuditLog).where(AuditLog.action == "denied.registration.approve"))).all()
        assert [(d.actor_id, d.entity_id) for d in denied] == [(22, str(reg.id))]
        assert (await s.get(RTHead, reg.id, populate_existing=True)).status == "menunggu"
    warga = await _roles(sessionmaker, 12)
    async with sessionmaker() as s:
        with pytest.raises(Forbidden):
            await registration.decide(s, 12, warga, reg.id, True, None)


async def test_approve_notifies_and_replaces_previous_head(sessionmaker):
    rt1, _ = await _setup(sessionmaker)
    officer = await _roles(sessionmaker, 21)
    async with sessionmaker() as s:
        first = await registration.submit(s, 11, "Budi Santoso", "+628111", rt1, (ADMIN,))
        await registration.decide(s, 21, officer, first.id, True, None)
        second = await registration.submit(s, 12, "Siti Aminah", "+628222", rt1, (ADMIN,))
        decision = await registration.decide(s, 21, officer, second.id, True, None)
        assert decision.replaced is not None and decision.replaced.id == first.id
        heads = (await s.scalars(select(RTHead).where(RTHead.rt_id == rt1).order_by(RTHead.id))).all()
        assert [h.status for h in heads] == ["diganti", "terverifikasi"]
        kinds = sorted((o.chat_id, o.kind) for o in (await s.scalars(select(Outbox))).all()
                       if o.kind.startswith("registration.") and o.kind != "registration.new")
        assert kinds == [(11, "registration.approved"), (11, "registration.replaced"), (12, "registration.approved")]
        audit = [a.action for a in (await s.scalars(select(AuditLog).order_by(AuditLog.id))).all()]
        assert audit.count("registration.approve") == 2 and "registration.replace" in audit


async def test_reject_needs_reason(sessionmaker):
    rt1, _ = await _setup(sessionmaker)
    officer = await _roles(sessionmaker, 21)
    async with sessionmaker() as s:
        reg = await registration.submit(s, 11, "Budi Santoso", "+628111", rt1, (ADMIN,))
        with pytest.raises(ValueError):
            await registration.decide(s, 21, officer, reg.id, False, "  ")
        await registration.decide(s, 21, officer, reg.id, False, "Bukan ketua RT di sini")
        row = await s.get(RTHead, reg.id, populate_existing=True)
        assert (row.status, row.reason) == ("ditolak", "Bukan ketua RT di sini")


async def test_two_officers_at_once_exactly_one_decision_wins(sessionmaker):
    rt1, _ = await _setup(sessionmaker)
    async with sessionmaker() as s:
        reg = await registration.submit(s, 11, "Budi Santoso", "+628111", rt1, (ADMIN,))
    officer = await _roles(sessionmaker, 21)
    admin = await _roles(sessionmaker, ADMIN)

    async def act(uid, roles, approve):
        async with sessionmaker() as s:
            try:
                await registration.decide(s, uid, roles, reg.id, approve, None if approve else "tidak")
                return "won"
            except registration.AlreadyDecided:
                return "lost"

    results = await asyncio.gather(act(21, officer, True), act(ADMIN, admin, False))
    assert sorted(results) == ["lost", "won"]
    async with sessionmaker() as s:
        decisions = (await s.scalars(select(AuditLog).where(AuditLog.action.in_(
            ("registration.approve", "registration.reject"))))).all()
        assert len(decisions) == 1


async def test_non_admin_cannot_appoint(sessionmaker):
    await _setup(sessionmaker)
    async with sessionmaker() as s:
        with pytest.raises(Forbidden):
            await officers.appoint(s, 21, (ADMIN,), 12, Scope.for_kota())
        assert (await s.scalars(select(AuditLog).where(AuditLog.action == "denied.officer.appoint"))).all()


async def test_reappointing_changes_scope_and_revoke(sessionmaker):
    await _setup(sessionmaker)
    async with sessionmaker() as s:
        o = await officers.appoint(s, ADMIN, (ADMIN,), 21, Scope.for_kota())
        active = await officers.list_active(s)
        assert sorted((a.user_id, a.scope) for a in active) == [(21, "kota"), (22, "kelurahan")]
        await officers.revoke(s, ADMIN, (ADMIN,), o.id)
        with pytest.raises(officers.NotFound):
            await officers.revoke(s, ADMIN, (ADMIN,), o.id)
    roles = await _roles(sessionmaker, 21)
    assert roles.officer is None and roles.scope is None
