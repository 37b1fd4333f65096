"""``prolita-bot sandbox``: the fake Bot API and the web chat on one port, the real bot as a child.

One aiohttp application serves

* the Bot API the bot talks to (``/bot<token>/<method>``, ``/file/bot<token>/<path>``) — the very
  server the end-to-end tests use (:mod:`fakeapi`);
* its JSON control API (``/_sim/...``: chats, send, press, contact, location, events as SSE);
* the web page (``/``, ``/static/...``) and a few sandbox endpoints (``/sandbox/...``): personas,
  new users, reply-keyboard buttons, albums from disk, poll votes, file downloads.

The bot is started unmodified (``python -m bot``) with ``TELEGRAM_API_URL`` pointing here, its own
SQLite database and media folder in the sandbox folder, and the admin persona in ``ADMIN_IDS``.
Nothing in the bot knows it runs in a sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import re
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.sandbox import seed
from bot.sandbox.seed import BONTANG, Persona, SandboxDataError, SandboxState
from fakeapi import FakeTelegram
from fakeapi.errors import ApiError

STATIC = Path(__file__).with_name("static")
BOT_USERNAME = "prolita_sandbox_bot"
BOT_NAME = "Prolita Bot"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
# Variables of the parent environment that must not reach the sandboxed bot.
DROP_ENV = (
    "BOT_TOKEN", "TELEGRAM_API_URL", "DATABASE_URL", "ADMIN_IDS", "MEDIA_DIR", "REDIS_URL",
    "WEBHOOK_URL", "WEBHOOK_SECRET", "HEALTH_PORT",
)  # fmt: skip
USERNAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{4,31}$")


class PortInUse(Exception):
    pass


class BotFailed(Exception):
    """The bot child process exited on its own."""


def _say(message: str) -> None:
    print(message, flush=True)


def _json(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the bot gets SIGTERM if the sandbox dies without stopping it (e.g. SIGKILL)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Sandbox:
    def __init__(self, folder: Path, *, port: int = 8080, host: str = "127.0.0.1", fresh: bool = False) -> None:
        self.folder = folder
        self.host = host
        self.port = port
        self.fresh = fresh
        self.status = "preparing"
        self.state: SandboxState | None = None
        self.tg = FakeTelegram(host=host, port=port, control_api=True)
        self.proc: asyncio.subprocess.Process | None = None
        self._stop = asyncio.Event()
        self._install_web(self.tg.server.app)

    # ------------------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return self.tg.server.base_url or f"http://{self.host}:{self.port}"

    async def run(self) -> int:
        try:
            await self.tg.start()
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortInUse(str(exc)) from None
            raise
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        try:
            self.state = await self._prepare()
            self._populate_world(self.state)
            await self._register_files()
            if self._stop.is_set():
                return 0
            self.status = "starting"
            await self._start_bot()
            if not await self._wait_ready():
                return 0
            self.status = "running"
            _say(f"Prolita sandbox is running: open {self.url} in a browser (Ctrl-C stops it).")
            _say(f"  bot log: {self.folder / seed.LOG_FILE}")
            return await self._serve()
        finally:
            self.status = "stopping"
            await self._stop_bot()
            await self.tg.stop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def _serve(self) -> int:
        assert self.proc is not None
        stop = asyncio.ensure_future(self._stop.wait())
        exited = asyncio.ensure_future(self.proc.wait())
        try:
            await asyncio.wait({stop, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if self._stop.is_set():
            _say("Prolita sandbox: stopping ...")
            return 0
        self._report_bot_exit()
        return 1

    async def _prepare(self) -> SandboxState:
        folder = self.folder
        folder.mkdir(parents=True, exist_ok=True)
        state = None if self.fresh else SandboxState.load(folder)
        if state is not None and not (folder / seed.DB_FILE).exists():
            state = None  # the database was deleted by hand: start over
        settings = seed.settings_for(folder)
        if state is None:  # first start, --fresh, or a first start that did not finish
            _say(f"Prolita sandbox: creating the demo data in {folder} ...")
            seed.reset(folder)
            await seed.prepare_database(settings.database_url)
            await seed.seed(settings)
            state = SandboxState(token=f"7{random.randint(10**8, 10**9 - 1)}:AA{secrets.token_urlsafe(24)[:33]}",
                                 personas=list(seed.PERSONAS))  # fmt: skip
            state.save(folder)  # written last: its presence means the seeding finished
        else:
            _say(f"Prolita sandbox: starting with the data in {folder} (--fresh starts over) ...")
            await seed.prepare_database(settings.database_url)
        return state

    def _populate_world(self, state: SandboxState) -> None:
        """The bot and every persona, with the ids the database knows; they all 'started' the bot."""
        bot = self.tg.make_bot(state.token, username=BOT_USERNAME, first_name=BOT_NAME)
        for p in state.personas:
            user = self.tg.user(p.first_name, p.last_name, username=p.username, language_code=p.language_code,
                                phone=p.phone, id=p.id)  # fmt: skip
            user.location = BONTANG
            if p.seeded:
                self.tg.world.conversation(bot, user.account).started = True

    async def _register_files(self) -> None:
        """Put the files the bot knows by file id into the fake Telegram (its memory starts empty)."""
        world = self.tg.world
        for item in await seed.telegram_files(seed.settings_for(self.folder)):
            file_id = item["file_id"]
            if file_id in world.files:
                continue
            if file_id.startswith("AgAC"):  # a photo's file id (the fake server's format)
                try:
                    stored = world.store_photo(item["data"])[-1]
                except Exception:
                    continue
            else:
                name = "berita-acara.pdf" if item["mime"] == "application/pdf" else f"file{item['suffix']}"
                stored = world.store_file(item["data"], "document", file_name=name, mime_type=item["mime"])
            del world.files[stored.file_id]
            stored.file_id = file_id
            stored.file_unique_id = item["file_unique_id"] or stored.file_unique_id
            world.files[file_id] = stored

    def _bot_env(self) -> dict[str, str]:
        assert self.state is not None
        env = {k: v for k, v in os.environ.items() if k not in DROP_ENV}
        root = str(Path(__file__).resolve().parents[2])  # so `python -m bot` works from any folder
        env.update(
            BOT_TOKEN=self.state.token,
            TELEGRAM_API_URL=self.tg.base_url,
            DATABASE_URL=seed.database_url(self.folder),
            MEDIA_DIR=str((self.folder / seed.MEDIA_DIR).resolve()),
            ADMIN_IDS=str(seed.ADMIN_ID),
            POLLING_TIMEOUT="10",
            PYTHONUNBUFFERED="1",
            PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
        )
        env.setdefault("LOG_LEVEL", "INFO")
        return env

    async def _start_bot(self) -> None:
        log = (self.folder / seed.LOG_FILE).open("ab")
        extra: dict[str, Any] = {"process_group": 0}  # Ctrl-C reaches the sandbox only; it stops the bot
        if sys.platform.startswith("linux"):
            extra["preexec_fn"] = _die_with_parent
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", cwd=str(self.folder), env=self._bot_env(),
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, **extra,
            )  # fmt: skip
        finally:
            log.close()

    async def _wait_ready(self) -> bool:
        """True once the bot long-polls; False if asked to stop first. Raises BotFailed."""
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        while not any(c.method == "getUpdates" for c in self.tg.calls[-50:]):
            if self._stop.is_set():
                return False
            if self.proc.returncode is not None:
                self._report_bot_exit()
                raise BotFailed()
            if loop.time() > deadline:
                raise BotFailed(f"the bot did not start within {READY_TIMEOUT:.0f}s; see {self.folder / seed.LOG_FILE}")
            await asyncio.sleep(0.05)
        return True

    def _report_bot_exit(self) -> None:
        assert self.proc is not None
        log = self.folder / seed.LOG_FILE
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
        print(f"prolita-bot sandbox: the bot stopped unexpectedly (exit code {self.proc.returncode}). "
              f"Last lines of {log}:", file=sys.stderr)  # fmt: skip
        for line in tail:
            print(f"  | {line}", file=sys.stderr)

    async def _stop_bot(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    # ------------------------------------------------------------------------------------ web

    def _install_web(self, app: web.Application) -> None:
        @web.middleware
        async def index(request: web.Request, handler: Any) -> web.StreamResponse:
            # "/" of the fake server answers JSON; in the sandbox it is the web chat.
            if request.path in ("/", "/index.html") and request.method in ("GET", "HEAD"):
                return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})
            return await handler(request)

        app.middlewares.append(index)
        app.router.add_static("/static/", STATIC, append_version=False)
        app.router.add_get("/sandbox/info", self.h_info)
        app.router.add_get("/sandbox/personas", self.h_personas)
        app.router.add_post("/sandbox/personas", self.h_new_persona)
        app.router.add_post("/sandbox/chats/{user_id}/keyboard", self.h_keyboard)
        app.router.add_post("/sandbox/chats/{user_id}/media", self.h_media)
        app.router.add_post("/sandbox/chats/{user_id}/vote", self.h_vote)
        app.router.add_get("/sandbox/files/{file_id}", self.h_file)

    def _persona_json(self, p: Persona) -> dict[str, Any]:
        return {
            "id": p.id, "first_name": p.first_name, "last_name": p.last_name, "full_name": p.full_name,
            "username": p.username, "phone": p.phone, "role": p.role, "title": p.title,
            "language_code": p.language_code, "seeded": p.seeded,
        }  # fmt: skip

    def _bot_json(self) -> dict[str, Any] | None:
        if self.state is None:
            return None
        bot = self.tg.world.tokens.get(self.state.token)
        return None if bot is None else {"id": bot.id, "username": bot.username, "first_name": bot.first_name}

    async def h_info(self, request: web.Request) -> web.Response:
        return _json({"status": self.status, "bot": self._bot_json(), "default_location": list(BONTANG)})

    async def h_personas(self, request: web.Request) -> web.Response:
        personas = self.state.personas if self.state is not None and self.status != "preparing" else []
        return _json({"status": self.status, "bot": self._bot_json(),
                      "personas": [self._persona_json(p) for p in personas]})  # fmt: skip

    async def h_new_persona(self, request: web.Request) -> web.Response:
        if self.state is None or self.status == "preparing":
            return _json({"error": "the sandbox is still starting"}, 503)
        try:
            body = await request.json()
        except ValueError:
            return _json({"error": "JSON body expected"}, 400)
        first = str(body.get("first_name") or "").strip()
        last = str(body.get("last_name") or "").strip() or None
        username = str(body.get("username") or "").strip().lstrip("@") or None
        phone = re.sub(r"[^\d+]", "", str(body.get("phone") or "")) or None
        language = str(body.get("language_code") or "id").strip()[:8] or "id"
        if not 1 <= len(first) <= 64 or (last and len(last) > 64):
            return _json({"error": "Nama depan wajib diisi (1–64 huruf)."}, 400)
        if username and not USERNAME_RE.match(username):
            return _json({"error": "Username: 5–32 huruf, angka atau _, diawali huruf."}, 400)
        taken = {u.username.lower() for u in self.tg.world.users.values() if u.username}
        if username and username.lower() in taken:
            return _json({"error": f"Username @{username} sudah dipakai."}, 409)
        if phone and not re.fullmatch(r"\+?\d{8,15}", phone):
            return _json({"error": "Nomor HP tidak valid, contoh: +6281234567890."}, 400)
        if phone is None:
            phone = f"+62813{random.randint(10**7, 10**8 - 1)}"
        user = self.tg.user(first, last, username=username, language_code=language, phone=phone)
        user.location = BONTANG
        persona = Persona(user.id, first, last, username, phone, "baru", "Pengguna baru", language, seeded=False)
        self.state.personas.append(persona)
        self.state.save(self.folder)
        return _json(self._persona_json(persona))

    def _user(self, request: web.Request) -> Any:
        try:
            return self.tg.sim_user(int(request.match_info["user_id"]))
        except (KeyError, ValueError):
            raise web.HTTPNotFound(text='{"error": "unknown user"}', content_type="application/json") from None

    @staticmethod
    def _result(result: Any) -> web.Response:
        if isinstance(result, list):
            return _json({"ok": True, "result": [m.to_dict() for m in result]})
        return _json({"ok": True, "result": result.to_dict() if hasattr(result, "to_dict") else result})

    async def h_keyboard(self, request: web.Request) -> web.Response:
        """A reply-keyboard button: its text, or the persona's own contact, or a location."""
        user = self._user(request)
        body = await request.json()
        text = str(body.get("text") or "")
        conv = user.chat()
        keyboard = conv.reply_keyboard or {}
        button = next((b for row in keyboard.get("keyboard", []) for b in row if b.get("text") == text), None)
        try:
            if button is not None and button.get("request_contact"):
                sent = await user.share_contact()
            elif button is not None and button.get("request_location"):
                lat = float(body.get("latitude", BONTANG[0]))
                lon = float(body.get("longitude", BONTANG[1]))
                if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                    return _json({"error": "Koordinat di luar jangkauan."}, 400)
                sent = await user.share_location(lat, lon)
            else:
                sent = await user.send(text)
        except ValueError as exc:
            return _json({"error": str(exc)}, 409)
        if keyboard.get("one_time_keyboard"):
            conv.keyboard_hidden = True
        return self._result(sent)

    async def h_media(self, request: web.Request) -> web.Response:
        """Photos (compressed, an album when several) or files from the user's disk."""
        user = self._user(request)
        form = await request.post()
        as_document = form.get("as") == "document"
        caption = str(form.get("caption") or "").strip() or None
        items: list[tuple[str, bytes]] = []
        for field in form.getall("file", []):
            if isinstance(field, str):
                continue
            items.append((field.filename or "file.bin", field.file.read()))
        if not items:
            return _json({"error": "Pilih file dulu."}, 400)
        if any(not data for _, data in items):
            return _json({"error": "File kosong tidak bisa dikirim."}, 400)
        sent: list[Any] = []
        try:
            for start in range(0, len(items), 10):  # Telegram sends more than 10 as several albums
                chunk = items[start : start + 10]
                text = caption if start == 0 else None
                if len(chunk) == 1:
                    name, data = chunk[0]
                    if as_document:
                        sent.append(await user.send_document(data, file_name=name, caption=text))
                    else:
                        sent.append(await user.send_photo(data, caption=text))
                else:
                    album = chunk if as_document else [data for _, data in chunk]
                    sent.extend(await user.send_album(album, caption=text))
        except (ValueError, ApiError) as exc:
            return _json({"error": getattr(exc, "description", None) or str(exc)}, 409)
        except Exception as exc:  # Pillow cannot read it as a photo, etc.
            return _json({"error": f"Telegram tidak menerima file ini sebagai foto ({exc.__class__.__name__}); "
                                   "kirim sebagai file."}, 409)  # fmt: skip
        return self._result(sent)

    async def h_vote(self, request: web.Request) -> web.Response:
        user = self._user(request)
        body = await request.json()
        message = user.chat().get(int(body.get("message_id") or 0))
        try:
            await user.vote([int(i) for i in body.get("option_ids") or []], message=message)
        except (LookupError, ValueError) as exc:
            return _json({"error": str(exc)}, 409)
        return _json({"ok": True})

    async def h_file(self, request: web.Request) -> web.StreamResponse:
        """A file by id, through the fake server's file URL (as the bot would download it)."""
        stored = self.tg.world.file(request.match_info["file_id"])
        if stored is None or self.state is None:
            raise web.HTTPNotFound(text="file not found")
        raise web.HTTPFound(f"/file/bot{self.state.token}/{stored.file_path}")


def main(folder: Path, port: int, fresh: bool) -> int:
    sandbox = Sandbox(folder, port=port, fresh=fresh)
    try:
        return asyncio.run(sandbox.run())
    except PortInUse:
        print(f"prolita-bot sandbox: port {port} is already in use (is another sandbox running?). "
              f"Choose another one, e.g. prolita-bot sandbox --port {port + 1}", file=sys.stderr)  # fmt: skip
        return 2
    except SandboxDataError as exc:
        print(f"prolita-bot sandbox: {exc}.\n  Start with --fresh to reset the sandbox "
              f"(this deletes the demo data in {folder}): prolita-bot sandbox --fresh", file=sys.stderr)  # fmt: skip
        return 2
    except BotFailed as exc:
        if exc.args:
            print(f"prolita-bot sandbox: {exc.args[0]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
