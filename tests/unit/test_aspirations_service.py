"""Aspirasi warga service on SQLite and PostgreSQL: submit (limit re-checked atomically under a
flood, nothing stored twice, RT without a head), the inbox, and the RT head's decisions with their
audit rows and the resident's notices."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select

from bot.domain.permissions import Forbidden
from bot.domain.text import TextError
from bot.services import aspirations as svc
from bot.services import proposals, users
from storage.db import begin_write
from storage.models import RT, Aspiration, AuditLog, Follow, Kelurahan, Outbox
from tests.unit.test_proposals_service import ADMIN, HEAD_LOK, TODAY, complete_proposal, setup_world

RESIDENT = 501
OTHER = 502


async def _world(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path)
    async with sessionmaker() as s:
        for uid, name in ((RESIDENT, "Siti"), (OTHER, "Andi")):
            await users.ensure_user(s, uid, name, "Warga", None)
    return w


async def _roles(sessionmaker, uid):
    async with sessionmaker() as s:
        return await users.load_roles(s, uid, (ADMIN,))


async def _count(sessionmaker, model, *where) -> int:
    async with sessionmaker() as s:
        return await s.scalar(select(func.count()).select_from(model).where(*where))


async def test_submit_stores_literally_and_tells_the_head(sessionmaker, tmp_path):
    w = await _world(sessionmaker, tmp_path)
    text = "<b>Lampu</b> gang mati '; DROP TABLE aspirations; --"
    async with sessionmaker() as s:
        sent = await svc.submit(
            s,
            RESIDENT,
            w.rt_ids[0],
            f"  {text}  ",
            media_id=w.photo.id,
            telegram_file_id="AgAD",
            latitude=0.13,
            longitude=117.5,
        )
    assert sent.head_known
    async with sessionmaker() as s:
        row = await s.get(Aspiration, sent.aspiration.id)
        assert (row.text, row.status, row.media_id, row.telegram_file_id, row.share_contact) == (
            text,
            "baru",
            w.photo.id,
            "AgAD",
            False,
        )
        notice = await s.scalar(select(Outbox).where(Outbox.kind == svc.NOTICE_NEW))
        assert notice.chat_id == w.heads[0] and notice.payload == {"aspiration_id": row.id}
        audit = await s.scalar(select(AuditLog).where(AuditLog.action == "aspiration.create"))
        assert audit.actor_id == RESIDENT and audit.after["photo"] is True
    # The same text again (a double tap, a re-sent update): not stored twice.
    async with sessionmaker() as s:
        with pytest.raises(svc.AlreadySent):
            await svc.submit(s, RESIDENT, w.rt_ids[0], text)
    assert await _count(sessionmaker, Aspiration) == 1


async def test_bad_input_stores_nothing(sessionmaker, tmp_path):
    w = await _world(sessionmaker, tmp_path)
    async with sessionmaker() as s:
        with pytest.raises(TextError) as e:
            await svc.submit(s, RESIDENT, w.rt_ids[0], "x" * 5000)
        assert (e.value.kind, e.value.length) == ("too_long", 5000)
        with pytest.raises(TextError):
            await svc.submit(s, RESIDENT, w.rt_ids[0], " \n ")
        with pytest.raises(svc.BadLocation):
            await svc.submit(s, RESIDENT, w.rt_ids[0], "ok", latitude=100, longitude=0)
        with pytest.raises(svc.UnknownRT):
            await svc.submit(s, RESIDENT, 999_999, "ok")
    assert await _count(sessionmaker, Aspiration) == 0


async def test_daily_limit_is_rolling_and_refused_with_the_time(sessionmaker, tmp_path):
    w = await _world(sessionmaker, tmp_path)
    t0 = dt.datetime(2026, 11, 28, 1, 0, tzinfo=dt.UTC)
    async with sessionmaker() as s:
        for i in range(3):
            await svc.submit(s, RESIDENT, w.rt_ids[0], f"ide {i}", now=t0 + dt.timedelta(hours=i))
        assert await svc.limit_reached(s, RESIDENT, t0 + dt.timedelta(hours=3)) == t0 + dt.timedelta(hours=24)
        with pytest.raises(svc.LimitReached) as e:
            await svc.submit(s, RESIDENT, w.rt_ids[1], "ide 4", now=t0 + dt.timedelta(hours=3))
        assert e.value.next_at == t0 + dt.timedelta(hours=24)
        # another resident is not affected
        await svc.submit(s, OTHER, w.rt_ids[0], "ide 4", now=t0 + dt.timedelta(hours=3))
        # 24 hours after the first one, one more fits
        await svc.submit(s, RESIDENT, w.rt_ids[0], "ide 5", now=t0 + dt.timedelta(hours=24, seconds=1))
    assert await _count(sessionmaker, Aspiration, Aspiration.user_id == RESIDENT) == 4


async def test_flood_of_parallel_sends_stores_at_most_the_limit(sessionmaker, tmp_path):
    w = await _world(sessionmaker, tmp_path)

    async def one(i: int) -> str:
        async with sessionmaker() as s:
            try:
                await svc.submit(s, RESIDENT, w.rt_ids[0], f"banjir {i}")
                return "ok"
            except svc.LimitReached:
                return "limit"

    results = await asyncio.gather(*(one(i) for i in range(50)))
    assert results.count("ok") == svc.DAILY_LIMIT and results.count("limit") == 50 - svc.DAILY_LIMIT
    assert await _count(sessionmaker, Aspiration) == svc.DAILY_LIMIT
    assert await _count(sessionmaker, Outbox, Outbox.kind == svc.NOTICE_NEW) == svc.DAILY_LIMIT


async def test_same_text_in_parallel_is_stored_once(sessionmaker, tmp_path):
    w = await _world(sessionmaker, tmp_path)

    async def one() -> str:
        async with sessionmaker() as s:
            try:
                await svc.submit(s, RESIDENT, w.rt_ids[0], "Perbaiki drainase")
                return "ok"
            except svc.AlreadySent:
                return "dup"

    results = await asyncio.gather(*(one() for _ in range(5)))
    assert results.count("ok") == 1
    assert await _count(sessionmaker, Aspiration) == 1


async def test_rt_without_a_head_keeps_the_idea_for_the_next_one(sessionmaker, tmp_path):
    await _world(sessionmaker, tmp_path)
    async with sessionmaker() as s:
        kel = await s.scalar(select(Kelurahan).where(Kelurahan.name == "Loktuan"))
        rt2 = RT(kelurahan_id=kel.id, number=2)
        await begin_write(s)
        s.add(rt2)
        await s.commit()
        sent = await svc.submit(s, RESIDENT, rt2.id, "Bank sampah RT")
    assert not sent.head_known
    assert await _count(sessionmaker, Outbox, Outbox.kind == svc.NOTICE_NEW) == 0
    async with sessionmaker() as s:
        box = await svc.inbox(s, rt2.id)
        assert [a.text for a in box.items] == ["Bank sampah RT"]


async def test_followed_rts(sessionmaker, tmp_path):
    w = await _world(sessionmaker, tmp_path)
    async with sessionmaker() as s:
        assert await svc.followed_rts(s, RESIDENT) == []
        await begin_write(s)
        s.add(Follow(user_id=RESIDENT, rt_id=w.rt_ids[1]))
        await s.commit()
        assert [r.id for r in await svc.followed_rts(s, RESIDENT)] == [w.rt_ids[1]]


async def test_inbox_newest_first_paged_with_counts(sessionmaker, tmp_path):
    w = await _world(sessionmaker, tmp_path)
    t0 = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    async with sessionmaker() as s:
        for i in range(7):
            uid = (RESIDENT, OTHER)[i % 2]
            await svc.submit(s, uid, w.rt_ids[0], f"ide {i}", now=t0 + dt.timedelta(days=i))
        await svc.submit(s, RESIDENT, w.rt_ids[1], "lain RT", now=t0)
    roles = await _roles(sessionmaker, w.heads[0])
    async with sessionmaker() as s:
        first = (await svc.inbox(s, w.rt_ids[0])).items[0]
        await svc.decide(s, w.heads[0], roles, first.id, svc.BAHAS)
        box = await svc.inbox(s, w.rt_ids[0], page=0)
        assert [a.text for a in box.items] == ["ide 6", "ide 5", "ide 4", "ide 3", "ide 2"]
        assert (box.total, box.pages, box.counts["baru"], box.counts["akan_dibahas"]) == (7, 2, 6, 1)
        box = await svc.inbox(s, w.rt_ids[0], page=5)  # clamped to the last page
        assert (box.page, [a.text for a in box.items]) == (1, ["ide 1", "ide 0"])


async def test_decisions_notify_the_resident_and_are_audited(sessionmaker, tmp_path):
    w = await _world(sessionmaker, tmp_path)
    async with sessionmaker() as s:
        p = await complete_proposal(s, w, 0)
        p = await proposals.submit(s, w.heads[0], p.id, None, TODAY)
        q = await complete_proposal(s, w, -1)  # Loktuan RT 1
        q = await proposals.submit(s, HEAD_LOK, q.id, None, TODAY)
        a = (await svc.submit(s, RESIDENT, w.rt_ids[0], "Semenisasi gang")).aspiration
        b = (await svc.submit(s, RESIDENT, w.rt_ids[0], "Lampu jalan")).aspiration
    head = await _roles(sessionmaker, w.heads[0])
    other_head = await _roles(sessionmaker, w.heads[1])
    async with sessionmaker() as s:
        with pytest.raises(Forbidden):
            await svc.decide(s, w.heads[1], other_head, a.id, svc.BAHAS)
        with pytest.raises(Forbidden):
            await svc.get_for_head(s, w.heads[1], other_head, a.id)
        with pytest.raises(svc.InvalidProposalCode) as e:
            await svc.decide(s, w.heads[0], head, a.id, svc.USULKAN, proposal_code=q.code, code_prefix="PRL")
        assert e.value.kind == "other_rt"
        with pytest.raises(svc.InvalidProposalCode) as e:
            await svc.decide(s, w.heads[0], head, a.id, svc.USULKAN, proposal_code="PRL-2026-9999", code_prefix="PRL")
        assert e.value.kind == "not_found"
        with pytest.raises(TextError):
            await svc.decide(s, w.heads[0], head, b.id, svc.TOLAK, reason="  ")

        row = await svc.decide(s, w.heads[0], head, a.id, svc.BAHAS)
        assert row.status == "akan_dibahas"
        row = await svc.decide(
            s, w.heads[0], head, a.id, svc.USULKAN, proposal_code=p.code.lower().replace("-", " "), code_prefix="PRL"
        )
        assert (row.status, row.proposal_id, row.decided_by) == ("dijadikan_usulan", p.id, w.heads[0])
        with pytest.raises(svc.AlreadyDecided):
            await svc.decide(s, w.heads[0], head, a.id, svc.TOLAK, reason="x")
        row = await svc.decide(s, w.heads[0], head, b.id, svc.TOLAK, reason="<i>Di luar</i> wilayah RT")
        assert (row.status, row.reason) == ("tidak_dapat", "<i>Di luar</i> wilayah RT")
    async with sessionmaker() as s:
        notices = (await s.scalars(select(Outbox).where(Outbox.kind == svc.NOTICE_DECIDED).order_by(Outbox.id))).all()
        assert [(n.chat_id, n.payload["status"]) for n in notices] == [
            (RESIDENT, "akan_dibahas"),
            (RESIDENT, "dijadikan_usulan"),
            (RESIDENT, "tidak_dapat"),
        ]
        actions = [a.action for a in (await s.scalars(select(AuditLog).order_by(AuditLog.id))).all()]
        assert actions.count("denied.aspiration.bahas") == 1
        assert actions.count("denied.aspiration.open") == 1
        assert actions.count("denied.aspiration.usulkan") == 1
        assert {"aspiration.bahas", "aspiration.usulkan", "aspiration.tolak"} <= set(actions)


async def test_two_taps_on_a_decision_count_once(sessionmaker, tmp_path):
    w = await _world(sessionmaker, tmp_path)
    async with sessionmaker() as s:
        a = (await svc.submit(s, RESIDENT, w.rt_ids[0], "Posyandu")).aspiration
    head = await _roles(sessionmaker, w.heads[0])

    async def tap():
        async with sessionmaker() as s:
            try:
                await svc.decide(s, w.heads[0], head, a.id, svc.BAHAS)
                return "ok"
            except svc.AlreadyDecided:
                return "already"

    assert sorted(await asyncio.gather(tap(), tap(), tap())) == ["already", "already", "ok"]
    assert await _count(sessionmaker, Outbox, Outbox.kind == svc.NOTICE_DECIDED) == 1
