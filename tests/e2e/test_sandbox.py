"""``prolita-bot sandbox`` as a user runs it: a subprocess serving the web chat, the embedded fake Bot
API and the real bot; the seeded personas answer; SIGTERM stops everything cleanly; a busy port, a
damaged database and a restart are handled. The last test drives the page in headless Chromium."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox.seed import HEAD_ID, OFFICER_ID
from tests.e2e.conftest import ROOT, t

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command() -> list[str]:
    script = Path(sys.executable).with_name("prolita-bot")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot"]


class Sandbox:
    """``prolita-bot sandbox`` in a subprocess, its output in a file."""

    def __init__(self, tmp_path: Path, port: int, folder: Path, *extra: str, name: str = "sandbox") -> None:
        self.port = port
        self.folder = folder
        self.url = f"http://127.0.0.1:{port}"
        self.out_path = tmp_path / f"{name}.out"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DATABASE_", "ADMIN_", "TELEGRAM_"))}
        env.update(PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
        with self.out_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [*command(), "sandbox", "--port", str(port), "--dir", str(folder), *extra],
                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def bot_log(self) -> str:
        path = self.folder / "bot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            body = response.read()
            return json.loads(body) if response.headers.get_content_type() == "application/json" else body.decode()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=20) as response:
            return json.loads(response.read())

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"sandbox exited with {self.proc.returncode}:\n{self.output()}\n{self.bot_log()}")
            try:
                if self.get("/sandbox/personas")["status"] == "running":
                    return
            except (OSError, urllib.error.URLError, ValueError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"sandbox not ready after {timeout}s:\n{self.output()}\n{self.bot_log()[-3000:]}")

    def wait_exit(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"sandbox did not exit within {timeout}s:\n{self.output()}") from None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit()

    def wait_bot_message(self, user_id: int, predicate, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chat = self.get(f"/_sim/chats/{user_id}")
            for item in chat["messages"]:
                if item["sender"] == "bot" and not item["deleted"] and predicate(item["message"]):
                    return item["message"]
            time.sleep(0.1)
        seen = json.dumps(chat, ensure_ascii=False)[-3000:]
        raise AssertionError(f"no such bot message for {user_id}; chat:\n{seen}")


def _text(message: dict[str, Any]) -> str:
    return message.get("text") or message.get("caption") or ""


def _has_button(message: dict[str, Any], label: str) -> bool:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return any(button["text"] == label for row in rows for button in row)


def _check_clean_stop(sandbox: Sandbox) -> None:
    assert sandbox.stop() == 0, sandbox.output()
    assert "Traceback" not in sandbox.output(), sandbox.output()
    assert "Traceback" not in sandbox.bot_log(), sandbox.bot_log()[-6000:]


@pytest.fixture
def started(tmp_path: Path):
    """A running sandbox (first start: seeded); stopped at the end if the test did not."""
    sandbox = Sandbox(tmp_path, free_port(), tmp_path / "data")
    try:
        sandbox.wait_ready()
        yield sandbox
    finally:
        if sandbox.proc.poll() is None:
            sandbox.proc.kill()
            sandbox.proc.wait()


def test_sandbox_serves_the_page_personas_and_the_bot(started: Sandbox, tmp_path: Path):
    page = started.get("/")
    assert "Prolita Sandbox" in page and "/static/app.js" in page
    assert "function renderText" in started.get("/static/app.js")
    personas = started.get("/sandbox/personas")["personas"]
    assert {"ketua_rt", "petugas", "admin", "warga"} <= {p["role"] for p in personas}
    head = next(p for p in personas if p["id"] == HEAD_ID)
    assert head["role"] == "ketua_rt" and "RT 05" in head["title"]

    # The Ketua RT persona talks to the real bot through the control API.
    started.post(f"/_sim/chats/{HEAD_ID}/send", {"text": "/start"})
    hello = started.wait_bot_message(HEAD_ID, lambda m: "Budi" in _text(m) and "RT 05" in _text(m))
    assert "Api-Api" in hello["text"]
    keyboard = started.get(f"/_sim/chats/{HEAD_ID}")["keyboard"]
    assert t("📄 New proposal") in [b["text"] for row in keyboard["keyboard"] for b in row]

    # The seeded photos are known to the fake Telegram: the officer's card re-sends them.
    started.post(f"/_sim/chats/{OFFICER_ID}/send", {"text": "/tinjau"})
    label = t("🖼 Photos ({count})").format(count=2)
    card = started.wait_bot_message(OFFICER_ID, lambda m: _has_button(m, label))
    photos = next(b for row in card["reply_markup"]["inline_keyboard"] for b in row if b["text"] == label)
    answer = started.post(f"/_sim/chats/{OFFICER_ID}/press",
                          {"data": photos["callback_data"], "message_id": card["message_id"]})  # fmt: skip
    assert answer["result"]["answered"]
    album = started.wait_bot_message(OFFICER_ID, lambda m: bool(m.get("photo")) and m.get("media_group_id"))
    with urllib.request.urlopen(f"{started.url}/sandbox/files/{album['photo'][-1]['file_id']}", timeout=10) as r:
        assert r.headers.get_content_type() == "image/jpeg" and r.read(3) == b"\xff\xd8\xff"

    # A second sandbox on the same port: a clear message, exit 2, nothing touched.
    second = Sandbox(tmp_path, started.port, tmp_path / "other", name="second")
    assert second.wait_exit() == 2
    assert "already in use" in second.output() and "--port" in second.output()
    assert "Traceback" not in second.output()
    assert not (tmp_path / "other" / "sandbox.db").exists()

    _check_clean_stop(started)


def test_restart_keeps_the_data_and_the_files(started: Sandbox, tmp_path: Path):
    created = started.post("/sandbox/personas", {"first_name": "Wati", "username": "wati_baru", "phone": "+6281299"
                                                 "990000"})  # fmt: skip
    _check_clean_stop(started)

    again = Sandbox(tmp_path, free_port(), started.folder, name="again")
    try:
        again.wait_ready()
        ids = {p["id"] for p in again.get("/sandbox/personas")["personas"]}
        assert {HEAD_ID, OFFICER_ID, created["id"]} <= ids
        again.post(f"/_sim/chats/{OFFICER_ID}/send", {"text": "/tinjau"})
        label = t("📄 Musyawarah evidence")
        card = again.wait_bot_message(OFFICER_ID, lambda m: _has_button(m, label))
        evidence = next(b for row in card["reply_markup"]["inline_keyboard"] for b in row if b["text"] == label)
        again.post(f"/_sim/chats/{OFFICER_ID}/press",
                   {"data": evidence["callback_data"], "message_id": card["message_id"]})  # fmt: skip
        document = again.wait_bot_message(OFFICER_ID, lambda m: bool(m.get("document")))
        assert document["document"]["file_name"] == "berita-acara.pdf"
    finally:
        _check_clean_stop(again)


def test_a_damaged_database_says_fresh_resets_it(tmp_path: Path):
    folder = tmp_path / "data"
    folder.mkdir()
    state = {"version": 1, "token": "7123456789:AA" + "x" * 33, "personas": []}
    (folder / "sandbox.json").write_text(json.dumps(state))
    (folder / "sandbox.db").write_bytes(b"this is not a database" * 100)
    sandbox = Sandbox(tmp_path, free_port(), folder)
    assert sandbox.wait_exit() == 2
    assert "--fresh" in sandbox.output() and "Traceback" not in sandbox.output()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (Debian: apt-get install -y chromium)")
def test_ketua_rt_starts_a_proposal_in_the_web_chat(started: Sandbox):
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    ARTIFACTS.mkdir(exist_ok=True)
    title = "Pelatihan menjahit ibu-ibu PKK"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 420, "height": 860}, device_scale_factor=2)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(started.url)
            page.click(f"[data-persona-id='{HEAD_ID}']")
            page.wait_for_selector(".msg")  # the notices the bot delivered at start
            page.fill("#composer-input", "/start")
            page.keyboard.press("Enter")
            menu = page.locator(".kb-btn", has_text=t("📄 New proposal"))
            menu.click()
            page.locator(".ik-btn", has_text=t("➕ Start a new proposal")).click()  # Budi has a draft
            page.locator(".ik-btn", has_text="Sosial budaya").click()
            ask_title = t("Type a short <b>title</b>, e.g. <i>Semenisasi jalan gang RT 05</i>.")
            page.locator(".row.in .msg", has_text=ask_title[:18]).last.wait_for()
            page.fill("#composer-input", title)
            page.click("#send-btn")
            page.locator(".row.out .msg", has_text=title).wait_for()
            prompt = t("Describe it in a few sentences: what will be done, and why the residents need it.")
            page.locator(".row.in .msg", has_text=prompt[:30]).wait_for()
            page.wait_for_timeout(300)  # let the last bubble settle for the screenshot
            page.screenshot(path=str(ARTIFACTS / "sandbox-ketua-rt.png"))
            assert not errors, errors
        finally:
            browser.close()
    with sqlite3.connect(started.folder / "sandbox.db") as db:
        assert db.execute("SELECT status FROM proposals WHERE title = ?", (title,)).fetchone() == ("draf",)
    _check_clean_stop(started)
