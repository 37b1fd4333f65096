"""Residents' quiet hours and "notices off" beyond follow notices (SQLite and PostgreSQL): the answer
to an aspiration and a musyawarah vote's poll wait for the end of the resident's quiet hours
(default 21:00-06:00 WITA), a poll is not held past the vote's closing, changing quiet hours moves a
held answer, and a follower who turned notices off gets no poll. Rendered notices: the resident's
"became a proposal" notice opens the public card."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from bot import notices
from bot.i18n import build_i18n
from bot.services import aspirations, follows, proposals, votes
from bot.services import users as users_svc
from handlers.public import PubCb
from storage.models import NOTIFY_OFF, Follow, NotificationPrefs, Outbox, utcnow
from tests.unit.test_proposals_service import ADMIN, TODAY, complete_proposal, setup_world

WITA = dt.timezone(dt.timedelta(hours=8))
NIGHT = dt.datetime(2026, 3, 2, 23, 0, tzinfo=WITA)  # Monday 23:00 WITA
MORNING = dt.datetime(2026, 3, 3, 6, 0, tzinfo=WITA)  # when the default quiet hours end
DEFAULT, AWAKE, OFF = 501, 502, 503  # residents: default prefs, no quiet hours, notices off


async def residents(sessionmaker, rt_id: int) -> None:
    async with sessionmaker() as s:
        for uid in (DEFAULT, AWAKE, OFF):
            await users_svc.ensure_user(s, uid, f"Warga {uid}", None, None)
        s.add_all(Follow(user_id=uid, rt_id=rt_id) for uid in (DEFAULT, AWAKE, OFF))
        s.add(NotificationPrefs(user_id=AWAKE, quiet_start=0, quiet_end=0))
        s.add(NotificationPrefs(user_id=OFF, mode=NOTIFY_OFF))
        await s.commit()


async def rows(sessionmaker, kind: str) -> dict[int, dt.datetime]:
    async with sessionmaker() as s:
        found = (await s.scalars(select(Outbox).where(Outbox.kind == kind).order_by(Outbox.id))).all()
    return {r.chat_id: r.next_attempt_at for r in found}


async def test_aspiration_answer_waits_for_the_morning_and_opens_the_card(sessionmaker, tmp_path, monkeypatch):
    w = await setup_world(sessionmaker, tmp_path)
    await residents(sessionmaker, w.rt_ids[0])
    async with sessionmaker() as s:
        p = await complete_proposal(s, w, 0)
        p = await proposals.submit(s, w.heads[0], p.id, None, TODAY)
        late = (await aspirations.submit(s, DEFAULT, w.rt_ids[0], "Lampu jalan gang 3")).aspiration
        awake = (await aspirations.submit(s, AWAKE, w.rt_ids[0], "Drainase depan masjid")).aspiration
    async with sessionmaker() as s:
        head = await users_svc.load_roles(s, w.heads[0], (ADMIN,))
    monkeypatch.setattr(aspirations, "utcnow", lambda: NIGHT.astimezone(dt.UTC))
    async with sessionmaker() as s:
        await aspirations.decide(
            s, w.heads[0], head, late.id, aspirations.USULKAN, proposal_code=p.code, code_prefix="PRL"
        )
        await aspirations.decide(s, w.heads[0], head, awake.id, aspirations.BAHAS)
    held = await rows(sessionmaker, aspirations.NOTICE_DECIDED)
    assert held[DEFAULT] == MORNING.astimezone(dt.UTC)  # not at 23:00
    assert held[AWAKE] == NIGHT.astimezone(dt.UTC)  # no quiet hours: at once
    async with sessionmaker() as s:  # what the Ketua RT is told after deciding
        assert await aspirations.answer_held(s, late.id, NIGHT) is True
        assert await aspirations.answer_held(s, awake.id, NIGHT) is False

    # Quiet hours changed to end at 05:00: the held answer moves with them (sent at once if over).
    async with sessionmaker() as s:
        await follows.set_quiet(s, DEFAULT, 22 * 60, 5 * 60)
    async with sessionmaker() as s:
        row = await s.scalar(select(Outbox).where(Outbox.kind == aspirations.NOTICE_DECIDED, Outbox.chat_id == DEFAULT))
        i18n = build_i18n()
        with i18n.context(), i18n.use_locale("id"):
            notice = await notices.render(s, row, (ADMIN,))
    assert row.next_attempt_at != MORNING.astimezone(dt.UTC)  # moved to the new window (real clock)
    assert row.next_attempt_at <= follows.send_time(utcnow(), ("semua", 22 * 60, 5 * 60))
    assert p.code in notice.text
    [[button]] = notice.reply_markup.inline_keyboard
    assert button.callback_data == PubCb(action="card", id=p.id).pack()


async def test_vote_polls_respect_quiet_hours_closing_and_notices_off(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path)
    await residents(sessionmaker, w.rt_ids[0])
    now = NIGHT.astimezone(dt.UTC)
    async with sessionmaker() as s:
        assert await votes.followers_of(s, w.rt_ids[0]) == [DEFAULT, AWAKE]  # notices off: no poll
        vote = await votes.create(
            s, w.heads[0], w.rt_ids[0], "Mana dulu?", ["Lampu", "Drainase"], now + dt.timedelta(days=3), now=now
        )
    for kind in (votes.NOTICE_INTRO, votes.NOTICE_POLL):
        assert await rows(sessionmaker, kind) == {DEFAULT: MORNING.astimezone(dt.UTC), AWAKE: now}
    async with sessionmaker() as s:
        assert await votes.polls_held(s, vote.id, now) == 1  # told to the Ketua RT after sending

    # A vote closing before the quiet hours end (here 23:45) is sent at once: otherwise no one could answer.
    async with sessionmaker() as s:
        await s.execute(Outbox.__table__.delete())
        await s.commit()
        await votes.create(
            s, w.heads[0], w.rt_ids[0], "Malam ini?", ["Ya", "Tidak"], now + dt.timedelta(minutes=45), now=now
        )
    assert await rows(sessionmaker, votes.NOTICE_POLL) == {DEFAULT: now, AWAKE: now}


async def vote_rows(sessionmaker, user_id: int) -> dict[tuple[str, int], dt.datetime]:
    """(kind, vote id) → when each vote notice to the user is due."""
    async with sessionmaker() as s:
        kinds = (votes.NOTICE_INTRO, votes.NOTICE_POLL)
        rows = await s.scalars(select(Outbox).where(Outbox.kind.in_(kinds), Outbox.chat_id == user_id))
        return {(r.kind, r.payload["vote_id"]): r.next_attempt_at for r in rows.all()}


async def test_changing_quiet_hours_moves_a_held_poll_but_not_past_closing(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path)
    await residents(sessionmaker, w.rt_ids[0])
    now = utcnow()
    async with sessionmaker() as s:  # DEFAULT's quiet window covers now, whatever the time
        minute = now.astimezone(WITA).hour * 60 + now.astimezone(WITA).minute
        await follows.set_quiet(s, DEFAULT, (minute - 60) % 1440, (minute + 60) % 1440)
    async with sessionmaker() as s:
        long = await votes.create(s, w.heads[0], w.rt_ids[0], "Lama?", ["A", "B"], now + dt.timedelta(days=3), now=now)
        short = await votes.create(
            s, w.heads[0], w.rt_ids[0], "Cepat?", ["A", "B"], now + dt.timedelta(hours=4), now=now
        )
    held_until = {vote_id: at for (kind, vote_id), at in (await vote_rows(sessionmaker, DEFAULT)).items()
                  if kind == votes.NOTICE_POLL}  # fmt: skip
    assert held_until[long.id] > now + dt.timedelta(minutes=55)  # until the end of the window
    assert held_until[short.id] > now + dt.timedelta(minutes=55)  # still 2 h and more to answer

    # The window now ends 3 h from now: the short vote (closing in 4 h) is sent at once, the long one moves.
    async with sessionmaker() as s:
        await follows.set_quiet(s, DEFAULT, (minute - 60) % 1440, (minute + 180) % 1440)
    moved = await vote_rows(sessionmaker, DEFAULT)
    for kind in (votes.NOTICE_INTRO, votes.NOTICE_POLL):
        assert moved[(kind, short.id)] <= utcnow()
        assert moved[(kind, long.id)] > now + dt.timedelta(hours=2, minutes=55)
