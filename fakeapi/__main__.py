"""Run the fake Telegram Bot API standalone: ``python -m fakeapi --port 8081``.

Prints the base URL and a bot token; point a bot at it with
``TelegramAPIServer.from_base(base_url)``. Simulated users are driven over the ``/_sim/`` control API
(see :mod:`fakeapi.control`), e.g.::

    curl -X POST localhost:8081/_sim/users -d '{"first_name": "Siti", "language_code": "id"}'
    curl -X POST localhost:8081/_sim/chats/<user_id>/send -d '{"text": "/start"}'
    curl localhost:8081/_sim/chats/<user_id>
    curl -N localhost:8081/_sim/events
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from .config import RateLimits
from .simulator import FakeTelegram


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fakeapi", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", help="bot token to register (default: a new random one)")
    parser.add_argument("--username", help="the bot's username (default: test<id>_bot)")
    parser.add_argument("--first-name", help="the bot's name")
    parser.add_argument("--user", action="append", default=[], metavar="FIRST_NAME[:LANG[:PHONE]]",
                        help="create a simulated user (repeatable)")  # fmt: skip
    parser.add_argument("--rate-limits", action="store_true", help="enforce Telegram-like flood limits")
    parser.add_argument("--rate-limit-scale", type=float, default=1.0, metavar="FACTOR",
                        help="with --rate-limits: raise the overall and per-chat rates FACTOR times")  # fmt: skip
    parser.add_argument(
        "--insecure-webhooks", action="store_true", help="accept http:// webhooks on any port"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every API call")
    args = parser.parse_args(argv)
    if not args.rate_limit_scale > 0:
        parser.error("--rate-limit-scale must be positive")
    return args


async def serve(args: argparse.Namespace) -> None:
    tg = FakeTelegram(
        host=args.host,
        port=args.port,
        control_api=True,
        rate_limits=RateLimits(enabled=True).scaled(args.rate_limit_scale) if args.rate_limits else None,
        allow_insecure_webhooks=args.insecure_webhooks,
    )
    bot = tg.make_bot(args.token, username=args.username, first_name=args.first_name)
    users = []
    for spec in args.user:
        first_name, _, rest = spec.partition(":")
        language, _, phone = rest.partition(":")
        users.append(tg.user(first_name, language_code=language or "en", phone=phone or None))
    await tg.start()
    print(f"Fake Telegram Bot API at {tg.base_url}")
    print(f"  bot token : {bot.token}  (@{bot.username}, id {bot.id})")
    print(
        f'  aiogram   : Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base("{tg.base_url}")))'
    )
    print(f"  control   : {tg.base_url}/_sim/state  (see python -m fakeapi --help / fakeapi/control.py)")
    for user in users:
        print(f"  user      : {user.first_name} id {user.id} -> POST {tg.base_url}/_sim/chats/{user.id}/send")
    if args.verbose:
        subscription = tg.subscribe(kinds=["api_call"])

        async def log_calls() -> None:
            async for event in subscription:
                call = event.data["call"]
                print(f"{call.method} {call.params} -> {call.status}", flush=True)

        asyncio.get_running_loop().create_task(log_calls())
    try:
        await asyncio.Event().wait()
    finally:
        await tg.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
