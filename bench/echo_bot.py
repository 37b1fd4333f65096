"""The ceiling: a bare aiogram echo bot (default polling, one ``message.answer`` per text).

Run against the fake server by the surge benchmark with ``BOT_TOKEN`` and ``TELEGRAM_API_URL``;
nothing else, so the surge figures can be given as a ratio of what aiogram alone does on this machine.
"""

from __future__ import annotations

import asyncio
import logging
import os

from aiogram import Bot, Dispatcher, F
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message

dp = Dispatcher()


@dp.message(F.text)
async def echo(message: Message) -> None:
    await message.answer(message.text)


async def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    session = AiohttpSession(api=TelegramAPIServer.from_base(os.environ["TELEGRAM_API_URL"]))
    bot = Bot(os.environ["BOT_TOKEN"], session=session)
    await dp.start_polling(bot, polling_timeout=int(os.environ.get("POLLING_TIMEOUT", "10")), handle_signals=True)


if __name__ == "__main__":
    asyncio.run(main())
