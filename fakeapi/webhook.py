"""Webhook delivery, the way Telegram does it.

While a bot has a webhook (``setWebhook``), each queued update is POSTed as JSON to its URL, with
``X-Telegram-Bot-Api-Secret-Token`` when a secret was given. An update leaves the queue only when the
webhook answers 2xx; any other status, a connection error or a timeout keeps it queued and it is sent
again after an increasing delay (``webhook_retry_min_delay`` doubling up to ``webhook_retry_max_delay``).
``getWebhookInfo`` then shows ``last_error_date``/``last_error_message`` (Telegram's wording, e.g.
"Wrong response from the webhook: 500 Internal Server Error") and ``pending_update_count``.

At most ``max_connections`` requests are in flight per bot, and updates of one chat go one at a
time, in order (a later update of a chat waits while an earlier one is failing). A 2xx answer may
carry one Bot API call (``{"method": "sendMessage", ...}`` as JSON or a form): it is executed, and
its result is not reported back, as on Telegram.

Every attempt is recorded in :attr:`WebhookDeliverer.attempts` and published as a ``webhook_delivery``
event, so tests can see what was sent, answered and retried.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .config import ServerConfig
from .params import Params, UploadedFile
from .state import BotAccount, World, now_ts

logger = logging.getLogger("fakeapi.webhook")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# Runs a Bot API call given in a webhook's answer: (bot, method name, params).
ReplyExecutor = Callable[[BotAccount, str, Params], Awaitable[Any]]


@dataclass
class DeliveryAttempt:
    """One POST of an update to a webhook."""

    bot_id: int
    update_id: int
    url: str
    attempt: int  # 1 for the first try of this update
    started: float = field(default_factory=time.time)
    finished: float | None = None
    status: int | None = None  # HTTP status, None when there was no answer
    error: str | None = None  # as in getWebhookInfo.last_error_message; None when delivered
    reply_method: str | None = None  # a Bot API method carried by the answer

    @property
    def ok(self) -> bool:
        return self.finished is not None and self.error is None


def queue_key(update: dict[str, Any]) -> tuple[str, int]:
    """Updates with the same key are delivered one at a time, in order (Telegram: per chat)."""
    for key, payload in update.items():
        if key == "update_id" or not isinstance(payload, dict):
            continue
        chat = payload.get("chat") or (payload.get("message") or {}).get("chat")
        if isinstance(chat, dict) and "id" in chat:
            return ("chat", int(chat["id"]))
        for user_field in ("from", "user"):
            user = payload.get(user_field)
            if isinstance(user, dict) and "id" in user:
                return ("chat", int(user["id"]))
    return ("update", int(update["update_id"]))


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "Read timeout expired"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "Connection refused"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError | ConnectionError):
        return "Connection reset by peer"
    return f"Connection error: {type(exc).__name__}"


class _BotDelivery:
    """The delivery loop of one bot, alive while it has a webhook."""

    def __init__(self, owner: WebhookDeliverer, bot: BotAccount) -> None:
        self.owner = owner
        self.bot = bot
        self.wake = asyncio.Event()
        self.inflight: dict[int, asyncio.Task[None]] = {}
        self.busy: set[tuple[str, int]] = set()
        self.retry_at: dict[int, float] = {}
        self.tries: dict[int, int] = {}

    def delay(self, tries: int) -> float:
        config = self.owner.config
        return min(config.webhook_retry_max_delay, config.webhook_retry_min_delay * 2 ** (tries - 1))

    async def run(self) -> None:
        bot = self.bot
        while bot.webhook.url or self.inflight:
            self.wake.clear()
            now = time.monotonic()
            next_retry: float | None = None
            if bot.webhook.url:
                queued = {u["update_id"] for u in bot.updates}
                for uid in [u for u in self.retry_at if u not in queued]:  # dropped meanwhile
                    self.retry_at.pop(uid, None)
                    self.tries.pop(uid, None)
                seen: set[tuple[str, int]] = set()
                for update in list(bot.updates):
                    key = queue_key(update)
                    if key in seen:  # an earlier update of this chat is still queued: keep the order
                        continue
                    seen.add(key)
                    uid = update["update_id"]
                    if uid in self.inflight or key in self.busy:
                        continue
                    if len(self.inflight) >= bot.webhook.max_connections:
                        break
                    due = self.retry_at.get(uid, 0.0)
                    if due > now:
                        next_retry = due if next_retry is None else min(next_retry, due)
                        continue
                    self._start(update, key)
            waiter = asyncio.ensure_future(bot.update_notifier.waiter().wait())
            woken = asyncio.ensure_future(self.wake.wait())
            try:
                timeout = None if next_retry is None else max(0.0, next_retry - time.monotonic())
                await asyncio.wait({waiter, woken}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                woken.cancel()

    def _start(self, update: dict[str, Any], key: tuple[str, int]) -> None:
        uid = update["update_id"]
        self.tries[uid] = self.tries.get(uid, 0) + 1
        self.busy.add(key)
        task = asyncio.create_task(self._deliver(update, self.tries[uid]), name=f"webhook-{uid}")
        self.inflight[uid] = task

        def done(_task: asyncio.Task[None]) -> None:
            self.inflight.pop(uid, None)
            self.busy.discard(key)
            self.wake.set()

        task.add_done_callback(done)

    async def _deliver(self, update: dict[str, Any], tries: int) -> None:
        bot = self.bot
        webhook = bot.webhook
        uid = update["update_id"]
        attempt = DeliveryAttempt(bot.id, uid, webhook.url, tries)
        self.owner.attempts.append(attempt)
        headers = {"Content-Type": "application/json"}
        if webhook.secret_token:
            headers[SECRET_HEADER] = webhook.secret_token
        reply: tuple[str, Params] | None = None
        try:
            timeout = aiohttp.ClientTimeout(total=self.owner.config.webhook_timeout)
            async with self.owner.session().post(
                webhook.url, data=json.dumps(update, ensure_ascii=False), headers=headers, timeout=timeout
            ) as response:
                attempt.status = response.status
                if 200 <= response.status < 300:
                    reply = await _read_reply(response)
                else:
                    attempt.error = f"Wrong response from the webhook: {response.status} {response.reason}"
        except asyncio.CancelledError:
            attempt.error = "Connection closed"
            raise
        except Exception as exc:
            attempt.error = _error_text(exc)
        finally:
            attempt.finished = time.time()
            self._settle(attempt)
        if reply is not None:
            attempt.reply_method = reply[0]
            try:
                await self.owner.execute_reply(bot, *reply)
            except Exception:  # the answer's call failed; Telegram does not report that anywhere
                logger.debug("webhook reply %s of update %s failed", reply[0], uid, exc_info=True)

    def _settle(self, attempt: DeliveryAttempt) -> None:
        bot = self.bot
        uid = attempt.update_id
        if attempt.error is None:
            bot.updates = [u for u in bot.updates if u["update_id"] != uid]
            self.retry_at.pop(uid, None)
            self.tries.pop(uid, None)
        else:
            bot.webhook.last_error_date = now_ts()
            bot.webhook.last_error_message = attempt.error
            self.retry_at[uid] = time.monotonic() + self.delay(attempt.attempt)
        self.owner.world.events.publish(
            "webhook_delivery",
            bot_id=bot.id,
            update_id=uid,
            attempt=attempt.attempt,
            status=attempt.status,
            error=attempt.error,
        )


async def _read_reply(response: aiohttp.ClientResponse) -> tuple[str, Params] | None:
    """A Bot API call carried by a webhook's 2xx answer, if any (JSON, urlencoded or multipart)."""
    content_type = response.content_type
    values: dict[str, Any] = {}
    files: dict[str, UploadedFile] = {}
    if content_type == "application/json":
        body = await response.read()
        try:
            decoded = json.loads(body) if body.strip() else None
        except ValueError:
            return None
        if not isinstance(decoded, dict):
            return None
        values = decoded
    elif content_type == "application/x-www-form-urlencoded":
        from urllib.parse import parse_qsl

        values = dict(parse_qsl((await response.read()).decode("utf-8", "replace")))
    elif content_type.startswith("multipart/"):
        reader = aiohttp.MultipartReader.from_response(response)
        while (part := await reader.next()) is not None:
            if not isinstance(part, aiohttp.BodyPartReader):
                continue
            name = part.name or ""
            if part.filename is not None:
                data = bytes(await part.read(decode=False))
                files[name] = UploadedFile(name, part.filename, part.headers.get("Content-Type", ""), data)
            else:
                values[name] = await part.text()
    else:
        return None
    method = values.pop("method", None)
    if not isinstance(method, str) or not method:
        return None
    return method, Params.from_mapping(values, files)


class WebhookDeliverer:
    """Runs one delivery loop per bot that has a webhook; started and stopped with the server."""

    def __init__(self, world: World, config: ServerConfig, execute_reply: ReplyExecutor) -> None:
        self.world = world
        self.config = config
        self.execute_reply = execute_reply
        self.attempts: list[DeliveryAttempt] = []
        self._loops: dict[int, tuple[_BotDelivery, asyncio.Task[None]]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._running = False

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(force_close=self.config.webhook_force_close)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    def start(self) -> None:
        self._running = True
        for bot in self.world.bots.values():
            self.changed(bot)

    def changed(self, bot: BotAccount) -> None:
        """The bot's webhook was set, changed or deleted."""
        if not self._running:
            return
        entry = self._loops.get(bot.id)
        if entry is not None and not entry[1].done():
            entry[0].wake.set()
            return
        if not bot.webhook.url:
            return
        delivery = _BotDelivery(self, bot)
        task = asyncio.create_task(delivery.run(), name=f"webhook-bot-{bot.id}")
        task.add_done_callback(lambda t: self._finished(bot.id, t))
        self._loops[bot.id] = (delivery, task)

    def _finished(self, bot_id: int, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("webhook delivery of bot %s failed", bot_id, exc_info=task.exception())
        entry = self._loops.get(bot_id)
        if entry is not None and entry[1] is task:
            del self._loops[bot_id]
            bot = self.world.bots.get(bot_id)
            if bot is not None and bot.webhook.url and self._running:
                self.changed(bot)  # set again while the loop was finishing

    def attempts_of(self, update_id: int) -> list[DeliveryAttempt]:
        return [a for a in self.attempts if a.update_id == update_id]

    async def stop(self) -> None:
        self._running = False
        tasks = []
        for delivery, task in list(self._loops.values()):
            tasks.extend(delivery.inflight.values())
            tasks.append(task)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._loops.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
