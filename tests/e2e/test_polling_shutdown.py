"""Stopping a long-polling bot: no getUpdates is answered 409 Conflict, and what was handled is
confirmed (not delivered again on the next start).

The fake keeps a long poll open on the server after the client closed the connection, like
telegram-bot-api does, and turns a repeated offset within 3 s into a 3-second long poll that
terminates the open one with 409 ("terminated by other getUpdates request")."""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.e2e


def _conflicts(tg) -> list:
    return [c for c in tg.calls_of("getUpdates") if c.status == 409]


def _delivered_ids(calls) -> set[int]:
    return {u["update_id"] for c in calls if c.ok for u in c.result or []}


async def test_sigterm_right_after_an_update_leaves_no_409_and_confirms_it(tg, launch, sqlite_url):
    # A short long-poll timeout, so the poll left open at stop ends on the server within the test.
    bot = await launch(sqlite_url, POLLING_TIMEOUT="4")
    user = tg.user("Budi", language_code="id")
    sent = await user.send("/start")
    await user.wait_message()
    await tg.wait_polling()  # the update is handled: the bot waits for the next one
    handled = {
        u["update_id"]
        for c in tg.calls_of("getUpdates")
        if c.ok
        for u in c.result or []
        if u.get("message", {}).get("message_id") == sent.message_id
    }
    assert len(handled) == 1
    assert await bot.stop() == 0  # SIGTERM within 3 s of the bot's last long poll

    # The long poll cancelled at stop is still open on the server; it ends by its timeout, not by
    # a 409 brought on by the bot's own confirming call.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while not all(c.done for c in tg.calls_of("getUpdates")):
        assert loop.time() < deadline, tg.calls_of("getUpdates")
        await asyncio.sleep(0.05)
    assert _conflicts(tg) == []

    before_restart = tg.calls[-1].seq
    await bot.start()
    await user.expect_no_message(1.5)
    after = [c for c in tg.calls_of("getUpdates") if c.seq > before_restart]
    assert not handled & _delivered_ids(after), "the handled update was delivered again"
    assert await bot.stop() == 0
    assert _conflicts(tg) == []
