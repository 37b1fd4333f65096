"""Implementations of Bot API methods against :class:`~fakeapi.state.World`.

Every ``api_<methodName>`` is one Bot API method; it gets the calling bot and the request
:class:`~fakeapi.params.Params` and returns the ``result`` (or raises :class:`~fakeapi.errors.ApiError`).
Validation order and error texts follow the real Bot API server (telegram-bot-api / TDLib).
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .config import RateLimiter, ServerConfig
from .errors import ApiError, bad_request, conflict, forbidden
from .markup import Markup, parse_markup_value, parse_reply_markup
from .params import Params, UploadedFile
from .state import (
    ALL_UPDATE_TYPES,
    BotAccount,
    ChatMessage,
    Conversation,
    PollState,
    StoredFile,
    World,
    now_ts,
)
from .text import format_text, utf16_len

MESSAGE_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
QUERY_ID_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
CONFLICT_OTHER_POLL = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
)
CONFLICT_WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
CONFLICT_SET_WEBHOOK = "Conflict: terminated by setWebhook request"
SERVER_CLOSING = "__closing__"  # ends a pending long poll with an empty result when the server stops

CHAT_ACTIONS = frozenset(
    {
        "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
        "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
        "record_audio", "upload_audio", "pick_up_location", "cancel",
    }
)  # fmt: skip
COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
LANGUAGE_RE = re.compile(r"^[a-z]{2}$")
DICE = {"🎲": 6, "🎯": 6, "🎳": 6, "🏀": 5, "⚽": 5, "🎰": 64}
# Message fields that make up the content (copied by copyMessage/forwardMessage)
CONTENT_KEYS = (
    "text", "entities", "link_preview_options", "animation", "audio", "document", "photo", "sticker", "video",
    "video_note", "voice", "caption", "caption_entities", "show_caption_above_media", "has_media_spoiler",
    "contact", "dice", "poll", "venue", "location",
)  # fmt: skip
MEDIA_FIELDS = {
    "photo": "photo",
    "document": "document",
    "voice": "voice",
    "audio": "audio",
    "video": "video",
    "animation": "animation",
    "sticker": "sticker",
    "video_note": "video_note",
}


@dataclass
class Answer:
    """A successful result that also carries a ``description`` (e.g. "Webhook was set")."""

    result: Any
    description: str | None = None


class BotApi:
    def __init__(self, world: World, config: ServerConfig) -> None:
        self.world = world
        self.config = config
        self.limiter = RateLimiter(config.rate_limits)
        # Called after a bot's webhook was set, changed or deleted (the server's webhook delivery).
        self.on_webhook_changed: Callable[[BotAccount], None] | None = None
        self.methods: dict[str, tuple[str, Callable[..., Any]]] = {}
        for attribute in dir(self):
            if attribute.startswith("api_"):
                name = attribute[4:]
                self.methods[name.lower()] = (name, getattr(self, attribute))

    def resolve(self, method: str) -> tuple[str, Callable[..., Any]] | None:
        return self.methods.get(method.lower())

    # ------------------------------------------------------------------------------------ helpers

    def _known_users(self) -> dict[int, dict[str, Any]]:
        return {user_id: user.to_json() for user_id, user in self.world.users.items()}

    def _conversation(self, bot: BotAccount, chat_id: int, *, write: bool) -> Conversation:
        if chat_id in self.world.bots:
            if write:
                raise forbidden("bot can't send messages to bots")
            raise bad_request("chat not found")
        user = self.world.users.get(chat_id)
        if user is None:
            raise bad_request("chat not found")
        conv = self.world.find_conversation(bot, chat_id)
        if conv is None or not conv.started:
            if write:
                raise forbidden("bot can't initiate conversation with a user")
            raise bad_request("chat not found")
        if write:
            if user.deactivated:
                raise forbidden("user is deactivated")
            if conv.blocked:
                raise forbidden("bot was blocked by the user")
        return conv

    def _chat_from_raw(self, bot: BotAccount, raw: str, *, write: bool) -> Conversation:
        raw = raw.strip()
        if not raw:
            raise bad_request("chat_id is empty")
        if raw.startswith("@"):
            # bots can't address private chats by username
            raise bad_request("chat not found")
        if not re.fullmatch(r"[+-]?\d+", raw):
            raise bad_request("chat not found")
        return self._conversation(bot, int(raw), write=write)

    def _chat(
        self, bot: BotAccount, p: Params, *, write: bool = True, field: str = "chat_id"
    ) -> Conversation:
        return self._chat_from_raw(bot, p.get_str(field), write=write)

    def _reply_to(self, conv: Conversation, p: Params) -> ChatMessage | None:
        parameters = p.get_json("reply_parameters", "reply parameters")
        if parameters is not None:
            if not isinstance(parameters, dict):
                raise bad_request("object expected as reply parameters")
            message_id = parameters.get("message_id")
            allow = bool(parameters.get("allow_sending_without_reply"))
            other_chat = parameters.get("chat_id")
            if other_chat not in (None, "", conv.chat_id, str(conv.chat_id)):
                if allow:
                    return None
                raise bad_request("message to be replied not found")
        else:
            message_id = p.get_int("reply_to_message_id")
            allow = p.get_bool("allow_sending_without_reply")
        try:
            message_id = int(message_id or 0)
        except (TypeError, ValueError):
            message_id = 0
        if message_id <= 0:
            return None
        message = conv.get(message_id)
        if message is None:
            if allow:
                return None
            raise bad_request("message to be replied not found")
        return message

    def _entities_param(self, p: Params, name: str) -> Any:
        text = p.raw(name)
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return None  # the Bot API ignores undecodable entities

    def _text(self, p: Params) -> tuple[str, list[dict[str, Any]]]:
        text = p.get_str("text")
        if not text:
            raise bad_request("message text is empty")
        return format_text(
            text,
            p.get_str("parse_mode"),
            self._entities_param(p, "entities"),
            known_users=self._known_users(),
        )

    def _caption(self, p: Params) -> dict[str, Any]:
        caption = p.get_str("caption")
        if not caption:
            return {}
        text, entities = format_text(
            caption,
            p.get_str("parse_mode"),
            self._entities_param(p, "caption_entities"),
            is_caption=True,
            allow_empty=True,
            known_users=self._known_users(),
        )
        content: dict[str, Any] = {}
        if text:
            content["caption"] = text
            if entities:
                content["caption_entities"] = entities
        return content

    def _caption_from_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        caption = obj.get("caption")
        if not caption:
            return {}
        text, entities = format_text(
            str(caption),
            str(obj.get("parse_mode") or ""),
            obj.get("caption_entities"),
            is_caption=True,
            allow_empty=True,
            known_users=self._known_users(),
        )
        content: dict[str, Any] = {}
        if text:
            content["caption"] = text
            if entities:
                content["caption_entities"] = entities
        return content

    @staticmethod
    def _markup(p: Params) -> Markup | None:
        return parse_reply_markup(p.raw("reply_markup"))

    @staticmethod
    def _inline_markup(p: Params) -> Markup | None:
        markup = parse_reply_markup(p.raw("reply_markup"))
        if markup is not None and markup.kind != "inline":
            raise bad_request("inline keyboard expected")
        return markup

    def _deliver(
        self,
        bot: BotAccount,
        conv: Conversation,
        p: Params,
        content: dict[str, Any],
        markup: Markup | None,
        reply_to: ChatMessage | None,
    ) -> ChatMessage:
        if p.get_bool("protect_content"):
            content["has_protected_content"] = True
        return self.world.add_message(
            conv,
            "bot",
            content,
            markup=markup.data if markup else None,
            markup_kind=markup.kind if markup else None,
            reply_to=reply_to,
        )

    def _link_preview(self, p: Params) -> dict[str, Any]:
        options = p.get_json("link_preview_options", "link preview options")
        if (isinstance(options, dict) and options.get("is_disabled")) or p.get_bool(
            "disable_web_page_preview"
        ):
            return {"link_preview_options": {"is_disabled": True}}
        return {}

    # --- files

    def _check_upload(self, upload: UploadedFile, kind: str) -> None:
        if upload.size == 0:
            raise bad_request("file must be non-empty")
        if upload.size > self.config.max_upload_size:
            raise ApiError(413, "Request Entity Too Large")
        if kind == "photo" and upload.size > self.config.max_photo_upload_size:
            raise bad_request("PHOTO_SAVE_FILE_INVALID")

    def _existing_file(self, value: str, kind: str) -> StoredFile:
        value = value.strip()
        if value.startswith(("http://", "https://")):
            raise bad_request("failed to get HTTP URL content")
        stored = self.world.file(value)
        if stored is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        if stored.kind != kind:
            raise bad_request("type of file mismatch")
        return stored

    def _input_media(self, value: UploadedFile | str, kind: str, options: dict[str, Any]) -> Any:
        """Validate an input file (upload or file_id); returns a callable that stores it and gives the
        Bot API object (so nothing is stored before all checks passed)."""
        if isinstance(value, UploadedFile):
            self._check_upload(value, kind)
            return lambda: self._store_upload(value, kind, options)
        stored = self._existing_file(value, kind)
        if kind == "photo":
            sizes = stored.photo_sizes or [stored]
            return lambda: [size.photo_size_json() for size in sizes]
        return lambda: stored.media_json()

    def _store_upload(self, upload: UploadedFile, kind: str, options: dict[str, Any]) -> Any:
        world = self.world
        if kind == "photo":
            return [size.photo_size_json() for size in world.store_photo(upload.data)]
        filename = upload.filename or None
        mime = upload.content_type if upload.content_type not in ("", "application/octet-stream") else None
        width = height = None
        extra: dict[str, Any] = {}
        duration = int(options.get("duration") or 0)
        if kind == "sticker":
            try:
                from .media import image_size

                width, height = image_size(upload.data)
            except Exception:
                width, height = 512, 512
            extra = {
                "type": "regular",
                "is_animated": filename is not None and filename.endswith(".tgs"),
                "is_video": filename is not None and filename.endswith(".webm"),
            }
            if options.get("emoji"):
                extra["emoji"] = options["emoji"]
            filename = None
            mime = None
        elif kind in ("video", "animation"):
            width = int(options.get("width") or 0)
            height = int(options.get("height") or 0)
        elif kind == "voice":
            mime = mime or "audio/ogg"
            filename = None
        elif kind == "audio":
            for key in ("performer", "title"):
                if options.get(key):
                    extra[key] = options[key]
        elif kind == "video_note":
            extra = {"length": int(options.get("length") or 240)}
            filename = None
        stored = world.store_file(
            upload.data,
            kind,
            file_name=filename if kind in ("document", "audio", "video", "animation") else None,
            mime_type=mime,
            width=width,
            height=height,
            duration=duration,
        )
        stored.extra.update(extra)
        if kind == "document" and stored.mime_type is None:
            stored.mime_type = "application/octet-stream"
        return stored.media_json()

    # ------------------------------------------------------------------------------- getting started

    def api_getMe(self, bot: BotAccount, p: Params) -> Any:
        return bot.me_json()

    def api_logOut(self, bot: BotAccount, p: Params) -> Any:
        bot.logged_out = True
        return True

    def api_close(self, bot: BotAccount, p: Params) -> Any:
        return True

    # ------------------------------------------------------------------------------------- updates

    def _update_allowed_updates(self, bot: BotAccount, p: Params) -> None:
        raw = p.raw("allowed_updates")
        if not raw:
            return
        try:
            value = json.loads(raw)
        except ValueError:
            return
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            return
        types = [item for item in value if isinstance(item, str) and item in ALL_UPDATE_TYPES]
        bot.allowed_updates = list(dict.fromkeys(types)) or None

    @staticmethod
    def _confirm_updates(bot: BotAccount, offset: int) -> None:
        if offset > 0:
            bot.updates = [u for u in bot.updates if u["update_id"] >= offset]
        elif offset < 0:
            bot.updates = bot.updates[offset:]

    def _abort_long_poll(self, bot: BotAccount, reason: str) -> None:
        poll = bot.active_poll
        if poll is not None and not poll.done():
            poll.set_result(reason)
        bot.active_poll = None

    async def _conflict(self, bot: BotAccount, message: str) -> ApiError:
        now = time.monotonic()
        if now < bot.next_conflict_response and self.config.conflict_repeat_delay > 0:
            await asyncio.sleep(self.config.conflict_repeat_delay)
        else:
            bot.next_conflict_response = now + self.config.conflict_repeat_delay
        return conflict(message)

    async def api_getUpdates(self, bot: BotAccount, p: Params) -> Any:
        config = self.config
        if bot.webhook.url:
            raise await self._conflict(bot, CONFLICT_WEBHOOK_ACTIVE)
        offset = p.get_int("offset", 0)
        limit = p.get_int("limit", 100, minimum=1, maximum=100)
        timeout: float = p.get_int("timeout", 0, minimum=0, maximum=config.long_poll_max_timeout)
        self._update_allowed_updates(bot, p)
        now = time.monotonic()
        repeat = config.repeat_poll_min_timeout
        if (
            repeat
            and offset == bot.last_poll_offset
            and timeout < repeat
            and now < bot.last_poll_started + repeat
        ):
            timeout = repeat
        bot.last_poll_offset = offset
        bot.last_poll_started = now
        self._confirm_updates(bot, offset)
        if bot.updates or timeout <= 0:
            return copy.deepcopy(bot.updates[:limit])

        # long poll: a newer getUpdates terminates an older one
        self._abort_long_poll(bot, CONFLICT_OTHER_POLL)
        loop = asyncio.get_running_loop()
        terminated: asyncio.Future[str] = loop.create_future()
        bot.active_poll = terminated
        deadline = now + timeout
        try:
            while not terminated.done():
                if bot.updates:
                    if config.long_poll_batch_delay > 0:
                        await asyncio.wait({terminated}, timeout=config.long_poll_batch_delay)
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                waiter = asyncio.ensure_future(bot.update_notifier.waiter().wait())
                try:
                    await asyncio.wait(
                        {terminated, waiter}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    waiter.cancel()
        finally:
            if bot.active_poll is terminated:
                bot.active_poll = None
        if terminated.done():
            if terminated.result() == SERVER_CLOSING:
                return []
            raise await self._conflict(bot, terminated.result())
        return copy.deepcopy(bot.updates[:limit])

    def _validate_webhook_url(self, url: str) -> None:
        if self.config.allow_insecure_webhooks:
            parts = urlsplit(url if "://" in url else "http://" + url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise bad_request("invalid webhook URL specified")
            return
        try:
            parts = urlsplit(url if "://" in url else "https://" + url)
            port = parts.port
        except ValueError:
            raise bad_request("invalid webhook URL specified") from None
        if not parts.hostname:
            raise bad_request("invalid webhook URL specified")
        if parts.scheme != "https":
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        if port not in (None, 80, 88, 443, 8443):
            raise bad_request("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")

    def api_setWebhook(self, bot: BotAccount, p: Params) -> Any:
        url = p.get_str("url").strip()
        if not url:
            return self.api_deleteWebhook(bot, p)
        now = time.monotonic()
        if self.config.webhook_set_rate_limit and now < bot.next_webhook_set:
            raise ApiError(429, "Too Many Requests: retry after 1", retry_after=1)
        bot.next_webhook_set = now + 1
        self._validate_webhook_url(url)
        secret = p.get_str("secret_token")
        if secret and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise bad_request("secret token contains unallowed characters")
        max_connections = p.get_int("max_connections", 40, minimum=1, maximum=100)
        ip_address = p.get_str("ip_address") or None
        has_certificate = p.has("certificate")
        drop = p.get_bool("drop_pending_updates")
        webhook = bot.webhook
        if drop:
            bot.updates.clear()
        same = (
            webhook.url == url
            and webhook.max_connections == max_connections
            and webhook.ip_address == ip_address
            and not has_certificate
            and not webhook.has_custom_certificate
            and not drop
        )
        self._update_allowed_updates(bot, p)
        if same:
            webhook.secret_token = secret or None
            self._webhook_changed(bot)
            return Answer(True, "Webhook is already set")
        self._abort_long_poll(bot, CONFLICT_SET_WEBHOOK)
        webhook.url = url
        webhook.secret_token = secret or None
        webhook.max_connections = max_connections
        webhook.ip_address = ip_address
        webhook.has_custom_certificate = has_certificate
        webhook.last_error_date = None
        webhook.last_error_message = None
        webhook.set_at = time.time()
        self.world.events.publish("webhook", bot_id=bot.id, url=url)
        self._webhook_changed(bot)
        return Answer(True, "Webhook was set")

    def api_deleteWebhook(self, bot: BotAccount, p: Params) -> Any:
        if p.get_bool("drop_pending_updates"):
            bot.updates.clear()
        if not bot.webhook.url:
            return Answer(True, "Webhook is already deleted")
        bot.webhook.url = ""
        bot.webhook.secret_token = None
        bot.webhook.has_custom_certificate = False
        bot.webhook.ip_address = None
        self.world.events.publish("webhook", bot_id=bot.id, url="")
        self._webhook_changed(bot)
        return Answer(True, "Webhook was deleted")

    def _webhook_changed(self, bot: BotAccount) -> None:
        if self.on_webhook_changed is not None:
            self.on_webhook_changed(bot)

    def api_getWebhookInfo(self, bot: BotAccount, p: Params) -> Any:
        webhook = bot.webhook
        info: dict[str, Any] = {
            "url": webhook.url,
            "has_custom_certificate": webhook.has_custom_certificate,
            "pending_update_count": len(bot.updates),
        }
        if webhook.url:
            if webhook.ip_address:
                info["ip_address"] = webhook.ip_address
            if webhook.last_error_date:
                info["last_error_date"] = webhook.last_error_date
                info["last_error_message"] = webhook.last_error_message
            info["max_connections"] = webhook.max_connections
            if bot.allowed_updates:
                info["allowed_updates"] = list(bot.allowed_updates)
        return info

    # ------------------------------------------------------------------------------------ sending

    def api_sendMessage(self, bot: BotAccount, p: Params) -> Any:
        text, entities = self._text(p)
        markup = self._markup(p)
        conv = self._chat(bot, p)
        reply_to = self._reply_to(conv, p)
        content: dict[str, Any] = {"text": text}
        if entities:
            content["entities"] = entities
        content.update(self._link_preview(p))
        self.limiter.check(bot.id, conv.chat_id)
        return self._deliver(bot, conv, p, content, markup, reply_to).json()

    def _send_media(self, bot: BotAccount, p: Params, field: str, *, with_caption: bool = True) -> Any:
        value = p.get_file(field)
        if value is None:
            raise bad_request(f"there is no {field.replace('_', ' ')} in the request")
        caption = self._caption(p) if with_caption else {}
        markup = self._markup(p)
        conv = self._chat(bot, p)
        reply_to = self._reply_to(conv, p)
        options = {
            key: p.get_str(key)
            for key in ("duration", "width", "height", "performer", "title", "emoji", "length")
            if p.get_str(key)
        }
        store = self._input_media(value, MEDIA_FIELDS[field], options)
        self.limiter.check(bot.id, conv.chat_id)
        content: dict[str, Any] = {field: store()}
        content.update(caption)
        if p.get_bool("show_caption_above_media") and caption:
            content["show_caption_above_media"] = True
        if p.get_bool("has_spoiler"):
            content["has_media_spoiler"] = True
        return self._deliver(bot, conv, p, content, markup, reply_to).json()

    def api_sendPhoto(self, bot: BotAccount, p: Params) -> Any:
        return self._send_media(bot, p, "photo")

    def api_sendDocument(self, bot: BotAccount, p: Params) -> Any:
        return self._send_media(bot, p, "document")

    def api_sendAudio(self, bot: BotAccount, p: Params) -> Any:
        return self._send_media(bot, p, "audio")

    def api_sendVideo(self, bot: BotAccount, p: Params) -> Any:
        return self._send_media(bot, p, "video")

    def api_sendAnimation(self, bot: BotAccount, p: Params) -> Any:
        return self._send_media(bot, p, "animation")

    def api_sendVoice(self, bot: BotAccount, p: Params) -> Any:
        return self._send_media(bot, p, "voice")

    def api_sendVideoNote(self, bot: BotAccount, p: Params) -> Any:
        return self._send_media(bot, p, "video_note", with_caption=False)

    def api_sendSticker(self, bot: BotAccount, p: Params) -> Any:
        return self._send_media(bot, p, "sticker", with_caption=False)

    def api_sendMediaGroup(self, bot: BotAccount, p: Params) -> Any:
        raw = p.required_str("media")
        try:
            items = json.loads(raw)
        except ValueError:
            raise bad_request("can't parse media JSON object") from None
        if not isinstance(items, list):
            raise bad_request("expected an Array of InputMedia")
        prepared: list[tuple[str, Any, dict[str, Any], dict[str, Any]]] = []
        for item in items:
            if not isinstance(item, dict):
                raise bad_request("expected an Object")
            caption = self._caption_from_object(item)
            media = item.get("media")
            if not isinstance(media, str) or not media:
                raise bad_request("media not found")
            value = p.resolve_input_file(media)
            if value is None:
                raise bad_request("media not found")
            kind = str(item.get("type", ""))
            if kind == "animation":
                raise bad_request('type "animation" can\'t be used in sendMediaGroup')
            if kind not in ("photo", "video", "audio", "document"):
                raise bad_request(f'type "{kind}" is unsupported')
            options = {
                key: item[key]
                for key in ("duration", "width", "height", "performer", "title")
                if item.get(key)
            }
            extra: dict[str, Any] = {}
            if item.get("has_spoiler") and kind in ("photo", "video"):
                extra["has_media_spoiler"] = True
            if item.get("show_caption_above_media") and caption:
                extra["show_caption_above_media"] = True
            prepared.append((kind, value, options, {**caption, **extra}))
        if len(prepared) > 10:
            raise bad_request("too many messages to send as an album")
        if len(prepared) < 2:
            raise bad_request("media group must include 2-10 items")
        kinds = {kind for kind, *_ in prepared}
        if ("document" in kinds and kinds != {"document"}) or ("audio" in kinds and kinds != {"audio"}):
            raise bad_request("can't use the media of the specified type in the album")
        conv = self._chat(bot, p)
        reply_to = self._reply_to(conv, p)
        stores = [self._input_media(value, kind, options) for kind, value, options, _ in prepared]
        self.limiter.check(bot.id, conv.chat_id, cost=len(prepared))
        group_id = str(random.randint(10**17, 10**18 - 1))
        results = []
        for (kind, _value, _options, extra), store in zip(prepared, stores, strict=True):
            content: dict[str, Any] = {"media_group_id": group_id, kind: store(), **extra}
            results.append(self._deliver(bot, conv, p, content, None, reply_to).json())
        return results

    def _location(self, p: Params) -> dict[str, Any]:
        if not p.get_str("latitude").strip():
            raise bad_request("latitude is empty")
        if not p.get_str("longitude").strip():
            raise bad_request("longitude is empty")
        latitude = p.get_float("latitude") or 0.0
        longitude = p.get_float("longitude") or 0.0
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise bad_request("wrong location specified")
        location: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
        accuracy = p.get_float("horizontal_accuracy")
        if accuracy:
            location["horizontal_accuracy"] = min(max(accuracy, 0.0), 1500.0)
        for key in ("live_period", "heading", "proximity_alert_radius"):
            value = p.get_int(key)
            if value:
                location[key] = value
        return location

    def api_sendLocation(self, bot: BotAccount, p: Params) -> Any:
        location = self._location(p)
        markup = self._markup(p)
        conv = self._chat(bot, p)
        reply_to = self._reply_to(conv, p)
        self.limiter.check(bot.id, conv.chat_id)
        return self._deliver(bot, conv, p, {"location": location}, markup, reply_to).json()

    def api_sendVenue(self, bot: BotAccount, p: Params) -> Any:
        location = self._location(p)
        venue: dict[str, Any] = {
            "location": location,
            "title": p.get_str("title"),
            "address": p.get_str("address"),
        }
        for key in ("foursquare_id", "foursquare_type", "google_place_id", "google_place_type"):
            if p.get_str(key):
                venue[key] = p.get_str(key)
        markup = self._markup(p)
        conv = self._chat(bot, p)
        reply_to = self._reply_to(conv, p)
        self.limiter.check(bot.id, conv.chat_id)
        return self._deliver(bot, conv, p, {"venue": venue, "location": location}, markup, reply_to).json()

    def api_sendContact(self, bot: BotAccount, p: Params) -> Any:
        contact: dict[str, Any] = {
            "phone_number": p.required_str("phone_number"),
            "first_name": p.required_str("first_name"),
        }
        if p.get_str("last_name"):
            contact["last_name"] = p.get_str("last_name")
        if p.get_str("vcard"):
            contact["vcard"] = p.get_str("vcard")
        markup = self._markup(p)
        conv = self._chat(bot, p)
        reply_to = self._reply_to(conv, p)
        self.limiter.check(bot.id, conv.chat_id)
        return self._deliver(bot, conv, p, {"contact": contact}, markup, reply_to).json()

    def api_sendDice(self, bot: BotAccount, p: Params) -> Any:
        emoji = p.get_str("emoji") or "🎲"
        if emoji not in DICE:
            raise bad_request("EMOTICON_INVALID")
        markup = self._markup(p)
        conv = self._chat(bot, p)
        reply_to = self._reply_to(conv, p)
        self.limiter.check(bot.id, conv.chat_id)
        content = {"dice": {"emoji": emoji, "value": random.randint(1, DICE[emoji])}}
        return self._deliver(bot, conv, p, content, markup, reply_to).json()

    def api_sendPoll(self, bot: BotAccount, p: Params) -> Any:
        question = p.get_str("question")
        if not question:
            raise bad_request("poll question must be non-empty")
        question, question_entities = format_text(
            question, p.get_str("question_parse_mode"), self._entities_param(p, "question_entities"),
            allow_empty=True,
        )  # fmt: skip
        if not question:
            raise bad_request("poll question must be non-empty")
        if utf16_len(question) > 300:
            raise bad_request("poll question length must not exceed 300")
        options = p.get_json("options", "options")
        if options is None:
            raise bad_request("can't parse options JSON object")
        if not isinstance(options, list):
            raise bad_request("expected an Array of InputPollOption")
        parsed_options = []
        for option in options:
            if isinstance(option, str):
                text, entities = option, []
            elif isinstance(option, dict) and isinstance(option.get("text"), str):
                text, entities = format_text(
                    option["text"],
                    option.get("text_parse_mode"),
                    option.get("text_entities"),
                    allow_empty=True,
                )
            else:
                raise bad_request("can't parse InputPollOption: expected an Object")
            text = text.strip()
            if not text:
                raise bad_request("poll options must be non-empty")
            if utf16_len(text) > 100:
                raise bad_request("poll options length must not exceed 100")
            parsed_options.append((text, entities))
        if not parsed_options:  # the spec (Bot API 9.x): 1-12 answer options
            raise bad_request("poll must have at least 1 option")
        if len(parsed_options) > 12:
            raise bad_request("poll can't have more than 12 options")
        poll_type = p.get_str("type") or "regular"
        if poll_type not in ("regular", "quiz"):
            raise bad_request("unsupported poll type specified")
        is_anonymous = p.get_bool("is_anonymous") if p.has("is_anonymous") else True
        correct: list[int] = []
        if poll_type == "quiz":
            ids = p.get_json("correct_option_ids", "correct option identifiers")
            if isinstance(ids, list):
                correct = [int(i) for i in ids if isinstance(i, int) or str(i).isdigit()]
            elif p.has("correct_option_id"):
                correct = [p.get_int("correct_option_id")]
            if not correct or any(not 0 <= i < len(parsed_options) for i in correct):
                raise bad_request("wrong correct option ID specified")
        markup = self._markup(p)
        conv = self._chat(bot, p)
        reply_to = self._reply_to(conv, p)
        self.limiter.check(bot.id, conv.chat_id)
        poll_id = str(random.randint(10**18, 9 * 10**18))
        poll: dict[str, Any] = {
            "id": poll_id,
            "question": question,
            "options": [
                {
                    "persistent_id": secrets.token_hex(4),
                    "text": text,
                    **({"text_entities": entities} if entities else {}),
                    "voter_count": 0,
                }
                for text, entities in parsed_options
            ],
            "total_voter_count": 0,
            "is_closed": p.get_bool("is_closed"),
            "is_anonymous": is_anonymous,
            "type": poll_type,
            "allows_multiple_answers": poll_type == "regular" and p.get_bool("allows_multiple_answers"),
            "allows_revoting": p.get_bool("allows_revoting") if p.has("allows_revoting") else poll_type == "regular",
            "members_only": False,
        }
        if question_entities:
            poll["question_entities"] = question_entities
        if poll_type == "quiz":
            poll["correct_option_ids"] = correct
            if p.get_str("explanation"):
                poll["explanation"] = p.get_str("explanation")
        open_period = p.get_int("open_period", 0, minimum=0, maximum=2_628_000)
        if open_period:
            poll["open_period"] = open_period
            poll["close_date"] = now_ts() + open_period
        elif p.get_int("close_date"):
            poll["close_date"] = p.get_int("close_date")
        message = self._deliver(bot, conv, p, {"poll": poll}, markup, reply_to)
        self.world.polls[poll_id] = PollState(poll_id, bot.id, conv, message.message_id, copy.deepcopy(poll))
        return message.json()

    def api_stopPoll(self, bot: BotAccount, p: Params) -> Any:
        markup = self._inline_markup(p)
        conv = self._chat(bot, p, write=False)
        message = conv.get(p.get_int("message_id"))
        if message is None or not message.from_bot or "poll" not in message.data:
            raise bad_request("message with poll to stop not found")
        poll_id = message.data["poll"]["id"]
        state = self.world.polls.get(poll_id)
        if state is None or state.data["is_closed"]:
            raise bad_request("poll has already been closed")
        state.data["is_closed"] = True
        new = copy.deepcopy(message.data)
        new["poll"] = copy.deepcopy(state.data)
        if markup is not None:
            new["reply_markup"] = markup.data
        message.data = new  # closing a poll is not an edit of the message
        conv.append_log("edit", message)
        self.world.events.publish(
            "poll", bot_id=bot.id, chat_id=conv.chat_id, message=message, poll=state.data
        )
        self.world.enqueue_update(bot, "poll", state.data)
        return copy.deepcopy(state.data)

    def api_sendChatAction(self, bot: BotAccount, p: Params) -> Any:
        action = p.get_str("action").strip().lower()
        if action not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        conv = self._chat(bot, p)
        conv.chat_actions.append((time.time(), action))
        self.world.events.publish("chat_action", bot_id=bot.id, chat_id=conv.chat_id, action=action)
        return True

    def api_forwardMessage(self, bot: BotAccount, p: Params) -> Any:
        source_conv = self._chat(bot, p, write=False, field="from_chat_id")
        source = source_conv.get(p.get_int("message_id"))
        if source is None:
            raise bad_request("message to forward not found")
        conv = self._chat(bot, p)
        self.limiter.check(bot.id, conv.chat_id)
        content: dict[str, Any] = {
            "forward_origin": {
                "type": "user",
                "sender_user": copy.deepcopy(source.data["from"]),
                "date": source.date,
            }
        }
        content.update({k: copy.deepcopy(source.data[k]) for k in CONTENT_KEYS if k in source.data})
        return self._deliver(bot, conv, p, content, None, None).json()

    def api_copyMessage(self, bot: BotAccount, p: Params) -> Any:
        source_conv = self._chat(bot, p, write=False, field="from_chat_id")
        source = source_conv.get(p.get_int("message_id"))
        if source is None:
            raise bad_request("message to copy not found")
        markup = self._markup(p)
        conv = self._chat(bot, p)
        reply_to = self._reply_to(conv, p)
        content = {k: copy.deepcopy(source.data[k]) for k in CONTENT_KEYS if k in source.data}
        if "poll" in content:
            raise bad_request("message can't be copied")
        if p.has("caption") or "caption" in p.values:
            content.pop("caption", None)
            content.pop("caption_entities", None)
            content.update(self._caption(p))
        self.limiter.check(bot.id, conv.chat_id)
        message = self._deliver(bot, conv, p, content, markup, reply_to)
        return {"message_id": message.message_id}

    # ------------------------------------------------------------------------------------ editing

    def _message_to_edit(self, bot: BotAccount, p: Params) -> ChatMessage:
        if not p.get_str("chat_id") and p.get_int("message_id") == 0:
            if not p.get_str("inline_message_id"):
                raise bad_request("message identifier is not specified")
            raise bad_request("MESSAGE_ID_INVALID")
        conv = self._chat(bot, p)
        message = conv.get(p.get_int("message_id"))
        if message is None:
            raise bad_request("message to edit not found")
        if not message.from_bot:
            raise bad_request("message can't be edited")
        return message

    @staticmethod
    def _apply_markup(new: dict[str, Any], markup: Markup | None) -> None:
        if markup is not None:
            new["reply_markup"] = copy.deepcopy(markup.data)
        else:
            new.pop("reply_markup", None)

    @staticmethod
    def _same_content(old: dict[str, Any], new: dict[str, Any]) -> bool:
        keys = ("text", "entities", "caption", "caption_entities", "reply_markup", "show_caption_above_media")
        return all(old.get(key) == new.get(key) for key in keys)

    def _finish_edit(self, message: ChatMessage, new: dict[str, Any]) -> Any:
        if self._same_content(message.data, new):
            raise ApiError(400, MESSAGE_NOT_MODIFIED)
        self.limiter.check(message.conversation.bot.id, message.chat_id)
        self.world.edit_message(message, new)
        return message.json()

    def api_editMessageText(self, bot: BotAccount, p: Params) -> Any:
        text, entities = self._text(p)
        markup = self._inline_markup(p)
        message = self._message_to_edit(bot, p)
        if "text" not in message.data:
            raise bad_request("there is no text in the message to edit")
        new = copy.deepcopy(message.data)
        new["text"] = text
        if entities:
            new["entities"] = entities
        else:
            new.pop("entities", None)
        new.pop("link_preview_options", None)
        new.update(self._link_preview(p))
        self._apply_markup(new, markup)
        return self._finish_edit(message, new)

    def api_editMessageCaption(self, bot: BotAccount, p: Params) -> Any:
        caption = self._caption(p)
        markup = self._inline_markup(p)
        message = self._message_to_edit(bot, p)
        if not any(
            key in message.data for key in ("photo", "document", "video", "audio", "animation", "voice")
        ):
            raise bad_request("there is no caption in the message to edit")
        new = copy.deepcopy(message.data)
        for key in ("caption", "caption_entities", "show_caption_above_media"):
            new.pop(key, None)
        new.update(caption)
        if p.get_bool("show_caption_above_media") and caption:
            new["show_caption_above_media"] = True
        self._apply_markup(new, markup)
        return self._finish_edit(message, new)

    def api_editMessageReplyMarkup(self, bot: BotAccount, p: Params) -> Any:
        markup = self._inline_markup(p)
        message = self._message_to_edit(bot, p)
        new = copy.deepcopy(message.data)
        self._apply_markup(new, markup)
        return self._finish_edit(message, new)

    def api_editMessageMedia(self, bot: BotAccount, p: Params) -> Any:
        raw = p.required_str("media")
        try:
            item = json.loads(raw)
        except ValueError:
            raise bad_request("can't parse input media JSON object") from None
        if not isinstance(item, dict):
            raise bad_request("can't parse InputMedia: expected an Object")
        kind = str(item.get("type", ""))
        if kind not in ("photo", "video", "audio", "document", "animation"):
            raise bad_request(f'can\'t parse InputMedia: type "{kind}" is unsupported')
        media = item.get("media")
        value = p.resolve_input_file(media) if isinstance(media, str) else None
        if value is None:
            raise bad_request("can't parse InputMedia: media not found")
        caption = self._caption_from_object(item)
        markup = self._inline_markup(p)
        message = self._message_to_edit(bot, p)
        if not any(key in message.data for key in ("photo", "document", "video", "audio", "animation")):
            raise bad_request("there is no media in the message to edit")
        store = self._input_media(value, kind, {})
        new = copy.deepcopy(message.data)
        for key in ("photo", "document", "video", "audio", "animation", "caption", "caption_entities"):
            new.pop(key, None)
        new[kind] = store()
        new.update(caption)
        self._apply_markup(new, markup)
        self.world.edit_message(message, new)
        return message.json()

    def api_deleteMessage(self, bot: BotAccount, p: Params) -> Any:
        if not p.get_str("chat_id"):
            raise bad_request("chat identifier is not specified")
        message_id = p.get_int("message_id")
        if message_id <= 0:
            raise bad_request("message identifier is not specified")
        conv = self._chat(bot, p, write=False)
        message = conv.get(message_id)
        if message is None:
            raise bad_request("message to delete not found")
        if time.time() - message.created > 48 * 3600:
            raise bad_request("message can't be deleted")
        self.world.delete_message(message)
        return True

    def api_deleteMessages(self, bot: BotAccount, p: Params) -> Any:
        conv = self._chat(bot, p, write=False)
        ids = p.get_json("message_ids", "message identifiers")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            raise bad_request("message identifiers are not specified")
        for message_id in ids:
            message = conv.get(int(message_id)) if str(message_id).lstrip("-").isdigit() else None
            if message is not None:
                self.world.delete_message(message)
        return True

    # --------------------------------------------------------------------------------- callbacks

    def api_answerCallbackQuery(self, bot: BotAccount, p: Params) -> Any:
        query_id = p.get_str("callback_query_id").strip()
        record = bot.callback_queries.get(query_id)
        if (
            record is None
            or record.answered
            or time.time() - record.created > self.config.callback_query_timeout
        ):
            raise ApiError(400, QUERY_ID_INVALID)
        text = p.get_str("text")
        if utf16_len(text) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        answer = {
            "text": text or None,
            "show_alert": p.get_bool("show_alert"),
            "url": p.get_str("url") or None,
            "cache_time": p.get_int("cache_time", 0, minimum=0),
        }
        record.answered = True
        record.answer = answer
        if record.future is not None and not record.future.done():
            record.future.set_result(answer)
        self.world.events.publish(
            "callback_answer", bot_id=bot.id, chat_id=record.user_id, callback_query_id=query_id, **answer
        )
        return True

    # ------------------------------------------------------------------------------------- files

    def api_getFile(self, bot: BotAccount, p: Params) -> Any:
        stored = self.world.file(p.get_str("file_id").strip())
        if stored is None:
            raise bad_request("invalid file_id")
        if stored.size > self.config.max_download_size:
            raise bad_request("file is too big")
        return stored.file_json(with_path=True)

    # --------------------------------------------------------------------------------- commands

    def _scope_key(self, bot: BotAccount, p: Params) -> tuple[Any, ...]:
        scope = p.get_json("scope", "BotCommandScope")
        if scope is None:
            return ("default",)
        if not isinstance(scope, dict):
            raise bad_request("object expected as BotCommandScope")
        kind = scope.get("type")
        if kind in ("default", "all_private_chats", "all_group_chats", "all_chat_administrators"):
            return (kind,)
        if kind in ("chat", "chat_administrators", "chat_member"):
            chat_raw = scope.get("chat_id")
            if chat_raw is None or chat_raw == "":
                raise bad_request("chat_id is empty")
            conv = self._chat_from_raw(bot, str(chat_raw), write=False)
            if kind == "chat_member":
                user_id = scope.get("user_id")
                if not isinstance(user_id, int) or user_id not in self.world.users:
                    raise bad_request("user not found")
                return (kind, conv.chat_id, user_id)
            return (kind, conv.chat_id)
        raise bad_request("unsupported bot command scope type specified")

    @staticmethod
    def _language(p: Params) -> str:
        language = p.get_str("language_code").strip()
        if language and not LANGUAGE_RE.match(language):
            raise bad_request("LANG_CODE_INVALID")
        return language

    def api_setMyCommands(self, bot: BotAccount, p: Params) -> Any:
        raw = p.get_json("commands", "commands")
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            raise bad_request("expected an Array of BotCommand")
        commands = []
        for item in raw:
            if not isinstance(item, dict):
                raise bad_request("can't parse BotCommand: expected an Object")
            command = item.get("command")
            description = item.get("description")
            if not isinstance(command, str):
                raise bad_request("can't parse BotCommand: Can't find field \"command\"")
            if not isinstance(description, str):
                raise bad_request("can't parse BotCommand: Can't find field \"description\"")
            if not COMMAND_RE.match(command):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            description = description.strip()
            if not description or len(description) > 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
            commands.append({"command": command, "description": description})
        if len(commands) > 100:
            raise ApiError(400, "Bad Request: BOT_COMMANDS_TOO_MUCH")
        key = (self._scope_key(bot, p), self._language(p))
        if commands:
            bot.commands[key] = commands
        else:
            bot.commands.pop(key, None)
        self.world.events.publish("commands", bot_id=bot.id, scope=list(key[0]), language_code=key[1])
        return True

    def api_getMyCommands(self, bot: BotAccount, p: Params) -> Any:
        key = (self._scope_key(bot, p), self._language(p))
        return copy.deepcopy(bot.commands.get(key, []))

    def api_deleteMyCommands(self, bot: BotAccount, p: Params) -> Any:
        key = (self._scope_key(bot, p), self._language(p))
        bot.commands.pop(key, None)
        return True

    def api_setChatMenuButton(self, bot: BotAccount, p: Params) -> Any:
        chat_id: int | None = None
        if p.get_str("chat_id"):
            chat_id = self._chat(bot, p, write=False).chat_id
        button = p.get_json("menu_button", "menu button")
        if button is None:
            button = {"type": "default"}
        if not isinstance(button, dict):
            raise bad_request("object expected as menu button")
        kind = button.get("type")
        if kind == "commands":
            value: dict[str, Any] = {"type": "commands"}
        elif kind == "default":
            value = {"type": "default"}
        elif kind == "web_app":
            text = button.get("text")
            web_app = button.get("web_app")
            if not isinstance(text, str) or not text:
                raise bad_request("can't parse menu button: Can't find field \"text\"")
            if not isinstance(web_app, dict) or not isinstance(web_app.get("url"), str):
                raise bad_request("can't parse menu button: Can't find field \"web_app\"")
            if not web_app["url"].lower().startswith("https://"):
                raise bad_request("BUTTON_URL_INVALID")
            value = {"type": "web_app", "text": text, "web_app": {"url": web_app["url"]}}
        else:
            raise bad_request("can't parse menu button: MenuButton has unsupported type")
        if chat_id is not None and value["type"] == "default":
            bot.menu_buttons.pop(chat_id, None)
        else:
            bot.menu_buttons[chat_id] = value
        self.world.events.publish("menu_button", bot_id=bot.id, chat_id=chat_id, menu_button=value)
        return True

    def api_getChatMenuButton(self, bot: BotAccount, p: Params) -> Any:
        if p.get_str("chat_id"):
            chat_id = self._chat(bot, p, write=False).chat_id
            if chat_id in bot.menu_buttons:
                return copy.deepcopy(bot.menu_buttons[chat_id])
        return copy.deepcopy(bot.menu_buttons.get(None, {"type": "commands"}))

    def _localized_set(self, store: dict[str, str], p: Params, field: str, limit: int) -> Any:
        language = self._language(p)
        value = p.get_str(field)
        if len(value) > limit:
            raise bad_request(f"{field} is too long")
        if value:
            store[language] = value
        else:
            store.pop(language, None)
        return True

    def api_setMyName(self, bot: BotAccount, p: Params) -> Any:
        return self._localized_set(bot.names, p, "name", 64)

    def api_getMyName(self, bot: BotAccount, p: Params) -> Any:
        language = self._language(p)
        return {"name": bot.names.get(language) or bot.names.get("") or bot.first_name}

    def api_setMyDescription(self, bot: BotAccount, p: Params) -> Any:
        return self._localized_set(bot.descriptions, p, "description", 512)

    def api_getMyDescription(self, bot: BotAccount, p: Params) -> Any:
        language = self._language(p)
        return {"description": bot.descriptions.get(language) or bot.descriptions.get("", "")}

    def api_setMyShortDescription(self, bot: BotAccount, p: Params) -> Any:
        return self._localized_set(bot.short_descriptions, p, "short_description", 120)

    def api_getMyShortDescription(self, bot: BotAccount, p: Params) -> Any:
        language = self._language(p)
        return {
            "short_description": bot.short_descriptions.get(language) or bot.short_descriptions.get("", "")
        }

    # --------------------------------------------------------------------------------------- chats

    def api_getChat(self, bot: BotAccount, p: Params) -> Any:
        conv = self._chat(bot, p, write=False)
        user = conv.user
        info: dict[str, Any] = {"id": user.id, "type": "private", "first_name": user.first_name}
        if user.last_name:
            info["last_name"] = user.last_name
        if user.username:
            info["username"] = user.username
            info["active_usernames"] = [user.username]
        info.update(
            {
                "accent_color_id": user.id % 7,
                "max_reaction_count": 11,
                "accepted_gift_types": {
                    "unlimited_gifts": True,
                    "limited_gifts": True,
                    "unique_gifts": True,
                    "premium_subscription": True,
                    "gifts_from_channels": True,
                },
            }
        )
        if conv.pinned:
            pinned = conv.get(conv.pinned[-1])
            if pinned is not None:
                info["pinned_message"] = pinned.json()
        return info

    def api_getChatMember(self, bot: BotAccount, p: Params) -> Any:
        conv = self._chat(bot, p, write=False)
        user_id = p.get_int("user_id")
        if user_id == conv.user.id:
            if conv.blocked:
                return {"status": "kicked", "user": conv.user.to_json(), "until_date": 0}
            return {"status": "member", "user": conv.user.to_json()}
        if user_id == bot.id:
            return {"status": "member", "user": bot.user_json()}
        raise bad_request("user not found")

    def api_pinChatMessage(self, bot: BotAccount, p: Params) -> Any:
        conv = self._chat(bot, p)
        message = conv.get(p.get_int("message_id"))
        if message is None:
            raise bad_request("message to pin not found")
        if message.message_id in conv.pinned:
            conv.pinned.remove(message.message_id)
        conv.pinned.append(message.message_id)
        self.world.events.publish("pin", bot_id=bot.id, chat_id=conv.chat_id, message=message)
        return True

    def api_unpinChatMessage(self, bot: BotAccount, p: Params) -> Any:
        conv = self._chat(bot, p)
        message_id = p.get_int("message_id")
        if message_id:
            if message_id not in conv.pinned:
                raise bad_request("message to unpin not found")
            conv.pinned.remove(message_id)
        elif conv.pinned:
            conv.pinned.pop()
        else:
            raise bad_request("message to unpin not found")
        self.world.events.publish("unpin", bot_id=bot.id, chat_id=conv.chat_id, message_id=message_id)
        return True

    def api_unpinAllChatMessages(self, bot: BotAccount, p: Params) -> Any:
        conv = self._chat(bot, p)
        conv.pinned.clear()
        return True

    def api_setMessageReaction(self, bot: BotAccount, p: Params) -> Any:
        conv = self._chat(bot, p)
        message = conv.get(p.get_int("message_id"))
        if message is None:
            raise bad_request("message to react not found")
        reaction = p.get_json("reaction", "reaction types") or []
        message.reactions = reaction if isinstance(reaction, list) else []
        self.world.events.publish(
            "reaction", bot_id=bot.id, chat_id=conv.chat_id, message=message, reaction=reaction
        )
        return True


def parse_markup(value: Any) -> Markup | None:
    """Re-exported for the simulator (validating markups built in tests)."""
    return parse_markup_value(value)
