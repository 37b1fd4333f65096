"""Officers' digests on SQLite and PostgreSQL: only the officer's area, overdue by working days,
nothing for an empty queue or a revoked scope, one row per officer per day under concurrency, and
the rendered notice (a PNG chart with the summary as caption and the queue buttons)."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image
from sqlalchemy import func, select, update

from bot import notices
from bot.domain.money import format_rupiah_short
from bot.i18n import build_i18n
from bot.notices_digests import DigestNotice
from bot.services import digests, officers, proposals
from handlers.review.callbacks import ReviewCb
from storage.db import begin_write
from storage.models import Outbox, Program, Proposal
from tests.unit.test_progress_service import APPROVED_AMOUNT, approved_proposal
from tests.unit.test_proposals_service import (
    ADMIN,
    HEAD_LOK,
    JT,
    OFFICER_API,
    OFFICER_LOK,
    TODAY,
    complete_proposal,
    setup_world,
)

SETTINGS = SimpleNamespace(timezone="Asia/Makassar")
# Tuesday 17 February 2026, 07:00 WITA
NOW = dt.datetime(2026, 2, 16, 23, 0, tzinfo=dt.UTC)
FRI_6_FEB = dt.datetime(2026, 2, 6, 2, 0, tzinfo=dt.UTC)  # 10:00 WITA


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (0, "Rp 0"),
        (999, "Rp 999"),
        (1_500, "Rp 1,5 rb"),
        (500_000, "Rp 500 rb"),
        (1_000_000, "Rp 1 jt"),
        (4_750_000, "Rp 4,8 jt"),
        (47_500_000, "Rp 47,5 jt"),
        (850_000_000, "Rp 850 jt"),
        (999_960_000, "Rp 1 M"),
        (1_200_000_000, "Rp 1,2 M"),
        (150_000_000_000, "Rp 150 M"),
        (-1_250_000_000, "-Rp 1,3 M"),
    ],
)
def test_short_rupiah(amount, shown):
    assert format_rupiah_short(amount) == shown


async def submitted(sessionmaker, w, i: int) -> Proposal:
    head = w.heads[i] if i >= 0 else HEAD_LOK
    async with sessionmaker() as s:
        p = await complete_proposal(s, w, i)
        return await proposals.submit(s, head, p.id, p.version, TODAY, admin_ids=(ADMIN,))


async def set_submitted_at(sessionmaker, proposal_id: int, when: dt.datetime) -> None:
    async with sessionmaker() as s:
        await begin_write(s)
        await s.execute(update(Proposal).where(Proposal.id == proposal_id).values(submitted_at=when))
        await s.commit()


def save_example(name: str, png: bytes) -> None:
    """Keep a rendered chart to look at: ``DIGEST_EXAMPLE_DIR=/tmp/tr pytest tests/unit/test_digests.py``."""
    folder = os.environ.get("DIGEST_EXAMPLE_DIR")
    if folder:
        (Path(folder) / name).write_bytes(png)


async def digest_rows(s) -> list[Outbox]:
    return list((await s.scalars(select(Outbox).where(Outbox.kind == digests.KIND).order_by(Outbox.id))).all())


async def test_digest_shows_only_the_officers_area_with_budget_and_overdue(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path)
    await approved_proposal(sessionmaker, w, 0)
    api = await submitted(sessionmaker, w, 1)
    lok = await submitted(sessionmaker, w, -1)
    await set_submitted_at(sessionmaker, api.id, FRI_6_FEB)
    await set_submitted_at(sessionmaker, lok.id, NOW - dt.timedelta(hours=1))
    async with sessionmaker() as s:
        d = await digests.digest_for(s, OFFICER_API, NOW, SETTINGS)
        d_lok = await digests.digest_for(s, OFFICER_LOK, NOW, SETTINGS)
        # Mon 16 and Tue 17 Feb as holidays: 5 working days, not overdue yet
        d_hol = await digests.digest_for(
            s, OFFICER_API, NOW, SETTINGS, holidays={dt.date(2026, 2, 16), dt.date(2026, 2, 17)}
        )
    assert d is not None and d_lok is not None and d_hol is not None
    assert d.day == dt.date(2026, 2, 17)
    assert (d.reviews.total, d.reviews.overdue, d.reviews.oldest_days) == (1, 1, 7)
    assert d.overdue == 1
    assert (d_hol.reviews.overdue, d_hol.reviews.waiting, d_hol.reviews.oldest_days) == (0, 1, 5)
    assert (d_lok.reviews.total, d_lok.reviews.fresh, d_lok.overdue) == (1, 1, 0)
    assert d.budget == digests.Budget("", 100 * JT, 2 * APPROVED_AMOUNT, APPROVED_AMOUNT, 0)
    assert d_lok.budget == digests.Budget("", 50 * JT, APPROVED_AMOUNT, 0, 0)
    assert d.by_kelurahan == []  # a kelurahan officer: one kelurahan, no per-kelurahan bars
    assert d.registrations.total == 0 and d.progress.total == 0
    assert d.overdue_after == 5

    # A year whose SLA is 8 working days: the same 7-day-old proposal is not overdue (as for escalations).
    async with sessionmaker() as s:
        await begin_write(s)
        await s.execute(
            update(Program).where(Program.fiscal_year == 2026).values(reminder_settings={"sla_working_days": 8})
        )
        await s.commit()
    async with sessionmaker() as s:
        d8 = await digests.digest_for(s, OFFICER_API, NOW, SETTINGS)
    assert (d8.overdue_after, d8.reviews.overdue, d8.reviews.waiting, d8.overdue) == (8, 0, 1, 0)


@pytest.mark.parametrize(
    ("sla", "ages", "shown"),
    [
        (5, (0, 3, 7), "by age: 1 ≤ 2 days · 1 3–5 days · 1 over 5 days"),
        (8, (0, 3, 7), "by age: 1 ≤ 2 days · 2 3–8 days · 0 over 8 days"),
        (3, (0, 3, 7), "by age: 1 ≤ 2 days · 1 3 days · 1 over 3 days"),
        (2, (0, 3, 7), "by age: 1 ≤ 2 days · 2 over 2 days"),
        (1, (0, 1, 7), "by age: 2 ≤ 1 days · 1 over 1 days"),
    ],
)
def test_age_buckets_follow_the_years_sla(sla, ages, shown):
    from zoneinfo import ZoneInfo

    from bot.notices_digests import age_buckets

    tz = ZoneInfo("Asia/Makassar")
    today = dt.date(2026, 2, 18)  # Wednesday; ages below are working days back from it
    days_back = {0: 0, 1: 1, 3: 3, 7: 9}  # 7 working days back crosses a weekend
    waited = [dt.datetime.combine(today - dt.timedelta(days=days_back[a]), dt.time(9), tz) for a in ages]
    q = digests.age_queue(waited, len(ages), today, tz, frozenset(), sla)
    assert q.oldest_days == max(ages) and q.fresh + q.waiting + q.overdue == len(ages)
    i18n = build_i18n()
    with i18n.context(), i18n.use_locale("en"):
        assert age_buckets(q) == shown


@pytest.mark.parametrize(
    ("submitted_local", "holidays", "age", "overdue"),
    [
        (dt.date(2026, 2, 17), (), 0, False),  # today
        (dt.date(2026, 2, 10), (), 5, False),  # Tue → Tue: 5 working days
        (dt.date(2026, 2, 9), (), 6, True),  # Mon a week before: 6
        (dt.date(2026, 2, 7), (), 7, True),  # Saturday: counts from Monday
        (dt.date(2026, 2, 9), (dt.date(2026, 2, 13),), 5, False),  # a holiday in between
    ],
)
def test_overdue_counts_working_days(submitted_local, holidays, age, overdue):
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Asia/Makassar")
    when = dt.datetime.combine(submitted_local, dt.time(9), tz).astimezone(dt.UTC)
    q = digests.age_queue([when], 1, dt.date(2026, 2, 17), tz, frozenset(holidays))
    assert q.oldest_days == age
    assert q.overdue == int(overdue)


async def test_empty_and_revoked_get_nothing(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path)
    async with sessionmaker() as s:
        assert await digests.digest_for(s, OFFICER_API, NOW, SETTINGS) is None
        assert await digests.enqueue_due(s, NOW, SETTINGS) == 0
        assert await digest_rows(s) == []
    await submitted(sessionmaker, w, 0)
    async with sessionmaker() as s:
        assert await digests.digest_for(s, OFFICER_API, NOW, SETTINGS) is not None
        officer = await digests.active_officer(s, OFFICER_API)
        await officers.revoke(s, ADMIN, (ADMIN,), officer.id)
    async with sessionmaker() as s:
        assert await digests.digest_for(s, OFFICER_API, NOW, SETTINGS) is None
        assert await digests.enqueue_due(s, NOW, SETTINGS) == 0  # Loktuan's queue is empty too
        assert await digest_rows(s) == []
        assert await digests.digest_for(s, 999_999, NOW, SETTINGS) is None  # never an officer


async def test_concurrent_runs_enqueue_one_digest_per_officer_per_day(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path)
    await submitted(sessionmaker, w, 0)
    await submitted(sessionmaker, w, -1)

    async def run(now):
        async with sessionmaker() as s:
            return await digests.enqueue_due(s, now, SETTINGS)

    added = await asyncio.gather(run(NOW), run(NOW), run(NOW + dt.timedelta(minutes=1)))
    assert sum(added) == 2
    assert await run(NOW + dt.timedelta(hours=3)) == 0  # same local day
    assert await run(NOW + dt.timedelta(days=1)) == 2  # the next morning
    async with sessionmaker() as s:
        rows = await digest_rows(s)
        by_day = await s.execute(select(func.count()).select_from(Outbox).where(Outbox.kind == digests.KIND))
    assert by_day.scalar() == 4
    assert sorted((r.chat_id, r.payload["date"]) for r in rows) == [
        (OFFICER_API, "2026-02-17"),
        (OFFICER_API, "2026-02-18"),
        (OFFICER_LOK, "2026-02-17"),
        (OFFICER_LOK, "2026-02-18"),
    ]


async def test_renderer_sends_a_chart_with_caption_and_queue_buttons(sessionmaker, tmp_path, monkeypatch):
    w = await setup_world(sessionmaker, tmp_path)
    await approved_proposal(sessionmaker, w, 0)
    await submitted(sessionmaker, w, 1)
    now = NOW  # Tuesday 07:00 WITA (a working day); the renderer checks the day with its own clock
    monkeypatch.setattr("bot.notices_digests.utcnow", lambda: now + dt.timedelta(minutes=5))
    async with sessionmaker() as s:
        assert await digests.enqueue_due(s, now, SETTINGS) == 1
        (row,) = await digest_rows(s)
    i18n = build_i18n()
    async with sessionmaker() as s:
        with i18n.context(), i18n.use_locale("id"):
            notice = await notices.render(s, row, (ADMIN,))
    assert isinstance(notice, DigestNotice)
    assert notice.png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(notice.png))
    assert image.size == (900, 600)
    assert len(notice.png) < 200_000
    assert "Api-Api" in notice.text and "Rp 100 jt" in notice.text
    assert len(notice.text) <= 1024
    buttons = [b.callback_data for r in notice.reply_markup.inline_keyboard for b in r]
    assert buttons == [ReviewCb(action="list", id=0).pack()]
    save_example("digest_example.png", notice.png)
    # the scope revoked before sending: obsolete, nothing is sent
    async with sessionmaker() as s:
        officer = await digests.active_officer(s, OFFICER_API)
        await officers.revoke(s, ADMIN, (ADMIN,), officer.id)
    async with sessionmaker() as s:
        with i18n.context(), i18n.use_locale("id"):
            assert await notices.render(s, row, (ADMIN,)) is None


async def test_chart_with_several_kelurahan():
    d = digests.Digest(
        officer=None,  # type: ignore[arg-type]
        scope=None,  # type: ignore[arg-type]
        day=dt.date(2026, 2, 17),
        year=2026,
        new_registrations=0,
        registrations=digests.Queue(),
        reviews=digests.Queue(total=1),
        progress=digests.Queue(),
        budget=digests.Budget("", 1_200_000_000, 850_000_000, 600_000_000, 150_000_000),
        by_kelurahan=[
            digests.Budget("Api-Api", 600_000_000, 500_000_000, 400_000_000, 100_000_000),
            digests.Budget("Loktuan", 600_000_000, 350_000_000, 200_000_000, 50_000_000),
        ],
    )
    text = digests.ChartText(
        ("Pagu", "Diusulkan", "Disetujui", "Realisasi"),
        "Anggaran 2026 · Kec. Bontang Utara",
        "Per kelurahan",
        "Serapan 12,5% dari pagu",
    )
    png = await asyncio.to_thread(digests.render_chart, d, text)
    assert Image.open(io.BytesIO(png)).size == (900, 600)
    save_example("digest_example_kecamatan.png", png)
