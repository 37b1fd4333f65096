"""A faithful fake of the Telegram Bot API (HTTP server) plus a user simulator for tests.

* :class:`FakeTelegram` — start the server in the current event loop, create bots and users;
* :class:`SimUser` — a simulated person: ``send``, ``press``, ``share_contact``, ``wait_message``...;
* :class:`FakeBotAPI` — the aiohttp server alone (``python -m fakeapi`` runs it standalone);
* :class:`World` — the observable state (bots, users, chats, messages, files, update queues, events).
"""

from .config import RateLimits, ServerConfig
from .errors import ApiError
from .media import make_jpeg, make_pdf, read_exif
from .server import ApiCall, FakeBotAPI, Fault
from .simulator import CallbackAnswer, FakeTelegram, SimUser, WaitTimeout
from .state import BotAccount, ChatMessage, Conversation, Event, Subscription, UserAccount, World
from .text import entities_to_html, parse_html

__all__ = [
    "ApiCall",
    "ApiError",
    "BotAccount",
    "CallbackAnswer",
    "ChatMessage",
    "Conversation",
    "Event",
    "FakeBotAPI",
    "FakeTelegram",
    "Fault",
    "RateLimits",
    "ServerConfig",
    "SimUser",
    "Subscription",
    "UserAccount",
    "WaitTimeout",
    "World",
    "entities_to_html",
    "make_jpeg",
    "make_pdf",
    "parse_html",
    "read_exif",
]
