"""Native polls in the fake Bot API, with the real aiogram client over HTTP: sendPoll's validation
(question 1-300, options 1-12 of 1-100 characters, as in the spec), stopPoll, and the ``poll`` /
``poll_answer`` updates a vote, a changed vote and a retracted vote produce."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import InputPollOption

from fakeapi import FakeTelegram
from tests.unit.test_fakeapi import make_client


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    client = make_client(tg, tg.new_bot_token(username="prolita_test_bot"))
    yield client
    await client.session.close()


def opts(*texts: str) -> list[InputPollOption]:
    return [InputPollOption(text=t, text_parse_mode=None) for t in texts]


@pytest.mark.parametrize(
    ("question", "options", "error"),
    [
        ("", ["a", "b"], "poll question must be non-empty"),
        ("x" * 301, ["a", "b"], "poll question length must not exceed 300"),
        ("Q", [], "poll must have at least 1 option"),
        ("Q", ["a", "x" * 101], "poll options length must not exceed 100"),
        ("Q", ["a", "  "], "poll options must be non-empty"),
        ("Q", [str(i) for i in range(13)], "poll can't have more than 12 options"),
    ],
)
async def test_send_poll_validation(tg, bot, question, options, error):
    siti = tg.user("Siti")
    await siti.send("/start")
    with pytest.raises(TelegramBadRequest, match=error):
        await bot.send_poll(siti.id, question, opts(*options), question_parse_mode=None)
    assert not [m for m in siti.messages if m.from_bot]


async def test_send_poll_limits_accepted(tg, bot):
    siti = tg.user("Siti")
    await siti.send("/start")
    sent = await bot.send_poll(
        siti.id, "q" * 300, opts(*[f"{i}" + "o" * 98 for i in range(12)]), question_parse_mode=None
    )
    assert sent.poll is not None and len(sent.poll.options) == 12 and sent.poll.is_anonymous is True
    assert sent.poll.allows_revoting is True and sent.poll.type == "regular"
    assert all(o.persistent_id for o in sent.poll.options)
    # the UTF-16 length counts: 100 emoji are 200 code units
    with pytest.raises(TelegramBadRequest, match="must not exceed 100"):
        await bot.send_poll(siti.id, "Q", opts("🙂" * 51, "b"), question_parse_mode=None)


async def test_plain_text_poll_with_an_html_default_parse_mode(tg):
    """With the bot's default HTML parse mode, ``&`` and ``<`` in a poll are only safe as plain text."""
    token = tg.new_bot_token()
    client = make_client(tg, token)
    client.default = DefaultBotProperties(parse_mode=ParseMode.HTML)
    try:
        siti = tg.user("Siti")
        await siti.send("/start")
        with pytest.raises(TelegramBadRequest, match="parse"):
            await client.send_poll(siti.id, "Gang <Mawar>?", ["a", "b"])
        sent = await client.send_poll(
            siti.id, "Gang <Mawar> & Melati?", opts("Jalan & got", "<b>x</b>"), question_parse_mode=None
        )
        assert sent.poll.question == "Gang <Mawar> & Melati?"
        assert [o.text for o in sent.poll.options] == ["Jalan & got", "<b>x</b>"]
    finally:
        await client.session.close()


async def test_votes_changes_retracts_and_stop(tg, bot):
    siti = tg.user("Siti")
    await siti.send("/start")
    sent = await bot.send_poll(
        siti.id, "Ide?", opts("Jalan", "Lampu", "Got"), is_anonymous=False, question_parse_mode=None
    )
    await bot.get_updates(allowed_updates=["message", "poll_answer"])  # only poll_answer, not poll
    first = (await bot.get_updates())[-1].update_id

    assert await siti.vote([0]) is True
    assert await siti.vote([0]) is False  # the same choice again: a client sends nothing
    assert await siti.vote([2]) is True  # changed
    assert await siti.vote([]) is True  # retracted
    assert await siti.vote([]) is False  # nothing left to retract
    with pytest.raises(ValueError, match="only one answer"):
        await siti.vote([0, 1])
    with pytest.raises(ValueError, match="no such option"):
        await siti.vote([3])

    updates = [u for u in await bot.get_updates(offset=first + 1) if u.update_id > first]
    assert [u.event_type for u in updates] == ["poll_answer"] * 3  # "poll" updates were not asked for
    answers = [u.poll_answer for u in updates]
    assert [a.option_ids for a in answers] == [[0], [2], []]
    assert all(a.poll_id == sent.poll.id and a.user.id == siti.id for a in answers)
    assert answers[0].option_persistent_ids == [sent.poll.options[0].persistent_id]
    assert answers[2].option_persistent_ids == []

    await siti.vote([1])
    stopped = await bot.stop_poll(siti.id, sent.message_id)
    assert stopped.is_closed and [o.voter_count for o in stopped.options] == [0, 1, 0]
    assert stopped.total_voter_count == 1
    assert siti.chat().get(sent.message_id).data["poll"]["is_closed"] is True
    with pytest.raises(ValueError, match="closed"):
        await siti.vote([0])
    with pytest.raises(TelegramBadRequest, match="poll has already been closed"):
        await bot.stop_poll(siti.id, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message with poll to stop not found"):
        await bot.stop_poll(siti.id, sent.message_id + 100)


async def test_anonymous_poll_gives_no_answers_and_revoting_can_be_off(tg, bot):
    siti = tg.user("Siti")
    await siti.send("/start")
    anon = await bot.send_poll(siti.id, "Anon?", opts("a", "b"), question_parse_mode=None)
    await siti.vote([0], message=siti.chat().get(anon.message_id))
    updates = await bot.get_updates(allowed_updates=["message", "poll", "poll_answer"])
    assert [u.event_type for u in updates] == ["message", "poll"]  # the count, never who voted
    fixed = await bot.send_poll(
        siti.id, "Once?", opts("a", "b"), is_anonymous=False, allows_revoting=False, question_parse_mode=None
    )
    assert fixed.poll.allows_revoting is False
    await siti.vote([1])
    with pytest.raises(ValueError, match="does not allow changing"):
        await siti.vote([0])
