"""Typed configuration, read from the environment and an optional ``.env`` file.

Programme values (name, ceiling per RT, code prefix) are only *defaults*: they seed the
``programs`` table for a fiscal year the first time that year is needed, after which the
table is the source of truth and admins may edit it without touching the environment.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


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
    # Reminders to Ketua RT and officers' morning digests (off: e.g. end-to-end tests on real time).
    scheduled_messages: bool = True

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
