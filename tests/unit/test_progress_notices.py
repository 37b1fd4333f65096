"""The RT head's "more evidence" notice: a button to send the new report when one can be sent; when
the questioned report is an earlier one and the 100% report is being verified, no button but a line
that says when the new report can come (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import select

from bot import notices
from bot.i18n import build_i18n
from bot.services import progress
from storage.models import Outbox
from tests.unit.test_progress_service import _roles, approved_proposal, good_photo
from tests.unit.test_proposals_service import ADMIN, OFFICER_API, setup_world

WAIT_LINE = "Your 100% report is being verified now"


async def render_more_evidence(sessionmaker) -> notices.Notice:
    async with sessionmaker() as s:
        row = await s.scalar(select(Outbox).where(Outbox.kind == progress.NOTICE_MORE_EVIDENCE))
        i18n = build_i18n()
        with i18n.context(), i18n.use_locale("en"):
            notice = await notices.render(s, row, (ADMIN,))
    assert notice is not None
    return notice


def buttons(notice: notices.Notice) -> list[str]:
    return [b.text for r in (notice.reply_markup.inline_keyboard if notice.reply_markup else []) for b in r]


async def ask_more_evidence(sessionmaker, tmp_path, percents: tuple[int, ...], asked_on: int, note: str):
    """Reports at ``percents`` on one approved proposal; the officer asks for more on report ``asked_on``."""
    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    p = await approved_proposal(sessionmaker, w)
    officer = await _roles(sessionmaker, OFFICER_API)
    async with sessionmaker() as s:
        made = []
        for i, percent in enumerate(percents, 1):
            photo = await good_photo(s, w, i)
            spent = 4_700_000 * percent // 100
            made.append(await progress.report(s, w.heads[0], p.id, percent=percent, spent_total=spent, photos=[photo]))
        await progress.verify(s, OFFICER_API, officer, made[asked_on].id, "minta_bukti", note=note)
    return await render_more_evidence(sessionmaker)


async def test_more_evidence_on_an_earlier_report_while_the_final_one_waits(sessionmaker, tmp_path):
    notice = await ask_more_evidence(sessionmaker, tmp_path, (60, 100), 0, "Nota semen belum ada")
    assert "Nota semen belum ada" in notice.text and WAIT_LINE in notice.text
    assert buttons(notice) == []


async def test_more_evidence_on_the_final_report_offers_a_new_report(sessionmaker, tmp_path):
    notice = await ask_more_evidence(sessionmaker, tmp_path, (100,), 0, "Foto dari depan gang")
    assert "Foto dari depan gang" in notice.text and WAIT_LINE not in notice.text
    assert buttons(notice) == ["📈 Send a new report"]
