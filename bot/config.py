"""Typed configuration, read from the environment and an optional ``.env`` file.

Programme values (name, ceiling per RT, code prefix) are only *defaults*: they seed the
``programs`` table for a fiscal year the first time that year is needed, after which the
table is the source of truth and admins may edit it without touching the environment.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
LOG_FORMATS = ("text", "json")
# Paths the web server serves itself; the webhook cannot use them.
WEB_PATHS = ("/healthz", "/readyz", "/metrics")


def default_instance_id() -> str:
    """``hostname-pid``: unique per running process, readable in logs and in ``pg_stat_activity``."""
    return f"{socket.gethostname()}-{os.getpid()}"


class ConfigError(Exception):
    """A configuration value is missing or invalid; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: SecretStr | None = None
    telegram_api_url: str | None = None
    database_url: str = "sqlite+aiosqlite:///./prolita.db"
    admin_ids: Annotated[tuple[int, ...], NoDecode] = ()
    media_dir: Path = Path("./media")
    timezone: str = "Asia/Makassar"
    redis_url: str | None = None
    log_level: str = "INFO"

    program_name: str = "Prolita"
    budget_per_rt: int = Field(default=50_000_000)
    proposal_code_prefix: str = "PRL"
    fiscal_year: int | None = None

    # Long polling: seconds the Bot API server may hold a getUpdates request open.
    polling_timeout: int = 25

    # Delivery engine (bot/notifier.py): messages per second overall, requests in flight at once,
    # and how long a claimed outbox row is reserved for its sender before another may take it.
    send_rate: float = 25.0
    send_concurrency: int = 8
    send_lease: int = 300
    # Flood control of incoming updates (bot/middlewares/throttle.py): each user may send
    # THROTTLE_BURST updates (messages, button presses) in a row, then THROTTLE_RATE a second; the
    # rest are dropped, with one "please wait" per flood. An album counts as one. 0 turns it off.
    throttle_rate: float = 1.0
    throttle_burst: int = 10
    # Reminders to Ketua RT and officers' morning digests (off: e.g. end-to-end tests on real time).
    scheduled_messages: bool = True
    # Stored files nothing refers to (a cancelled report's photos, a photo removed from a draft) are deleted
    # after this many days (bot/services/media_gc.py); 0 keeps them for ever.
    media_orphan_days: int = 30
    # Several instances (bot/leader.py): this instance's name in logs and pg_stat_activity, and how
    # often a standby tries the leader lock (and the leader checks it still holds it), in seconds.
    instance_id: str = Field(default_factory=default_instance_id)
    leader_retry: float = 2.0

    # Webhook mode (instead of long polling) when WEBHOOK_URL is set: Telegram POSTs each update to
    # that public HTTPS URL with WEBHOOK_SECRET in a header; the bot listens on PORT (path of the URL)
    # and serves /healthz, /readyz and /metrics there too.
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = Field(default=None, validate_default=True)
    port: int = 8080
    # How many updates Telegram may POST at once (1-100; Telegram's default is 40). Kept below the
    # PostgreSQL pool (10 + 20 overflow) so the scheduler and the sender still get a connection.
    webhook_max_connections: int = Field(default=25, ge=1, le=100)
    # Polling mode: serve /healthz, /readyz and /metrics on this port (off when unset).
    health_port: int | None = None
    log_format: str = "text"

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _parse_admin_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
            try:
                return tuple(int(p) for p in parts)
            except ValueError:
                raise ValueError("must be Telegram user ids separated by commas, e.g. 12345,67890") from None
        if isinstance(value, int):
            return (value,)
        return value

    @field_validator("telegram_api_url")
    @classmethod
    def _check_api_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://, e.g. http://127.0.0.1:8081")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _check_db_url(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must be sqlite+aiosqlite:///path.db or postgresql+asyncpg://user@host:5432/db")
        return value

    @field_validator("timezone")
    @classmethod
    def _check_tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone name such as Asia/Makassar") from None
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        value = value.upper()
        if value not in LOG_LEVELS:
            raise ValueError("must be one of " + ", ".join(LOG_LEVELS))
        return value

    @field_validator("budget_per_rt")
    @classmethod
    def _check_budget(cls, value: int) -> int:
        if value <= 0 or value > 10_000_000_000:
            raise ValueError("must be a whole number of rupiah between 1 and 10000000000, e.g. 50000000")
        return value

    @field_validator("proposal_code_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        value = value.strip().upper()
        if not value.isalpha() or not 2 <= len(value) <= 6:
            raise ValueError("must be 2 to 6 letters, e.g. PRL")
        return value

    @field_validator("fiscal_year")
    @classmethod
    def _check_year(cls, value: int | None) -> int | None:
        if value is not None and not 2000 <= value <= 2100:
            raise ValueError("must be a year such as 2026")
        return value

    @field_validator("polling_timeout")
    @classmethod
    def _check_polling_timeout(cls, value: int) -> int:
        if not 0 <= value <= 50:
            raise ValueError("must be between 0 and 50 seconds")
        return value

    @field_validator("send_rate")
    @classmethod
    def _check_send_rate(cls, value: float) -> float:
        if not 0.1 <= value <= 1000:
            raise ValueError("must be messages per second between 0.1 and 1000, e.g. 25")
        return value

    @field_validator("send_concurrency")
    @classmethod
    def _check_send_concurrency(cls, value: int) -> int:
        if not 1 <= value <= 100:
            raise ValueError("must be between 1 and 100, e.g. 8")
        return value

    @field_validator("send_lease")
    @classmethod
    def _check_send_lease(cls, value: int) -> int:
        if not 10 <= value <= 86400:
            raise ValueError("must be seconds between 10 and 86400, e.g. 300 (longer than a request may take)")
        return value

    @field_validator("throttle_rate")
    @classmethod
    def _check_throttle_rate(cls, value: float) -> float:
        if value != 0 and not 0.05 <= value <= 1000:
            raise ValueError("must be updates per second per user between 0.05 and 1000, e.g. 1 (0: no flood control)")
        return value

    @field_validator("throttle_burst")
    @classmethod
    def _check_throttle_burst(cls, value: int) -> int:
        if not 1 <= value <= 10000:
            raise ValueError("must be between 1 and 10000 updates, e.g. 10")
        return value

    @field_validator("media_orphan_days")
    @classmethod
    def _check_media_orphan_days(cls, value: int) -> int:
        if not 0 <= value <= 3650:
            raise ValueError("must be days between 0 and 3650, e.g. 30 (0 keeps unused files for ever)")
        return value

    @field_validator("instance_id")
    @classmethod
    def _check_instance_id(cls, value: str) -> str:
        value = value.strip()
        if not 1 <= len(value) <= 40 or not value.isprintable():
            raise ValueError("must be 1 to 40 printable characters, e.g. bot-1 (default: hostname-pid)")
        return value

    @field_validator("leader_retry")
    @classmethod
    def _check_leader_retry(cls, value: float) -> float:
        if not 0.2 <= value <= 60:
            raise ValueError("must be seconds between 0.2 and 60, e.g. 2")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ValueError("is not a valid URL, e.g. https://bot.example.go.id/telegram") from None
        # Telegram itself only calls https://; a self-hosted Bot API server (TELEGRAM_API_URL) may use http.
        schemes = ("https", "http") if info.data.get("telegram_api_url") else ("https",)
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError("must be the public https:// address of this bot, e.g. https://bot.example.go.id/telegram")
        if (parts.path.rstrip("/") or "/") in WEB_PATHS:
            raise ValueError("its path must not be " + ", ".join(WEB_PATHS) + " (served by the bot itself)")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        secret = value.get_secret_value() if value is not None else ""
        if not secret:
            if info.data.get("webhook_url"):
                raise ValueError(
                    "must be set when WEBHOOK_URL is set: 1-256 characters A-Z, a-z, 0-9, _ and -, "
                    "e.g. the output of: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
            return None
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise ValueError("must be 1-256 characters A-Z, a-z, 0-9, _ and - (Telegram's rule)")
        return value

    @field_validator("health_port", mode="before")
    @classmethod
    def _empty_health_port(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("port", "health_port")
    @classmethod
    def _check_port(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= 65535:
            raise ValueError("must be a TCP port between 1 and 65535, e.g. 8080")
        return value

    @field_validator("log_format")
    @classmethod
    def _check_log_format(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in LOG_FORMATS:
            raise ValueError("must be text or json")
        return value

    @property
    def webhook_path(self) -> str:
        """The path Telegram POSTs updates to (the path of WEBHOOK_URL)."""
        return (urlsplit(self.webhook_url).path if self.webhook_url else "") or "/"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def current_fiscal_year(self, now: dt.datetime | None = None) -> int:
        if self.fiscal_year is not None:
            return self.fiscal_year
        now = now or dt.datetime.now(dt.UTC)
        return now.astimezone(self.tz).year

    def is_admin(self, user_id: int) -> bool:
        return user_id in self.admin_ids


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning pydantic's errors into one message naming each bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = str(err["loc"][0]).upper() if err["loc"] else "?"
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{name}: {msg}")
        raise ConfigError("Invalid configuration:\n  " + "\n  ".join(lines)) from None
