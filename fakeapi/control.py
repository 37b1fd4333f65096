"""A small JSON control API to drive the simulator over HTTP (manual runs, a future web sandbox).

Mounted under ``/_sim/`` next to the Bot API routes:

* ``GET  /_sim/state`` — bots and users;
* ``POST /_sim/bots`` ``{"token"?, "username"?, "first_name"?}`` — register a bot;
* ``POST /_sim/users`` ``{"first_name", "last_name"?, "username"?, "language_code"?, "phone"?, "id"?}``;
* ``GET  /_sim/chats/{user_id}[?bot_id=]`` — the chat as the user sees it;
* ``POST /_sim/chats/{user_id}/{action}`` — ``send`` ``{"text"}``,
  ``press`` ``{"text"|"data", "message_id"?}``,
  ``contact`` ``{"phone"?, ...}``, ``location`` ``{"latitude", "longitude"}``, ``photo`` / ``document``
  (multipart field ``file``, or nothing for a generated JPEG), ``sticker``, ``voice``, ``block``, ``unblock``;
  ``bot_id`` may be given in the body or query string;
* ``GET  /_sim/events`` — Server-Sent Events: every :class:`~fakeapi.state.Event` as JSON;
* ``GET  /_sim/calls[?limit=]`` — the latest recorded Bot API calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .errors import ApiError
from .state import Event

if TYPE_CHECKING:
    from .simulator import FakeTelegram, SimUser


def event_to_json(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in event.data.items():
        if key == "call":
            data["call"] = {
                "seq": value.seq,
                "method": value.method,
                "status": value.status,
                "params": value.params,
                "response": value.response,
            }
        else:
            data[key] = value
    return {
        "seq": event.seq,
        "kind": event.kind,
        "bot_id": event.bot_id,
        "chat_id": event.chat_id,
        "time": event.time,
        "message": event.message.to_dict() if event.message is not None else None,
        "data": data,
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _json(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, dumps=_dumps)


class ControlAPI:
    def __init__(self, tg: FakeTelegram) -> None:
        self.tg = tg

    def register(self, app: web.Application) -> None:
        app.router.add_get("/_sim/state", self.state)
        app.router.add_post("/_sim/bots", self.create_bot)
        app.router.add_post("/_sim/users", self.create_user)
        app.router.add_get("/_sim/chats/{user_id}", self.chat)
        app.router.add_post("/_sim/chats/{user_id}/{action}", self.act)
        app.router.add_get("/_sim/events", self.events)
        app.router.add_get("/_sim/calls", self.calls)

    # ------------------------------------------------------------------------------- handlers

    async def state(self, request: web.Request) -> web.Response:
        world = self.tg.world
        return _json(
            {
                "base_url": self.tg.server.base_url,
                "bots": [
                    {"id": b.id, "username": b.username, "first_name": b.first_name, "token": b.token}
                    for b in world.bots.values()
                ],
                "users": [{**u.to_json(), "phone": u.phone} for u in world.users.values()],
            }
        )

    async def create_bot(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        try:
            bot = self.tg.make_bot(
                body.get("token"), username=body.get("username"), first_name=body.get("first_name")
            )
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        return _json({"id": bot.id, "username": bot.username, "token": bot.token})

    async def create_user(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        try:
            user = self.tg.user(
                body.get("first_name") or "Test",
                body.get("last_name"),
                username=body.get("username"),
                language_code=body.get("language_code", "en"),
                phone=body.get("phone"),
                id=body.get("id"),
            )
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        return _json({**user.to_json(), "phone": user.phone})

    def _user(self, request: web.Request) -> SimUser:
        try:
            return self.tg.sim_user(int(request.match_info["user_id"]))
        except (KeyError, ValueError):
            raise web.HTTPNotFound(
                text='{"error": "unknown user"}', content_type="application/json"
            ) from None

    def _chat_view(self, user: SimUser, bot_id: int | None) -> dict[str, Any]:
        conv = user.chat(bot_id)
        return {
            "bot_id": conv.bot.id,
            "user_id": user.id,
            "blocked": conv.blocked,
            "messages": [m.to_dict() for m in conv.history()],
            "keyboard": conv.reply_keyboard,
            "keyboard_hidden": conv.keyboard_hidden,
            "commands": user.commands(conv.bot),
            "menu_button": user.menu_button(conv.bot),
        }

    async def chat(self, request: web.Request) -> web.Response:
        user = self._user(request)
        bot_id = request.query.get("bot_id")
        return _json(self._chat_view(user, int(bot_id) if bot_id else None))

    async def act(self, request: web.Request) -> web.Response:
        user = self._user(request)
        action = request.match_info["action"]
        upload: bytes | None = None
        filename = None
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            body: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
            file_field = form.get("file")
            if file_field is not None and not isinstance(file_field, str):
                upload = file_field.file.read()
                filename = file_field.filename
        else:
            body = await self._body(request)
        bot_ref = body.get("bot_id") or request.query.get("bot_id")
        bot = int(bot_ref) if bot_ref else None
        try:
            result: Any
            if action == "send":
                result = await user.send(str(body["text"]), bot=bot)
            elif action == "press":
                message = None
                if body.get("message_id"):
                    message = user.chat(bot).get(int(body["message_id"]))
                result = await user.press(
                    body.get("text"),
                    data=body.get("data"),
                    message=message,
                    timeout=float(body.get("timeout", 5)),
                )
            elif action == "contact":
                kwargs = {k: body[k] for k in ("first_name", "last_name", "vcard") if body.get(k)}
                if body.get("phone"):
                    kwargs["user_id"] = body.get("user_id")
                result = await user.share_contact(body.get("phone"), bot=bot, **kwargs)
            elif action == "location":
                result = await user.share_location(float(body["latitude"]), float(body["longitude"]), bot=bot)
            elif action == "photo":
                result = await user.send_photo(upload, caption=body.get("caption"), bot=bot)
            elif action == "document":
                if upload is None:
                    return _json({"error": "multipart field 'file' is required"}, 400)
                result = await user.send_document(
                    upload, file_name=filename or "document.bin", caption=body.get("caption"), bot=bot
                )
            elif action == "sticker":
                result = await user.send_sticker(body.get("emoji") or "👍", bot=bot)
            elif action == "voice":
                result = await user.send_voice(upload, bot=bot)
            elif action == "block":
                user.block_bot(bot)
                result = None
            elif action == "unblock":
                user.unblock_bot(bot)
                result = None
            else:
                return _json({"error": f"unknown action {action!r}"}, 404)
        except (KeyError, TypeError) as exc:
            return _json({"error": f"bad request: {exc}"}, 400)
        except (LookupError, ValueError, NotImplementedError, ApiError) as exc:
            return _json({"error": str(exc)}, 409)
        if hasattr(result, "to_dict"):
            payload: Any = result.to_dict()
        elif result is not None and hasattr(result, "answered"):
            payload = {
                "answered": result.answered,
                "text": result.text,
                "show_alert": result.show_alert,
                "url": result.url,
            }
        else:
            payload = result
        return _json({"ok": True, "result": payload})

    async def events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        kinds = request.query.get("kinds")
        subscription = self.tg.world.events.subscribe(kinds=kinds.split(",") if kinds else None)
        try:
            while True:
                try:
                    event = await asyncio.wait_for(subscription.queue.get(), 15)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                payload = _dumps(event_to_json(event))
                await response.write(f"id: {event.seq}\nevent: {event.kind}\ndata: {payload}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            subscription.close()
            with contextlib.suppress(Exception):
                await response.write_eof()
        return response

    async def calls(self, request: web.Request) -> web.Response:
        limit = int(request.query.get("limit", "50"))
        calls = self.tg.calls[-limit:]
        return _json(
            [
                {
                    "seq": c.seq,
                    "method": c.method,
                    "bot_id": c.bot_id,
                    "params": c.params,
                    "status": c.status,
                    "response": c.response,
                    "started": c.started,
                    "duration": c.duration,
                }
                for c in calls
            ]
        )

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        if not request.body_exists:
            return dict(request.query)
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(
                text='{"error": "JSON body expected"}', content_type="application/json"
            ) from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(
                text='{"error": "JSON object expected"}', content_type="application/json"
            )
        return body
