"""The state of the fake Telegram: bots, simulated people, private chats, messages, files, updates.

Everything lives in one asyncio event loop and is changed synchronously, so there is no locking. Changes
are announced on :class:`EventBus` (``world.events``) for observers such as a web sandbox, and each chat
keeps an append-only log that simulated users read with a cursor.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import mimetypes
import random
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from .text import entities_to_html

# All update types of Update (Bot API 10.x), in the order of the spec.
ALL_UPDATE_TYPES = (
    "message", "edited_message", "channel_post", "edited_channel_post", "business_connection",
    "business_message", "edited_business_message", "deleted_business_messages", "guest_message",
    "message_reaction", "message_reaction_count", "inline_query", "chosen_inline_result", "callback_query",
    "shipping_query", "pre_checkout_query", "purchased_paid_media", "poll", "poll_answer", "my_chat_member",
    "chat_member", "chat_join_request", "chat_boost", "removed_chat_boost", "managed_bot",
)  # fmt: skip
# What a bot gets when allowed_updates is empty or was never given.
DEFAULT_UPDATE_TYPES = frozenset(ALL_UPDATE_TYPES) - {
    "chat_member",
    "message_reaction",
    "message_reaction_count",
}

TOKEN_RE = re.compile(r"^(\d+):([A-Za-z0-9_-]{20,})$")

MAX_DOWNLOAD_SIZE = 20 * 1024 * 1024


def now_ts() -> int:
    return int(time.time())


# ------------------------------------------------------------------------------------------- notify


class Notifier:
    """Wake every current waiter; waiters re-check their condition (no lost wake-ups in one loop)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float | None) -> bool:
        """Wait for the next notify(); False on timeout."""
        event = self._event
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def waiter(self) -> asyncio.Event:
        return self._event


@dataclass
class Event:
    """Something that happened, for observers. ``kind`` is one of:

    ``bot_created``, ``user_created``, ``message`` (a new message, ``data["sender"]`` is "bot" or
    "user"), ``edit``, ``delete``, ``update`` (queued for a bot), ``callback_query``,
    ``callback_answer``, ``chat_action``, ``block``, ``unblock``, ``poll``, ``pin``, ``unpin``,
    ``reaction``, ``commands``, ``menu_button``, ``webhook``, ``api_call`` (after the response;
    ``data["call"]`` is the :class:`~fakeapi.server.ApiCall`).
    """

    seq: int
    kind: str
    bot_id: int | None = None
    chat_id: int | None = None
    message: ChatMessage | None = None
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def __repr__(self) -> str:
        extra = f" message_id={self.message.message_id}" if self.message is not None else ""
        return f"<Event #{self.seq} {self.kind} bot={self.bot_id} chat={self.chat_id}{extra}>"


class Subscription:
    """A queue of events matching a filter. Use ``async for event in sub`` or ``await sub.get()``."""

    def __init__(self, bus: EventBus, predicate: Callable[[Event], bool]) -> None:
        self._bus = bus
        self._predicate = predicate
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.closed = False

    def _offer(self, event: Event) -> None:
        if not self.closed and self._predicate(event):
            self.queue.put_nowait(event)

    async def get(self, timeout: float | None = None) -> Event:
        return await asyncio.wait_for(self.queue.get(), timeout)

    def get_nowait(self) -> Event | None:
        try:
            return self.queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def drain(self) -> list[Event]:
        events = []
        while (event := self.get_nowait()) is not None:
            events.append(event)
        return events

    def close(self) -> None:
        self.closed = True
        self._bus._subscriptions.discard(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        if self.closed:
            raise StopAsyncIteration
        return await self.queue.get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    def __init__(self, history: int = 5000) -> None:
        self._seq = itertools.count(1)
        self._subscriptions: set[Subscription] = set()
        self.history: deque[Event] = deque(maxlen=history)

    def publish(
        self,
        kind: str,
        *,
        bot_id: int | None = None,
        chat_id: int | None = None,
        message: ChatMessage | None = None,
        **data: Any,
    ) -> Event:
        event = Event(next(self._seq), kind, bot_id, chat_id, message, data)
        self.history.append(event)
        for subscription in list(self._subscriptions):
            subscription._offer(event)
        return event

    def subscribe(
        self,
        *,
        kinds: Iterable[str] | None = None,
        bot_id: int | None = None,
        chat_id: int | None = None,
        predicate: Callable[[Event], bool] | None = None,
    ) -> Subscription:
        kind_set = frozenset(kinds) if kinds is not None else None

        def matches(event: Event) -> bool:
            if kind_set is not None and event.kind not in kind_set:
                return False
            if bot_id is not None and event.bot_id != bot_id:
                return False
            if chat_id is not None and event.chat_id != chat_id:
                return False
            return predicate is None or predicate(event)

        subscription = Subscription(self, matches)
        self._subscriptions.add(subscription)
        return subscription


# -------------------------------------------------------------------------------------------- people


@dataclass
class UserAccount:
    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    phone: str | None = None
    is_premium: bool = False
    deactivated: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        if self.is_premium:
            data["is_premium"] = True
        return data

    def chat_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        data["type"] = "private"
        return data

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}" if self.last_name else self.first_name


@dataclass
class WebhookState:
    url: str = ""
    secret_token: str | None = None
    max_connections: int = 40
    ip_address: str | None = None
    has_custom_certificate: bool = False
    last_error_date: int | None = None
    last_error_message: str | None = None
    set_at: float = 0.0


@dataclass
class CallbackQueryRecord:
    id: str
    bot_id: int
    user_id: int
    message: ChatMessage | None
    data: str | None
    created: float
    answered: bool = False
    answer: dict[str, Any] | None = None
    future: asyncio.Future[dict[str, Any]] | None = None


class BotAccount:
    def __init__(self, token: str, bot_id: int, username: str, first_name: str) -> None:
        self.token = token
        self.id = bot_id
        self.username = username
        self.first_name = first_name
        self.can_join_groups = True
        self.can_read_all_group_messages = False
        self.supports_inline_queries = False
        self.updates: list[dict[str, Any]] = []
        self.next_update_id = random.randint(10_000_000, 900_000_000)
        self.allowed_updates: list[str] | None = None
        self.dropped_updates: list[dict[str, Any]] = []
        self.webhook = WebhookState()
        self.commands: dict[tuple[Any, ...], list[dict[str, str]]] = {}
        self.menu_buttons: dict[int | None, dict[str, Any]] = {}
        self.names: dict[str, str] = {}
        self.descriptions: dict[str, str] = {}
        self.short_descriptions: dict[str, str] = {}
        self.callback_queries: dict[str, CallbackQueryRecord] = {}
        self.update_notifier = Notifier()
        # long polling
        self.active_poll: asyncio.Future[str] | None = None
        self.last_poll_offset: int | None = None
        self.last_poll_started = 0.0
        self.next_conflict_response = 0.0
        self.next_webhook_set = 0.0
        self.logged_out = False

    def user_json(self) -> dict[str, Any]:
        return {"id": self.id, "is_bot": True, "first_name": self.first_name, "username": self.username}

    def me_json(self) -> dict[str, Any]:
        return {
            **self.user_json(),
            "can_join_groups": self.can_join_groups,
            "can_read_all_group_messages": self.can_read_all_group_messages,
            "supports_inline_queries": self.supports_inline_queries,
            "can_connect_to_business": False,
            "has_main_web_app": False,
            "has_topics_enabled": False,
            "allows_users_to_create_topics": False,
        }

    def effective_update_types(self) -> frozenset[str]:
        if not self.allowed_updates:
            return DEFAULT_UPDATE_TYPES
        return frozenset(self.allowed_updates)

    def __repr__(self) -> str:
        return f"<BotAccount @{self.username} id={self.id}>"


# --------------------------------------------------------------------------------------------- files


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    kind: str  # photo, document, voice, sticker, video, audio, animation, video_note, thumbnail
    data: bytes
    file_path: str
    file_name: str | None = None
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    duration: int | None = None
    declared_size: int | None = None
    # for photos: all sizes of the same photo (smallest first), shared list
    photo_sizes: list[StoredFile] | None = None
    # kind-specific fields of the Bot API object (duration, emoji, is_animated, ...)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.declared_size if self.declared_size is not None else len(self.data)

    def file_json(self, *, with_path: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {"file_id": self.file_id, "file_unique_id": self.file_unique_id}
        if self.size:
            data["file_size"] = self.size
        if with_path and self.size <= MAX_DOWNLOAD_SIZE:
            data["file_path"] = self.file_path
        return data

    def media_json(self) -> dict[str, Any]:
        """The Bot API object for this file (PhotoSize, Document, Voice, Sticker, ...)."""
        if self.kind == "photo":
            return self.photo_size_json()
        data: dict[str, Any] = {"file_id": self.file_id, "file_unique_id": self.file_unique_id}
        if self.kind in ("video", "animation", "sticker") and self.width is not None:
            data["width"] = self.width
            data["height"] = self.height
        if self.kind in ("voice", "audio", "video", "animation", "video_note"):
            data["duration"] = self.duration or 0
        data.update(self.extra)
        if self.file_name and self.kind in ("document", "audio", "video", "animation"):
            data["file_name"] = self.file_name
        if self.mime_type and self.kind in ("document", "audio", "video", "animation", "voice"):
            data["mime_type"] = self.mime_type
        data["file_size"] = self.size
        return data

    def photo_size_json(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.size,
            "width": self.width,
            "height": self.height,
        }


_FILE_ID_PREFIX = {
    "photo": "AgACAgIAAxkBAA",
    "document": "BQACAgIAAxkBAA",
    "voice": "AwACAgIAAxkBAA",
    "sticker": "CAACAgIAAxkBAA",
    "video": "BAACAgIAAxkBAA",
    "audio": "CQACAgIAAxkBAA",
    "animation": "CgACAgIAAxkBAA",
    "video_note": "DQACAgIAAxkBAA",
}
_FILE_DIRS = {
    "photo": ("photos", ".jpg"),
    "document": ("documents", ""),
    "voice": ("voice", ".oga"),
    "sticker": ("stickers", ".webp"),
    "video": ("videos", ".mp4"),
    "audio": ("music", ".mp3"),
    "animation": ("animations", ".mp4"),
    "video_note": ("video_notes", ".mp4"),
    "thumbnail": ("thumbnails", ".jpg"),
}


# ------------------------------------------------------------------------------------------ messages


class ChatMessage:
    """A message in a private chat between a bot and a person, as both of them see it.

    ``data`` is the Bot API ``Message`` object in its current state; earlier versions are in ``edits``.
    """

    def __init__(
        self,
        conversation: Conversation,
        message_id: int,
        sender: Literal["bot", "user"],
        data: dict[str, Any],
        *,
        markup: dict[str, Any] | None = None,
        markup_kind: str | None = None,
    ) -> None:
        self.conversation = conversation
        self.message_id = message_id
        self.sender = sender
        self.data = data
        self.sent_markup = markup  # the reply_markup as sent (inline, reply keyboard, remove, force_reply)
        self.sent_markup_kind = markup_kind
        self.edits: list[dict[str, Any]] = []  # previous versions of ``data``, oldest first
        self.deleted = False
        self.deleted_at: float | None = None
        self.created = time.time()
        self.reactions: list[dict[str, Any]] = []  # set by the bot with setMessageReaction

    # --- who
    @property
    def from_bot(self) -> bool:
        return self.sender == "bot"

    @property
    def from_user(self) -> bool:
        return self.sender == "user"

    @property
    def chat_id(self) -> int:
        return self.conversation.user.id

    @property
    def date(self) -> int:
        return int(self.data["date"])

    # --- content
    @property
    def text(self) -> str | None:
        return self.data.get("text")

    @property
    def caption(self) -> str | None:
        return self.data.get("caption")

    @property
    def content(self) -> str:
        """Text, or caption, or '' — the readable part of the message."""
        return self.data.get("text") or self.data.get("caption") or ""

    @property
    def entities(self) -> list[dict[str, Any]]:
        return list(self.data.get("entities") or [])

    @property
    def caption_entities(self) -> list[dict[str, Any]]:
        return list(self.data.get("caption_entities") or [])

    @property
    def html(self) -> str:
        """Text (or caption) rendered back to Telegram HTML from its entities."""
        if "text" in self.data:
            return entities_to_html(self.data["text"], self.data.get("entities"))
        return entities_to_html(self.data.get("caption") or "", self.data.get("caption_entities"))

    @property
    def photo(self) -> list[dict[str, Any]] | None:
        return self.data.get("photo")

    @property
    def document(self) -> dict[str, Any] | None:
        return self.data.get("document")

    @property
    def sticker(self) -> dict[str, Any] | None:
        return self.data.get("sticker")

    @property
    def voice(self) -> dict[str, Any] | None:
        return self.data.get("voice")

    @property
    def location(self) -> dict[str, Any] | None:
        return self.data.get("location")

    @property
    def contact(self) -> dict[str, Any] | None:
        return self.data.get("contact")

    @property
    def poll(self) -> dict[str, Any] | None:
        return self.data.get("poll")

    @property
    def media_group_id(self) -> str | None:
        return self.data.get("media_group_id")

    @property
    def reply_to_message_id(self) -> int | None:
        reply = self.data.get("reply_to_message")
        return reply["message_id"] if reply else None

    @property
    def kind(self) -> str:
        for key in ("text", "photo", "document", "sticker", "voice", "video", "audio", "animation",
                    "video_note", "location", "venue", "contact", "poll", "dice"):  # fmt: skip
            if key in self.data:
                return key
        return "other"

    # --- keyboards
    @property
    def reply_markup(self) -> dict[str, Any] | None:
        """The inline keyboard currently attached (``Message.reply_markup``)."""
        return self.data.get("reply_markup")

    @property
    def inline_keyboard(self) -> list[list[dict[str, Any]]]:
        markup = self.data.get("reply_markup") or {}
        return [list(row) for row in markup.get("inline_keyboard", [])]

    @property
    def buttons(self) -> list[dict[str, Any]]:
        return [button for row in self.inline_keyboard for button in row]

    def inline_buttons(self) -> list[dict[str, Any]]:
        """The inline buttons (dicts with ``text`` and ``callback_data``/``url``/...), row by row."""
        return self.buttons

    @property
    def button_texts(self) -> list[str]:
        return [button["text"] for button in self.buttons]

    @property
    def reply_keyboard(self) -> dict[str, Any] | None:
        """The ReplyKeyboardMarkup this message was sent with, if any."""
        return self.sent_markup if self.sent_markup_kind == "keyboard" else None

    def button(self, text: str | None = None, *, data: str | None = None) -> dict[str, Any] | None:
        for button in self.buttons:
            if text is not None and button.get("text") != text:
                continue
            if data is not None and button.get("callback_data") != data:
                continue
            return button
        return None

    # --- history
    @property
    def edited(self) -> bool:
        return bool(self.edits)

    @property
    def edit_date(self) -> int | None:
        return self.data.get("edit_date")

    @property
    def versions(self) -> list[dict[str, Any]]:
        """All versions, oldest first, the current one last."""
        return [*self.edits, self.data]

    def json(self) -> dict[str, Any]:
        return copy.deepcopy(self.data)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly view for observers (e.g. a web chat)."""
        return {
            "message_id": self.message_id,
            "sender": self.sender,
            "kind": self.kind,
            "html": self.html,
            "message": self.json(),
            "reply_keyboard": copy.deepcopy(self.reply_keyboard),
            "edits": copy.deepcopy(self.edits),
            "deleted": self.deleted,
        }

    def __repr__(self) -> str:
        flags = "".join([" edited" if self.edited else "", " deleted" if self.deleted else ""])
        content = self.content or f"<{self.kind}>"
        if len(content) > 60:
            content = content[:57] + "..."
        return f"<ChatMessage #{self.message_id} {self.sender}{flags}: {content!r}>"


@dataclass
class LogEntry:
    kind: Literal["new", "edit", "delete"]
    message: ChatMessage
    snapshot: dict[str, Any]
    time: float = field(default_factory=time.time)


class Conversation:
    """The private chat between one bot and one person (``chat.id`` == the person's user id)."""

    def __init__(self, world: World, bot: BotAccount, user: UserAccount) -> None:
        self.world = world
        self.bot = bot
        self.user = user
        self.messages: dict[int, ChatMessage] = {}
        self._next_message_id = 1
        self.started = False  # the person wrote to the bot at least once
        self.blocked = False  # the person blocked the bot
        self.reply_keyboard: dict[str, Any] | None = None
        self.reply_keyboard_message_id: int | None = None
        self.keyboard_hidden = False
        self.force_reply_message_id: int | None = None
        self.chat_actions: list[tuple[float, str]] = []
        self.pinned: list[int] = []
        self.log: list[LogEntry] = []
        self.notifier = Notifier()
        self.chat_instance = str(random.randint(-(2**62), 2**62))

    @property
    def chat_id(self) -> int:
        return self.user.id

    def allocate_message_id(self) -> int:
        message_id = self._next_message_id
        self._next_message_id += 1
        return message_id

    def get(self, message_id: int) -> ChatMessage | None:
        message = self.messages.get(message_id)
        return message if message is not None and not message.deleted else None

    def append_log(self, kind: Literal["new", "edit", "delete"], message: ChatMessage) -> None:
        self.log.append(LogEntry(kind, message, copy.deepcopy(message.data)))
        self.notifier.notify()

    def history(self, *, include_deleted: bool = True) -> list[ChatMessage]:
        return [m for m in self.messages.values() if include_deleted or not m.deleted]

    def __repr__(self) -> str:
        return f"<Conversation bot={self.bot.id} user={self.user.id} messages={len(self.messages)}>"


# ------------------------------------------------------------------------------------------- polls


@dataclass
class PollState:
    id: str
    bot_id: int
    conversation: Conversation | None
    message_id: int
    data: dict[str, Any]
    votes: dict[int, list[int]] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- world


class World:
    """All state of the fake Telegram."""

    def __init__(self, *, strip_photo_exif: bool = True) -> None:
        self.bots: dict[int, BotAccount] = {}
        self.tokens: dict[str, BotAccount] = {}
        self.users: dict[int, UserAccount] = {}
        self.conversations: dict[tuple[int, int], Conversation] = {}
        self.files: dict[str, StoredFile] = {}
        self.files_by_path: dict[str, StoredFile] = {}
        self.polls: dict[str, PollState] = {}
        self.events = EventBus()
        self.strip_photo_exif = strip_photo_exif
        self._file_counter = itertools.count(1)
        self._user_ids = itertools.count(5_000_000_001)
        self._bot_ids = itertools.count(7_000_000_001)

    # --- bots
    def create_bot(
        self,
        token: str | None = None,
        *,
        username: str | None = None,
        first_name: str | None = None,
    ) -> BotAccount:
        if token is None:
            bot_id = next(self._bot_ids)
            while bot_id in self.bots or bot_id in self.users:
                bot_id = next(self._bot_ids)
            token = f"{bot_id}:AA{secrets.token_urlsafe(24)[:33]}"
        match = TOKEN_RE.match(token)
        if not match:
            raise ValueError(f"not a bot token: {token!r}")
        bot_id = int(match.group(1))
        if token in self.tokens:
            return self.tokens[token]
        if bot_id in self.bots:
            raise ValueError(f"bot {bot_id} already exists with another token")
        bot = BotAccount(token, bot_id, username or f"test{bot_id}_bot", first_name or f"Test Bot {bot_id}")
        self.bots[bot_id] = bot
        self.tokens[token] = bot
        self.events.publish("bot_created", bot_id=bot_id, username=bot.username)
        return bot

    def bot_for_token(self, token: str) -> BotAccount | None:
        """The bot of a token; any well-formed token is a bot (registered on first use)."""
        bot = self.tokens.get(token)
        if bot is not None:
            return bot
        match = TOKEN_RE.match(token)
        if not match or int(match.group(1)) in self.bots or int(match.group(1)) in self.users:
            return None
        return self.create_bot(token)

    # --- people
    def create_user(
        self,
        first_name: str = "Test",
        last_name: str | None = None,
        *,
        user_id: int | None = None,
        username: str | None = None,
        language_code: str | None = "en",
        phone: str | None = None,
        is_premium: bool = False,
    ) -> UserAccount:
        if user_id is None:
            user_id = next(self._user_ids)
            while user_id in self.users or user_id in self.bots:
                user_id = next(self._user_ids)
        elif user_id in self.users or user_id in self.bots:
            raise ValueError(f"user id {user_id} is taken")
        user = UserAccount(
            user_id, first_name, last_name, username, language_code, phone, is_premium=is_premium
        )
        self.users[user_id] = user
        self.events.publish("user_created", chat_id=user_id, user=user.to_json())
        return user

    def conversation(self, bot: BotAccount, user: UserAccount) -> Conversation:
        key = (bot.id, user.id)
        conv = self.conversations.get(key)
        if conv is None:
            conv = self.conversations[key] = Conversation(self, bot, user)
        return conv

    def find_conversation(self, bot: BotAccount, user_id: int) -> Conversation | None:
        return self.conversations.get((bot.id, user_id))

    # --- updates
    def enqueue_update(
        self, bot: BotAccount, update_type: str, payload: dict[str, Any], *, ignore_allowed_updates: bool = False
    ) -> dict[str, Any] | None:
        """Queue an update for a bot, unless its allowed_updates exclude the type (then it is dropped,
        like Telegram, which does not create updates of types the bot did not ask for).

        ``ignore_allowed_updates`` queues it anyway: an update created before the bot's latest
        allowed_updates took effect, which Telegram still delivers ("this parameter doesn't affect
        updates created before the call to getUpdates, so unwanted updates may be received for a
        short period of time")."""
        update = {"update_id": bot.next_update_id, update_type: copy.deepcopy(payload)}
        if update_type not in bot.effective_update_types() and not ignore_allowed_updates:
            bot.dropped_updates.append(update)
            return None
        bot.next_update_id += 1
        bot.updates.append(update)
        bot.update_notifier.notify()
        self.events.publish("update", bot_id=bot.id, update_type=update_type, update=update)
        return update

    # --- files
    def _new_file_ids(self, kind: str) -> tuple[str, str, int]:
        number = next(self._file_counter)
        prefix = _FILE_ID_PREFIX.get(kind, "BQACAgIAAxkBAA")
        file_id = f"{prefix}{secrets.token_urlsafe(40)[:52]}"
        unique_id = f"AQAD{secrets.token_urlsafe(12)[:12]}"
        return file_id, unique_id, number

    def store_file(
        self,
        data: bytes,
        kind: str,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
        width: int | None = None,
        height: int | None = None,
        duration: int | None = None,
        declared_size: int | None = None,
    ) -> StoredFile:
        file_id, unique_id, number = self._new_file_ids(kind)
        directory, extension = _FILE_DIRS.get(kind, ("documents", ""))
        if kind == "document" and file_name and "." in file_name:
            extension = "." + file_name.rsplit(".", 1)[1].lower()
        if mime_type is None and file_name:
            mime_type = mimetypes.guess_type(file_name)[0]
        stored = StoredFile(
            file_id=file_id,
            file_unique_id=unique_id,
            kind=kind,
            data=data,
            file_path=f"{directory}/file_{number}{extension}",
            file_name=file_name,
            mime_type=mime_type,
            width=width,
            height=height,
            duration=duration,
            declared_size=declared_size,
        )
        self.files[file_id] = stored
        self.files_by_path[stored.file_path] = stored
        return stored

    def store_photo(self, data: bytes) -> list[StoredFile]:
        """Process and store a photo like Telegram: several JPEG sizes, EXIF dropped."""
        from .media import process_photo

        sizes = process_photo(data, strip_exif=self.strip_photo_exif)
        stored = [
            self.store_file(jpeg, "photo", width=w, height=h, mime_type="image/jpeg") for w, h, jpeg in sizes
        ]
        for item in stored:
            item.photo_sizes = stored
        return stored

    def file(self, file_id: str) -> StoredFile | None:
        return self.files.get(file_id)

    def file_bytes(self, file_id_or_message: str | ChatMessage) -> bytes:
        """Bytes of a file_id, or of a message's photo (largest size) or document/voice/sticker."""
        if isinstance(file_id_or_message, ChatMessage):
            data = file_id_or_message.data
            if data.get("photo"):
                file_id = data["photo"][-1]["file_id"]
            else:
                for key in ("document", "voice", "sticker", "video", "audio", "animation", "video_note"):
                    if key in data:
                        file_id = data[key]["file_id"]
                        break
                else:
                    raise ValueError(f"{file_id_or_message!r} has no file")
        else:
            file_id = file_id_or_message
        stored = self.files.get(file_id)
        if stored is None:
            raise KeyError(file_id)
        return stored.data

    # --- messages
    def add_message(
        self,
        conv: Conversation,
        sender: Literal["bot", "user"],
        content: dict[str, Any],
        *,
        markup: dict[str, Any] | None = None,
        markup_kind: str | None = None,
        reply_to: ChatMessage | None = None,
        date: int | None = None,
    ) -> ChatMessage:
        message_id = conv.allocate_message_id()
        sender_json = conv.bot.user_json() if sender == "bot" else conv.user.to_json()
        data: dict[str, Any] = {
            "message_id": message_id,
            "from": sender_json,
            "chat": conv.user.chat_json(),
            "date": date if date is not None else now_ts(),
        }
        if reply_to is not None:
            replied = copy.deepcopy(reply_to.data)
            replied.pop("reply_to_message", None)
            data["reply_to_message"] = replied
        data.update(content)
        if markup_kind == "inline" and markup is not None:
            data["reply_markup"] = copy.deepcopy(markup)
        message = ChatMessage(conv, message_id, sender, data, markup=markup, markup_kind=markup_kind)
        conv.messages[message_id] = message
        if sender == "bot":
            if markup_kind == "keyboard":
                conv.reply_keyboard = copy.deepcopy(markup)
                conv.reply_keyboard_message_id = message_id
                conv.keyboard_hidden = False
            elif markup_kind == "remove":
                conv.reply_keyboard = None
                conv.reply_keyboard_message_id = None
            elif markup_kind == "force_reply":
                conv.force_reply_message_id = message_id
        conv.append_log("new", message)
        self.events.publish(
            "message", bot_id=conv.bot.id, chat_id=conv.chat_id, message=message, sender=sender
        )
        return message

    def edit_message(
        self, message: ChatMessage, new_data: dict[str, Any], *, edit_date: int | None = None
    ) -> None:
        message.edits.append(message.data)
        new_data = copy.deepcopy(new_data)
        new_data["edit_date"] = edit_date if edit_date is not None else now_ts()
        message.data = new_data
        message.conversation.append_log("edit", message)
        self.events.publish(
            "edit", bot_id=message.conversation.bot.id, chat_id=message.chat_id, message=message
        )

    def delete_message(self, message: ChatMessage) -> None:
        message.deleted = True
        message.deleted_at = time.time()
        message.conversation.append_log("delete", message)
        self.events.publish(
            "delete", bot_id=message.conversation.bot.id, chat_id=message.chat_id, message=message
        )

    # --- blocking
    def set_blocked(self, conv: Conversation, blocked: bool) -> None:
        if conv.blocked == blocked:
            return
        conv.blocked = blocked
        bot_member = conv.bot.user_json()
        old = {"status": "member", "user": bot_member}
        new = {"status": "kicked", "user": bot_member, "until_date": 0}
        if not blocked:
            old, new = new, old
        payload = {
            "chat": conv.user.chat_json(),
            "from": conv.user.to_json(),
            "date": now_ts(),
            "old_chat_member": old,
            "new_chat_member": new,
        }
        self.enqueue_update(conv.bot, "my_chat_member", payload)
        self.events.publish("block" if blocked else "unblock", bot_id=conv.bot.id, chat_id=conv.chat_id)
