"""Start-up memory: the bot process does not import the heavy libraries that only a few features
use (the digest chart, the reused-photo check, thumbnails, the Excel recap). They are imported
where they are used, so the bot does not hold them in memory from the start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

HEAVY = ("matplotlib", "numpy", "scipy", "imagehash", "PIL", "openpyxl", "pandas")

# What `python -m bot` imports before its first update: the CLI, the app, the dispatcher with every
# router, the background services (outbox sender, broadcast progress, scheduler with all its jobs).
START = """
import json, sys

import bot.__main__
import bot.app
import bot.notices
import bot.notices_broadcast
import bot.notifier
from bot.app import build_dispatcher
from bot.clock import SystemClock
from bot.config import Settings
from bot.i18n import build_i18n
from bot.scheduler import build_scheduler

settings = Settings(_env_file=None, bot_token="1:test", scheduled_messages=True, media_orphan_days=30)
build_dispatcher(settings, None, build_i18n())
build_scheduler(settings, None, SystemClock())
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules} & set(HEAVY))))
"""


def test_start_imports_no_heavy_library(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DATABASE_", "PYTHON"))}
    env["PYTHONPATH"] = str(ROOT)
    code = f"HEAVY = {HEAVY!r}\n{START}"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    loaded = json.loads(r.stdout.strip().splitlines()[-1])
    assert loaded == [], f"imported at start (import them where they are used): {loaded}"
