"""Escalations and the officers' digest frequency, on SQLite and PostgreSQL.

The rules are pure (``bot/domain/escalation.py``); the service is driven through the scheduler's
job functions with a fake clock over five weeks of a fiscal year, with a real public holiday
(Imlek, Tuesday 17 February 2026), and the test asserts who received what and when.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select, update

from bot import notices
from bot.clock import FakeClock
from bot.config import Settings
from bot.domain.escalation import Rung, chain, due_levels, level_reached
from bot.domain.permissions import Scope
from bot.i18n import build_i18n
from bot.scheduler import digests_job, escalations_job
from bot.services import digests, escalations, follows, officers, users
from handlers.progress.verify_render import VerifyProgressCb
from handlers.review.callbacks import ReviewCb
from storage.db import begin_write
from storage.models import (
    DIGEST_OFF,
    DIGEST_WEEKLY,
    REPORT_PENDING,
    Escalation,
    Kelurahan,
    NotificationPrefs,
    Outbox,
    ProgressReport,
    Proposal,
)
from tests.unit.test_digests import set_submitted_at, submitted
from tests.unit.test_progress_service import approved_proposal
from tests.unit.test_proposals_service import ADMIN, OFFICER_API, OFFICER_LOK, setup_world
from tests.unit.test_reminders import at

D = dt.date
OFFICER_KEC = 23  # Kecamatan Bontang Utara (Api-Api and Loktuan)
OFFICER_KOTA = 24  # Bappeda: the whole city
SETTINGS = Settings(timezone="Asia/Makassar", bot_token=None, admin_ids=(ADMIN,))


# --- pure rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "sla", "step", "level"),
    [
        (0, 5, 2, None),
        (5, 5, 2, None),  # 5 working days is still within the SLA
        (6, 5, 2, 0),
        (7, 5, 2, 0),
        (8, 5, 2, 1),
        (9, 5, 2, 1),
        (10, 5, 2, 2),
        (40, 5, 2, 17),
        (4, 3, 1, 0),
        (5, 3, 1, 1),
        (1, 0, 1, 0),
    ],
)
def test_level_reached(age, sla, step, level):
    assert level_reached(age, sla, step) == level


def test_level_reached_refuses_a_bad_config():
    with pytest.raises(ValueError):
        level_reached(3, 5, 0)


def test_due_levels_skip_empty_rungs_and_stop_at_the_top():
    full = [Rung("kelurahan", (1,)), Rung("kecamatan", (2,)), Rung("kota", (3, 99))]
    assert due_levels(5, full) == []
    assert due_levels(6, full) == [0]
    assert due_levels(8, full) == [0, 1]
    assert due_levels(30, full) == [0, 1, 2]  # however long: the top is the last level
    no_kelurahan_officer = [Rung("kelurahan", ()), Rung("kecamatan", (2,)), Rung("kota", (3,))]
    assert [r.scope_level for r in chain(no_kelurahan_officer)] == ["kecamatan", "kota"]
    assert due_levels(6, no_kelurahan_officer) == [0]  # the kecamatan is "in charge"
    assert due_levels(30, no_kelurahan_officer) == [0, 1]
    assert due_levels(30, [Rung("kelurahan", ()), Rung("kecamatan", ()), Rung("kota", ())]) == []


# --- a world -------------------------------------------------------------------------------------------


async def world(sessionmaker, tmp_path):
    """Api-Api has its kelurahan officer; Loktuan's was revoked (nobody there); the kecamatan and
    the city have theirs; ADMIN is an admin. One proposal waits in each kelurahan since Friday
    6 February 2026, 10:00 WITA."""
    w = await setup_world(sessionmaker, tmp_path)
    api = await submitted(sessionmaker, w, 0)
    lok = await submitted(sessionmaker, w, -1)
    friday = at(D(2026, 2, 6), 10)
    await set_submitted_at(sessionmaker, api.id, friday)
    await set_submitted_at(sessionmaker, lok.id, friday)
    async with sessionmaker() as s:
        kec_id = await s.scalar(select(Kelurahan.kecamatan_id).where(Kelurahan.name == "Api-Api"))
        for uid in (OFFICER_KEC, OFFICER_KOTA):
            await users.ensure_user(s, uid, f"U{uid}", None, None)
        await officers.appoint(s, ADMIN, (ADMIN,), OFFICER_KEC, Scope.for_kecamatan(kec_id))
        await officers.appoint(s, ADMIN, (ADMIN,), OFFICER_KOTA, Scope.for_kota())
        lok_officer = await digests.active_officer(s, OFFICER_LOK)
        await officers.revoke(s, ADMIN, (ADMIN,), lok_officer.id)
    return w, api, lok


async def new_rows(sessionmaker, kind: str, seen: set[int]) -> list[Outbox]:
    async with sessionmaker() as s:
        rows = (await s.scalars(select(Outbox).where(Outbox.kind == kind).order_by(Outbox.id))).all()
    fresh = [r for r in rows if r.id not in seen]
    seen.update(r.id for r in fresh)
    return fresh


async def render(sessionmaker, row: Outbox, lang: str = "id"):
    i18n = build_i18n()
    async with sessionmaker() as s:
        row = await s.get(Outbox, row.id)
        with i18n.context(), i18n.use_locale(lang):
            return await notices.render(s, row, (ADMIN,))


async def test_five_weeks_of_escalations_and_digests_through_the_scheduler(sessionmaker, tmp_path):
    _w, api, lok = await world(sessionmaker, tmp_path)
    async with sessionmaker() as s:
        await follows.set_digest(s, OFFICER_KEC, DIGEST_WEEKLY)
        await follows.set_digest(s, OFFICER_KOTA, DIGEST_OFF)
    clock = FakeClock(at(D(2026, 2, 9), 7))
    seen_esc: set[int] = set()
    seen_dig: set[int] = set()
    escalated: list[tuple[dt.date, int, tuple[int, ...]]] = []  # (day, chat, proposal ids)
    digested: list[tuple[dt.date, int]] = []
    texts: dict[int, str] = {}
    day = D(2026, 2, 9)
    while day <= D(2026, 3, 6):
        if day == D(2026, 2, 25):  # Api-Api's proposal is finally reviewed (approved)
            async with sessionmaker() as s:
                await begin_write(s)
                await s.execute(update(Proposal).where(Proposal.id == api.id).values(status="disetujui"))
                await s.commit()
        clock.set(at(day, 7))
        await digests_job(sessionmaker, SETTINGS, clock)
        for row in await new_rows(sessionmaker, digests.KIND, seen_dig):
            assert row.payload["date"] == day.isoformat()
            digested.append((day, row.chat_id))
        for hour in (8, 12):  # the 15-minute job runs many times a day: nothing is given twice
            clock.set(at(day, hour))
            await escalations_job(sessionmaker, SETTINGS, clock)
        for row in await new_rows(sessionmaker, escalations.KIND, seen_esc):
            async with sessionmaker() as s:
                items = (
                    await s.scalars(select(Escalation.item_id).where(Escalation.id.in_(row.payload["escalations"])))
                ).all()
            escalated.append((day, row.chat_id, tuple(sorted(items))))
            assert row.next_attempt_at == at(day, 8)  # made at 08:00, outside the quiet hours: at once
            notice = await render(sessionmaker, row)
            assert notice is not None
            texts.setdefault(row.chat_id, notice.text)
        day += dt.timedelta(days=1)

    # Friday 6 Feb + 5 working days = Friday 13 (still within); Monday 16 is the 6th: overdue.
    # Imlek (Tuesday 17) does not count: the kecamatan on Thursday 19 (8 working days), the city
    # and the admins on Monday 23 (10). Loktuan has no kelurahan officer: the kecamatan is in
    # charge on the 16th and the city comes next, on the 19th.
    assert sorted(escalated) == [
        (D(2026, 2, 16), OFFICER_API, (api.id,)),
        (D(2026, 2, 16), OFFICER_KEC, (lok.id,)),
        (D(2026, 2, 19), OFFICER_KEC, (api.id,)),
        (D(2026, 2, 19), OFFICER_KOTA, (lok.id,)),
        (D(2026, 2, 19), ADMIN, (lok.id,)),
        (D(2026, 2, 23), OFFICER_KOTA, (api.id,)),
        (D(2026, 2, 23), ADMIN, (api.id,)),
    ]
    api_text = texts[OFFICER_API]
    assert "Menunggu Anda lebih dari 5 hari kerja" in api_text and api.code in api_text
    assert "Api-Api" in api_text and "6 hari kerja" in api_text
    assert "Eskalasi" in texts[OFFICER_KEC] or "Menunggu Anda" in texts[OFFICER_KEC]

    # Digests: Api-Api's officer every working day while something waits (not on weekends, not on
    # Imlek; nothing once the proposal was approved on the 25th), the kecamatan's on Mondays, the
    # city's never (turned off).
    api_days = [d for d, chat in digested if chat == OFFICER_API]
    expected = [
        d for d in (D(2026, 2, 9) + dt.timedelta(days=i) for i in range(16)) if d.weekday() < 5 and d != D(2026, 2, 17)
    ]
    assert api_days == expected
    assert [d for d, chat in digested if chat == OFFICER_KEC] == [
        D(2026, 2, 9),
        D(2026, 2, 16),
        D(2026, 2, 23),
        D(2026, 3, 2),
    ]
    assert [d for d, chat in digested if chat == OFFICER_KOTA] == []
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Escalation)) == 5  # api: 3 levels, lok: 2


async def test_renderer_drops_what_was_handled_and_what_is_no_longer_theirs(sessionmaker, tmp_path):
    _w, api, lok = await world(sessionmaker, tmp_path)
    monday = at(D(2026, 2, 16), 0, 5)  # just after midnight: held until the quiet hours end
    async with sessionmaker() as s:
        given = await escalations.run_due(s, monday, SETTINGS)
    assert sorted((e.item_id, e.scope_level) for e in given) == sorted([(api.id, "kelurahan"), (lok.id, "kecamatan")])
    rows = await new_rows(sessionmaker, escalations.KIND, set())
    assert {r.chat_id for r in rows} == {OFFICER_API, OFFICER_KEC}
    assert all(r.next_attempt_at == at(D(2026, 2, 16), 6) for r in rows)  # 06:00 WITA
    api_row = next(r for r in rows if r.chat_id == OFFICER_API)
    kec_row = next(r for r in rows if r.chat_id == OFFICER_KEC)
    notice = await render(sessionmaker, api_row, "en")
    assert "Waiting for you for more than 5 working days" in notice.text
    buttons = [b.callback_data for r in notice.reply_markup.inline_keyboard for b in r]
    assert buttons == [ReviewCb(action="open", id=api.id).pack()]
    # sent again after a revision: a new wait, the old escalation is obsolete
    await set_submitted_at(sessionmaker, api.id, at(D(2026, 2, 16), 9))
    assert await render(sessionmaker, api_row) is None
    # the kecamatan officer moved to another post before it was sent: not theirs any more
    async with sessionmaker() as s:
        await officers.revoke(s, ADMIN, (ADMIN,), (await digests.active_officer(s, OFFICER_KEC)).id)
    assert await render(sessionmaker, kec_row) is None


async def test_a_progress_report_waiting_for_verification_is_escalated(sessionmaker, tmp_path):
    w = await setup_world(sessionmaker, tmp_path)
    p = await approved_proposal(sessionmaker, w, 0)
    async with sessionmaker() as s:
        await begin_write(s)
        report = ProgressReport(
            proposal_id=p.id, reporter_id=w.heads[0], percent=40, flags=[], created_at=at(D(2026, 3, 2), 9)
        )
        s.add(report)
        await s.commit()
        assert report.status == REPORT_PENDING
    # Monday 2 March + 5 working days = Monday 9; Tuesday 10 is the 6th
    async with sessionmaker() as s:
        assert await escalations.run_due(s, at(D(2026, 3, 9), 8), SETTINGS) == []
    async with sessionmaker() as s:
        (given,) = await escalations.run_due(s, at(D(2026, 3, 10), 8), SETTINGS)
    assert (given.item_type, given.item_id, given.recipients) == ("report", report.id, [OFFICER_API])
    (row,) = await new_rows(sessionmaker, escalations.KIND, set())
    notice = await render(sessionmaker, row)
    assert "40%" in notice.text and p.code in notice.text
    buttons = [b.callback_data for r in notice.reply_markup.inline_keyboard for b in r]
    assert buttons == [VerifyProgressCb(action="open", id=report.id).pack()]
    async with sessionmaker() as s:  # verified before the notice went out: nothing to send
        await begin_write(s)
        await s.execute(update(ProgressReport).where(ProgressReport.id == report.id).values(status="terverifikasi"))
        await s.commit()
    assert await render(sessionmaker, row) is None


async def test_per_year_sla_and_two_instances_at_once(sessionmaker, tmp_path):
    w, _api, _lok = await world(sessionmaker, tmp_path)
    async with sessionmaker() as s:
        await begin_write(s)
        w.program.reminder_settings = {"sla_working_days": 3, "escalation_step_working_days": 1}
        await s.merge(w.program)
        await s.commit()
    thursday = at(D(2026, 2, 12), 8)  # 4 working days since Friday 6: past an SLA of 3

    async def once() -> list[Escalation]:
        async with sessionmaker() as s:
            return await escalations.run_due(s, thursday, SETTINGS)

    first, second = await asyncio.gather(once(), once())
    assert len(first) + len(second) == 2  # api to its kelurahan, lok to the kecamatan: once each
    rows = await new_rows(sessionmaker, escalations.KIND, set())
    assert sorted(r.chat_id for r in rows) == [OFFICER_API, OFFICER_KEC]
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Escalation)) == 2
        assert await s.get(NotificationPrefs, OFFICER_API) is None  # defaults: nothing stored


def test_digest_frequency_rule():
    imlek = {D(2026, 2, 17)}
    assert digests.is_due(D(2026, 2, 16), "harian", imlek)
    assert not digests.is_due(D(2026, 2, 17), "harian", imlek)  # a holiday
    assert not digests.is_due(D(2026, 2, 14), "harian", imlek)  # Saturday
    assert digests.is_due(D(2026, 2, 16), "mingguan", imlek)  # Monday
    assert not digests.is_due(D(2026, 2, 18), "mingguan", imlek)
    # a week whose Monday is a holiday: Tuesday instead
    assert digests.is_due(D(2026, 2, 17), "mingguan", {D(2026, 2, 16)})
    assert not digests.is_due(D(2026, 2, 16), "mati", imlek)


async def test_turning_quiet_hours_off_releases_a_held_escalation(sessionmaker, tmp_path):
    await world(sessionmaker, tmp_path)
    async with sessionmaker() as s:
        await escalations.run_due(s, at(D(2026, 2, 16), 0, 5), SETTINGS)
    (row,) = [r for r in await new_rows(sessionmaker, escalations.KIND, set()) if r.chat_id == OFFICER_API]
    assert row.next_attempt_at == at(D(2026, 2, 16), 6)
    async with sessionmaker() as s:
        await follows.set_quiet(s, OFFICER_API, 0, 0)
    async with sessionmaker() as s:
        released = await s.get(Outbox, row.id)
        assert abs(released.next_attempt_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)  # due now
        others = (
            await s.scalars(select(Outbox).where(Outbox.chat_id == OFFICER_KEC, Outbox.kind == escalations.KIND))
        ).all()
        assert {o.next_attempt_at for o in others} == {at(D(2026, 2, 16), 6)}  # someone else's: untouched
