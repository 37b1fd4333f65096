"""Follows on SQLite and PostgreSQL: following an RT or a proposal (once, at most 20, audited), the
notices written with decisions and progress reports (one per follower, never to the actor or the
RT's own Ketua RT), quiet hours, decisions-only, weekly summaries, and their texts at send time."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from bot.domain import follow as rules
from bot.i18n import build_i18n
from bot.notices import render
from bot.services import follows, progress, review, users
from bot.services import proposals as proposals_service
from handlers.public import PubCb
from storage.db import begin_write
from storage.models import AuditLog, Follow, Outbox, Proposal, User, utcnow
from tests.unit.test_progress_service import _roles, approved_proposal, good_photo
from tests.unit.test_proposals_service import (
    ADMIN,
    HEAD_LOK,
    OFFICER_API,
    TODAY,
    complete_proposal,
    setup_world,
)

WITA = ZoneInfo("Asia/Makassar")
ANA, BAYU, CICI = 501, 502, 503  # residents
I18N = build_i18n()


async def residents(sessionmaker, *ids: int) -> None:
    async with sessionmaker() as s:
        for uid in ids:
            await users.ensure_user(s, uid, f"Warga{uid}", "Rahasia", None)


async def follow_rows(s, kind: str = follows.NOTICE_EVENT) -> list[Outbox]:
    return list((await s.scalars(select(Outbox).where(Outbox.kind == kind).order_by(Outbox.id))).all())


async def no_quiet(sessionmaker, *ids: int) -> None:
    async with sessionmaker() as s:
        for uid in ids:
            await follows.set_quiet(s, uid, 0, 0)


async def submitted(sessionmaker, w, i: int = 0, title: str = "Semenisasi gang") -> Proposal:
    async with sessionmaker() as s:
        p = await complete_proposal(s, w, i, title=title)
        return await proposals_service.submit(s, w.heads[i], p.id, p.version, TODAY, admin_ids=(ADMIN,))


async def rendered(sessionmaker, row: Outbox, lang: str = "id"):
    async with sessionmaker() as s:
        fresh = await s.get(Outbox, row.id)
        with I18N.context(), I18N.use_locale(lang):
            return await render(s, fresh, (ADMIN,))


# --- following ------------------------------------------------------------------------------------------


async def test_follow_once_unfollow_and_audit(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=2)
    await residents(sessionmaker, ANA, BAYU)
    p = await submitted(sessionmaker, w)
    async with sessionmaker() as s:
        f1, created = await follows.follow_rt(s, ANA, w.rt_ids[0])
        assert created and (f1.rt_id, f1.proposal_id) == (w.rt_ids[0], None)
        again, created = await follows.follow_rt(s, ANA, w.rt_ids[0])
        assert not created and again.id == f1.id
        f2, created = await follows.follow_proposal(s, ANA, p.id)
        assert created and f2.proposal_id == p.id
        views = await follows.list_follows(s, ANA)
        assert [(v.rt.id if v.rt else None, v.proposal.code if v.proposal else None) for v in views] == [
            (w.rt_ids[0], None),
            (None, p.code),
        ]
        with pytest.raises(follows.FollowTargetNotFound):
            await follows.follow_rt(s, ANA, 999_999)
        draft = await complete_proposal(s, w, 1, title="Masih draf")
        with pytest.raises(follows.FollowTargetNotFound):
            await follows.follow_proposal(s, ANA, draft.id)
        assert await follows.unfollow(s, BAYU, f1.id) is None  # not Bayu's
        gone = await follows.unfollow(s, ANA, f1.id)
        assert gone is not None and gone.rt.id == w.rt_ids[0]
        assert await follows.unfollow(s, ANA, f1.id) is None
        assert [v.follow.id for v in await follows.list_follows(s, ANA)] == [f2.id]
        audit = (await s.scalars(select(AuditLog).where(AuditLog.actor_id == ANA).order_by(AuditLog.id))).all()
        assert [(a.action, a.entity) for a in audit] == [
            ("follow.add", "rt"),
            ("follow.add", "proposal"),
            ("follow.remove", "rt"),
        ]


async def test_at_most_twenty_follows(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=21)
    await residents(sessionmaker, ANA)
    async with sessionmaker() as s:
        for rt_id in w.rt_ids[:20]:
            await follows.follow_rt(s, ANA, rt_id)
        with pytest.raises(follows.TooManyFollows) as exc:
            await follows.follow_rt(s, ANA, w.rt_ids[20])
        assert exc.value.limit == follows.MAX_FOLLOWS == 20
        _, created = await follows.follow_rt(s, ANA, w.rt_ids[0])  # following again is still fine
        assert not created
        assert len(await follows.list_follows(s, ANA)) == 20


async def test_settings_are_audited(sessionmaker, tmp_path):
    await setup_world(sessionmaker, tmp_path, n_rts=1)
    await residents(sessionmaker, ANA)
    async with sessionmaker() as s:
        prefs = await follows.prefs_of(s, ANA)
        assert (prefs.mode, prefs.quiet_start, prefs.quiet_end) == ("semua", 21 * 60, 6 * 60)
        await follows.set_mode(s, ANA, "keputusan")
        await follows.set_quiet(s, ANA, 22 * 60, 5 * 60)
        with pytest.raises(ValueError):
            await follows.set_mode(s, ANA, "loud")
        with pytest.raises(ValueError):
            await follows.set_quiet(s, ANA, 0, 24 * 60)
    async with sessionmaker() as s:
        prefs = await follows.prefs_of(s, ANA)
        assert (prefs.mode, prefs.quiet_start, prefs.quiet_end) == ("keputusan", 22 * 60, 5 * 60)
        audit = (await s.scalars(select(AuditLog).where(AuditLog.actor_id == ANA).order_by(AuditLog.id))).all()
        assert [a.action for a in audit] == ["prefs.mode", "prefs.quiet"]
        assert audit[0].before["mode"] == "semua" and audit[0].after == {"mode": "keputusan"}


# --- notices ------------------------------------------------------------------------------------------------


async def test_decision_notifies_each_follower_once(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=2)
    await residents(sessionmaker, ANA, BAYU, CICI)
    p = await submitted(sessionmaker, w)
    head = w.heads[0]
    async with sessionmaker() as s:
        await follows.follow_rt(s, ANA, w.rt_ids[0])
        await follows.follow_proposal(s, ANA, p.id)  # both: still one notice
        await follows.follow_proposal(s, BAYU, p.id)
        await follows.follow_rt(s, CICI, w.rt_ids[1])  # another RT: nothing
        await follows.follow_rt(s, head, w.rt_ids[0])  # the RT's own Ketua RT: told directly, not as follower
        await follows.follow_rt(s, OFFICER_API, w.rt_ids[0])  # the deciding officer: not told of own action
        await follows.follow_rt(s, HEAD_LOK, w.rt_ids[0])
        await begin_write(s)
        await s.execute(update(User).where(User.id == HEAD_LOK).values(blocked_bot=True))  # blocked the bot
        await s.commit()
    await no_quiet(sessionmaker, ANA, BAYU)
    roles = await _roles(sessionmaker, OFFICER_API)
    async with sessionmaker() as s:
        before = utcnow()
        await review.decide(s, OFFICER_API, roles, p.id, "setujui", note="Catatan petugas rahasia")
        rows = await follow_rows(s)
        assert sorted(r.chat_id for r in rows) == [ANA, BAYU]
        for r in rows:
            assert r.payload["proposal_id"] == p.id and r.payload["event"] == rules.EV_APPROVED
            assert before - dt.timedelta(seconds=1) <= r.next_attempt_at <= utcnow()
        # the RT head still gets the direct decision notice
        direct = await s.scalar(select(Outbox).where(Outbox.kind == "proposal.approved"))
        assert direct.chat_id == head

    notice = await rendered(sessionmaker, rows[0])
    assert p.code in notice.text and "Semenisasi gang" in notice.text and "RT 01" in notice.text
    for secret in ("Catatan petugas rahasia", "Ketua", "U21", "Warga", str(OFFICER_API), "+62"):
        assert secret not in notice.text
    (button,) = [b for row in notice.reply_markup.inline_keyboard for b in row]
    assert button.callback_data == PubCb(action="card", id=p.id).pack()


async def test_quiet_hours_hold_the_notice_until_the_end_of_the_window(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    await residents(sessionmaker, ANA, BAYU)
    p = await submitted(sessionmaker, w)
    async with sessionmaker() as s:
        await follows.follow_rt(s, ANA, w.rt_ids[0])
        await follows.follow_rt(s, BAYU, w.rt_ids[0])
        await follows.set_quiet(s, BAYU, 0, 0)
        night = dt.datetime(2026, 5, 4, 23, 0, tzinfo=WITA)  # Ana keeps the default 21.00–06.00
        proposal = await s.get(Proposal, p.id)
        await begin_write(s)
        assert await follows.notify(s, proposal, rules.EV_REJECTED, actor_id=OFFICER_API, at=night) == 2
        await s.commit()
        rows = {r.chat_id: r for r in await follow_rows(s)}
        assert rows[ANA].next_attempt_at == dt.datetime(2026, 5, 5, 6, 0, tzinfo=WITA)
        assert rows[BAYU].next_attempt_at == night

        # Ana changes her quiet hours: what was held moves with them (here: due at once).
        await follows.set_quiet(s, ANA, 13 * 60, 14 * 60)
        held = await s.get(Outbox, rows[ANA].id, populate_existing=True)
        assert held.next_attempt_at <= utcnow()


async def test_decisions_only_gets_no_progress_and_off_gets_nothing(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    await residents(sessionmaker, ANA, BAYU, CICI)
    p = await approved_proposal(sessionmaker, w)
    async with sessionmaker() as s:
        for uid in (ANA, BAYU, CICI):
            await follows.follow_rt(s, uid, w.rt_ids[0])
            await follows.set_quiet(s, uid, 0, 0)
        await follows.set_mode(s, BAYU, "keputusan")
        await follows.set_mode(s, CICI, "mati")
        r = await progress.report(
            s, w.heads[0], p.id, percent=40, spent_total=1_000_000, photos=[await good_photo(s, w, 1)]
        )
        rows = await follow_rows(s)
        assert [(x.chat_id, x.payload["event"], x.payload["percent"]) for x in rows] == [(ANA, "progress", 40)]
        assert rows[0].payload["report_id"] == r.id
    notice = await rendered(sessionmaker, rows[0])
    assert "40%" in notice.text and p.code in notice.text

    officer = await _roles(sessionmaker, OFFICER_API)
    async with sessionmaker() as s:
        await progress.verify(s, OFFICER_API, officer, r.id, "terverifikasi")
        rows = await follow_rows(s)
        assert [(x.chat_id, x.payload["event"]) for x in rows[1:]] == [(ANA, "progress_verified")]
        done = await progress.report(
            s, w.heads[0], p.id, percent=100, spent_total=4_000_000, photos=[await good_photo(s, w, 2)]
        )
        await progress.verify(s, OFFICER_API, officer, done.id, "terverifikasi")
        rows = await follow_rows(s)
        assert [(x.chat_id, x.payload["event"]) for x in rows[2:]] == [
            (ANA, "progress"),
            (ANA, "completed"),
            (BAYU, "completed"),
        ]

    # Bayu turns notices off before a held notice is sent: it is dropped at send time.
    async with sessionmaker() as s:
        await follows.set_mode(s, BAYU, "mati")
    assert await rendered(sessionmaker, rows[-1]) is None
    # Ana stops following: her pending notices are dropped too.
    async with sessionmaker() as s:
        (view,) = await follows.list_follows(s, ANA)
        await follows.unfollow(s, ANA, view.follow.id)
    assert await rendered(sessionmaker, rows[-2]) is None


async def test_weekly_summary_collects_events_in_one_row(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    await residents(sessionmaker, ANA)
    p1 = await submitted(sessionmaker, w, title="Semenisasi gang")
    p2 = await submitted(sessionmaker, w, title="Lampu jalan")
    async with sessionmaker() as s:
        await follows.follow_rt(s, ANA, w.rt_ids[0])
        await follows.set_mode(s, ANA, "mingguan")
    roles = await _roles(sessionmaker, OFFICER_API)
    async with sessionmaker() as s:
        await review.decide(s, OFFICER_API, roles, p1.id, "setujui")
    async with sessionmaker() as s:
        await review.decide(s, OFFICER_API, roles, p2.id, "tolak", note="Bukan prioritas")
    async with sessionmaker() as s:
        assert await follow_rows(s) == []
        (row,) = await follow_rows(s, follows.NOTICE_WEEKLY)
        assert row.chat_id == ANA
        assert [(e["proposal_id"], e["event"]) for e in row.payload["events"]] == [
            (p1.id, "approved"),
            (p2.id, "rejected"),
        ]
        due = row.next_attempt_at.astimezone(WITA)
        assert (due.weekday(), due.hour, due.minute) == (0, 7, 0)
        assert utcnow() < row.next_attempt_at <= utcnow() + dt.timedelta(days=7)

    notice = await rendered(sessionmaker, row)
    assert p1.code in notice.text and p2.code in notice.text
    assert "disetujui" in notice.text and "ditolak" in notice.text and "Bukan prioritas" not in notice.text
    assert {b.callback_data for r in notice.reply_markup.inline_keyboard for b in r} == {
        PubCb(action="card", id=p1.id).pack(),
        PubCb(action="card", id=p2.id).pack(),
    }

    # Once that summary is sent, the next event starts a new one.
    async with sessionmaker() as s:
        await begin_write(s)
        await s.execute(update(Outbox).where(Outbox.id == row.id).values(status="sent", sent_at=utcnow()))
        await s.commit()
        proposal = await s.get(Proposal, p1.id)
        await begin_write(s)
        await follows.notify(s, proposal, rules.EV_PROGRESS, actor_id=w.heads[0], percent=10)
        await s.commit()
        rows = await follow_rows(s, follows.NOTICE_WEEKLY)
        assert len(rows) == 2 and [e["event"] for e in rows[1].payload["events"]] == ["progress"]


async def test_follow_target_removed_by_cascade(sessionmaker, tmp_path):
    """Deleting a user removes their follows (the schema's ON DELETE CASCADE, used by /hapusdata)."""
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    await residents(sessionmaker, ANA)
    async with sessionmaker() as s:
        await follows.follow_rt(s, ANA, w.rt_ids[0])
        await begin_write(s)
        await s.delete(await s.get(User, ANA))
        await s.commit()
        assert (await s.scalars(select(Follow))).all() == []
