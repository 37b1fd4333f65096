"""End-to-end harness: the fake Bot API server runs in the test's loop; the bot is the real,
unmodified ``python -m bot`` process pointed at it with TELEGRAM_API_URL."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.i18n import build_i18n
from fakeapi import FakeTelegram
from storage.db import create_engine, create_sessionmaker

ROOT = Path(__file__).resolve().parents[2]
ADMIN_ID = 900001
_I18N = build_i18n()


def t(msgid: str, lang: str = "id") -> str:
    """What users see for a msgid (HTML tags stripped, as Telegram shows it): tests press buttons
    and wait for messages by their Indonesian text."""
    return re.sub(r"<[^>]+>", "", _I18N.gettext(msgid, locale=lang))


class BotProcess:
    def __init__(self, tg: FakeTelegram, token: str, db_url: str, workdir: Path, env: dict[str, str]) -> None:
        self.tg = tg
        self.token = token
        self.db_url = db_url
        self.workdir = workdir
        self.extra_env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.log_path = workdir / "bot.log"
        self.starts = 0

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "PROGRAM_", "DATABASE_"))}
        env.update(
            BOT_TOKEN=self.token,
            TELEGRAM_API_URL=self.tg.base_url,
            DATABASE_URL=self.db_url,
            ADMIN_IDS=str(ADMIN_ID),
            MEDIA_DIR=str(self.workdir / "media"),
            LOG_LEVEL="INFO",
            POLLING_TIMEOUT="10",
            # Reminders and digests run on real time: a test must not meet December's year-end reminders.
            SCHEDULED_MESSAGES="0",
            # Simulated users act as soon as the bot answers, faster than any person: flood control
            # is kept out of their way (it still runs); test_flood.py runs it at its defaults.
            THROTTLE_RATE="1000",
            THROTTLE_BURST="10000",
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    async def start(self, *, wait: bool = True) -> None:
        self.starts += 1
        self._calls_before = self.tg.calls[-1].seq if self.tg.calls else 0
        log = self.log_path.open("ab")
        log.write(f"\n===== start #{self.starts} =====\n".encode())
        log.flush()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=str(self.workdir), env=self.env(), stdout=log, stderr=log
        )
        log.close()
        if wait:
            await self.wait_ready()

    async def wait_ready(self, timeout: float = 40.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.proc is not None and self.proc.returncode is not None:
                raise AssertionError(f"bot exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            if any(c.seq > self._calls_before and c.method.lower() == "getupdates" for c in self.tg.calls[-50:]):
                return
            if loop.time() > deadline:
                raise AssertionError(f"bot not polling after {timeout}s:\n{self.log()[-4000:]}")
            await asyncio.sleep(0.05)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(f"bot did not stop within {timeout}s after {sig}:\n{self.log()[-4000:]}") from None

    async def kill(self) -> None:
        await self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'e2e.db'}"


@pytest.fixture
async def launch(tg: FakeTelegram, tmp_path: Path) -> AsyncIterator[Callable[..., BotProcess]]:
    """``await launch(db_url, **env)`` starts the bot process; stopped (and checked) at the end.

    Request ``db_url`` *before* ``launch`` in a test's arguments, so the bot stops before its
    PostgreSQL database is dropped."""
    procs: list[BotProcess] = []

    async def _launch(db_url: str, **env: str) -> BotProcess:
        token = tg.new_bot_token(username="prolita_test_bot", first_name="Prolita")
        proc = BotProcess(tg, token, db_url, tmp_path, env)
        procs.append(proc)
        await proc.start()
        return proc

    yield _launch
    for proc in procs:
        await proc.stop()
        log = proc.log()
        assert "Traceback" not in log, f"the bot logged a traceback:\n{log[-6000:]}"
        assert proc.token not in log, "the bot token appeared in the log"
        # Telegram still honours parameters it replaced (disable_web_page_preview...), so only the
        # fake's record shows the bot sending them.
        deprecated = [(c.method, c.deprecated) for c in tg.deprecated_calls(bot=proc.token)]
        assert not deprecated, f"the bot sent deprecated parameters: {deprecated[:5]}"


@pytest.fixture
async def db(request: pytest.FixtureRequest):
    """A sessionmaker on a URL, for asserting on what is stored (``async with db(url) as s``)."""
    engines = []

    def _open(url: str):
        engine = create_engine(url)
        engines.append(engine)
        return create_sessionmaker(engine)()

    yield _open
    for engine in engines:
        await engine.dispose()
