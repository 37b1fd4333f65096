"""Every command a router handles is in KNOWN_COMMANDS (else it would be answered as unknown),
and every command in Telegram's menus follows Telegram's naming rule."""

import re

from aiogram.filters import Command

from bot.app import command_menu
from handlers.common import KNOWN_COMMANDS


def _handled_commands() -> set[str]:
    """Commands of every router the real dispatcher includes (so a new router is never missed)."""
    from bot.app import build_dispatcher
    from bot.config import Settings
    from bot.i18n import build_i18n

    settings = Settings(_env_file=None, bot_token="1:test")  # type: ignore[call-arg]
    dp = build_dispatcher(settings, None, build_i18n())  # the SQL storage only keeps the sessionmaker
    found: set[str] = set()
    routers = list(dp.sub_routers)
    while routers:
        router = routers.pop()
        routers.extend(router.sub_routers)
        for handler in router.message.handlers:
            for f in handler.filters or []:
                if isinstance(f.callback, Command):
                    found |= {c if isinstance(c, str) else c.command for c in f.callback.commands}
    return found


def test_known_commands_match_handlers():
    handled = _handled_commands()
    assert handled, "no Command filters found"
    assert handled <= KNOWN_COMMANDS | {"start"}
    assert KNOWN_COMMANDS - {"start"} <= handled


def test_menu_commands_follow_telegram_rule():
    for role in ("default", "admin"):
        for command, _desc in command_menu(role):
            assert re.fullmatch(r"[a-z0-9_]{1,32}", command)
            assert command in KNOWN_COMMANDS
