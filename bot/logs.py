"""``LOG_FORMAT=json``: one JSON object per log line, for log collectors (Loki, ELK, Cloud Logging).

Each line has ``time`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``; a traceback comes as
``exc_info`` inside the same object, so one event is always one line.
"""

from __future__ import annotations

import logging

from pythonjsonlogger.json import JsonFormatter


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",  # the record's creation time, ISO 8601 in UTC
        json_ensure_ascii=False,
    )


def use_json(logger: logging.Logger | None = None) -> None:
    """Make every handler of ``logger`` (default: the root logger) write JSON lines."""
    for handler in (logger or logging.getLogger()).handlers:
        handler.setFormatter(json_formatter())
