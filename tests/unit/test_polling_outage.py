"""Long polling and a database/Redis outage: the update that met it is tried again until the
service is back (handled once), instead of being confirmed to Telegram and lost; one stopped during
the outage is left unconfirmed for the next start. Other errors are not retried."""

from __future__ import annotations

from types import SimpleNamespace

from aiogram.types import Update
from redis.exceptions import ConnectionError as RedisConnectionError

from bot import polling
from bot.polling import SafePoller


def update(uid: int) -> Update:
    return Update.model_validate(
        {"update_id": uid, "message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"},
                                        "from": {"id": 5, "is_bot": False, "first_name": "Budi"}, "text": "x"}}
    )  # fmt: skip


class Dispatcher:
    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.handled: list[int] = []

    async def feed_update(self, bot, update, **kw):
        if self.failures:
            raise self.failures.pop(0)
        self.handled.append(update.update_id)


def poller(dp) -> SafePoller:
    return SafePoller(SimpleNamespace(), dp, allowed_updates=["message"])  # type: ignore[arg-type]


async def test_an_update_meeting_an_outage_is_tried_again_until_handled(monkeypatch):
    monkeypatch.setattr(polling, "OUTAGE_RETRY_MIN", 0.01)
    dp = Dispatcher([RedisConnectionError("Connection refused"), RedisConnectionError("Connection refused")])
    p = poller(dp)
    await p._handle(update(10), None)
    assert dp.handled == [10]


async def test_other_errors_are_not_retried():
    dp = Dispatcher([ValueError("a bug")])
    p = poller(dp)
    await p._handle(update(11), None)
    assert dp.handled == []


async def test_an_outage_while_stopping_leaves_the_update_unconfirmed(monkeypatch):
    import asyncio

    monkeypatch.setattr(polling, "OUTAGE_RETRY_MIN", 0.01)
    dp = Dispatcher([RedisConnectionError("down")] * 1000)
    p = poller(dp)
    p._dispatch([update(20).model_dump(mode="json", exclude_unset=True)])
    await asyncio.sleep(0.05)
    p.stop()
    await asyncio.wait(set(p._inflight.values()), timeout=2)
    await asyncio.sleep(0)
    assert dp.handled == [] and p.offset == 20  # Telegram sends update 20 again at the next start
