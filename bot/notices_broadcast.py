"""Broadcasts (/siaran): the recipients' notice (kind "broadcast") and the admin's progress message,
edited as deliveries happen ("Terkirim 120/499 · gagal 2") and once more when done.

Progress is counted from the broadcast's outbox rows and the message id is stored on the
Broadcast row, so editing resumes after a restart; two instances editing the same message only
repeat an edit.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramRetryAfter
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain.text import escape_html
from bot.middlewares.requests import paced_elsewhere
from bot.notices import Notice, renderer
from bot.services import broadcast as broadcasts
from bot.unavailable import OutageLog
from storage.models import Broadcast, Outbox, User

if TYPE_CHECKING:
    from bot.notifier import OutboxSender

log = logging.getLogger("prolita.broadcast")

EDIT_EVERY = 2.0  # seconds between edits of a progress message


def broadcast_text(text: str) -> str:
    """What a recipient sees (the admin's preview is the same)."""
    return _("📣 <b>Announcement</b>") + "\n\n" + escape_html(text)


def progress_text(p: broadcasts.Progress) -> str:
    line = _("Sent {sent}/{total} · failed {failed}").format(sent=p.sent, total=p.total, failed=p.failed)
    if not p.done:
        return _("📣 Sending the broadcast…") + "\n" + line
    done = _("✅ Broadcast finished: {sent} sent, {failed} failed ({blocked} of them blocked the bot).").format(
        sent=p.sent, failed=p.failed, blocked=p.blocked
    )
    return line + "\n" + done


def skipped_text(skipped: int) -> str:
    return _("{n} recipients were skipped: they had blocked the bot earlier.").format(n=skipped) if skipped else ""


@renderer("broadcast")
async def _broadcast(session: AsyncSession, row: Outbox, admin_ids: tuple[int, ...]) -> Notice | None:
    item = await session.get(Broadcast, row.payload["broadcast_id"])
    if item is None:
        return None
    return Notice(broadcast_text(item.text))


class BroadcastProgress:
    """Background task: edits each unfinished broadcast's progress message at most every 2 s."""

    def __init__(
        self,
        bot: Bot,
        sessionmaker: async_sessionmaker[AsyncSession],
        i18n: I18n,
        sender: OutboxSender,
        *,
        interval: float = EDIT_EVERY,
    ) -> None:
        self.bot = bot
        self.sessionmaker = sessionmaker
        self.i18n = i18n
        self.sender = sender
        self.interval = interval
        self._shown: dict[int, str] = {}
        self._stop = asyncio.Event()
        self._outage = OutageLog(log, "broadcast progress")

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.run_once()
            except Exception as exc:
                if not self._outage.failed(exc):
                    log.exception("broadcast progress pass failed")
            else:
                self._outage.succeeded()
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval)
            except TimeoutError:
                pass

    async def run_once(self) -> None:
        async with self.sessionmaker() as session:
            pending = await broadcasts.unfinished(session)
            for item in pending:
                p = await broadcasts.progress(session, item)
                admin = await session.get(User, item.admin_id)
                lang = admin.language if admin is not None else "id"
                with self.i18n.context(), self.i18n.use_locale(lang):
                    text = progress_text(p)
                    if p.done and item.skipped_blocked:
                        text += "\n" + skipped_text(item.skipped_blocked)
                edited = await self._show(item, text)
                if p.done and edited:
                    await broadcasts.mark_finished(session, item.id)
                    self._shown.pop(item.id, None)
                    log.info(
                        "broadcast %s finished: %d/%d sent, %d failed (%d blocked), %d skipped",
                        item.id, p.sent, p.total, p.failed, p.blocked, item.skipped_blocked,
                    )

    async def _show(self, item: Broadcast, text: str) -> bool:
        if item.progress_chat_id is None or item.progress_message_id is None:
            return True
        if self._shown.get(item.id) == text:
            return True
        await self.sender.acquire(item.progress_chat_id)
        try:
            with paced_elsewhere():
                await self.bot.edit_message_text(
                    text=text, chat_id=item.progress_chat_id, message_id=item.progress_message_id
                )
        except TelegramRetryAfter as exc:
            self.sender.limiter.pause_chat(item.progress_chat_id, exc.retry_after)
            return False
        except TelegramBadRequest as exc:
            if "not modified" not in exc.message:  # e.g. the admin deleted it: nothing left to edit
                log.warning("broadcast %s: cannot edit the progress message: %s", item.id, exc.message)
        except TelegramAPIError as exc:
            log.warning("broadcast %s: progress edit failed (%s); trying again", item.id, exc)
            return False
        self._shown[item.id] = text
        return True
