"""Configuration: defaults, parsing, errors that name the variable, and the CLI's exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith(("BOT_", "TELEGRAM_", "DATABASE_", "ADMIN_", "PROGRAM_", "BUDGET_", "TIMEZONE",
                           "REDIS_", "LOG_", "MEDIA_", "PROPOSAL_", "FISCAL_")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults():
    s = load_settings()
    assert s.bot_token is None
    assert s.database_url == "sqlite+aiosqlite:///./prolita.db"
    assert (s.program_name, s.budget_per_rt, s.proposal_code_prefix) == ("Prolita", 50_000_000, "PRL")
    assert s.timezone == "Asia/Makassar" and s.admin_ids == ()


def test_parsing(monkeypatch):
    monkeypatch.setenv("ADMIN_IDS", "12345, 67890")
    monkeypatch.setenv("TELEGRAM_API_URL", "http://127.0.0.1:8081/")
    monkeypatch.setenv("PROPOSAL_CODE_PREFIX", "pbb")
    monkeypatch.setenv("BUDGET_PER_RT", "100000000")
    s = load_settings()
    assert s.admin_ids == (12345, 67890)
    assert s.telegram_api_url == "http://127.0.0.1:8081"
    assert s.proposal_code_prefix == "PBB" and s.budget_per_rt == 100_000_000


def test_env_file_is_read(tmp_path):
    (tmp_path / ".env").write_text("BOT_TOKEN=123:abc\nPROGRAM_NAME=Probebaya\n")
    s = load_settings()
    assert s.bot_token.get_secret_value() == "123:abc" and s.program_name == "Probebaya"
    assert "123:abc" not in repr(s) and "123:abc" not in str(s.model_dump())


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("ADMIN_IDS", "abc"),
        ("DATABASE_URL", "mysql://x"),
        ("TIMEZONE", "Mars/Base"),
        ("BUDGET_PER_RT", "-5"),
        ("BUDGET_PER_RT", "lima puluh juta"),
        ("PROPOSAL_CODE_PREFIX", "P-1"),
        ("TELEGRAM_API_URL", "ftp://x"),
        ("LOG_LEVEL", "LOUD"),
        ("FISCAL_YEAR", "26"),
        ("WEBHOOK_MAX_CONNECTIONS", "0"),
        ("WEBHOOK_MAX_CONNECTIONS", "101"),
    ],
)
def test_bad_value_names_the_variable(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert var in str(err.value)


def _run(args, env_extra, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DATABASE_", "BUDGET_"))}
    env.update(env_extra, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=60)


def test_no_token_exits_2_with_help_and_no_traceback(tmp_path):
    r = _run([], {}, tmp_path)
    assert r.returncode == 2
    assert "BotFather" in r.stderr and "BOT_TOKEN" in r.stderr and "Traceback" not in r.stderr


def test_bad_config_exits_2_naming_variable(tmp_path):
    r = _run([], {"BOT_TOKEN": "1:x", "BUDGET_PER_RT": "abc"}, tmp_path)
    assert r.returncode == 2 and "BUDGET_PER_RT" in r.stderr and "Traceback" not in r.stderr


def test_db_upgrade_and_import_cli(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    r = _run(["db", "upgrade"], {"DATABASE_URL": url}, tmp_path)
    assert r.returncode == 0, r.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("kecamatan,kelurahan,rt\nBontang Utara,Api-Api,1\nBontang Utara,Api-Api,abc\n,Loktuan,2\n")
    r = _run(["import-wilayah", str(bad)], {"DATABASE_URL": url}, tmp_path)
    assert r.returncode == 1 and "line 3" in r.stderr and "line 4" in r.stderr
    r = _run(["import-wilayah", str(ROOT / "bot" / "data" / "wilayah_bontang.csv")], {"DATABASE_URL": url}, tmp_path)
    assert r.returncode == 0 and "499" in r.stdout


def test_program_cli_edits_one_year_only(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'prog.db'}"
    r = _run(["program", "set", "--year", "2027", "--budget", "100jt", "--name", "Prolita Plus"],
             {"DATABASE_URL": url}, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Rp 100.000.000" in r.stdout and "Prolita Plus 2027" in r.stdout
    r = _run(["program", "show", "--year", "2026"], {"DATABASE_URL": url}, tmp_path)
    assert "Rp 50.000.000" in r.stdout and "Prolita 2026" in r.stdout
    r = _run(["program", "set", "--year", "2027", "--opens", "2027-06-01", "--closes", "2027-01-01"],
             {"DATABASE_URL": url}, tmp_path)
    assert r.returncode == 2 and "opens after it closes" in r.stderr


def test_program_cli_sets_a_years_reminder_and_escalation_settings(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'prog.db'}"
    good = tmp_path / "reminders.json"
    good.write_text('{"window_days": [10, 2], "sla_working_days": 3, "texts": {"window": "Ayo, {days} hari lagi"}}')
    r = _run(["program", "set", "--year", "2027", "--reminders", str(good)], {"DATABASE_URL": url}, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "window closing in 10, 2 day(s)" in r.stdout and "overdue after 3 working days" in r.stdout
    assert "own text for window: Ayo, {days} hari lagi" in r.stdout
    r = _run(["program", "show", "--year", "2026"], {"DATABASE_URL": url}, tmp_path)
    assert "reminders      : on (defaults)" in r.stdout and "overdue after 5 working days" in r.stdout
    bad = tmp_path / "bad.json"
    for content, message in (
        ('{"sla_working_days": 0}', "sla_working_days must be a number of days"),
        ('{"windows": [7]}', "unknown reminder setting(s): windows"),
        ("[1, 2]", "one JSON object"),
        ("{not json", "Expecting property name"),
    ):
        bad.write_text(content)
        r = _run(["program", "set", "--year", "2027", "--reminders", str(bad)], {"DATABASE_URL": url}, tmp_path)
        assert r.returncode == 2 and message in r.stderr, (content, r.stderr)
    r = _run(["program", "show", "--year", "2027"], {"DATABASE_URL": url}, tmp_path)
    assert "overdue after 3 working days" in r.stdout  # the bad files changed nothing
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    r = _run(["program", "set", "--year", "2027", "--reminders", str(empty)], {"DATABASE_URL": url}, tmp_path)
    assert r.returncode == 0 and "(defaults)" in r.stdout
