"""In-process simulator: run the fake Bot API in the test's event loop and act as Telegram users.

    async with FakeTelegram() as tg:
        token = tg.new_bot_token()
        alice = tg.user("Siti", language_code="id", phone="+6281234567890")
        ...  # point the bot at tg.base_url
        await alice.send("/start")
        welcome = await alice.wait_message(contains="Selamat datang")
        answer = await alice.press("Setuju")

A :class:`SimUser` behaves like a Telegram client: messages it sends become ``message`` updates for
the bot, inline buttons produce ``callback_query`` updates, reply-keyboard buttons send their text (or
the user's contact / location), and everything the bot sends, edits or deletes is visible in
``user.messages``.
"""

from __future__ import annotations

import asyncio
import copy
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from .config import RateLimits, ServerConfig
from .errors import ApiError
from .media import make_jpeg, make_ogg_voice, make_webp_sticker
from .server import ApiCall, FakeBotAPI, Fault
from .state import (
    ALL_UPDATE_TYPES,
    BotAccount,
    CallbackQueryRecord,
    ChatMessage,
    Conversation,
    Event,
    LogEntry,
    Subscription,
    UserAccount,
    World,
)
from .text import detect_entities, user_text, utf16_len


class WaitTimeout(TimeoutError):
    """Nothing matching arrived in time (the message lists what did arrive)."""


@dataclass
class CallbackAnswer:
    """What the bot answered to a pressed inline button (answerCallbackQuery)."""

    answered: bool
    text: str | None = None
    show_alert: bool = False
    url: str | None = None
    cache_time: int = 0
    query_id: str | None = None
    message: ChatMessage | None = None

    def __bool__(self) -> bool:
        return self.answered


_OWN = object()  # "the user's own" marker for share_contact(user_id=...)
BotRef = BotAccount | str | int | None


def visible_text(snapshot: dict[str, Any], message: ChatMessage | None = None) -> str:
    """What a person sees of a message version: text or caption, then the button labels."""
    parts = [snapshot.get("text") or snapshot.get("caption") or ""]
    for row in (snapshot.get("reply_markup") or {}).get("inline_keyboard", []):
        parts.extend(button.get("text", "") for button in row)
    if message is not None and message.reply_keyboard:
        for row in message.reply_keyboard.get("keyboard", []):
            parts.extend(button.get("text", "") for button in row)
    return "\n".join(parts)


def _matches(
    snapshot: dict[str, Any],
    contains: str | Sequence[str] | None,
    regex: str | re.Pattern[str] | None,
    message: ChatMessage,
    predicate: Callable[[ChatMessage], bool] | None,
) -> bool:
    if contains is not None or regex is not None:
        seen = visible_text(snapshot, message)
        needles = [] if contains is None else [contains] if isinstance(contains, str) else list(contains)
        if not all(needle in seen for needle in needles):
            return False
        if regex is not None and not re.search(regex, seen):
            return False
    return predicate is None or predicate(message)


class SimUser:
    """A simulated Telegram user talking to bots in private chats."""

    def __init__(self, tg: FakeTelegram, account: UserAccount, bot: BotAccount | None = None) -> None:
        self.tg = tg
        self.account = account
        self.default_bot = bot
        self.location: tuple[float, float] | None = None  # used by request_location buttons
        self._cursors: dict[int, int] = {}  # per bot: position in the chat log read so far
        self._last_action: dict[int, tuple[int, str]] = {}  # per bot: (log position, "message"/"press")

    # ------------------------------------------------------------------------------- identity

    @property
    def id(self) -> int:
        return self.account.id

    @property
    def first_name(self) -> str:
        return self.account.first_name

    @property
    def last_name(self) -> str | None:
        return self.account.last_name

    @property
    def username(self) -> str | None:
        return self.account.username

    @property
    def language_code(self) -> str | None:
        return self.account.language_code

    @property
    def phone(self) -> str | None:
        return self.account.phone

    def to_json(self) -> dict[str, Any]:
        return self.account.to_json()

    def __repr__(self) -> str:
        return f"<SimUser {self.account.full_name!r} id={self.id}>"

    # ---------------------------------------------------------------------------------- chats

    def _bot(self, bot: BotRef = None) -> BotAccount:
        if bot is None:
            bot = self.default_bot
        if bot is None:
            return self.tg.default_bot
        return self.tg.bot(bot)

    def chat(self, bot: BotRef = None) -> Conversation:
        """The private chat with a bot (the default bot unless given)."""
        return self.tg.world.conversation(self._bot(bot), self.account)

    @property
    def messages(self) -> list[ChatMessage]:
        """The whole chat history with the default bot, both directions, deleted ones flagged."""
        return self.chat().history()

    @property
    def bot_messages(self) -> list[ChatMessage]:
        return [m for m in self.chat().history() if m.from_bot]

    @property
    def visible_messages(self) -> list[ChatMessage]:
        return [m for m in self.chat().history() if not m.deleted]

    @property
    def last_message(self) -> ChatMessage | None:
        """The latest not-deleted message from the bot."""
        for message in reversed(self.chat().history()):
            if message.from_bot and not message.deleted:
                return message
        return None

    @property
    def keyboard(self) -> dict[str, Any] | None:
        """The reply keyboard currently set by the bot (ReplyKeyboardMarkup), if any."""
        return copy.deepcopy(self.chat().reply_keyboard)

    @property
    def keyboard_buttons(self) -> list[dict[str, Any]]:
        keyboard = self.chat().reply_keyboard or {}
        return [dict(button) for row in keyboard.get("keyboard", []) for button in row]

    @property
    def chat_actions(self) -> list[str]:
        return [action for _, action in self.chat().chat_actions]

    def commands(self, bot: BotRef = None) -> list[dict[str, str]]:
        """The command menu this user sees (scope/language fallback as in Telegram clients)."""
        account = self._bot(bot)
        language = (self.account.language_code or "")[:2]
        keys = [
            (("chat_member", self.id, self.id), language),
            (("chat_member", self.id, self.id), ""),
            (("chat", self.id), language),
            (("chat", self.id), ""),
            (("all_private_chats",), language),
            (("all_private_chats",), ""),
            (("default",), language),
            (("default",), ""),
        ]
        for key in keys:
            if key in account.commands:
                return copy.deepcopy(account.commands[key])
        return []

    def menu_button(self, bot: BotRef = None) -> dict[str, Any]:
        account = self._bot(bot)
        return copy.deepcopy(
            account.menu_buttons.get(self.id) or account.menu_buttons.get(None) or {"type": "commands"}
        )

    def mark_read(self, bot: BotRef = None) -> None:
        """Forget unread bot messages: wait_message() will only see what arrives from now on."""
        conv = self.chat(bot)
        self._cursors[conv.bot.id] = len(conv.log)

    async def download(self, message: ChatMessage) -> bytes:
        """Bytes of a message's photo (largest size) or document/voice/sticker."""
        return self.tg.world.file_bytes(message)

    # -------------------------------------------------------------------------------- sending

    async def _post(
        self,
        content: dict[str, Any],
        *,
        bot: BotRef = None,
        reply_to: ChatMessage | int | None = None,
    ) -> ChatMessage:
        conv = self.chat(bot)
        world = self.tg.world
        if conv.blocked:  # writing to a blocked bot means unblocking it first (the client's "Restart")
            world.set_blocked(conv, False)
        conv.started = True
        reply: ChatMessage | None
        if isinstance(reply_to, int):
            reply = conv.get(reply_to)
        else:
            reply = reply_to
        if reply is None and conv.force_reply_message_id is not None:
            reply = conv.get(conv.force_reply_message_id)
        conv.force_reply_message_id = None
        message = world.add_message(conv, "user", content, reply_to=reply)
        world.enqueue_update(conv.bot, "message", message.data)
        self._mark_action(conv, "message")
        await asyncio.sleep(0)
        return message

    async def send(
        self,
        text: str,
        *,
        bot: BotRef = None,
        reply_to: ChatMessage | int | None = None,
    ) -> ChatMessage:
        """Send a text message (``/commands`` get a bot_command entity, links a url entity, ...)."""
        text, entities = user_text(text)
        if not text:
            raise ValueError("Telegram clients don't send empty messages")
        content: dict[str, Any] = {"text": text}
        if entities:
            content["entities"] = entities
        return await self._post(content, bot=bot, reply_to=reply_to)

    async def send_raw(self, content: dict[str, Any], *, bot: BotRef = None) -> ChatMessage:
        """Send a message with arbitrary Message fields (e.g. {"video": {...}}) for unusual cases."""
        return await self._post(copy.deepcopy(content), bot=bot)

    def _caption(self, caption: str | None) -> dict[str, Any]:
        if not caption:
            return {}
        text, entities = user_text(caption)
        content: dict[str, Any] = {"caption": text}
        if entities:
            content["caption_entities"] = entities
        return content

    async def send_photo(
        self,
        data: bytes | None = None,
        *,
        caption: str | None = None,
        media_group_id: str | None = None,
        bot: BotRef = None,
        reply_to: ChatMessage | int | None = None,
    ) -> ChatMessage:
        """Send a photo (compressed like Telegram does: several sizes, EXIF removed)."""
        if data is None:
            data = make_jpeg()
        try:
            sizes = self.tg.world.store_photo(data)
        except ApiError as exc:
            raise ValueError(f"Telegram would not accept this photo: {exc.description}") from None
        content: dict[str, Any] = {}
        if media_group_id:
            content["media_group_id"] = media_group_id
        content["photo"] = [size.photo_size_json() for size in sizes]
        content.update(self._caption(caption))
        return await self._post(content, bot=bot, reply_to=reply_to)

    async def send_album(
        self,
        items: Sequence[bytes | tuple[str, bytes]],
        *,
        caption: str | None = None,
        bot: BotRef = None,
    ) -> list[ChatMessage]:
        """Send 2-10 photos (bytes) or documents (("name.pdf", bytes)) as one album: one update per
        item, all with the same media_group_id; the caption goes on the first item."""
        if not 2 <= len(items) <= 10:
            raise ValueError("an album has 2-10 items")
        group_id = str(random.randint(10**17, 10**18 - 1))
        sent = []
        for number, item in enumerate(items):
            item_caption = caption if number == 0 else None
            if isinstance(item, tuple):
                name, data = item
                sent.append(
                    await self.send_document(
                        data, file_name=name, caption=item_caption, media_group_id=group_id, bot=bot
                    )
                )
            else:
                sent.append(
                    await self.send_photo(item, caption=item_caption, media_group_id=group_id, bot=bot)
                )
        return sent

    async def send_document(
        self,
        data: bytes,
        file_name: str = "document.bin",
        mime_type: str | None = None,
        *,
        caption: str | None = None,
        media_group_id: str | None = None,
        file_size: int | None = None,
        bot: BotRef = None,
        reply_to: ChatMessage | int | None = None,
    ) -> ChatMessage:
        """Send a file uncompressed (EXIF preserved). ``file_size`` fakes a bigger declared size."""
        stored = self.tg.world.store_file(
            data, "document", file_name=file_name, mime_type=mime_type, declared_size=file_size
        )
        if stored.mime_type is None:
            stored.mime_type = "application/octet-stream"
        content: dict[str, Any] = {}
        if media_group_id:
            content["media_group_id"] = media_group_id
        content["document"] = stored.media_json()
        content.update(self._caption(caption))
        return await self._post(content, bot=bot, reply_to=reply_to)

    async def send_sticker(
        self, emoji: str = "👍", *, set_name: str | None = "FakeStickers", bot: BotRef = None
    ) -> ChatMessage:
        stored = self.tg.world.store_file(make_webp_sticker(), "sticker", width=512, height=512)
        stored.extra.update({"type": "regular", "is_animated": False, "is_video": False, "emoji": emoji})
        if set_name:
            stored.extra["set_name"] = set_name
        return await self._post({"sticker": stored.media_json()}, bot=bot)

    async def send_voice(
        self, data: bytes | None = None, *, duration: int = 2, bot: BotRef = None
    ) -> ChatMessage:
        stored = self.tg.world.store_file(
            data if data is not None else make_ogg_voice(duration),
            "voice",
            mime_type="audio/ogg",
            duration=duration,
        )
        return await self._post({"voice": stored.media_json()}, bot=bot)

    async def share_contact(
        self,
        phone: str | None = None,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        user_id: int | object | None = _OWN,
        vcard: str | None = None,
        bot: BotRef = None,
    ) -> ChatMessage:
        """Share a contact. Without ``phone``: the user's own (``contact.user_id == user.id``)."""
        own = phone is None
        if own:
            phone = self.account.phone
            if not phone:
                raise ValueError(f"{self!r} has no phone number; pass phone= to tg.user() or here")
        contact: dict[str, Any] = {
            "phone_number": phone,
            "first_name": first_name
            if first_name is not None
            else (self.account.first_name if own else "Contact"),
        }
        surname = last_name if last_name is not None else (self.account.last_name if own else None)
        if surname:
            contact["last_name"] = surname
        if user_id is _OWN:
            user_id = self.id if own else None
        if user_id is not None:
            contact["user_id"] = user_id
        if vcard:
            contact["vcard"] = vcard
        return await self._post({"contact": contact}, bot=bot)

    async def share_location(
        self,
        latitude: float,
        longitude: float,
        *,
        horizontal_accuracy: float | None = None,
        live_period: int | None = None,
        bot: BotRef = None,
    ) -> ChatMessage:
        location: dict[str, Any] = {"latitude": float(latitude), "longitude": float(longitude)}
        if horizontal_accuracy is not None:
            location["horizontal_accuracy"] = float(horizontal_accuracy)
        if live_period is not None:
            location["live_period"] = int(live_period)
        return await self._post({"location": location}, bot=bot)

    async def edit(self, message: ChatMessage, text: str) -> ChatMessage:
        """Edit one of the user's own text messages (the bot gets an ``edited_message`` update)."""
        if message.from_bot:
            raise ValueError("users can only edit their own messages")
        new_text, entities = user_text(text)
        new = copy.deepcopy(message.data)
        new["text"] = new_text
        new.pop("entities", None)
        if entities:
            new["entities"] = entities
        self.tg.world.edit_message(message, new)
        self.tg.world.enqueue_update(message.conversation.bot, "edited_message", message.data)
        await asyncio.sleep(0)
        return message

    async def delete(self, message: ChatMessage) -> None:
        """Delete a message for both sides (bots get no update for this, as in Telegram)."""
        self.tg.world.delete_message(message)
        await asyncio.sleep(0)

    # ------------------------------------------------------------------------------- buttons

    def _find_inline(
        self, conv: Conversation, text: str | None, data: str | None, message: ChatMessage | None
    ) -> tuple[ChatMessage, dict[str, Any]] | None:
        candidates = [message] if message is not None else [m for m in reversed(conv.history()) if m.from_bot]
        for exact in (True, False):
            for candidate in candidates:
                if candidate.deleted:
                    continue
                for button in candidate.buttons:
                    if data is not None and button.get("callback_data") != data:
                        continue
                    if text is not None:
                        label = button.get("text", "")
                        if exact and label != text:
                            continue
                        if not exact and text.strip().casefold() not in label.casefold():
                            continue
                    return candidate, button
        return None

    def _find_keyboard(self, conv: Conversation, text: str | None) -> dict[str, Any] | None:
        if text is None or conv.reply_keyboard is None:
            return None
        buttons = [button for row in conv.reply_keyboard.get("keyboard", []) for button in row]
        for exact in (True, False):
            for button in buttons:
                label = button.get("text", "")
                if (exact and label == text) or (not exact and text.strip().casefold() in label.casefold()):
                    return button
        return None

    @staticmethod
    def _log_index(conv: Conversation, message_id: int | None) -> int:
        """Position in the chat log of the latest version (new/edit) of a message; -1 if none."""
        for index in range(len(conv.log) - 1, -1, -1):
            entry = conv.log[index]
            if entry.message.message_id == message_id and entry.kind != "delete":
                return index
        return -1

    def _locate(
        self, conv: Conversation, text: str | None, data: str | None, message: ChatMessage | None
    ) -> tuple[str, ChatMessage | None, dict[str, Any], int] | None:
        """The button to press: ("inline", message, button, log index) or ("keyboard", None, ...)."""
        inline = self._find_inline(conv, text, data, message)
        keyboard = None if message is not None or data is not None else self._find_keyboard(conv, text)
        inline_index = self._log_index(conv, inline[0].message_id) if inline is not None else -1
        keyboard_index = self._log_index(conv, conv.reply_keyboard_message_id) if keyboard is not None else -1
        if inline is not None and (keyboard is None or inline_index >= keyboard_index):
            return "inline", inline[0], inline[1], inline_index
        if keyboard is not None:
            return "keyboard", None, keyboard, keyboard_index
        return None

    def _mark_action(self, conv: Conversation, kind: str) -> None:
        self._cursors[conv.bot.id] = len(conv.log)
        self._last_action[conv.bot.id] = (len(conv.log), kind)

    def buttons(self, bot: BotRef = None) -> list[str]:
        """Labels of all buttons the user can press now (inline of visible bot messages + keyboard)."""
        conv = self.chat(bot)
        labels = [b["text"] for m in conv.history() if m.from_bot and not m.deleted for b in m.buttons]
        labels += [b["text"] for b in self.keyboard_buttons]
        return labels

    async def press(
        self,
        text: str | None = None,
        *,
        data: str | None = None,
        message: ChatMessage | None = None,
        location: tuple[float, float] | None = None,
        timeout: float = 5.0,
        settle: float = 0.2,
        bot: BotRef = None,
    ) -> CallbackAnswer | ChatMessage:
        """Press a button by its label (exact, else case-insensitive substring) or callback ``data``.

        The newest matching button is used (inline buttons of bot messages, or the reply keyboard).
        Like a person, the user waits for the bot's reaction first: if no such button exists yet, or
        the only inline one predates the user's last message and the bot has not reacted to that
        message yet, ``press`` waits (up to ``timeout``) for one to appear. ``message=`` presses on
        that message right away.

        Inline button: sends a callback_query and returns the :class:`CallbackAnswer` once the bot
        called answerCallbackQuery (``answered=False`` after ``timeout``). ``data=`` that no visible
        button carries is sent anyway on the latest bot message (as a modified client could), so
        bots can be tested against forged callback data. Reply-keyboard button: sends its text — or
        the user's own contact (request_contact) or ``location``/``user.location`` (request_location)
        — and returns the sent :class:`ChatMessage`.
        """
        if text is None and data is None:
            raise ValueError("press() needs a button text or data=")
        conv = self.chat(bot)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        since, last_kind = self._last_action.get(conv.bot.id, (0, "press"))
        last_change = loop.time()
        target = self._locate(conv, text, data, message)
        while message is None:
            reacted = last_kind == "press" or any(e.message.from_bot for e in conv.log[since:])
            if target is not None and (target[0] == "keyboard" or target[3] >= since or last_kind == "press"):
                # a reply keyboard stays until removed; an inline button the bot showed after the
                # user's last action is the one meant (or there is nothing the bot still owes)
                break
            now = loop.time()
            quiet = now - last_change >= settle
            if reacted and quiet and (target is not None or data is not None):
                break  # the bot reacted and went quiet: use what is there
            if now >= deadline:
                break
            if await conv.notifier.wait(min(settle, deadline - now)):
                last_change = loop.time()
            target = self._locate(conv, text, data, message)
        if target is None and data is not None:
            latest = message or next(
                (m for m in reversed(conv.history()) if m.from_bot and not m.deleted), None
            )
            if latest is not None:
                target = ("inline", latest, {"text": "", "callback_data": data}, -1)
        if target is None:
            raise LookupError(f"{self!r}: no button {text or data!r}; buttons now: {self.buttons(bot)}")
        kind, on_message, button, _ = target
        if kind == "inline":
            assert on_message is not None
            return await self._press_inline(conv, on_message, button, timeout)
        return await self._press_keyboard(conv, button, location)

    async def _press_inline(
        self,
        conv: Conversation,
        message: ChatMessage,
        button: dict[str, Any],
        wait: float,
    ) -> CallbackAnswer:
        if "callback_data" not in button:
            if "url" in button:
                return CallbackAnswer(answered=False, url=button["url"], message=message)
            raise NotImplementedError(f"pressing {button} is not simulated (only callback_data and url)")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        query_id = self._callback_query(conv, message, button["callback_data"], future=future)
        try:
            answer = await asyncio.wait_for(asyncio.shield(future), wait)
        except TimeoutError:
            return CallbackAnswer(answered=False, query_id=query_id, message=message)
        return CallbackAnswer(
            answered=True,
            text=answer.get("text"),
            show_alert=bool(answer.get("show_alert")),
            url=answer.get("url"),
            cache_time=int(answer.get("cache_time") or 0),
            query_id=query_id,
            message=message,
        )

    def _callback_query(
        self,
        conv: Conversation,
        message: ChatMessage,
        data: str,
        *,
        inaccessible: bool = False,
        future: asyncio.Future[dict[str, Any]] | None = None,
    ) -> str:
        """Record a callback query (so answerCallbackQuery can answer it) and queue its update."""
        world = self.tg.world
        bot = conv.bot
        if conv.blocked:
            world.set_blocked(conv, False)
        query_id = str(random.randint(10**18, 9 * 10**18))
        record = CallbackQueryRecord(query_id, bot.id, self.id, message, data, time.time(), future=future)
        bot.callback_queries[query_id] = record
        if inaccessible:  # InaccessibleMessage: chat, message_id and date 0
            shown: dict[str, Any] = {"chat": message.data["chat"], "message_id": message.message_id, "date": 0}
        else:
            shown = message.json()
        payload = {
            "id": query_id,
            "from": self.account.to_json(),
            "message": shown,
            "chat_instance": conv.chat_instance,
            "data": data,
        }
        world.events.publish(
            "callback_query", bot_id=bot.id, chat_id=self.id, message=message, callback_query=payload
        )
        world.enqueue_update(bot, "callback_query", payload)
        self._mark_action(conv, "press")
        return query_id

    async def send_callback(
        self,
        data: str,
        *,
        message: ChatMessage | None = None,
        inaccessible: bool = False,
        bot: BotRef = None,
    ) -> str:
        """A button press with any ``data``, without waiting for the answer: what a modified client
        (or a replayed old button) sends. Returns the query id; ``tg.callback_queries()`` tells which
        ones the bot answered. The press is on ``message`` (default: the bot's latest message);
        ``inaccessible`` sends that message as an ``InaccessibleMessage`` (``date`` 0), as Telegram
        does for a message the bot can no longer access. ``data`` is 1-64 bytes, like a button's."""
        size = len(data.encode("utf-8"))
        if not 1 <= size <= 64:
            raise ValueError(f"callback data is 1-64 bytes in UTF-8, not {size}")
        conv = self.chat(bot)
        if message is None:
            message = next((m for m in reversed(conv.history()) if m.from_bot and not m.deleted), None)
            if message is None:
                raise LookupError(f"{self!r}: the bot has sent no message to press a button on")
        query_id = self._callback_query(conv, message, data, inaccessible=inaccessible)
        await asyncio.sleep(0)
        return query_id

    async def _press_keyboard(
        self, conv: Conversation, button: dict[str, Any], location: tuple[float, float] | None
    ) -> ChatMessage:
        bot = conv.bot
        if button.get("request_contact"):
            sent = await self.share_contact(bot=bot)
        elif button.get("request_location"):
            where = location or self.location
            if where is None:
                raise ValueError("request_location button: pass location=(lat, lon) or set user.location")
            sent = await self.share_location(*where, bot=bot)
        elif any(key in button for key in ("request_poll", "request_users", "request_chat", "web_app")):
            raise NotImplementedError(f"pressing {button} is not simulated")
        else:
            sent = await self.send(button["text"], bot=bot)
        if conv.reply_keyboard is not None and conv.reply_keyboard.get("one_time_keyboard"):
            conv.keyboard_hidden = True
        return sent

    # ---------------------------------------------------------------------------------- polls

    async def vote(
        self, option_ids: Sequence[int], *, message: ChatMessage | None = None, bot: BotRef = None
    ) -> bool:
        """Vote in the bot's latest poll (or ``message``'s); [] retracts the vote.

        Like a Telegram client: the same choice again (or retracting when there is no vote) changes
        nothing and sends the bot nothing (returns False); a closed poll raises ValueError. A change
        sends the bot a ``poll`` update and, for a non-anonymous poll, a ``poll_answer`` update."""
        conv = self.chat(bot)
        if message is None:
            message = next(
                (m for m in reversed(conv.history()) if m.from_bot and m.poll and not m.deleted), None
            )
            if message is None:
                raise LookupError("no poll in the chat")
        world = self.tg.world
        state = world.polls.get(message.data["poll"]["id"])
        if state is None:
            raise LookupError("unknown poll")
        poll = state.data
        if not poll["is_closed"] and poll.get("close_date") and time.time() >= poll["close_date"]:
            poll["is_closed"] = True  # closed by its close_date / open_period
        if poll["is_closed"]:
            raise ValueError("the poll is closed")
        options = sorted(set(option_ids))
        if len(options) > 1 and not poll["allows_multiple_answers"]:
            raise ValueError("this poll allows only one answer")
        if any(not 0 <= i < len(poll["options"]) for i in options):
            raise ValueError("no such option")
        previous = state.votes.get(self.id, [])
        if options == previous:
            return False  # nothing changed: Telegram sends no update
        if previous and not poll.get("allows_revoting", True):
            raise ValueError("this poll does not allow changing the vote")
        for index in previous:
            poll["options"][index]["voter_count"] -= 1
        for index in options:
            poll["options"][index]["voter_count"] += 1
        if options:
            state.votes[self.id] = options
        else:
            state.votes.pop(self.id, None)
        poll["total_voter_count"] = len(state.votes)
        message.data["poll"] = copy.deepcopy(poll)
        world.events.publish(
            "poll", bot_id=conv.bot.id, chat_id=self.id, message=message, poll=copy.deepcopy(poll)
        )
        world.enqueue_update(conv.bot, "poll", poll)
        if not poll["is_anonymous"]:
            world.enqueue_update(
                conv.bot,
                "poll_answer",
                {
                    "poll_id": poll["id"],
                    "user": self.account.to_json(),
                    "option_ids": options,
                    "option_persistent_ids": [poll["options"][i]["persistent_id"] for i in options],
                },
            )
        await asyncio.sleep(0)
        return True

    # ------------------------------------------------------------------------------- blocking

    def block_bot(self, bot: BotRef = None) -> None:
        """Block the bot: it gets a my_chat_member update and 403 on further sends."""
        self.tg.world.set_blocked(self.chat(bot), True)

    def unblock_bot(self, bot: BotRef = None) -> None:
        self.tg.world.set_blocked(self.chat(bot), False)

    # -------------------------------------------------------------------------------- waiting

    def _recent(self, conv: Conversation) -> str:
        lines = []
        for entry in conv.log[-8:]:
            who = "bot" if entry.message.from_bot else "user"
            content = entry.snapshot.get("text") or entry.snapshot.get("caption") or f"<{entry.message.kind}>"
            lines.append(f"  {entry.kind:6} #{entry.message.message_id} {who}: {content[:100]!r}")
        return "\n".join(lines) or "  (nothing)"

    async def wait_message(
        self,
        contains: str | Sequence[str] | None = None,
        *,
        regex: str | re.Pattern[str] | None = None,
        predicate: Callable[[ChatMessage], bool] | None = None,
        include_edits: bool = False,
        edits_only: bool = False,
        timeout: float = 10.0,
        bot: BotRef = None,
    ) -> ChatMessage:
        """The next bot message (since the user's last action / last match) whose visible text —
        text or caption, and button labels — contains ``contains`` (a string, or all strings of a
        list) / matches ``regex``, and satisfies ``predicate``.

        With ``include_edits`` an edit of an existing message counts too (matched on its new content);
        ``edits_only`` waits for edits only. Non-matching messages on the way are skipped.
        Raises :class:`WaitTimeout`.
        """
        conv = self.chat(bot)
        bot_id = conv.bot.id
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            cursor = self._cursors.get(bot_id, 0)
            while cursor < len(conv.log):
                entry: LogEntry = conv.log[cursor]
                cursor += 1
                self._cursors[bot_id] = cursor
                if not entry.message.from_bot:
                    continue
                if entry.kind == "new" and edits_only:
                    continue
                if entry.kind == "edit" and not (include_edits or edits_only):
                    continue
                if entry.kind == "delete":
                    continue
                if _matches(entry.snapshot, contains, regex, entry.message, predicate):
                    return entry.message
            remaining = deadline - loop.time()
            if remaining <= 0:
                wanted = contains if contains is not None else (regex or "any message")
                raise WaitTimeout(
                    f"{self!r}: no bot message matching {wanted!r} within {timeout}s. Recent chat:\n"
                    + self._recent(conv)
                )
            await conv.notifier.wait(remaining)

    async def wait_edit(
        self,
        message: ChatMessage | None = None,
        *,
        contains: str | Sequence[str] | None = None,
        timeout: float = 10.0,
        bot: BotRef = None,
    ) -> ChatMessage:
        """Wait until the bot edits ``message`` (or any message) — optionally to contain a text."""
        target = message

        def is_target(candidate: ChatMessage) -> bool:
            return target is None or candidate is target

        return await self.wait_message(
            contains, predicate=is_target, edits_only=True, timeout=timeout, bot=bot
        )

    async def wait_messages(
        self,
        count: int,
        *,
        timeout: float = 10.0,
        bot: BotRef = None,
    ) -> list[ChatMessage]:
        """The next ``count`` new bot messages."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        result = []
        for _ in range(count):
            result.append(await self.wait_message(timeout=max(0.0, deadline - loop.time()), bot=bot))
        return result

    async def wait_idle(
        self,
        quiet: float = 0.3,
        *,
        timeout: float = 10.0,
        bot: BotRef = None,
    ) -> list[ChatMessage]:
        """Collect new bot messages until the chat stayed quiet for ``quiet`` seconds."""
        conv = self.chat(bot)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        collected: list[ChatMessage] = []
        while True:
            cursor = self._cursors.get(conv.bot.id, 0)
            for entry in conv.log[cursor:]:
                if entry.kind == "new" and entry.message.from_bot:
                    collected.append(entry.message)
            self._cursors[conv.bot.id] = len(conv.log)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return collected
            if not await conv.notifier.wait(min(quiet, remaining)):
                return collected

    async def expect_no_message(self, within: float = 0.5, *, bot: BotRef = None) -> None:
        """Assert the bot sends nothing new within ``within`` seconds."""
        conv = self.chat(bot)
        start = self._cursors.get(conv.bot.id, 0)
        await asyncio.sleep(within)
        new = [e for e in conv.log[start:] if e.kind == "new" and e.message.from_bot]
        if new:
            raise AssertionError(f"{self!r}: unexpected bot messages: {[e.message for e in new]}")


class FakeTelegram:
    """Fake Bot API server + world + simulated users, in the current event loop."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        config: ServerConfig | None = None,
        rate_limits: RateLimits | bool | None = None,
        control_api: bool = False,
        **config_overrides: Any,
    ) -> None:
        config = config or ServerConfig()
        known = {f.name for f in fields(ServerConfig)}
        for key, value in config_overrides.items():
            if key not in known:
                raise TypeError(f"unknown ServerConfig option {key!r}")
            setattr(config, key, value)
        if isinstance(rate_limits, bool):
            config.rate_limits.enabled = rate_limits
        elif rate_limits is not None:
            config.rate_limits = rate_limits
        self.config = config
        self.world = World(strip_photo_exif=config.strip_photo_exif)
        self.server = FakeBotAPI(self.world, config)
        self.host = host
        self.port = port
        self.users: list[SimUser] = []
        self._sim_users: dict[int, SimUser] = {}
        self._default_bot: BotAccount | None = None
        if control_api:
            from .control import ControlAPI

            ControlAPI(self).register(self.server.app)

    # ------------------------------------------------------------------------------ lifecycle

    async def start(self) -> str:
        return await self.server.start(self.host, self.port)

    async def stop(self) -> None:
        await self.server.stop()

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self.server.base_url is None:
            raise RuntimeError("FakeTelegram is not started")
        return self.server.base_url

    def aiogram_server(self) -> Any:
        """``TelegramAPIServer.from_base(self.base_url)`` for aiogram sessions."""
        from aiogram.client.telegram import TelegramAPIServer

        return TelegramAPIServer.from_base(self.base_url)

    # ----------------------------------------------------------------------------------- bots

    def make_bot(
        self, token: str | None = None, *, username: str | None = None, first_name: str | None = None
    ) -> BotAccount:
        bot = self.world.create_bot(token, username=username, first_name=first_name)
        if self._default_bot is None:
            self._default_bot = bot
        return bot

    def new_bot_token(self, *, username: str | None = None, first_name: str | None = None) -> str:
        return self.make_bot(username=username, first_name=first_name).token

    @property
    def default_bot(self) -> BotAccount:
        if self._default_bot is None:
            if self.world.bots:
                self._default_bot = next(iter(self.world.bots.values()))
            else:
                self._default_bot = self.make_bot()
        return self._default_bot

    def bot(self, ref: BotRef = None) -> BotAccount:
        if ref is None:
            return self.default_bot
        if isinstance(ref, BotAccount):
            return ref
        if isinstance(ref, int):
            return self.world.bots[ref]
        account = self.world.tokens.get(ref) or self.world.bot_for_token(ref)
        if account is None:
            raise KeyError(f"unknown bot {ref!r}")
        return account

    def pending_updates(self, bot: BotRef = None) -> list[dict[str, Any]]:
        return copy.deepcopy(self.bot(bot).updates)

    def inject_update(
        self,
        update_type: str,
        payload: dict[str, Any],
        *,
        bot: BotRef = None,
        ignore_allowed_updates: bool = False,
    ) -> dict[str, Any] | None:
        """Queue a raw update: ``update_type`` is a field of the Bot API's ``Update`` (``"message"``,
        ``"inline_query"``, ``"chat_member"``...), ``payload`` its object as Telegram would send it.
        Returns the queued update, or None when the bot's allowed_updates exclude the type (dropped,
        as Telegram does). ``ignore_allowed_updates`` delivers it anyway: an update created before
        the bot's latest allowed_updates took effect (see :meth:`World.enqueue_update`)."""
        if update_type not in ALL_UPDATE_TYPES:
            raise ValueError(f"{update_type!r} is not an update type of the Bot API (Update's fields)")
        if not isinstance(payload, dict):
            raise TypeError("an update's payload is a JSON object (dict)")
        update = self.world.enqueue_update(
            self.bot(bot), update_type, payload, ignore_allowed_updates=ignore_allowed_updates
        )
        return copy.deepcopy(update) if update is not None else None

    def callback_queries(self, bot: BotRef = None) -> list[CallbackQueryRecord]:
        """Every callback query sent to the bot (pressed buttons and :meth:`SimUser.send_callback`),
        oldest first; ``answered`` says whether the bot called answerCallbackQuery in time."""
        return list(self.bot(bot).callback_queries.values())

    # ---------------------------------------------------------------------------------- users

    def user(
        self,
        first_name: str = "Test",
        last_name: str | None = None,
        *,
        username: str | None = None,
        language_code: str | None = "en",
        phone: str | None = None,
        id: int | None = None,
        is_premium: bool = False,
        bot: BotRef = None,
    ) -> SimUser:
        account = self.world.create_user(
            first_name,
            last_name,
            user_id=id,
            username=username,
            language_code=language_code,
            phone=phone,
            is_premium=is_premium,
        )
        user = SimUser(self, account, self.bot(bot) if bot is not None else None)
        self.users.append(user)
        self._sim_users[user.id] = user
        return user

    def sim_user(self, user_id: int) -> SimUser:
        """The SimUser of a user id (also for users created directly in the world)."""
        user = self._sim_users.get(user_id)
        if user is None:
            account = self.world.users[user_id]
            user = self._sim_users[user_id] = SimUser(self, account)
            self.users.append(user)
        return user

    # ------------------------------------------------------------------------------ observing

    @property
    def calls(self) -> list[ApiCall]:
        return self.server.calls

    def calls_of(self, method: str, *, bot: BotRef = None) -> list[ApiCall]:
        return self.server.calls_of(method, bot_id=self.bot(bot).id if bot is not None else None)

    def deprecated_calls(self, *, bot: BotRef = None) -> list[ApiCall]:
        """Calls that carried a parameter Telegram replaced (e.g. ``disable_web_page_preview``)."""
        return self.server.deprecated_calls(bot_id=self.bot(bot).id if bot is not None else None)

    def subscribe(
        self,
        *,
        kinds: Sequence[str] | None = None,
        bot: BotRef = None,
        chat_id: int | None = None,
        predicate: Callable[[Event], bool] | None = None,
    ) -> Subscription:
        """Events (see :class:`~fakeapi.state.Event`) as they happen, e.g. for a web chat."""
        bot_id = self.bot(bot).id if bot is not None else None
        return self.world.events.subscribe(kinds=kinds, bot_id=bot_id, chat_id=chat_id, predicate=predicate)

    async def wait_for_call(
        self,
        method: str,
        *,
        bot: BotRef = None,
        timeout: float = 10.0,
        predicate: Callable[[ApiCall], bool] | None = None,
        finished: bool = False,
        after: int = 0,
    ) -> ApiCall:
        """Wait until the bot calls ``method`` (a call with ``seq > after``; already-made calls count)."""
        bot_id = self.bot(bot).id if bot is not None else None
        lower = method.lower()

        def find() -> ApiCall | None:
            for call in self.server.calls:
                if call.seq <= after or call.method.lower() != lower:
                    continue
                if bot_id is not None and call.bot_id != bot_id:
                    continue
                if finished and not call.done:
                    continue
                if predicate is not None and not predicate(call):
                    continue
                return call
            return None

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (call := find()) is None:
            if loop.time() >= deadline:
                raise WaitTimeout(f"no {method} call within {timeout}s")
            await asyncio.sleep(0.01)
        return call

    async def wait_polling(
        self,
        bot: BotRef = None,
        *,
        timeout: float = 10.0,
    ) -> None:
        """Wait until the bot is long-polling (i.e. it started and waits for updates)."""
        account = self.bot(bot)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while account.active_poll is None or account.active_poll.done():
            if loop.time() >= deadline:
                raise WaitTimeout(f"{account!r} is not long-polling after {timeout}s")
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------------------------- faults

    def fail(
        self,
        method: str | None,
        *,
        error_code: int = 500,
        description: str | None = None,
        retry_after: int | None = None,
        times: int | None = 1,
        delay: float = 0.0,
        every: int = 1,
        bot: BotRef = None,
    ) -> Fault:
        """Make the next ``times`` calls of ``method`` (None = any) fail with ``error_code``; with
        ``every=10`` only every tenth matching call fails (10 % of them), the others are answered."""
        return self.server.faults.add(
            method,
            times=times,
            error_code=error_code,
            description=description,
            retry_after=retry_after,
            delay=delay,
            bot_id=self.bot(bot).id if bot is not None else None,
            every=every,
        )

    def delay(
        self, method: str | None, seconds: float, *, times: int | None = None, bot: BotRef = None
    ) -> Fault:
        """Delay responses of ``method`` (None = any) by ``seconds``."""
        return self.server.faults.add(
            method, times=times, delay=seconds, bot_id=self.bot(bot).id if bot is not None else None
        )

    def drop_connection(self, method: str | None, *, times: int | None = 1, bot: BotRef = None) -> Fault:
        """Close the connection instead of answering (a network error for the client)."""
        return self.server.faults.add(
            method, times=times, drop_connection=True, bot_id=self.bot(bot).id if bot is not None else None
        )

    def clear_faults(self) -> None:
        self.server.faults.clear()


__all__ = [
    "CallbackAnswer",
    "FakeTelegram",
    "SimUser",
    "WaitTimeout",
    "detect_entities",
    "utf16_len",
]
