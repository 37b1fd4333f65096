"""Fuzzing the real bot process over HTTP (issue 18, item 4): random and malformed updates
(tests/e2e/fuzzing.py) sent from every dialog state, by Ketua RT, officers, residents and admins.

Each *station* is one dialog state (all the states of every StatesGroup under handlers/, plus no
dialog at all): a fresh person is taken there through the real dialog (each step checked in the
stored FSM state), then sends random updates in waves, each wave handled before the next. A
bystander Ketua RT stopped in the middle of /usulan before the fuzz must find the draft and the
dialog step untouched afterwards, and finish the proposal. At the end: no traceback and no ERROR
line in the bot's log, every callback query answered, every update confirmed (none left at
Telegram), and /start still answered.

CI runs a short version (``FUZZ_UPDATES``, default 800 updates); the long one is

    FUZZ_UPDATES=10000 .venv/bin/python -m pytest tests/e2e/test_fuzz.py -s

``FUZZ_SEED`` picks another seed (the one used is printed, with the kinds of updates sent).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.domain.permissions import Scope
from bot.services import aspirations, media, officers, progress, registration, review, users
from fakeapi import FakeTelegram, SimUser, make_jpeg, make_pdf
from storage.db import create_engine, create_sessionmaker
from storage.models import RT, Follow, FSMRecord, Kelurahan, Proposal
from tests.e2e.conftest import ADMIN_ID, BotProcess, t
from tests.e2e.fuzzing import ODD_NAMES, UpdateFuzzer, callback_data_classes
from tests.e2e.test_review import World, submitted

pytestmark = pytest.mark.e2e

UPDATES = int(os.environ.get("FUZZ_UPDATES", "800"))
SEED = int(os.environ.get("FUZZ_SEED", "20260418"))
WORKERS = 8  # stations fuzzed at once (the bot handles different users concurrently)
ADMINS = tuple(range(ADMIN_ID, ADMIN_ID + 10))


# --- the world: people and what they need -----------------------------------------------------------------


@dataclass
class Ctx:
    tg: FakeTelegram
    db: Callable
    url: str
    store: media.LocalMediaStore
    rng: random.Random
    kelurahan: dict[str, Kelurahan] = field(default_factory=dict)
    registrars: dict[str, SimUser] = field(default_factory=dict)  # an officer per kelurahan, never fuzzed
    next_rt: Counter[str] = field(default_factory=Counter)
    names: int = 0

    def person(self, *, phone: bool = True) -> SimUser:
        self.names += 1
        name = ODD_NAMES[self.names % len(ODD_NAMES)] if self.names % 3 == 0 else f"Warga{self.names}"
        language = self.rng.choice(["id", "id", "en", None, "ar"])
        return self.tg.user(name, language_code=language, phone=f"+62812{self.names:07d}" if phone else None)

    async def rt_id(self, kel: str, number: int) -> int:
        async with self.db(self.url) as s:
            return await s.scalar(select(RT.id).where(RT.kelurahan_id == self.kelurahan[kel].id, RT.number == number))

    async def registrar(self, kel: str) -> SimUser:
        if kel not in self.registrars:
            officer = self.registrars[kel] = self.person()
            await self.appoint(officer, kel)
        return self.registrars[kel]

    async def appoint(self, officer: SimUser, kel: str) -> None:
        k = self.kelurahan[kel]
        async with self.db(self.url) as s:
            await users.ensure_user(s, officer.id, officer.first_name, None, None)
            await officers.appoint(s, ADMIN_ID, ADMINS, officer.id, Scope.for_kelurahan(k.kecamatan_id, k.id))

    async def head(self, kel: str = "Api-Api") -> tuple[SimUser, int]:
        """A verified Ketua RT of the next free RT of ``kel``."""
        self.next_rt[kel] += 1
        rt_id = await self.rt_id(kel, self.next_rt[kel])
        officer = await self.registrar(kel)
        person = self.person()
        async with self.db(self.url) as s:
            await users.ensure_user(s, person.id, person.first_name, None, None)
            reg = await registration.submit(s, person.id, f"{person.first_name} Santoso", person.phone, rt_id, ADMINS)
            roles = await users.load_roles(s, officer.id, ADMINS)
            await registration.decide(s, officer.id, roles, reg.id, True, None)
        return person, rt_id

    async def proposal(self, kel: str, *, approved: bool = False) -> tuple[SimUser, Proposal]:
        head, rt_id = await self.head(kel)
        p = await submitted(self.db, self.tg, World(self.url, rt_id, head.id, self.store), "Semenisasi gang Mawar")
        if approved:
            officer = await self.registrar(kel)
            async with self.db(self.url) as s:
                roles = await users.load_roles(s, officer.id, ADMINS)
                p = await review.decide(s, officer.id, roles, p.id, "setujui")
        return head, p

    async def report(self, head: SimUser, proposal: Proposal, percent: int) -> None:
        async with self.db(self.url) as s:
            biggest = self.tg.world.store_photo(make_jpeg(color=(200, 60, 60), text=f"progres {percent}"))[-1]
            row = await media.save_media(s, self.store, biggest.data, "image/jpeg")
            exif, phash = await progress.analyse_photo(biggest.data)
            photo = progress.EvidenceFile(row, biggest.file_id, biggest.file_unique_id, exif, phash)
            await progress.report(s, head.id, proposal.id, percent=percent, spent_total=1_000_000, photos=[photo],
                                  note="Pengecoran 30 meter selesai")  # fmt: skip


async def fsm_state(ctx: Ctx, user: SimUser) -> str | None:
    async with ctx.db(ctx.url) as s:
        record = await s.scalar(select(FSMRecord).where(FSMRecord.key.like(f"fsm:%:{user.id}:{user.id}:::default")))
        return record.state if record is not None else None


async def fsm_record(ctx: Ctx, user: SimUser) -> tuple[str | None, dict]:
    async with ctx.db(ctx.url) as s:
        record = await s.scalar(select(FSMRecord).where(FSMRecord.key.like(f"fsm:%:{user.id}:{user.id}:::default")))
        return (record.state, dict(record.data or {})) if record is not None else (None, {})


async def until_state(ctx: Ctx, user: SimUser, expected: str | None, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (state := await fsm_state(ctx, user)) != expected:
        if loop.time() > deadline:
            recent = "\n".join(f"  {m!r}" for m in user.messages[-6:])
            raise AssertionError(f"{user!r}: dialog at {state!r}, not {expected!r}, after {timeout}s:\n{recent}")
        await asyncio.sleep(0.05)


# --- taking a person to a dialog state ---------------------------------------------------------------------

Action = Callable[[SimUser], Awaitable[object]]


def send(text: str) -> Action:
    return lambda u: u.send(text)


def press(label: str) -> Action:
    return lambda u: u.press(label, timeout=10)


async def photo(user: SimUser) -> None:
    await user.send_photo(make_jpeg(text=str(user.id)))


async def pdf(user: SimUser) -> None:
    await user.send_document(make_pdf("Berita acara"), file_name="berita-acara.pdf", mime_type="application/pdf")


async def location(user: SimUser) -> None:
    await user.share_location(0.13370, 117.49500)


async def contact(user: SimUser) -> None:
    await user.share_contact()


Step = tuple[list[Action], str | None]  # actions, then the dialog state they lead to

USULAN: list[Step] = [
    ([send("/usulan")], "Usulan:kategori"),
    ([press("Sosial budaya")], "Usulan:judul"),
    ([send("Pelatihan kader posyandu")], "Usulan:uraian"),
    ([send("Pelatihan untuk 20 kader selama 2 hari.")], "Usulan:lokasi"),
    ([location], "Usulan:alamat"),
    ([press(t("Skip ➡️"))], "Usulan:rab"),
    ([send("Konsumsi")], "Usulan:rab_qty"),
    ([send("40 kotak")], "Usulan:rab_price"),
    ([send("25rb")], "Usulan:rab"),
    ([press(t("✏️ Change a line")), press("✏️ 1.")], "Usulan:rab_edit"),
    ([send("Konsumsi 40 kotak x 20rb")], "Usulan:rab"),
    ([press(t("✅ Done, next"))], "Usulan:foto"),
    ([photo, press(t("➡️ Next"))], "Usulan:bukti"),
    ([pdf, press(t("➡️ Next"))], "Usulan:peserta"),
    ([send("20")], "Usulan:ringkasan"),
]
LAPORAN: list[Step] = [
    ([send("/progres")], "Laporan:persen"),
    ([press("50%")], "Laporan:foto"),
    ([photo, press(t("➡️ Next"))], "Laporan:lokasi"),
    ([press(t("Skip ➡️"))], "Laporan:catatan"),
    ([send("Pengecoran 30 meter selesai")], "Laporan:biaya"),
    ([send("Rp 1 jt")], "Laporan:nota"),
    ([pdf, press(t("➡️ Next"))], "Laporan:ringkasan"),
]
LAPORAN_LEBIH: list[Step] = [*LAPORAN[:5], ([send("Rp 10 jt")], "Laporan:lebih")]
REG: list[Step] = [
    ([send("/daftar")], "Reg:consent"),
    ([press(t("✅ I agree"))], "Reg:name"),
    ([send("Budi Santoso")], "Reg:phone"),
    ([contact], "Reg:kecamatan"),
    ([press("Bontang Utara")], "Reg:kelurahan"),
    ([press("Loktuan")], "Reg:rt"),
    ([press("07")], "Reg:confirm"),
]
ASP: list[Step] = [
    ([send("/aspirasi")], "Asp:kecamatan"),
    ([press("Bontang Utara")], "Asp:kelurahan"),
    ([press("Api-Api")], "Asp:rt"),
    ([press("05")], "Asp:text"),
    ([send("Lampu jalan mati di gang Mawar")], "Asp:photo"),
    ([press(t("Skip ➡️"))], "Asp:location"),
    ([press(t("Skip ➡️"))], "Asp:contact"),
    ([press(t("🙈 No, first name only"))], "Asp:confirm"),
]
MUSYAWARAH: list[Step] = [
    ([send("/musyawarah"), press(t("➕ New vote"))], "Musyawarah:question"),
    ([press(t("✅ Use this question"))], "Musyawarah:options"),
    ([send("Semenisasi gang Mawar\nLampu jalan gang Melati"), press(t("✅ Done"))], "Musyawarah:closing"),
    ([press(t("In {days} day(s)").format(days=1))], "Musyawarah:confirm"),
]
REVIEW: dict[str, list[Step]] = {
    "Review:approve_note": [([send("/tinjau"), press(t("✅ Approve"))], "Review:approve_note")],
    "Review:reason": [([send("/tinjau"), press(t("❌ Reject"))], "Review:reason")],
    "Review:parts": [([send("/tinjau"), press(t("🔁 Request revision"))], "Review:parts")],
    "Review:revision_note": [
        ([send("/tinjau"), press(t("🔁 Request revision")), press(t("Budget (RAB)"))], "Review:parts"),
        ([press(t("Continue ▶"))], "Review:revision_note"),
    ],
}
APPOINT: list[Step] = [
    ([send("/petugas"), press(t("➕ Appoint an officer"))], "Appoint:who"),
    ([], "Appoint:scope"),  # the appointee's id is typed by the station (see admin_station)
    ([press(t("One kelurahan"))], "Appoint:kecamatan"),
    ([press("Bontang Selatan")], "Appoint:kelurahan"),
]
SIARAN: list[Step] = [
    ([send("/siaran")], "Siaran:audience"),
    ([press(t("👤 All Ketua RT"))], "Siaran:text"),
    ([send("Kerja bakti Minggu 07.00 di balai RT.")], "Siaran:confirm"),
]


@dataclass
class Station:
    name: str  # the dialog state fuzzed from ("-" + who: no dialog)
    make: Callable[[Ctx], Awaitable[SimUser]]  # a fresh person, taken to the state


def prefixes(path: list[Step]) -> list[list[Step]]:
    """For each state a path reaches, the steps up to its first arrival there."""
    seen: dict[str, list[Step]] = {}
    for i, (_actions, state) in enumerate(path):
        if state is not None and state not in seen:
            seen[state] = path[: i + 1]
    return list(seen.values())


async def walk(ctx: Ctx, user: SimUser, steps: list[Step]) -> SimUser:
    for actions, expected in steps:
        for action in actions:
            await action(user)
        await until_state(ctx, user, expected)
    return user


def stations() -> list[Station]:
    out: list[Station] = []

    def head_station(steps: list[Step], kel: str = "Api-Api", followers: int = 0):
        async def make(ctx: Ctx) -> SimUser:
            head, rt_id = await ctx.head(kel)
            for _ in range(followers):  # residents following the RT (a musyawarah vote needs voters)
                follower = ctx.person()
                await follower.send("/start")
                async with ctx.db(ctx.url) as s:
                    await users.ensure_user(s, follower.id, follower.first_name, None, None)
                    s.add(Follow(user_id=follower.id, rt_id=rt_id))
                    await s.commit()
            return await walk(ctx, head, steps)

        return make

    for steps in prefixes(USULAN):
        out.append(Station(steps[-1][1], head_station(steps)))

    def approved_head(count: int, report_at: int | None = None):
        async def make(ctx: Ctx) -> SimUser:
            head, rt_id = await ctx.head("Gunung Elai")
            officer = await ctx.registrar("Gunung Elai")
            for _ in range(count):
                p = await submitted(ctx.db, ctx.tg, World(ctx.url, rt_id, head.id, ctx.store), "Drainase gang Melati")
                async with ctx.db(ctx.url) as s:
                    roles = await users.load_roles(s, officer.id, ADMINS)
                    p = await review.decide(s, officer.id, roles, p.id, "setujui")
            if report_at is not None:
                await ctx.report(head, p, report_at)
            return head

        return make

    for steps in [*prefixes(LAPORAN), LAPORAN_LEBIH]:
        make_head = approved_head(1)

        async def make(ctx: Ctx, steps=steps, make_head=make_head) -> SimUser:
            return await walk(ctx, await make_head(ctx), steps)

        out.append(Station(steps[-1][1], make))

    async def pilih(ctx: Ctx) -> SimUser:
        return await walk(ctx, await approved_head(2)(ctx), [([send("/progres")], "Laporan:pilih")])

    async def alasan(ctx: Ctx) -> SimUser:
        head = await approved_head(1, report_at=50)(ctx)
        return await walk(ctx, head, [([send("/progres")], "Laporan:persen"), ([send("25")], "Laporan:alasan")])

    out += [Station("Laporan:pilih", pilih), Station("Laporan:alasan", alasan)]

    for steps in prefixes(MUSYAWARAH):
        out.append(Station(steps[-1][1], head_station(steps, kel="Guntung", followers=2)))

    async def with_idea(ctx: Ctx, target: str) -> SimUser:
        head, rt_id = await ctx.head("Bontang Baru")
        resident = ctx.person()
        async with ctx.db(ctx.url) as s:
            await users.ensure_user(s, resident.id, resident.first_name, None, None)
            await aspirations.submit(s, resident.id, rt_id, "Selokan tersumbat di gang Anggrek")
        steps = [([send("/aspirasi"), press(t("🔎 Open idea {n}").format(n=1)), press(t(target))], None)]
        state = "AspHead:code" if target == "📄 Became a proposal" else "AspHead:reason"
        return await walk(ctx, head, [(steps[0][0], state)])

    out.append(Station("AspHead:code", lambda ctx: with_idea(ctx, "📄 Became a proposal")))
    out.append(Station("AspHead:reason", lambda ctx: with_idea(ctx, "🚫 Cannot be followed up")))

    def officer_station(kel: str, steps: list[Step], seed: str):
        async def make(ctx: Ctx) -> SimUser:
            officer = ctx.person()
            await officer.send("/start")
            await officer.wait_message()
            await ctx.appoint(officer, kel)
            if seed == "proposal":
                await ctx.proposal(kel)
            elif seed == "report":
                head, p = await ctx.proposal(kel, approved=True)
                await ctx.report(head, p, 50)
            elif seed == "registration":
                applicant = ctx.person()
                rt_id = await ctx.rt_id(kel, 20)
                async with ctx.db(ctx.url) as s:
                    await users.ensure_user(s, applicant.id, applicant.first_name, None, None)
                    await registration.submit(s, applicant.id, "Joko Susilo", applicant.phone, rt_id, ADMINS)
            return await walk(ctx, officer, steps)

        return make

    for kel, (name, steps) in zip(["Belimbing", "Kanaan", "Satimpo", "Berbas Pantai"], REVIEW.items(), strict=True):
        out.append(Station(name, officer_station(kel, steps, "proposal")))
    more_evidence: list[Step] = [
        ([send("/verifikasi_progres"), press(t("📝 Ask for more evidence"))], "VerifyProgress:note")
    ]
    out.append(Station("VerifyProgress:note", officer_station("Berbas Tengah", more_evidence, "report")))
    reject: list[Step] = [([send("/verifikasi"), press(t("❌ Reject"))], "Verify:reason")]
    out.append(Station("Verify:reason", officer_station("Bontang Lestari", reject, "registration")))
    out.append(Station("-officer", officer_station("Tanjung Laut", [([send("/start")], None)], "proposal")))

    def resident_station(steps: list[Step], follows: int = 0):
        async def make(ctx: Ctx) -> SimUser:
            resident = ctx.person()
            if follows:
                async with ctx.db(ctx.url) as s:
                    await users.ensure_user(s, resident.id, resident.first_name, None, None)
                    for number in range(1, follows + 1):
                        s.add(Follow(user_id=resident.id, rt_id=await ctx.rt_id("Api-Api", number)))
                    await s.commit()
            return await walk(ctx, resident, steps)

        return make

    for steps in prefixes(REG):
        out.append(Station(steps[-1][1], resident_station(steps)))
    for steps in prefixes(ASP):
        out.append(Station(steps[-1][1], resident_station(steps)))
    out.append(Station("Asp:rt_pick", resident_station([([send("/aspirasi")], "Asp:rt_pick")], follows=2)))
    out.append(Station("Cek:code", resident_station([([send("/cek")], "Cek:code")])))
    out.append(
        Station(
            "FollowForm:code",
            resident_station([([send("/ikuti"), press(t("🔢 Follow a proposal by its code"))], "FollowForm:code")]),
        )
    )
    out.append(
        Station(
            "FollowForm:quiet",
            resident_station([([send("/pengaturan"), press(t("✏️ Other hours"))], "FollowForm:quiet")]),
        )
    )
    out.append(Station("-resident", resident_station([([send("/start")], None)])))
    out.append(Station("-head", head_station([([send("/start")], None)], kel="Bontang Kuala")))
    return out


def admin_stations() -> list[Station]:
    """Run after the others: an admin's fuzz can revoke officers and broadcast to everyone."""
    out: list[Station] = []
    admin_ids = iter(ADMINS[1:])

    def admin_station(steps: list[Step]):
        admin_id = next(admin_ids)

        async def make(ctx: Ctx) -> SimUser:
            admin = ctx.tg.user("Admin", id=admin_id, language_code="id")
            appointee = ctx.person()
            await appointee.send("/start")
            await appointee.wait_message()
            for actions, expected in steps:
                if expected == "Appoint:scope":
                    actions = [send(str(appointee.id))]
                for action in actions:
                    await action(admin)
                await until_state(ctx, admin, expected)
            return admin

        return make

    for steps in [*prefixes(APPOINT), *prefixes(SIARAN), [([send("/start")], None)]]:
        out.append(Station(steps[-1][1] or "-admin", admin_station(steps)))
    return out


# --- the fuzz -------------------------------------------------------------------------------------------------


def _sender(update: dict) -> int | None:
    for kind, payload in update.items():
        if kind == "update_id" or not isinstance(payload, dict):
            continue
        who = payload.get("from") or payload.get("user") or payload.get("chat") or {}
        return who.get("id")
    return None


async def settle(tg: FakeTelegram, bot: BotProcess, user: SimUser, timeout: float = 60.0) -> None:
    """Wait until every update of ``user`` was handled (the bot confirms only handled ones)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    account = tg.default_bot
    while any(_sender(u) == user.id for u in account.updates):
        if bot.proc is not None and bot.proc.returncode is not None:
            raise AssertionError(f"the bot exited with {bot.proc.returncode}:\n{bot.log()[-6000:]}")
        if loop.time() > deadline:
            raise AssertionError(f"{user!r}: updates still unhandled after {timeout}s")
        await asyncio.sleep(0.02)


async def fuzz(tg: FakeTelegram, bot: BotProcess, fuzzer: UpdateFuzzer, user: SimUser, count: int) -> None:
    sent = 0
    while sent < count:
        wave = min(fuzzer.rng.randint(3, 12), count - sent)
        for _ in range(wave):
            await fuzzer.one(user)
        sent += wave
        await settle(tg, bot, user)


def dialog_states() -> set[str]:
    from aiogram.fsm.state import StatesGroup

    callback_data_classes()  # imports every handlers module

    def walk(cls: type[StatesGroup]) -> set[str]:
        found = set()
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("handlers"):
                found |= {s.state for s in sub.__all_states__}
            found |= walk(sub)
        return found

    return walk(StatesGroup)


async def test_fuzz_every_dialog_state(db_url, tg, launch, tmp_path):
    started = time.monotonic()
    bot = await launch(db_url, ADMIN_IDS=",".join(map(str, ADMINS)))
    engine = create_engine(db_url)
    sessions = create_sessionmaker(engine)
    try:
        await _fuzz_test(tg, bot, db_url, lambda _url: sessions(), tmp_path, started)
    finally:
        await engine.dispose()


async def _fuzz_test(tg: FakeTelegram, bot: BotProcess, url: str, db: Callable, tmp_path: Path, started: float) -> None:
    rng = random.Random(SEED)
    ctx = Ctx(tg, db, url, media.LocalMediaStore(tmp_path / "media"), rng)
    async with db(url) as s:
        ctx.kelurahan = {k.name: k for k in (await s.scalars(select(Kelurahan))).all()}
        await users.ensure_user(s, ADMIN_ID, "Admin", None, None)

    first, second = stations(), admin_stations()
    covered = {st.name for st in first + second if not st.name.startswith("-")}
    missing = dialog_states() - covered
    assert not missing, f"dialog states with no fuzz station: {sorted(missing)}"

    # The bystander: a Ketua RT at the budget step of /usulan, with one line, before any fuzz.
    bystander, _rt = await ctx.head("Loktuan")
    await walk(ctx, bystander, USULAN[:9])
    before = await fsm_record(ctx, bystander)
    async with db(url) as s:
        draft = await s.get(Proposal, before[1]["proposal_id"])
        draft_before = (draft.status, draft.title, draft.description, draft.version, [x.total for x in draft.lines])

    # UPDATES spread over the stations (at least 5 each); the first ones take the remainder.
    share, extra = divmod(UPDATES, len(first) + len(second))
    budget = [max(5, share + (i < extra)) for i in range(len(first) + len(second))]
    first_update_id = tg.default_bot.next_update_id
    fuzzers: list[UpdateFuzzer] = []
    reached: list[str] = []

    async def run(station: Station, index: int, gate: asyncio.Semaphore) -> None:
        async with gate:
            person = await station.make(ctx)
            reached.append(station.name)
            fuzzer = UpdateFuzzer(tg, random.Random(SEED * 1000 + index))
            fuzzers.append(fuzzer)
            await fuzz(tg, bot, fuzzer, person, budget[index])

    gate = asyncio.Semaphore(WORKERS)
    await asyncio.gather(*(run(st, i, gate) for i, st in enumerate(first)))
    await asyncio.gather(*(run(st, len(first) + i, gate) for i, st in enumerate(second)))
    fuzzed = time.monotonic()

    # The bystander's draft and step are as they were, and the proposal can be finished.
    assert await fsm_record(ctx, bystander) == before
    async with db(url) as s:
        draft = await s.get(Proposal, before[1]["proposal_id"])
        assert (draft.status, draft.title, draft.description, draft.version, [x.total for x in draft.lines]) == (
            draft_before
        )
    await walk(ctx, bystander, USULAN[11:])
    summary = await bystander.wait_message(
        "Pelatihan kader posyandu", predicate=lambda m: t("📨 Send") in m.button_texts
    )
    await bystander.press(t("📨 Send"), message=summary)
    await bystander.wait_message("PRL-")
    async with db(url) as s:
        assert (await s.get(Proposal, before[1]["proposal_id"])).status == "diajukan"

    newcomer = tg.user("Baru", language_code="id")
    await newcomer.send("/start")
    await newcomer.wait_message("Halo")

    unanswered = [(r.data, r.user_id) for r in tg.callback_queries() if not r.answered]
    assert not unanswered, f"{len(unanswered)} callback queries never answered, e.g. {unanswered[:10]}"
    assert await bot.stop() == 0
    assert tg.pending_updates() == [], "updates left unconfirmed at Telegram"
    log = bot.log()
    errors = [line for line in log.splitlines() if re.search(r"\b(ERROR|CRITICAL)\b", line)]
    assert "Traceback" not in log and not errors, "the bot logged errors:\n" + "\n".join(errors[:20]) + log[-6000:]

    kinds = sum((f.counts for f in fuzzers), Counter())
    forged = sum((f.forged for f in fuzzers), Counter())
    total = sum(v for k, v in kinds.items() if not k.startswith("odd:"))
    updates = tg.default_bot.next_update_id - first_update_id  # albums and long pastes are several
    print(f"\nfuzz seed {SEED}: {total} fuzz sends ({updates} Telegram updates with the dialogs' own steps) from "
          f"{len(reached)} stations, fuzzed in {fuzzed - started:.0f}s, whole test {time.monotonic() - started:.0f}s")
    assert total >= UPDATES
    print("kinds:", dict(sorted(kinds.items())))
    print("forged callback data per class:", dict(sorted(forged.items())))
    assert set(forged) == {c.__name__ for c in callback_data_classes()}
