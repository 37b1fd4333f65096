"""The HTTP side: an aiohttp application speaking the Telegram Bot API.

Routes (like api.telegram.org):

* ``/bot<token>/<method>`` — GET query string, or POST as application/json,
  application/x-www-form-urlencoded or multipart/form-data (uploads, ``attach://<name>``);
* ``/file/bot<token>/<file_path>`` — bytes of a file whose path was given by getFile.

Every call is recorded in :attr:`FakeBotAPI.calls`; :attr:`FakeBotAPI.faults` injects failures/delays.
While a bot has a webhook, :attr:`FakeBotAPI.webhooks` POSTs its updates there (see :mod:`fakeapi.webhook`).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import logging
import mimetypes
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

from .config import ServerConfig
from .errors import DEFAULT_DESCRIPTIONS, ApiError, bad_request, not_found, unauthorized
from .methods import SERVER_CLOSING, Answer, BotApi
from .params import DEPRECATED_PARAMS, Params, UploadedFile
from .state import BotAccount, World
from .webhook import WebhookDeliverer

logger = logging.getLogger("fakeapi")


class _ConnectionDropped(Exception):
    """A fault asked for the connection to be closed without an answer."""


@dataclass
class ApiCall:
    """One request to the fake Bot API."""

    seq: int
    method: str  # canonical name (e.g. "sendMessage") when known, else as requested
    bot_id: int | None
    token: str
    http_method: str
    params: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    status: int | None = None
    response: dict[str, Any] | None = None
    exception: str | None = None  # traceback of an internal error (a bug in the fake)
    deprecated: list[str] = field(default_factory=list)  # deprecated parameters it carried

    @property
    def ok(self) -> bool:
        return bool(self.response and self.response.get("ok"))

    @property
    def result(self) -> Any:
        return (self.response or {}).get("result")

    @property
    def error_code(self) -> int | None:
        return (self.response or {}).get("error_code")

    @property
    def description(self) -> str | None:
        return (self.response or {}).get("description")

    @property
    def duration(self) -> float | None:
        return None if self.finished is None else self.finished - self.started

    @property
    def done(self) -> bool:
        return self.finished is not None

    def __repr__(self) -> str:
        outcome = "pending" if self.response is None else ("ok" if self.ok else f"{self.error_code}")
        return f"<ApiCall #{self.seq} {self.method} {outcome}>"


@dataclass
class Fault:
    """Makes matching calls fail and/or wait. ``times=None`` means until removed."""

    method: str | None  # lower-case method name; None = every method
    times: int | None = 1
    error_code: int | None = None
    description: str | None = None
    retry_after: int | None = None
    delay: float = 0.0
    drop_connection: bool = False
    bot_id: int | None = None
    every: int = 1  # only every N-th matching call is hit (10 -> 10 % of them); the others pass
    hits: int = 0
    seen: int = 0

    def error(self) -> ApiError | None:
        if self.error_code is None:
            return None
        code = self.error_code
        if code == 429:
            retry = self.retry_after if self.retry_after is not None else 1
            return ApiError(
                429, self.description or f"Too Many Requests: retry after {retry}", retry_after=retry
            )
        description = self.description or DEFAULT_DESCRIPTIONS.get(code, "Error")
        return ApiError(code, description, retry_after=self.retry_after)


class FaultInjector:
    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def add(
        self,
        method: str | None = None,
        *,
        times: int | None = 1,
        error_code: int | None = None,
        description: str | None = None,
        retry_after: int | None = None,
        delay: float = 0.0,
        drop_connection: bool = False,
        bot_id: int | None = None,
        every: int = 1,
    ) -> Fault:
        if every < 1:
            raise ValueError("every must be at least 1")
        fault = Fault(
            method.lower() if method else None,
            times,
            error_code,
            description,
            retry_after,
            delay,
            drop_connection,
            bot_id,
            every,
        )
        self.faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        if fault in self.faults:
            self.faults.remove(fault)

    def clear(self) -> None:
        self.faults.clear()

    def take(self, method: str, bot_id: int | None) -> Fault | None:
        lower = method.lower()
        for fault in self.faults:
            if fault.method is not None and fault.method != lower:
                continue
            if fault.bot_id is not None and fault.bot_id != bot_id:
                continue
            fault.seen += 1
            if fault.seen % fault.every:
                continue
            fault.hits += 1
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
            return fault
        return None


FAKEAPI_KEY: web.AppKey[FakeBotAPI] = web.AppKey("fakeapi", object)  # type: ignore[arg-type]


class FakeBotAPI:
    """The fake Bot API server. ``await start()`` serves it on a TCP port."""

    def __init__(self, world: World | None = None, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.world = world or World(strip_photo_exif=self.config.strip_photo_exif)
        self.api = BotApi(self.world, self.config)
        self.calls: list[ApiCall] = []
        self.faults = FaultInjector()
        self._seq = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.base_url: str | None = None
        self.webhooks = WebhookDeliverer(self.world, self.config, self.execute_webhook_reply)
        self.api.on_webhook_changed = self.webhooks.changed
        self.app = self.build_app()

    # ------------------------------------------------------------------------------ lifecycle

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_upload_size + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self.handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self.handle_file)
        app.router.add_get("/", self.handle_index)
        app[FAKEAPI_KEY] = self
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=self.config.shutdown_timeout)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        address = runner.addresses[0]
        self.base_url = f"http://{host}:{address[1]}"
        self.webhooks.start()
        return self.base_url

    async def stop(self) -> None:
        for bot in self.world.bots.values():
            if bot.active_poll is not None and not bot.active_poll.done():
                bot.active_poll.set_result(SERVER_CLOSING)
        await self.webhooks.stop()
        if self._runner is not None:
            await asyncio.sleep(0)
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------------------- requests

    async def _read_params(self, request: web.Request) -> Params:
        values: dict[str, Any] = {}
        for key in request.query:
            values.setdefault(key, request.query.getone(key))
        files: dict[str, UploadedFile] = {}
        if request.method in ("POST", "PUT") and request.body_exists:
            content_type = request.content_type
            if content_type == "application/json":
                body = await request.read()
                if body.strip():
                    try:
                        decoded = json.loads(body)
                    except ValueError:
                        raise bad_request("can't parse JSON object") from None
                    if not isinstance(decoded, dict):
                        raise bad_request("can't parse JSON object")
                    values.update(decoded)
            elif content_type.startswith("multipart/"):
                reader = await request.multipart()
                total = 0
                while True:
                    part = await reader.next()
                    if part is None:
                        break
                    if not isinstance(part, BodyPartReader):  # nested multipart: ignore
                        continue
                    name = part.name or ""
                    if part.filename is not None:
                        data = bytes(await part.read(decode=False))
                        total += len(data)
                        if total > self.config.max_upload_size:
                            raise ApiError(413, "Request Entity Too Large")
                        files[name] = UploadedFile(
                            name, part.filename, part.headers.get("Content-Type", ""), data
                        )
                    else:
                        values[name] = await part.text()
            else:  # application/x-www-form-urlencoded (and anything else readable as a form)
                form = await request.post()
                for key in form:
                    value = form.getone(key)
                    if isinstance(value, str):
                        values[key] = value
        return Params.from_mapping(values, files)

    async def handle_api(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        requested = request.match_info["method"]
        bot = self.world.bot_for_token(token)
        resolved = self.api.resolve(requested)
        call = ApiCall(
            seq=next(self._seq),
            method=resolved[0] if resolved else requested,
            bot_id=bot.id if bot else None,
            token=token,
            http_method=request.method,
        )
        self.calls.append(call)

        async def run() -> Any:
            if bot is None:
                raise unauthorized()
            params = await self._read_params(request)
            call.params = params.describe()
            self._note_deprecated(call, params)
            fault = self.faults.take(call.method, bot.id)
            if fault is not None:
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                if fault.drop_connection:
                    raise _ConnectionDropped
                error = fault.error()
                if error is not None:
                    raise error
            return await self._dispatch(resolved, bot, params)

        try:
            body, status = await self._execute(call, run)
        except _ConnectionDropped:
            call.finished = time.time()
            call.exception = "connection dropped by fault injection"
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)
        return web.json_response(body, status=status)

    async def execute_webhook_reply(self, bot: BotAccount, method: str, params: Params) -> ApiCall:
        """Run the Bot API call a webhook put in its answer (recorded like any call, as WEBHOOK)."""
        resolved = self.api.resolve(method)
        call = ApiCall(
            seq=next(self._seq),
            method=resolved[0] if resolved else method,
            bot_id=bot.id,
            token=bot.token,
            http_method="WEBHOOK",
            params=params.describe(),
        )
        self._note_deprecated(call, params)
        self.calls.append(call)
        await self._execute(call, lambda: self._dispatch(resolved, bot, params))
        return call

    @staticmethod
    def _note_deprecated(call: ApiCall, params: Params) -> None:
        call.deprecated = params.deprecated()
        for name in call.deprecated:
            logger.warning(
                "fakeapi: %s sent the deprecated parameter %s (use %s)", call.method, name, DEPRECATED_PARAMS[name]
            )

    @staticmethod
    async def _dispatch(resolved: Any, bot: BotAccount, params: Params) -> Any:
        if resolved is None:
            raise not_found()
        result = resolved[1](bot, params)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def _execute(self, call: ApiCall, run: Any) -> tuple[dict[str, Any], int]:
        """Run one Bot API call, turn its outcome into the answer's body, record and publish it.

        Shared by calls made over HTTP and calls a webhook put in its answer."""
        try:
            result = await run()
            description = None
            if isinstance(result, Answer):
                description = result.description
                result = result.result
            body: dict[str, Any] = {"ok": True, "result": result}
            if description:
                body["description"] = description
            status = 200
        except ApiError as exc:
            body = exc.to_json()
            status = exc.error_code
        except _ConnectionDropped:
            raise
        except Exception as exc:
            logger.exception("fakeapi: %s (%s) failed", call.method, call.http_method)
            call.exception = traceback.format_exc()
            body = {"ok": False, "error_code": 500, "description": f"Internal Server Error: {exc!r}"}
            status = 500
        call.status = status
        call.response = body
        call.finished = time.time()
        self.world.events.publish(
            "api_call", bot_id=call.bot_id, method=call.method, call=call, ok=body.get("ok", False)
        )
        return body, status

    async def handle_file(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        path = request.match_info["path"]
        if self.world.bot_for_token(token) is None:
            return web.json_response(unauthorized().to_json(), status=401)
        stored = self.world.files_by_path.get(path)
        if stored is None or stored.size > self.config.max_download_size:
            return web.json_response(not_found().to_json(), status=404)
        content_type = stored.mime_type or mimetypes.guess_type(path)[0] or "application/octet-stream"
        return web.Response(body=stored.data, content_type=content_type)

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        bots = [{"id": b.id, "username": b.username} for b in self.world.bots.values()]
        return web.json_response({"fakeapi": True, "bots": bots, "users": len(self.world.users)})

    # ---------------------------------------------------------------------------- conveniences

    def calls_of(self, method: str, *, bot_id: int | None = None) -> list[ApiCall]:
        lower = method.lower()
        return [c for c in self.calls if c.method.lower() == lower and (bot_id is None or c.bot_id == bot_id)]

    def deprecated_calls(self, *, bot_id: int | None = None) -> list[ApiCall]:
        """Calls that carried a deprecated parameter (``call.deprecated`` names them)."""
        return [c for c in self.calls if c.deprecated and (bot_id is None or c.bot_id == bot_id)]
