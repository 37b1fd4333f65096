"""Callback data of progress reporting and verification (ids only; the dialog lives in the FSM)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData

from handlers.common import CbInt


class ProgCb(CallbackData, prefix="pg"):
    """The Ketua RT's /progres dialog. ``action`` "start" (from any message: begin a report on
    proposal ``id``) and the wizard's own steps; ``id`` is a proposal id, ``arg`` a step value."""

    action: str
    id: CbInt = 0
    arg: str = ""
