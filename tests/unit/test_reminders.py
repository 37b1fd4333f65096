"""Reminders to RT heads: the pure rules as tables, then a whole fiscal year run day by day with an
injectable clock on SQLite and PostgreSQL (who got which reminder on which day, Indonesian holidays
not counted as working days, at most one a day, quiet hours, a clock jump across midnight, a
reminder stopping once resolved, two instances at once giving one reminder)."""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from bot import notices
from bot.clock import FakeClock
from bot.config import Settings
from bot.i18n import build_i18n
from bot.services import reminders
from bot.services.reminders import ReminderConfig, ReminderConfigError
from storage.db import begin_write
from storage.models import (
    RT,
    Kelurahan,
    NotificationPrefs,
    Outbox,
    Program,
    ProgressReport,
    Proposal,
    ProposalEvent,
    ReminderSent,
    RTHead,
    User,
)

WITA = ZoneInfo("Asia/Makassar")
CFG = ReminderConfig()
HOLIDAYS_2026 = reminders.indonesian_holidays((2026,))
D = dt.date
JT = 1_000_000


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=WITA)


# --- pure rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days_left", "expected"),
    [(10, None), (8, None), (7, 7), (5, 7), (4, 7), (3, 3), (2, 3), (1, 1), (0, 1), (-1, None)],
)
def test_stage(days_left, expected):
    assert reminders.stage(days_left, (7, 3, 1)) == expected


@pytest.mark.parametrize(
    ("today", "remaining", "expected"),
    [
        (D(2026, 3, 23), 1, None),  # 8 days left
        (D(2026, 3, 24), 1, 7),
        (D(2026, 3, 24), 0, None),  # the whole ceiling proposed
        (D(2026, 3, 28), 5 * JT, 3),
        (D(2026, 3, 30), 5 * JT, 1),
        (D(2026, 3, 31), 5 * JT, 1),  # closes today
        (D(2026, 4, 1), 5 * JT, None),  # closed
        (D(2025, 12, 31), 5 * JT, None),  # not open yet
    ],
)
def test_window_stage(today, remaining, expected):
    assert reminders.window_stage(today, D(2026, 1, 5), D(2026, 3, 31), remaining, CFG) == expected


@pytest.mark.parametrize(
    ("requested", "today", "holidays", "due"),
    [
        (D(2026, 3, 2), D(2026, 3, 4), frozenset(), False),  # Mon → Wed: 2 working days
        (D(2026, 3, 2), D(2026, 3, 5), frozenset(), True),  # Thu: 3
        (D(2026, 3, 6), D(2026, 3, 10), frozenset(), False),  # Fri → Tue: Mon, Tue
        (D(2026, 3, 6), D(2026, 3, 11), frozenset(), True),
        # Wed 18 March, before Nyepi (Thu 19): Fri 20, Mon 23, Tue 24
        (D(2026, 3, 18), D(2026, 3, 23), frozenset(), True),
        (D(2026, 3, 18), D(2026, 3, 23), HOLIDAYS_2026, False),
        (D(2026, 3, 18), D(2026, 3, 24), HOLIDAYS_2026, True),
        # asked on a Saturday: Mon, Tue, Wed
        (D(2026, 3, 7), D(2026, 3, 10), frozenset(), False),
        (D(2026, 3, 7), D(2026, 3, 11), frozenset(), True),
    ],
)
def test_revision_due_counts_working_days(requested, today, holidays, due):
    assert reminders.revision_due(today, requested, CFG, holidays) is due


def test_indonesian_holidays_include_nyepi_and_independence_day():
    assert {D(2026, 3, 19), D(2026, 8, 17), D(2026, 1, 1)} <= HOLIDAYS_2026


@pytest.mark.parametrize(
    ("since", "today", "expected"),
    [
        (D(2026, 4, 1), D(2026, 4, 14), None),
        (D(2026, 4, 1), D(2026, 4, 15), 1),
        (D(2026, 4, 1), D(2026, 4, 28), 1),
        (D(2026, 4, 1), D(2026, 4, 29), 2),
    ],
)
def test_report_round(since, today, expected):
    assert reminders.report_round(today, since, CFG) == expected


@pytest.mark.parametrize(
    ("today", "percent", "expected"),
    [
        (D(2026, 11, 30), 50, None),
        (D(2026, 12, 1), 50, 30),
        (D(2026, 12, 1), 100, None),
        (D(2026, 12, 17), 0, 14),
        (D(2026, 12, 24), 99, 7),
        (D(2026, 12, 31), 99, 7),
        (D(2027, 1, 2), 50, None),
    ],
)
def test_year_end_stage(today, percent, expected):
    assert reminders.year_end_stage(today, 2026, percent, CFG) == expected


@pytest.mark.parametrize(
    ("local", "quiet", "sent_at", "day"),
    [
        (at(D(2026, 4, 15), 8), (21 * 60, 6 * 60), at(D(2026, 4, 15), 8), D(2026, 4, 15)),
        (at(D(2026, 4, 15), 23), (21 * 60, 6 * 60), at(D(2026, 4, 16), 6), D(2026, 4, 16)),
        (at(D(2026, 4, 16), 0, 30), (21 * 60, 6 * 60), at(D(2026, 4, 16), 6), D(2026, 4, 16)),
        (at(D(2026, 4, 15), 23), (0, 0), at(D(2026, 4, 15), 23), D(2026, 4, 15)),  # no quiet hours
    ],
)
def test_delivery_respects_quiet_hours(local, quiet, sent_at, day):
    assert reminders.delivery(local, quiet, WITA) == (sent_at, day)


def test_config_from_json():
    assert ReminderConfig.from_json(None) == CFG
    cfg = ReminderConfig.from_json({"window_days": [1, 5], "report_days": 10, "texts": {"window": "Ayo {days}"}})
    assert cfg.window_days == (5, 1) and cfg.report_days == 10 and cfg.revision_working_days == 3
    for bad in ({"window_days": []}, {"report_days": 0}, {"color": 1}, {"texts": {"nope": "x"}}, {"window_days": [0]}):
        with pytest.raises(ReminderConfigError):
            ReminderConfig.from_json(bad)


def test_in_order_prefers_the_most_pressing_kind():
    dues = [
        reminders.Due(reminders.REPORT, 1, 5, "x", {}),
        reminders.Due(reminders.YEAR_END, 1, 5, "30", {}),
        reminders.Due(reminders.REVISION, 2, 6, "ev1", {}),
        reminders.Due(reminders.WINDOW, 1, 1, "7", {}),
    ]
    assert [(d.user_id, d.kind) for d in reminders.in_order(dues)] == [
        (1, "window"),
        (1, "year_end"),
        (1, "report"),
        (2, "revision"),
    ]


# --- a fiscal year in the database -------------------------------------------------------------------

HEAD_EMPTY, HEAD_REVISION, HEAD_REPORT, HEAD_YEAR_END, HEAD_QUIET_NONE = 101, 102, 103, 104, 105


async def build_year(sessionmaker) -> dict[str, int]:
    """Five RTs of one kelurahan, each with its verified head, and the 2026 programme."""
    async with sessionmaker() as s:
        await begin_write(s)
        kel = await s.scalar(select(Kelurahan).order_by(Kelurahan.id).limit(1))
        program = Program(
            fiscal_year=2026,
            name="Prolita",
            budget_per_rt=50 * JT,
            code_prefix="PRL",
            submission_opens=D(2026, 1, 5),
            submission_closes=D(2026, 3, 31),
        )
        s.add(program)
        rts = {}
        for i, uid in enumerate((HEAD_EMPTY, HEAD_REVISION, HEAD_REPORT, HEAD_YEAR_END, HEAD_QUIET_NONE)):
            rt = RT(kelurahan_id=kel.id, number=901 + i)
            s.add_all([rt, User(id=uid, first_name=f"Ketua {uid}")])
            await s.flush()
            s.add(RTHead(user_id=uid, rt_id=rt.id, full_name=f"Ketua {uid}", phone="+62811", status="terverifikasi"))
            rts[uid] = rt.id
        await s.flush()
        ids = {"program": program.id}
        # RT of HEAD_QUIET_NONE has a small proposal only and no quiet hours; it is not reminded by
        # anything but the window (so it shows a reminder made at 23:00 going out at once).
        s.add(NotificationPrefs(user_id=HEAD_QUIET_NONE, quiet_start=0, quiet_end=0))
        for uid, status, code in (
            (HEAD_REVISION, "diajukan", 2),
            (HEAD_REPORT, "disetujui", 3),
            (HEAD_YEAR_END, "disetujui", 4),
            (HEAD_QUIET_NONE, "diajukan", 5),
        ):
            p = Proposal(
                program_id=program.id,
                fiscal_year=2026,
                rt_id=rts[uid],
                created_by=uid,
                status=status,
                code=f"PRL-2026-{code:04d}",
                seq=code,
                title=f"Usulan {code}",
                category_code="infrastruktur",
                total_amount=(10 if uid == HEAD_QUIET_NONE else 50) * JT,
            )
            s.add(p)
            await s.flush()
            ids[f"p{uid}"] = p.id
        await s.commit()
    return ids


async def transition(sessionmaker, proposal_id: int, status: str, action: str, when: dt.datetime) -> None:
    async with sessionmaker() as s:
        await begin_write(s)
        p = await s.get(Proposal, proposal_id)
        values = {"status": status}
        if action == "setujui":
            values["decided_at"] = when
        await s.execute(update(Proposal).where(Proposal.id == proposal_id).values(**values))
        s.add(ProposalEvent(proposal_id=proposal_id, at=when, action=action, from_status=p.status, to_status=status))
        await s.commit()


async def report(sessionmaker, proposal_id: int, percent: int, when: dt.datetime, status: str | None = None) -> None:
    async with sessionmaker() as s:
        await begin_write(s)
        s.add(ProgressReport(proposal_id=proposal_id, reporter_id=1, percent=percent, flags=[], created_at=when))
        if status:
            await s.execute(update(Proposal).where(Proposal.id == proposal_id).values(status=status))
        await s.commit()


async def render(sessionmaker, outbox_id: int, lang: str = "id"):
    i18n = build_i18n()
    async with sessionmaker() as s:
        row = await s.get(Outbox, outbox_id)
        with i18n.context(), i18n.use_locale(lang):
            return await notices.render(s, row, ())


def settings() -> Settings:
    return Settings(timezone="Asia/Makassar", bot_token=None)


async def test_a_fiscal_year_of_reminders(sessionmaker):
    ids = await build_year(sessionmaker)
    cfg = settings()
    clock = FakeClock(at(D(2026, 1, 1), 8))
    got: list[tuple[dt.date, int, str]] = []
    rendered: dict[str, str] = {}
    outbox_of: dict[str, int] = {}

    async def run(now: dt.datetime) -> None:
        clock.set(now)
        async with sessionmaker() as s:
            given = await reminders.run_due(s, clock.now(), cfg)
        async with sessionmaker() as s:
            rows = (
                await s.execute(
                    select(Outbox.id, Outbox.chat_id, Outbox.kind, Outbox.next_attempt_at).where(
                        Outbox.kind.like("reminder.%"), Outbox.id.notin_(seen)
                    )
                )
            ).all()
        assert len(rows) == len(given)
        for oid, chat_id, kind, not_before in rows:
            seen.add(oid)
            got.append((not_before.astimezone(WITA).date(), chat_id, kind.removeprefix("reminder.")))
            notice = await render(sessionmaker, oid)
            assert notice is not None, (kind, now)  # nothing resolved yet at the time it is made
            rendered.setdefault(kind, notice.text)
            outbox_of.setdefault(kind, oid)

    seen: set[int] = {0}
    day = D(2026, 1, 1)
    while day <= D(2026, 12, 31):
        # what people do that day, before the 08:00 run
        if day == D(2026, 3, 18):  # revision asked on the Wednesday before Nyepi (Thu 19 March)
            await transition(sessionmaker, ids[f"p{HEAD_REVISION}"], "perlu_revisi", "minta_revisi", at(day, 7))
        if day == D(2026, 3, 26):  # sent again: no more revision reminders, nor window ones (ceiling used)
            await transition(sessionmaker, ids[f"p{HEAD_REVISION}"], "diajukan", "ajukan", at(day, 7))
            assert await render(sessionmaker, outbox_of["reminder.revision"]) is None  # resolved before sending
        if day == D(2026, 4, 1):
            await transition(sessionmaker, ids[f"p{HEAD_REPORT}"], "disetujui", "setujui", at(day, 7))
        if day == D(2026, 4, 20):
            await report(sessionmaker, ids[f"p{HEAD_REPORT}"], 40, at(day, 7), "pelaksanaan")
        if day == D(2026, 5, 10):  # 100 %: waiting for the kelurahan, no more progress reminders
            await report(sessionmaker, ids[f"p{HEAD_REPORT}"], 100, at(day, 7), "menunggu_verifikasi_selesai")
        if day == D(2026, 11, 10):
            await transition(sessionmaker, ids[f"p{HEAD_YEAR_END}"], "disetujui", "setujui", at(day, 7))
        if day == D(2026, 11, 17):
            await report(sessionmaker, ids[f"p{HEAD_YEAR_END}"], 60, at(day, 7), "pelaksanaan")

        if day == D(2026, 4, 15):  # only a late-evening run that day, then a clock jump past midnight
            await run(at(day, 23))
            await run(at(day, 23, 59))
            await run(at(day + dt.timedelta(days=1), 0, 1))
        elif day == D(2026, 3, 24):  # the clock jumps back across midnight after the morning run
            await run(at(day, 8))
            await run(at(day - dt.timedelta(days=1), 23, 50))
            await run(at(day, 8, 15))
        elif day == D(2026, 3, 29):  # 23:00 for the head without quiet hours: sent at once
            await run(at(day, 8))
            await run(at(day, 23))
        else:
            await run(at(day, 8))
        day += dt.timedelta(days=1)

    by_head: dict[int, list[tuple[dt.date, str]]] = {}
    for d, uid, kind in got:
        by_head.setdefault(uid, []).append((d, kind))
    assert by_head[HEAD_EMPTY] == [(D(2026, 3, 24), "window"), (D(2026, 3, 28), "window"), (D(2026, 3, 30), "window")]
    assert by_head[HEAD_QUIET_NONE] == by_head[HEAD_EMPTY]
    # 3 working days after 18 March, Nyepi not counted: Tuesday 24 March (not Monday 23)
    assert by_head[HEAD_REVISION] == [(D(2026, 3, 24), "revision")]
    # 14 days after approval; the evening run of 15 April waits for 06:00 on the 16th; the clock jump
    # and the morning run change nothing; 14 days after the 40 % report; then 100 %: no more
    assert by_head[HEAD_REPORT] == [(D(2026, 4, 16), "report"), (D(2026, 5, 4), "report")]
    # year end (30/14/7 days) wins the day over the report reminder, which goes the next day
    assert by_head[HEAD_YEAR_END] == [
        (D(2026, 12, 1), "year_end"),
        (D(2026, 12, 2), "report"),
        (D(2026, 12, 15), "report"),
        (D(2026, 12, 17), "year_end"),
        (D(2026, 12, 24), "year_end"),
        (D(2026, 12, 29), "report"),
    ]
    async with sessionmaker() as s:
        per_day = (
            await s.execute(
                select(ReminderSent.user_id, ReminderSent.local_date, func.count())
                .group_by(ReminderSent.user_id, ReminderSent.local_date)
                .having(func.count() > 1)
            )
        ).all()
        assert per_day == []
        assert await s.scalar(select(func.count()).select_from(ReminderSent)) == len(got)
        evening = await s.scalar(
            select(Outbox.next_attempt_at).where(Outbox.chat_id == HEAD_REPORT).order_by(Outbox.id).limit(1)
        )
        assert evening == at(D(2026, 4, 16), 6)  # the end of the default quiet hours, in UTC
    assert "/usulan" in rendered["reminder.window"] and "Rp 50.000.000" in rendered["reminder.window"]
    assert "PRL-2026-0002" in rendered["reminder.revision"]
    assert "PRL-2026-0003" in rendered["reminder.report"]
    assert "PRL-2026-0004" in rendered["reminder.year_end"] and "60%" in rendered["reminder.year_end"]


async def test_two_instances_at_once_give_one_reminder(sessionmaker):
    await build_year(sessionmaker)
    cfg = settings()
    now = at(D(2026, 3, 24), 8)

    async def one() -> int:
        async with sessionmaker() as s:
            return len(await reminders.run_due(s, now, cfg))

    counts = await asyncio.gather(one(), one(), one())
    assert sorted(counts) == [0, 0, 2]  # the two heads with ceiling left, once
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Outbox).where(Outbox.kind == "reminder.window")) == 2


async def test_reminder_resolved_before_sending_and_per_year_settings(sessionmaker):
    ids = await build_year(sessionmaker)
    async with sessionmaker() as s:
        await begin_write(s)
        await s.execute(
            update(Program)
            .where(Program.id == ids["program"])
            .values(
                reminder_settings={"window_days": [10], "texts": {"window": "Pagu {place}: {remaining}, {days} hari"}}
            )
        )
        await s.commit()
    async with sessionmaker() as s:
        given = await reminders.run_due(s, at(D(2026, 3, 21), 8), settings())  # 10 days left
    assert sorted(d.user_id for d in given) == [HEAD_EMPTY, HEAD_QUIET_NONE]
    async with sessionmaker() as s:
        rows = (await s.scalars(select(Outbox).where(Outbox.kind == "reminder.window").order_by(Outbox.chat_id))).all()
    notice = await render(sessionmaker, rows[1].id, "en")
    assert notice.text.startswith("Pagu RT 905") and notice.text.endswith("Rp 40.000.000, 10 hari")
    # the RT proposes the rest of its ceiling before the reminder goes out: nothing is sent
    async with sessionmaker() as s:
        await begin_write(s)
        await s.execute(update(Proposal).where(Proposal.id == ids[f"p{HEAD_QUIET_NONE}"]).values(total_amount=50 * JT))
        await s.commit()
    assert await render(sessionmaker, rows[1].id) is None
    assert await render(sessionmaker, rows[0].id) is not None
    # a head who is no longer the RT's head gets nothing either
    async with sessionmaker() as s:
        await begin_write(s)
        await s.execute(update(RTHead).where(RTHead.user_id == HEAD_EMPTY).values(status="diganti"))
        await s.commit()
    assert await render(sessionmaker, rows[0].id) is None
    # turned off for the year
    async with sessionmaker() as s:
        await begin_write(s)
        await s.execute(update(Program).values(reminder_settings={"enabled": False}))
        await s.commit()
    async with sessionmaker() as s:
        assert await reminders.run_due(s, at(D(2026, 3, 30), 8), settings()) == []
