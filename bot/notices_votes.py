"""Outbox notices of musyawarah votes: the intro and the native poll each follower gets, stopping
the polls at closing, and the result for the Ketua RT.

A poll notice brings its own ``deliver`` (``sendPoll`` instead of ``sendMessage``) and ``record``
(the poll id Telegram gave, stored in the transaction that marks the notice sent); see
``bot/notifier.py``. Imported at the end of ``bot/notices.py`` so its renderers register.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import InputPollOption, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.notices import Notice, renderer
from bot.services import votes
from handlers.common import rt_place, when
from handlers.votes import attach_keyboard, result_text
from storage.models import RT, VOTE_CLOSED, VOTE_OPEN, MusyawarahVote, Outbox, VotePoll, utcnow


@dataclass
class PollNotice(Notice):
    """A native, non-anonymous, single-answer poll (plain text: no parse mode)."""

    question: str = ""
    options: list[str] = field(default_factory=list)
    vote_poll_id: int = 0

    async def deliver(self, bot: Bot, chat_id: int) -> Message:
        return await bot.send_poll(
            chat_id,
            self.question,
            [InputPollOption(text=o, text_parse_mode=None) for o in self.options],
            question_parse_mode=None,
            is_anonymous=False,
            allows_multiple_answers=False,
        )

    async def record(self, session: AsyncSession, sent: Message) -> None:
        if sent is not None and sent.poll is not None:
            await votes.record_sent(session, self.vote_poll_id, sent.poll.id, sent.message_id)


@dataclass
class StopPollNotice(Notice):
    """Close a poll in the follower's chat (it then shows the final counts of that poll)."""

    message_id: int = 0

    async def deliver(self, bot: Bot, chat_id: int) -> Any:
        try:
            return await bot.stop_poll(chat_id, self.message_id)
        except TelegramBadRequest as exc:
            text = str(exc).lower()
            if "already been closed" in text or "not found" in text:
                return None  # stopped before (a retry), or the user deleted the chat message
            raise


async def _vote(session: AsyncSession, row: Outbox) -> MusyawarahVote | None:
    return await session.get(MusyawarahVote, row.payload.get("vote_id"))


@renderer(votes.NOTICE_INTRO)
async def _vote_intro(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    vote = await _vote(session, row)
    if vote is None or vote.status != VOTE_OPEN or vote.closes_at <= utcnow():
        return None
    rt = await session.get(RT, vote.rt_id)
    return Notice(
        _(
            "🗳 <b>Musyawarah vote</b> · {place}\n"
            "The Ketua RT asks for your opinion. Choose one answer in the poll below; you can change it "
            "until {when}. Each person counts once."
        ).format(place=rt_place(rt), when=when(vote.closes_at))
    )


@renderer(votes.NOTICE_POLL)
async def _vote_poll(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    poll = await session.get(VotePoll, row.payload.get("vote_poll_id"))
    vote = await _vote(session, row)
    if poll is None or vote is None or poll.vote_id != vote.id or poll.poll_id is not None:
        return None  # sent already
    if vote.status != VOTE_OPEN or vote.closes_at <= utcnow():
        return None  # too late to answer: do not send it
    return PollNotice(text=vote.question, question=vote.question, options=list(vote.options), vote_poll_id=poll.id)


@renderer(votes.NOTICE_STOP)
async def _vote_stop(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    poll = await session.get(VotePoll, row.payload.get("vote_poll_id"))
    if poll is None or poll.message_id is None:
        return None
    return StopPollNotice(text="", message_id=poll.message_id)


@renderer(votes.NOTICE_RESULT)
async def _vote_result(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    vote = await _vote(session, row)
    if vote is None or vote.status != VOTE_CLOSED:
        return None
    rt = await session.get(RT, vote.rt_id)
    text = result_text(vote, rt)
    if vote.proposal_id is None:
        text += "\n\n" + _("You can attach this result to a proposal as evidence of the musyawarah.")
        return Notice(text, attach_keyboard(vote))
    return Notice(text)
