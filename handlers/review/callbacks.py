"""Callback data of the officer's review (ids and versions only; the dialog lives in the FSM)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData

from handlers.common import CbInt


class ReviewCb(CallbackData, prefix="tj"):
    """``action``: list (queue page; ``id`` is the offset), open (show a proposal's card), loc, foto,
    bukti (send the map pin / photos / musyawarah evidence), ok (approve: ask for a note), okn (approve
    without a note), no (reject: ask the reason), rev (request a revision: parts checklist), part
    (toggle part ``arg``), next (parts chosen: ask the note); ``id`` is the proposal id and ``v``
    the version the card showed."""

    action: str
    id: CbInt = 0
    v: CbInt = 0
    arg: str = ""
