"""Musyawarah votes: the Ketua RT asks the RT's followers to choose among 2-10 ideas with native
Telegram polls, answers are counted once per person, and the result is sent at closing time.

Pure rules first (question, options, closing time, counting: no I/O), then the database
operations (one transaction each, audited, notifications through the outbox). ``close_due`` is
run by the scheduler's ``votes.close`` job every 30 s, and at once when an answer arrives for a vote
past its time (``wake_closer``).

Polls are sent by the outbox sender (kinds ``vote.intro`` + ``vote.poll`` per follower; the sent
poll's id is recorded on the ``VotePoll`` row in the transaction that marks the notice sent) and
stopped the same way (``vote.stop``) when the vote closes, so sending survives restarts and
respects Telegram's rate limits.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.follow import NOTIFY_OFF
from bot.domain.permissions import Forbidden
from bot.domain.workflow import DIAJUKAN, DRAF, PERLU_REVISI
from bot.services import audit, follows, outbox
from storage.db import begin_write, release
from storage.models import (
    ASPIRASI_DIBAHAS,
    VOTE_CLOSED,
    VOTE_OPEN,
    Aspiration,
    AuditLog,
    Follow,
    MusyawarahVote,
    NotificationPrefs,
    Proposal,
    User,
    VoteAnswer,
    VotePoll,
    utcnow,
)

log = logging.getLogger("prolita.votes")

QUESTION_MAX = 300  # Telegram: poll question 1-300 characters
OPTION_MAX = 100  # Telegram: option text 1-100 characters
MIN_OPTIONS = 2
MAX_OPTIONS = 10  # issue 5: up to 10 candidate ideas (Telegram itself allows 12)
MIN_OPEN = dt.timedelta(minutes=10)  # followers need some time to answer
MIN_TIME_TO_VOTE = dt.timedelta(hours=2)  # a poll held for quiet hours must leave this much before closing
MAX_OPEN = dt.timedelta(days=30)
CLOSING_DAYS = (1, 3, 7)  # the closing-time buttons
DEFAULT_CLOSING_HOUR = 20  # a typed date without a time closes at 20:00 local time
ATTACHABLE = (DRAF, PERLU_REVISI, DIAJUKAN)  # proposals a result can be attached to

NOTICE_INTRO = "vote.intro"
NOTICE_POLL = "vote.poll"
NOTICE_STOP = "vote.stop"
NOTICE_RESULT = "vote.result"
NOTICE_LATE = "vote.late"


class VoteInputError(ValueError):
    """Bad input from the Ketua RT; ``code`` says which rule, ``limit`` the number it broke."""

    def __init__(self, code: str, limit: int = 0) -> None:
        super().__init__(code)
        self.code = code
        self.limit = limit


class NoFollowers(Exception):
    """Nobody follows the RT yet: there is no one to send the vote to."""


class VoteNotFound(LookupError):
    pass


# --- pure rules -------------------------------------------------------------------------------------

_SPACES = re.compile(r"\s+")
_BULLET = re.compile(r"^\s*(?:[-*•·]+|\d{1,2}\s*[.)])\s*")


def _length(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def clean_question(text: str) -> str:
    question = _SPACES.sub(" ", text or "").strip()
    if not question:
        raise VoteInputError("question_empty")
    if _length(question) > QUESTION_MAX:
        raise VoteInputError("question_long", QUESTION_MAX)
    return question


def split_options(text: str) -> list[str]:
    """Options typed one per line (a leading ``-``, ``•`` or ``1.`` is dropped); empty lines skipped."""
    options = []
    for line in (text or "").splitlines():
        line = _SPACES.sub(" ", _BULLET.sub("", line, count=1)).strip()
        if line:
            options.append(line)
    return options


def add_options(existing: Sequence[str], new: Iterable[str]) -> list[str]:
    """``existing`` + ``new`` after the rules: each 1-100 characters, no duplicates (any case),
    at most ``MAX_OPTIONS``. Raises VoteInputError and adds nothing if one of them breaks a rule."""
    result = list(existing)
    seen = {o.casefold() for o in result}
    for option in new:
        option = _SPACES.sub(" ", option).strip()
        if not option:
            continue
        if _length(option) > OPTION_MAX:
            raise VoteInputError("option_long", OPTION_MAX)
        if option.casefold() in seen:
            raise VoteInputError("option_duplicate")
        if len(result) >= MAX_OPTIONS:
            raise VoteInputError("too_many", MAX_OPTIONS)
        seen.add(option.casefold())
        result.append(option)
    return result


def check_options(options: Sequence[str]) -> list[str]:
    """The final list: 2-10 valid options (raises VoteInputError)."""
    cleaned = add_options([], options)
    if len(cleaned) < MIN_OPTIONS:
        raise VoteInputError("too_few", MIN_OPTIONS)
    return cleaned


def shorten(text: str, limit: int = OPTION_MAX) -> str:
    """A long text (an aspiration) cut to fit an option, with an ellipsis."""
    text = _SPACES.sub(" ", text or "").strip()
    if _length(text) <= limit:
        return text
    while _length(text) > limit - 1:
        text = text[:-1]
    return text.rstrip() + "…"


def check_closing(closes_at: dt.datetime, now: dt.datetime) -> dt.datetime:
    """The closing time must be at least 10 minutes ahead and at most 30 days ahead."""
    if closes_at.tzinfo is None:
        raise ValueError("naive datetime")
    if closes_at < now + MIN_OPEN:
        raise VoteInputError("closing_past")
    if closes_at > now + MAX_OPEN:
        raise VoteInputError("closing_far", MAX_OPEN.days)
    return closes_at.astimezone(dt.UTC)


def closing_in_days(days: int, now: dt.datetime) -> dt.datetime:
    return check_closing(now + dt.timedelta(days=days), now)


_DATE = re.compile(
    r"^\s*(\d{1,2})\s*[/.-]\s*(\d{1,2})(?:\s*[/.-]\s*(\d{2,4}))?"
    r"(?:\s*(?:,|pukul|jam|at)?\s*(\d{1,2})\s*[:.]\s*(\d{2}))?\s*(?:wita|wib|wit)?\s*$",
    re.IGNORECASE,
)


def parse_closing(text: str, now: dt.datetime, tz: str = "Asia/Makassar") -> dt.datetime:
    """A typed local date and time: ``30/11 20:00``, ``30-11-2026 19.30``, ``30/11`` (20:00).

    Without a year, the next such date from today. Returns aware UTC; raises VoteInputError
    (``closing_format``, ``closing_past``, ``closing_far``)."""
    match = _DATE.match(text or "")
    if match is None:
        raise VoteInputError("closing_format")
    day, month, year, hour, minute = match.groups()
    zone = ZoneInfo(tz)
    local_now = now.astimezone(zone)
    try:
        hh = int(hour) if hour is not None else DEFAULT_CLOSING_HOUR
        mm = int(minute) if minute is not None else 0
        if year is not None:
            yy = int(year) + (2000 if len(year) == 2 else 0)
            local = dt.datetime(yy, int(month), int(day), hh, mm, tzinfo=zone)
        else:
            local = dt.datetime(local_now.year, int(month), int(day), hh, mm, tzinfo=zone)
            if local < local_now:
                local = local.replace(year=local_now.year + 1)
    except ValueError:
        raise VoteInputError("closing_format") from None
    return check_closing(local.astimezone(dt.UTC), now)


def count(n_options: int, answers: Iterable[Sequence[int]]) -> tuple[list[int], int]:
    """Votes per option and the number of voters; each answer counts once, out-of-range option ids
    and repeats inside one answer are ignored, an empty answer (retracted) is no voter."""
    result = [0] * n_options
    voters = 0
    for option_ids in answers:
        chosen = {i for i in option_ids if isinstance(i, int) and 0 <= i < n_options}
        if not chosen:
            continue
        voters += 1
        for i in chosen:
            result[i] += 1
    return result, voters


def ranking(options: Sequence[str], result: Sequence[int]) -> list[tuple[int, str, int]]:
    """(option index, text, votes), most votes first; ties keep the order of the options."""
    rows = [(i, option, result[i] if i < len(result) else 0) for i, option in enumerate(options)]
    return sorted(rows, key=lambda r: (-r[2], r[0]))


def bar(votes: int, most: int, width: int = 10) -> str:
    """``▓▓▓▓▓░░░░░`` — the share of the leading option's votes."""
    filled = 0 if most <= 0 else round(width * votes / most)
    return "▓" * filled + "░" * (width - filled)


# --- database operations ------------------------------------------------------------------------------


async def followers_of(session: AsyncSession, rt_id: int) -> list[int]:
    """Users following the RT who can receive a message (not blocked, data not erased) and have not
    turned notices off in /pengaturan."""
    rows = await session.scalars(
        select(Follow.user_id)
        .join(User, User.id == Follow.user_id)
        .outerjoin(NotificationPrefs, NotificationPrefs.user_id == Follow.user_id)
        .where(
            Follow.rt_id == rt_id,
            User.blocked_bot.is_(False),
            User.erased_at.is_(None),
            or_(NotificationPrefs.mode.is_(None), NotificationPrefs.mode != NOTIFY_OFF),
        )
        .order_by(Follow.id)
    )
    return list(dict.fromkeys(rows.all()))


async def aspiration_options(session: AsyncSession, rt_id: int, limit: int = MAX_OPTIONS) -> Sequence[Aspiration]:
    """The RT's aspirations marked "will be discussed": one-tap options for a new vote."""
    rows = await session.scalars(
        select(Aspiration)
        .where(Aspiration.rt_id == rt_id, Aspiration.status == ASPIRASI_DIBAHAS)
        .order_by(Aspiration.created_at, Aspiration.id)
        .limit(limit)
    )
    return rows.all()


async def create(
    session: AsyncSession,
    head_id: int,
    rt_id: int,
    question: str,
    options: Sequence[str],
    closes_at: dt.datetime,
    *,
    now: dt.datetime | None = None,
) -> MusyawarahVote:
    """Open a vote and queue one poll per follower of the RT. Raises VoteInputError, NoFollowers."""
    now = now or utcnow()
    question = clean_question(question)
    options = check_options(options)
    closes_at = check_closing(closes_at, now)
    await begin_write(session)
    followers = await followers_of(session, rt_id)
    if not followers:
        await release(session)
        raise NoFollowers(rt_id)
    vote = MusyawarahVote(
        rt_id=rt_id, created_by=head_id, question=question, options=options, closes_at=closes_at, status=VOTE_OPEN
    )
    session.add(vote)
    await session.flush()
    prefs = await follows.delivery_prefs(session, followers)
    for user_id in followers:
        poll = VotePoll(vote_id=vote.id, user_id=user_id)
        session.add(poll)
        await session.flush()
        # After the follower's quiet hours, unless the vote would have closed by then.
        when = follows.send_time(now, prefs[user_id])
        not_before = when if when < closes_at - MIN_TIME_TO_VOTE else now
        outbox.enqueue(session, user_id, NOTICE_INTRO, not_before=not_before, vote_id=vote.id)
        outbox.enqueue(session, user_id, NOTICE_POLL, not_before=not_before, vote_id=vote.id, vote_poll_id=poll.id)
    audit.record(
        session,
        head_id,
        "vote.create",
        "vote",
        vote.id,
        after={"rt_id": rt_id, "options": len(options), "closes_at": closes_at.isoformat(), "sent_to": len(followers)},
    )
    await session.commit()
    return vote


async def list_for_rt(session: AsyncSession, rt_id: int, limit: int = 10) -> Sequence[MusyawarahVote]:
    rows = await session.scalars(
        select(MusyawarahVote)
        .where(MusyawarahVote.rt_id == rt_id)
        .order_by(MusyawarahVote.created_at.desc(), MusyawarahVote.id.desc())
        .limit(limit)
    )
    return rows.all()


async def get_for_rt(session: AsyncSession, vote_id: int, rt_id: int, user_id: int) -> MusyawarahVote:
    """The vote if it belongs to the Ketua RT's RT; a forged id is refused and audited."""
    vote = await session.get(MusyawarahVote, vote_id, populate_existing=True)
    if vote is None:
        raise VoteNotFound(vote_id)
    if vote.rt_id != rt_id:
        await release(session)
        await audit.record_refused(session, user_id, "vote.open", f"vote {vote_id} not of rt {rt_id}")
        raise Forbidden("not_your_rt")
    return vote


async def answers_so_far(session: AsyncSession, vote_id: int) -> int:
    rows = await session.scalars(select(VoteAnswer.option_ids).where(VoteAnswer.vote_id == vote_id))
    return sum(1 for ids in rows.all() if ids)


async def polls_held(session: AsyncSession, vote_id: int, now: dt.datetime | None = None) -> int:
    """How many of the vote's polls wait for the end of their recipient's quiet hours."""
    return await outbox.held(session, NOTICE_POLL, "vote_id", vote_id, now)


async def polls_sent(session: AsyncSession, vote_id: int) -> int:
    rows = await session.scalars(select(VotePoll.id).where(VotePoll.vote_id == vote_id, VotePoll.poll_id.is_not(None)))
    return len(rows.all())


async def record_sent(session: AsyncSession, vote_poll_id: int, poll_id: str, message_id: int) -> None:
    """Called by the outbox sender, in the transaction that marks the poll notice sent."""
    await session.execute(
        update(VotePoll).where(VotePoll.id == vote_poll_id).values(poll_id=poll_id, message_id=message_id)
    )


@dataclass(frozen=True)
class AnswerOutcome:
    """What became of a ``poll_answer``: ``counted``, ``retracted``, ``late`` (first late answer of
    this person: tell them), ``late_again`` (told already), ``not_recipient`` (a forwarded poll),
    ``unknown`` (not one of our polls)."""

    status: str
    vote: MusyawarahVote | None = None


async def answer(
    session: AsyncSession, poll_id: str, user_id: int, option_ids: Sequence[int], *, now: dt.datetime | None = None
) -> AnswerOutcome:
    """Store a follower's answer (one per person per vote; a new answer replaces the old one, an
    empty one removes it). Answers after the closing time are not stored."""
    now = now or utcnow()
    await begin_write(session)
    poll = await session.scalar(select(VotePoll).where(VotePoll.poll_id == poll_id))
    if poll is None:
        # Answered before the sender recorded the poll's id (it records it right after sending, in
        # its own transaction): a poll of this person still without an id is the one, if only one.
        unrecorded = (
            await session.scalars(select(VotePoll).where(VotePoll.user_id == user_id, VotePoll.poll_id.is_(None)))
        ).all()
        if len(unrecorded) != 1:
            await release(session)
            return AnswerOutcome("unknown")
        poll = unrecorded[0]
        poll.poll_id = poll_id
    # Lock the vote row: closing (a conditional UPDATE of the same row) waits for this answer, or
    # this answer waits for the closing and then sees it closed. Never counted after the count.
    vote = await session.scalar(
        select(MusyawarahVote)
        .where(MusyawarahVote.id == poll.vote_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if vote is None:
        await release(session)
        return AnswerOutcome("unknown")
    if poll.user_id != user_id:
        await release(session)
        return AnswerOutcome("not_recipient", vote)
    if vote.status != VOTE_OPEN or now >= vote.closes_at:
        told = await session.scalar(
            select(AuditLog.id).where(
                AuditLog.action == "vote.late_answer", AuditLog.actor_id == user_id, AuditLog.entity_id == str(vote.id)
            )
        )
        audit.record(session, user_id, "vote.late_answer", "vote", vote.id, after={"option_ids": list(option_ids)})
        await session.commit()
        if vote.status == VOTE_OPEN:
            wake_closer()  # past its closing time: close it now rather than at the next round
        return AnswerOutcome("late_again" if told else "late", vote)
    chosen = sorted({i for i in option_ids if 0 <= i < len(vote.options)})
    existing = await session.get(VoteAnswer, (vote.id, user_id))
    if not chosen:
        if existing is not None:
            await session.delete(existing)
        await session.commit()
        return AnswerOutcome("retracted", vote)
    if existing is None:
        session.add(VoteAnswer(vote_id=vote.id, user_id=user_id, option_ids=chosen, answered_at=now))
    else:
        existing.option_ids = chosen
        existing.answered_at = now
    await session.commit()
    return AnswerOutcome("counted", vote)


async def close_due(session: AsyncSession, now: dt.datetime | None = None) -> list[int]:
    """Close every open vote whose time has come: count, notify the Ketua RT, stop the polls.

    Idempotent and safe when several processes run it at once: each vote is closed by the one
    conditional UPDATE (``WHERE status = 'terbuka'``) that finds it still open."""
    now = now or utcnow()
    due = (
        await session.scalars(
            select(MusyawarahVote.id)
            .where(MusyawarahVote.status == VOTE_OPEN, MusyawarahVote.closes_at <= now)
            .order_by(MusyawarahVote.closes_at, MusyawarahVote.id)
        )
    ).all()
    await release(session)
    closed = []
    for vote_id in due:
        await begin_write(session)
        won = await session.execute(
            update(MusyawarahVote)
            .where(MusyawarahVote.id == vote_id, MusyawarahVote.status == VOTE_OPEN)
            .values(status=VOTE_CLOSED, closed_at=now)
        )
        if won.rowcount != 1:
            await session.rollback()  # another process closed it first
            continue
        vote = await session.get(MusyawarahVote, vote_id, populate_existing=True)
        answers = (await session.scalars(select(VoteAnswer.option_ids).where(VoteAnswer.vote_id == vote_id))).all()
        vote.result, vote.voters = count(len(vote.options), answers)
        audit.record(session, None, "vote.close", "vote", vote_id, after={"result": vote.result, "voters": vote.voters})
        outbox.enqueue(session, vote.created_by, NOTICE_RESULT, vote_id=vote_id)
        polls = (
            await session.scalars(select(VotePoll).where(VotePoll.vote_id == vote_id, VotePoll.message_id.is_not(None)))
        ).all()
        for poll in polls:
            outbox.enqueue(session, poll.user_id, NOTICE_STOP, vote_id=vote_id, vote_poll_id=poll.id)
        await session.commit()
        closed.append(vote_id)
        log.info("vote %s closed: %s from %s voters", vote_id, vote.result, vote.voters)
    return closed


async def attachable_proposals(session: AsyncSession, rt_id: int, year: int) -> Sequence[Proposal]:
    rows = await session.scalars(
        select(Proposal)
        .where(Proposal.rt_id == rt_id, Proposal.fiscal_year == year, Proposal.status.in_(ATTACHABLE))
        .order_by(Proposal.created_at.desc(), Proposal.id.desc())
    )
    return rows.all()


async def attach(
    session: AsyncSession, user_id: int, rt_id: int, vote_id: int, proposal_id: int
) -> tuple[MusyawarahVote, Proposal]:
    """Attach a closed vote's result to one of the RT's proposals as musyawarah evidence.

    Raises VoteNotFound, Forbidden (``not_your_rt``, ``vote_open``, ``proposal_status``)."""
    await begin_write(session)
    vote = await get_for_rt(session, vote_id, rt_id, user_id)
    proposal = await session.get(Proposal, proposal_id, populate_existing=True)
    if proposal is None or proposal.rt_id != rt_id:
        await release(session)
        await audit.record_refused(session, user_id, "vote.attach", f"proposal {proposal_id} not of rt {rt_id}")
        raise Forbidden("not_your_rt")
    if vote.status != VOTE_CLOSED:
        await release(session)
        raise Forbidden("vote_open")
    if proposal.status not in ATTACHABLE:
        await release(session)
        raise Forbidden("proposal_status")
    before = {"proposal_id": vote.proposal_id}
    vote.proposal_id = proposal.id
    audit.record(session, user_id, "vote.attach", "vote", vote.id, before=before, after={"proposal_id": proposal.id})
    audit.record(
        session,
        user_id,
        "proposal.attach_vote",
        "proposal",
        proposal.id,
        after={"vote_id": vote.id, "result": vote.result, "voters": vote.voters},
    )
    await session.commit()
    return vote, proposal


async def for_proposal(session: AsyncSession, proposal_id: int) -> Sequence[MusyawarahVote]:
    """Closed votes attached to a proposal (musyawarah evidence for the officer's card), newest first."""
    rows = await session.scalars(
        select(MusyawarahVote)
        .where(MusyawarahVote.proposal_id == proposal_id, MusyawarahVote.status == VOTE_CLOSED)
        .order_by(MusyawarahVote.closed_at.desc(), MusyawarahVote.id.desc())
    )
    return rows.all()


# --- closing sooner: the scheduler's ``votes.close`` job subscribes here ---------------------------------

_wakers: list[Callable[[], None]] = []


def wake_closer() -> None:
    for callback in list(_wakers):
        callback()


def on_wake(callback: Callable[[], None]) -> Callable[[], None]:
    """Run ``callback`` whenever votes should be closed sooner (the scheduler's job); returns an
    unsubscriber."""
    _wakers.append(callback)
    return lambda: _wakers.remove(callback)
