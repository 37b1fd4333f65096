"""Callback data of the proposal wizard (ids and versions only; state lives in the database)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData

from handlers.common import CbInt


class PropCb(CallbackData, prefix="pp"):
    """``action``: open (resume a draft / a proposal to revise), cat (category), skip, done, send,
    save, edit (jump menu), part (jump to a part), drop, drop_ok, line (edit a RAB line),
    line_del; ``id`` is the proposal (or line) id; ``v`` the proposal version the card showed."""

    action: str
    id: CbInt = 0
    v: CbInt = 0
    arg: str = ""
