"""/dataku and /hapusdata service on SQLite and PostgreSQL: the export lists everything stored about
a user and no other person's Telegram id; erasing deletes or anonymises exactly what it says, keeps
the rest, refuses role holders, and does nothing twice."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.domain.permissions import Scope
from bot.services import officers, outbox, privacy, registration, users
from storage.db import begin_write
from storage.models import (
    Aspiration,
    AuditLog,
    Base,
    Broadcast,
    Consent,
    Escalation,
    Follow,
    FSMRecord,
    Kelurahan,
    MusyawarahVote,
    NotificationPrefs,
    Outbox,
    ProgressReport,
    Proposal,
    ReminderSent,
    RTHead,
    User,
    VoteAnswer,
    VotePoll,
    utcnow,
)
from tests.unit.test_proposals_service import ADMIN, HEAD_LOK, OFFICER_API, OFFICER_LOK, complete_proposal, setup_world

RES = 5_550_001  # the resident who asks for their data
OTHER = 5_550_002  # another resident
OFFICER_BIG = 7_000_001  # a kelurahan officer with a realistic id (easy to search for in the export)
BOT = 424242
MARCH_1 = dt.date(2026, 3, 1)

TABLES = (
    User,
    Consent,
    RTHead,
    Follow,
    NotificationPrefs,
    Aspiration,
    VoteAnswer,
    VotePoll,
    MusyawarahVote,
    Outbox,
    FSMRecord,
    AuditLog,
    Proposal,
    ProgressReport,
    ReminderSent,
    Escalation,
    Broadcast,
)


def fsm_key(user_id: int) -> str:
    return f"fsm:{BOT}:{user_id}:{user_id}:::default"


async def counts(sessionmaker) -> dict[str, int]:
    async with sessionmaker() as s:
        return {t.__tablename__: await s.scalar(select(func.count()).select_from(t)) for t in TABLES}


async def seed(sessionmaker, tmp_path) -> dict[str, Any]:
    """A world plus a resident with a rejected and a pending registration, follows, notice settings,
    an aspiration, a vote answer and poll, pending notices and a dialog; and another resident."""
    w = await setup_world(sessionmaker, tmp_path)
    async with sessionmaker() as s:
        for uid, first, last, username in ((RES, "Siti", "Aminah", "siti_a"), (OTHER, "Andi", None, None)):
            await users.ensure_user(s, uid, first, last, username)
        await users.ensure_user(s, OFFICER_BIG, "Rina", None, None)
        kel = await s.scalar(select(Kelurahan).where(Kelurahan.name == "Api-Api"))
        await officers.appoint(s, ADMIN, (ADMIN,), OFFICER_BIG, Scope.for_kelurahan(kel.kecamatan_id, kel.id))
        officer_roles = await users.load_roles(s, OFFICER_BIG, (ADMIN,))
        first = await registration.submit(s, RES, "Siti Aminah", "+6281255500001", w.rt_ids[1], (ADMIN,))
        await registration.decide(s, OFFICER_BIG, officer_roles, first.id, False, "Bukan ketua RT ini")
        pending = await registration.submit(s, RES, "Siti Aminah", "+6281255500001", w.rt_ids[0], (ADMIN,))
        proposal = await complete_proposal(s, w)
        await begin_write(s)
        s.add_all(
            [
                Follow(user_id=RES, rt_id=w.rt_ids[0]),
                Follow(user_id=RES, proposal_id=proposal.id),
                Follow(user_id=OTHER, rt_id=w.rt_ids[0]),
                NotificationPrefs(user_id=RES, mode="keputusan", quiet_start=22 * 60, quiet_end=5 * 60),
                NotificationPrefs(user_id=OTHER),
                Aspiration(
                    user_id=RES,
                    rt_id=w.rt_ids[0],
                    text="Perbaiki lampu jalan gang 3",
                    share_contact=True,
                    status="akan_dibahas",
                    decided_by=w.heads[0],
                ),
                Aspiration(user_id=OTHER, rt_id=w.rt_ids[0], text="Drainase", status="baru"),
                FSMRecord(key=fsm_key(RES), state="Aspirasi:text", data={"draft": "lampu", "target": OFFICER_BIG}),
                FSMRecord(key=fsm_key(OTHER), state="Aspirasi:text", data={"draft": "drainase"}),
            ]
        )
        vote = MusyawarahVote(
            rt_id=w.rt_ids[0],
            created_by=w.heads[0],
            question="Mana yang didahulukan?",
            options=["Lampu jalan", "Drainase"],
            closes_at=utcnow() + dt.timedelta(days=3),
        )
        s.add(vote)
        await s.flush()
        s.add_all(
            [
                VotePoll(vote_id=vote.id, user_id=RES, poll_id="poll-res", message_id=11),
                VotePoll(vote_id=vote.id, user_id=OTHER, poll_id="poll-other", message_id=12),
                VoteAnswer(vote_id=vote.id, user_id=RES, option_ids=[0]),
                VoteAnswer(vote_id=vote.id, user_id=OTHER, option_ids=[1]),
            ]
        )
        outbox.enqueue(s, RES, "proposal.approved", proposal_id=proposal.id)
        outbox.enqueue(s, OTHER, "proposal.approved", proposal_id=proposal.id)
        await s.commit()
    return {"world": w, "rejected_id": first.id, "pending_id": pending.id, "proposal": proposal, "vote_id": vote.id}


def values(obj: Any) -> list[Any]:
    """Every scalar in a JSON document."""
    if isinstance(obj, dict):
        return [v for x in obj.values() for v in values(x)]
    if isinstance(obj, list):
        return [v for x in obj for v in values(x)]
    return [obj]


async def test_collect_lists_everything_and_no_other_person_id(sessionmaker, tmp_path):
    seeded = await seed(sessionmaker, tmp_path)
    w = seeded["world"]
    async with sessionmaker() as s:
        data = await privacy.collect(s, RES)
    assert data["user"]["first_name"] == "Siti" and data["user"]["username"] == "siti_a"
    assert data["user"]["telegram_id"] == RES and data["user"]["erased_at"] is None
    assert [(c["purpose"], c["version"]) for c in data["consents"]] == [
        (registration.CONSENT_PURPOSE, registration.CONSENT_VERSION)
    ] * 2
    regs = {r["status"]: r for r in data["rt_registrations"]}
    assert set(regs) == {"ditolak", "menunggu"}
    assert regs["ditolak"]["phone"] == "+6281255500001" and regs["ditolak"]["full_name"] == "Siti Aminah"
    assert regs["ditolak"]["decided_by"] == "petugas" and regs["ditolak"]["reason"] == "Bukan ketua RT ini"
    assert regs["menunggu"]["place"] == {"rt": 1, "kelurahan": "Api-Api", "kecamatan": "Bontang Utara"}
    assert len(data["follows"]) == 2 and {"rt", "proposal"} <= {k for f in data["follows"] for k in f}
    assert data["notification_settings"]["mode"] == "keputusan"
    assert (data["notification_settings"]["quiet_start"], data["notification_settings"]["quiet_end"]) == (
        "22:00",
        "05:00",
    )
    [asp] = data["aspirations"]
    assert asp["text"] == "Perbaiki lampu jalan gang 3" and asp["status"] == "akan_dibahas" and asp["share_contact"]
    assert [v["chosen"] for v in data["votes_answered"]] == [["Lampu jalan"]]
    assert data["vote_polls_received"] == 1
    assert data["pending_notices"] == 2  # the rejection, and the proposal notice
    assert [d["step"] for d in data["dialogs"]] == ["Aspirasi:text"]
    assert data["dialogs"][0]["data"] == {"draft": "lampu", "target": privacy.HIDDEN}
    assert {a["action"] for a in data["audit_entries"]} == {"registration.submit"}
    assert data["proposals"] == [] and data["officer_roles"] == []

    # No other person's Telegram id anywhere, not even as text.
    text = privacy.to_json(data)
    assert json.loads(text)["user"]["telegram_id"] == RES
    foreign = {OTHER, OFFICER_BIG, OFFICER_API, OFFICER_LOK, ADMIN, HEAD_LOK, *w.heads}
    scalars = values(json.loads(text))
    assert not [v for v in scalars if isinstance(v, int) and not isinstance(v, bool) and v in foreign]
    assert not [v for v in scalars if isinstance(v, str) and v.isdigit() and int(v) in foreign]
    assert str(OFFICER_BIG) not in text and str(OTHER) not in text


async def test_collect_of_a_ketua_rt_lists_proposals_and_roles(sessionmaker, tmp_path):
    seeded = await seed(sessionmaker, tmp_path)
    w = seeded["world"]
    async with sessionmaker() as s:
        data = await privacy.collect(s, w.heads[0])
        officer_data = await privacy.collect(s, OFFICER_BIG)
    assert [p["title"] for p in data["proposals"]] == ["Semenisasi gang"]
    assert [r["status"] for r in data["rt_registrations"]] == ["terverifikasi"]
    assert len(data["votes_created"]) == 1
    assert str(RES) not in privacy.to_json(data)  # the aspirant and the voters stay anonymous
    [role] = officer_data["officer_roles"]
    assert role["active"] and role["kelurahan"] == "Api-Api" and role["appointed_by"] == "admin"
    assert str(ADMIN) not in privacy.to_json(officer_data)


async def test_erase_removes_and_anonymises_exactly_what_it_says(sessionmaker, tmp_path):
    seeded = await seed(sessionmaker, tmp_path)
    before = await counts(sessionmaker)
    shown = utcnow() - dt.timedelta(seconds=5)
    async with sessionmaker() as s:
        result = await privacy.erase(s, RES, admin_ids=(ADMIN,), confirmed_after=shown)
    assert result.counts == {
        "follows": 2,
        "notification_prefs": 1,
        "vote_answers": 1,
        "vote_polls": 1,
        "notices": 2,
        "reminders": 0,
        "dialogs": 1,
        "aspirations_unlinked": 1,
        "registrations_withdrawn": 1,
        "registrations_anonymised": 1,
        "audit_snapshots_anonymised": 3,  # submit x2, reject
        "consents_withdrawn": 2,
    }
    after = await counts(sessionmaker)
    changed = {k: after[k] - before[k] for k in before if after[k] != before[k]}
    assert changed == {
        "follows": -2,
        "notification_prefs": -1,
        "vote_answers": -1,
        "vote_polls": -1,
        "outbox": -2,
        "fsm_states": -1,
        "rt_heads": -1,
        "audit_log": 1,
    }
    async with sessionmaker() as s:
        user = await s.get(User, RES)
        assert (user.first_name, user.last_name, user.username) == ("", None, None)
        assert user.erased_at is not None and user.language == "id"
        assert all(c.withdrawn_at is not None for c in (await s.scalars(select(Consent))).all() if c.user_id == RES)
        reg = await s.get(RTHead, seeded["rejected_id"])
        assert (reg.full_name, reg.phone, reg.status, reg.reason) == ("", "", "ditolak", "Bukan ketua RT ini")
        assert await s.get(RTHead, seeded["pending_id"]) is None
        asp = await s.scalar(select(Aspiration).where(Aspiration.text == "Perbaiki lampu jalan gang 3"))
        assert (asp.user_id, asp.share_contact, asp.status) == (None, False, "akan_dibahas")
        assert await s.scalar(select(func.count()).where(Aspiration.user_id == OTHER)) == 1
        assert await s.get(FSMRecord, fsm_key(OTHER)) is not None
        assert (await s.scalar(select(VoteAnswer).where(VoteAnswer.user_id == OTHER))).option_ids == [1]
        assert await s.scalar(select(func.count()).where(Outbox.chat_id == OTHER)) == 1
        # Nothing of the person stays in the audit log but their id; the erase row holds counts only.
        rows = (await s.scalars(select(AuditLog).order_by(AuditLog.id))).all()
        dumped = json.dumps([[r.before, r.after, r.reason] for r in rows])
        assert "Siti" not in dumped and "+62812555" not in dumped
        last = rows[-1]
        assert (last.action, last.actor_id, last.entity_id) == ("privacy.erase", RES, None)
        assert last.after == result.counts
        # The programme's record is untouched.
        assert (await s.get(Proposal, seeded["proposal"].id)).created_by == seeded["world"].heads[0]

    # A second press of the same confirmation: nothing done twice.
    async with sessionmaker() as s:
        with pytest.raises(privacy.AlreadyErased):
            await privacy.erase(s, RES, admin_ids=(ADMIN,), confirmed_after=shown)
    assert await counts(sessionmaker) == after

    # The user comes back: Telegram's name is stored again, as for a new resident.
    async with sessionmaker() as s:
        user = await users.ensure_user(s, RES, "Siti", None, None)
        assert user.first_name == "Siti" and user.erased_at is not None
        data = await privacy.collect(s, RES)
    assert data["rt_registrations"][0]["full_name"] == "" and data["follows"] == []
    assert data["aspirations"] == [] and data["user"]["erased_at"] is not None


async def test_role_holders_cannot_erase(sessionmaker, tmp_path):
    seeded = await seed(sessionmaker, tmp_path)
    w = seeded["world"]
    before = await counts(sessionmaker)
    async with sessionmaker() as s:
        with pytest.raises(privacy.HoldsRole) as head:
            await privacy.erase(s, w.heads[0], admin_ids=(ADMIN,))
        assert head.value.role == "ketua_rt" and head.value.detail.rt_id == w.rt_ids[0]
        with pytest.raises(privacy.HoldsRole) as officer:
            await privacy.erase(s, OFFICER_BIG, admin_ids=(ADMIN,))
        assert officer.value.role == "petugas"
        with pytest.raises(privacy.HoldsRole) as admin:
            await privacy.erase(s, ADMIN, admin_ids=(ADMIN,))
        assert admin.value.role == "admin"
        assert (await s.get(User, w.heads[0], populate_existing=True)).first_name == f"U{w.heads[0]}"
    assert await counts(sessionmaker) == before


async def test_a_replaced_ketua_rt_can_erase_and_their_proposals_stay(sessionmaker, tmp_path):
    seeded = await seed(sessionmaker, tmp_path)
    w = seeded["world"]
    old_head = w.heads[0]
    async with sessionmaker() as s:
        officer_roles = await users.load_roles(s, OFFICER_BIG, (ADMIN,))
        await users.ensure_user(s, OTHER, "Andi", None, None)
        new = await registration.submit(s, OTHER, "Andi Saputra", "+6281299", w.rt_ids[0], (ADMIN,))
        await registration.decide(s, OFFICER_BIG, officer_roles, new.id, True, None)
        result = await privacy.erase(s, old_head, admin_ids=(ADMIN,))
    assert result.counts["registrations_anonymised"] == 1
    assert result.counts["audit_snapshots_anonymised"] == 1  # the "replace" snapshot had the name
    async with sessionmaker() as s:
        old = await s.scalar(select(RTHead).where(RTHead.user_id == old_head))
        assert (old.status, old.full_name, old.phone) == ("diganti", "", "")
        p = await s.get(Proposal, seeded["proposal"].id)
        assert p.created_by == old_head and p.title == "Semenisasi gang"
        assert await s.scalar(select(func.count()).where(MusyawarahVote.created_by == old_head)) == 1
        replace = await s.scalar(select(AuditLog).where(AuditLog.action == "registration.replace"))
        assert replace.before["full_name"] == "" and replace.before["status"] == "terverifikasi"


def test_fsm_key_owner():
    assert privacy.fsm_key_owner("fsm:1:55:55:::default") == ("55", "55")
    assert privacy.fsm_key_owner("fsm:1:-100:55:7::default") == ("-100", "55")
    assert privacy.fsm_key_owner("sha256:abcdef") is None


def test_every_column_holding_a_user_id_is_accounted_for():
    """A new table or column with Telegram user ids must be added to privacy.USER_COLUMNS (and so
    thought through for /dataku and /hapusdata); one that disappears must be removed there."""
    import re

    from sqlalchemy import BigInteger

    pattern = re.compile(r"(^user_id$|^chat_id$|_chat_id$|_by$|^actor_id$|^admin_id$|^reporter_id$|^recipients$)")
    found = set()
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            to_users = any(fk.target_fullname == "users.id" for fk in column.foreign_keys)
            if to_users or pattern.search(column.name) or (table.name == "users" and column.name == "id"):
                found.add(f"{table.name}.{column.name}")
                if not to_users and column.name != "recipients":
                    assert isinstance(column.type, BigInteger), f"{table.name}.{column.name} holds a Telegram id"
    assert found == set(privacy.USER_COLUMNS)


async def test_reminders_escalations_and_broadcasts_are_shown_and_handled(sessionmaker, tmp_path):
    seeded = await seed(sessionmaker, tmp_path)
    proposal = seeded["proposal"]
    async with sessionmaker() as s:
        await begin_write(s)
        s.add_all(
            [
                *(
                    ReminderSent(kind="jendela", user_id=uid, subject_id=1, occurrence="7", local_date=MARCH_1)
                    for uid in (RES, OTHER)
                ),
                Escalation(
                    item_type="proposal",
                    item_id=proposal.id,
                    since=utcnow(),
                    level=0,
                    scope_level="kelurahan",
                    age_days=6,
                    recipients=[RES, OFFICER_BIG],
                ),
                Escalation(
                    item_type="proposal",
                    item_id=proposal.id,
                    since=utcnow(),
                    level=1,
                    scope_level="kecamatan",
                    age_days=8,
                    recipients=[OFFICER_BIG],
                ),
                Broadcast(admin_id=RES, audience="heads", text="Batas usulan Jumat", total=3),
            ]
        )
        await s.commit()
    async with sessionmaker() as s:
        data = await privacy.collect(s, RES)
        officer = await privacy.collect(s, OFFICER_BIG)
    assert [r["occurrence"] for r in data["reminders_received"]] == ["7"]
    [alert] = data["escalations_received"]
    assert (alert["proposal"], alert["level"], alert["working_days_waited"]) == (proposal.code, "kelurahan", 6)
    assert [e["level"] for e in officer["escalations_received"]] == ["kelurahan", "kecamatan"]
    assert [(b["audience"], b["recipients"]) for b in data["broadcasts_sent"]] == [("heads", 3)]
    text = privacy.to_json(data)
    assert str(OFFICER_BIG) not in text and str(OTHER) not in text  # co-recipients stay hidden

    async with sessionmaker() as s:
        result = await privacy.erase(s, RES, admin_ids=(ADMIN,))
    assert result.counts["reminders"] == 1
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).where(ReminderSent.user_id == OTHER)) == 1
        assert await s.scalar(select(func.count()).select_from(Escalation)) == 2  # the audit of alerts stays
        assert await s.scalar(select(func.count()).select_from(Broadcast)) == 1
