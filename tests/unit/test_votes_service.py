"""The musyawarah vote service on SQLite and PostgreSQL: a vote goes to the RT's followers through
the outbox, each person's answer counts once (changed answers replace, retracted ones vanish, late
ones are refused), closing counts once even with two closers at once, and the result can be
attached to one of the RT's own proposals."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select, update

from bot.domain.permissions import Forbidden
from bot.i18n import build_i18n
from bot.notifier import OutboxSender
from bot.services import proposals, votes
from bot.services.users import ensure_user
from fakeapi import FakeTelegram
from storage.models import (
    VOTE_CLOSED,
    VOTE_OPEN,
    Aspiration,
    AuditLog,
    Follow,
    MusyawarahVote,
    Outbox,
    User,
    VoteAnswer,
    VotePoll,
    utcnow,
)
from tests.unit.test_proposals_service import ADMIN, setup_world

FOLLOWERS = (501, 502, 503, 504)
OPTIONS = ["Semenisasi gang", "Lampu jalan", "Drainase"]


async def follow(sessionmaker, rt_id: int, user_ids=FOLLOWERS) -> None:
    async with sessionmaker() as s:
        for uid in user_ids:
            await ensure_user(s, uid, f"Warga {uid}", None, None)
        s.add_all(Follow(user_id=uid, rt_id=rt_id) for uid in user_ids)
        await s.commit()


async def new_vote(sessionmaker, w, *, days: int = 1) -> MusyawarahVote:
    async with sessionmaker() as s:
        return await votes.create(s, w.heads[0], w.rt_ids[0], "Ide mana?", OPTIONS, utcnow() + dt.timedelta(days=days))


async def sent_polls(sessionmaker, vote_id: int) -> dict[int, str]:
    """Pretend the outbox sent every poll: user id → poll id."""
    async with sessionmaker() as s:
        rows = (await s.scalars(select(VotePoll).where(VotePoll.vote_id == vote_id))).all()
        for i, row in enumerate(rows):
            await votes.record_sent(s, row.id, f"poll-{vote_id}-{row.user_id}", 100 + i)
        await s.commit()
        return {row.user_id: f"poll-{vote_id}-{row.user_id}" for row in rows}


async def answer(sessionmaker, poll_id: str, uid: int, ids, now=None) -> str:
    async with sessionmaker() as s:
        return (await votes.answer(s, poll_id, uid, ids, now=now)).status


async def test_create_needs_followers_and_queues_one_poll_each(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path)
    with pytest.raises(votes.NoFollowers):
        await new_vote(sessionmaker, w)
    await follow(sessionmaker, w.rt_ids[0])
    await follow(sessionmaker, w.rt_ids[1], (505,))  # another RT's follower gets nothing
    await follow(sessionmaker, w.rt_ids[0], (506,))
    async with sessionmaker() as s:  # who blocked the bot gets nothing either
        await s.execute(update(User).where(User.id == 506).values(blocked_bot=True))
        await s.commit()
    async with sessionmaker() as s:
        for code, kw in [
            ("too_few", {"options": ["Satu"]}),
            ("closing_past", {"closes_at": utcnow()}),
            ("question_long", {"question": "x" * 301}),
        ]:
            args = {"question": "Ide?", "options": OPTIONS, "closes_at": utcnow() + dt.timedelta(days=1)} | kw
            with pytest.raises(votes.VoteInputError, match=code):
                await votes.create(s, w.heads[0], w.rt_ids[0], **args)
    vote = await new_vote(sessionmaker, w)
    async with sessionmaker() as s:
        polls = (await s.scalars(select(VotePoll).where(VotePoll.vote_id == vote.id))).all()
        assert sorted(p.user_id for p in polls) == list(FOLLOWERS)
        assert all(p.poll_id is None for p in polls)
        kinds = sorted(
            (o.chat_id, o.kind) for o in (await s.scalars(select(Outbox).where(Outbox.kind.like("vote.%")))).all()
        )
        assert kinds == sorted([(u, "vote.intro") for u in FOLLOWERS] + [(u, "vote.poll") for u in FOLLOWERS])
        row = await s.scalar(select(AuditLog).where(AuditLog.action == "vote.create"))
        assert row.actor_id == w.heads[0] and row.after["sent_to"] == 4
        assert (await s.get(MusyawarahVote, vote.id)).status == VOTE_OPEN


async def test_answers_count_once_per_person(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path)
    await follow(sessionmaker, w.rt_ids[0])
    vote = await new_vote(sessionmaker, w)
    polls = await sent_polls(sessionmaker, vote.id)
    a, b, c, d = FOLLOWERS
    assert await answer(sessionmaker, "no-such-poll", a, [0]) == "unknown"
    assert await answer(sessionmaker, polls[a], a, [1]) == "counted"
    assert await answer(sessionmaker, polls[a], a, [0]) == "counted"  # changed: replaces
    assert await answer(sessionmaker, polls[b], b, [0]) == "counted"
    assert await answer(sessionmaker, polls[b], b, [0]) == "counted"  # the same twice: one row
    assert await answer(sessionmaker, polls[c], c, [1]) == "counted"
    assert await answer(sessionmaker, polls[d], d, [2]) == "counted"
    assert await answer(sessionmaker, polls[d], d, []) == "retracted"  # removed
    assert await answer(sessionmaker, polls[a], 999, [2]) == "not_recipient"  # a forwarded poll
    async with sessionmaker() as s:
        rows = {r.user_id: r.option_ids for r in (await s.scalars(select(VoteAnswer))).all()}
        assert rows == {a: [0], b: [0], c: [1]}
        assert await votes.answers_so_far(s, vote.id) == 3
        assert await votes.polls_sent(s, vote.id) == 4

    late = vote.closes_at + dt.timedelta(seconds=1)
    assert await answer(sessionmaker, polls[d], d, [2], now=late) == "late"
    assert await answer(sessionmaker, polls[d], d, [1], now=late) == "late_again"  # told once
    assert await answer(sessionmaker, polls[a], a, [], now=late) == "late"  # nor retracted after closing

    async with sessionmaker() as s:
        assert await votes.close_due(s, vote.closes_at - dt.timedelta(seconds=1)) == []  # not due yet
    async with sessionmaker() as s:
        assert await votes.close_due(s, late) == [vote.id]
    async with sessionmaker() as s:
        closed = await s.get(MusyawarahVote, vote.id)
        assert closed.status == VOTE_CLOSED and closed.result == [2, 1, 0] and closed.voters == 3
        assert await votes.close_due(s, late + dt.timedelta(hours=1)) == []  # idempotent
        kinds = (await s.scalars(select(Outbox.kind).where(Outbox.kind.in_(["vote.result", "vote.stop"])))).all()
        assert sorted(kinds) == ["vote.result"] + ["vote.stop"] * 4
        assert (await s.scalar(select(Outbox.chat_id).where(Outbox.kind == "vote.result"))) == w.heads[0]
    assert await answer(sessionmaker, polls[c], c, [2], now=late) == "late"
    async with sessionmaker() as s:
        assert (await s.get(MusyawarahVote, vote.id, populate_existing=True)).result == [2, 1, 0]


async def test_an_answer_before_the_poll_id_is_recorded_is_counted(sessionmaker, tmp_path):
    """The sender records a poll's id right after delivering it; a quick voter may answer first."""
    w = await setup_world(sessionmaker, tmp_path)
    await follow(sessionmaker, w.rt_ids[0])
    await new_vote(sessionmaker, w)  # polls queued, none recorded yet
    a = FOLLOWERS[0]
    assert await answer(sessionmaker, "tg-poll-early", a, [1]) == "counted"
    async with sessionmaker() as s:
        poll = await s.scalar(select(VotePoll).where(VotePoll.user_id == a))
        assert poll.poll_id == "tg-poll-early"
        await votes.record_sent(s, poll.id, "tg-poll-early", 77)  # the sender's own record, just after
        await s.commit()
        assert {r.user_id: r.option_ids for r in (await s.scalars(select(VoteAnswer))).all()} == {a: [1]}
    # With two unrecorded polls (two open votes) the answer cannot be placed: not guessed.
    second = await new_vote(sessionmaker, w)
    third = await new_vote(sessionmaker, w)
    assert second.id != third.id
    assert await answer(sessionmaker, "tg-poll-ambiguous", FOLLOWERS[1], [0]) == "unknown"


async def test_two_closers_at_once_close_once(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path)
    await follow(sessionmaker, w.rt_ids[0])
    vote = await new_vote(sessionmaker, w)
    polls = await sent_polls(sessionmaker, vote.id)
    for uid, ids in zip(FOLLOWERS, ([0], [0], [1], [2]), strict=True):
        await answer(sessionmaker, polls[uid], uid, ids)
    later = vote.closes_at + dt.timedelta(minutes=1)

    async def close() -> list[int]:
        async with sessionmaker() as s:
            return await votes.close_due(s, later)

    results = await asyncio.gather(close(), close(), close())
    assert [v for closed in results for v in closed] == [vote.id]
    async with sessionmaker() as s:
        assert (await s.get(MusyawarahVote, vote.id)).result == [2, 1, 1]
        n = await s.scalar(select(func.count()).select_from(Outbox).where(Outbox.kind == "vote.result"))
        assert n == 1
        assert await s.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "vote.close")) == 1


async def test_attach_to_own_rt_proposal(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path)
    await follow(sessionmaker, w.rt_ids[0])
    vote = await new_vote(sessionmaker, w)
    async with sessionmaker() as s:
        mine = await proposals.create_draft(s, w.heads[0], w.rt_ids[0], w.program)
        theirs = await proposals.create_draft(s, w.heads[1], w.rt_ids[1], w.program)
    async with sessionmaker() as s:
        with pytest.raises(Forbidden, match="vote_open"):
            await votes.attach(s, w.heads[0], w.rt_ids[0], vote.id, mine.id)
    async with sessionmaker() as s:
        await votes.close_due(s, vote.closes_at)
    async with sessionmaker() as s:
        with pytest.raises(Forbidden, match="not_your_rt"):
            await votes.attach(s, w.heads[0], w.rt_ids[0], vote.id, theirs.id)
    async with sessionmaker() as s:
        with pytest.raises(Forbidden, match="not_your_rt"):  # someone else's vote
            await votes.attach(s, w.heads[1], w.rt_ids[1], vote.id, theirs.id)
    async with sessionmaker() as s:
        with pytest.raises(votes.VoteNotFound):
            await votes.attach(s, w.heads[0], w.rt_ids[0], 9999, mine.id)
    async with sessionmaker() as s:
        assert [p.id for p in await votes.attachable_proposals(s, w.rt_ids[0], w.program.fiscal_year)] == [mine.id]
        got, proposal = await votes.attach(s, w.heads[0], w.rt_ids[0], vote.id, mine.id)
        assert got.proposal_id == mine.id and proposal.id == mine.id
    async with sessionmaker() as s:
        evidence = await votes.for_proposal(s, mine.id)
        assert [v.id for v in evidence] == [vote.id] and evidence[0].result == [0, 0, 0]
        assert await votes.for_proposal(s, theirs.id) == []
        actions = (await s.scalars(select(AuditLog.action).where(AuditLog.action.like("%vote%")))).all()
        assert {"vote.create", "vote.close", "vote.attach", "proposal.attach_vote"} <= set(actions)
        refused = (await s.scalars(select(AuditLog.action).where(AuditLog.action.like("denied.%")))).all()
        assert len(refused) == 2
    # The officer's card of the proposal shows the attached vote as musyawarah evidence.
    from bot.i18n import build_i18n
    from handlers.review.render import card_text

    i18n = build_i18n()
    async with sessionmaker() as s:
        with i18n.context(), i18n.use_locale("id"):
            card = await card_text(s, await proposals.get(s, mine.id))
    assert "🗳" in card and vote.question.split()[0] in card
    assert all(option.split()[0] in card for option in vote.options)


async def test_aspirations_marked_for_discussion_are_offered(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path)
    async with sessionmaker() as s:
        s.add(Aspiration(rt_id=w.rt_ids[0], text="Lampu jalan di gang 3", status="akan_dibahas"))
        s.add(Aspiration(rt_id=w.rt_ids[0], text="Baru masuk", status="baru"))
        s.add(Aspiration(rt_id=w.rt_ids[1], text="RT lain", status="akan_dibahas"))
        await s.commit()
        assert [a.text for a in await votes.aspiration_options(s, w.rt_ids[0])] == ["Lampu jalan di gang 3"]


async def test_outbox_sends_polls_records_ids_and_stops_them(sessionmaker, tmp_path):
    """The real sender against the fake Bot API: polls go out, their ids are stored, answers
    count, and closing stops every poll and tells the Ketua RT."""
    w = await setup_world(sessionmaker, tmp_path)
    async with FakeTelegram() as tg:
        from tests.unit.test_fakeapi import make_client

        bot = make_client(tg, tg.new_bot_token())
        people = [tg.user(f"Warga{i}", language_code="id") for i in range(3)]
        head = tg.user("Ketua", language_code="id")
        for p in (*people, head):
            await p.send("/start")
        await follow(sessionmaker, w.rt_ids[0], [p.id for p in people])
        async with sessionmaker() as s:  # the officers' appointment notices: not part of this test
            await s.execute(update(Outbox).values(status="sent"))
            await s.commit()
        async with sessionmaker() as s:
            vote = await votes.create(
                s, head.id, w.rt_ids[0], "Ide <mana> & kapan?", OPTIONS, utcnow() + dt.timedelta(hours=1)
            )
        sender = OutboxSender(bot, sessionmaker, build_i18n(), (ADMIN,))
        try:
            assert await sender.run_once() == 6
            for p in people:
                msg = await p.wait_message(predicate=lambda m: m.poll is not None)
                assert msg.data["poll"]["question"] == "Ide <mana> & kapan?"
                assert msg.data["poll"]["is_anonymous"] is False
                assert any("musyawarah" in (m.text or "").lower() for m in p.bot_messages)
            async with sessionmaker() as s:
                polls = (await s.scalars(select(VotePoll))).all()
                assert all(p.poll_id and p.message_id for p in polls)
            assert await sender.run_once() == 0  # nothing twice
            await people[0].vote([1])
            async with sessionmaker() as s:
                poll = await s.scalar(select(VotePoll).where(VotePoll.user_id == people[0].id))
                assert (await votes.answer(s, poll.poll_id, people[0].id, [1])).status == "counted"
            async with sessionmaker() as s:
                assert await votes.close_due(s, vote.closes_at) == [vote.id]
            assert await sender.run_once() == 4  # the result + three stops
            for p in people:
                assert (
                    p.chat()
                    .get(next(m for m in p.bot_messages if m.poll is not None).message_id)
                    .data["poll"]["is_closed"]
                )
            result = await head.wait_message("Drainase")
            assert "Lampu jalan" in result.text and any("📎" in b for b in result.button_texts)
            async with sessionmaker() as s:
                statuses = (await s.scalars(select(Outbox.status).where(Outbox.kind.like("vote.%")))).all()
                assert set(statuses) == {"sent"}
        finally:
            await bot.session.close()
