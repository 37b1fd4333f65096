"""Database statements per update, pinned: each step of the /usulan wizard, counted by the bot
itself (``q=`` in its log line, ``storage.db.count_queries``: every statement sent, BEGIN included).

The figures were 20-33 per step before issue 14 (roles, the programme and the proposal read again
and again, two write transactions per step). A change that makes a step dearer fails here; one that
makes it cheaper should lower the pin. bench/README.md lists the figures per handler."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from fakeapi import make_jpeg, make_pdf
from tests.e2e.conftest import t
from tests.e2e.test_proposal_wizard import seed_people

pytestmark = pytest.mark.e2e

# handler -> most statements one update of it may send on SQLite (PostgreSQL sends 2-3 fewer: no
# second BEGIN). Before issue 14: 23, 23, 21, 21, 25, 21, 31, 20, 27, 27, 33. Two lines typed in one
# message are one write (rab_lines_given, was one per line: 21), the album's photos still one write
# each (media_given).
BUDGET = {
    "proposals.wizard.usulan": 15,
    "proposals.wizard.category_chosen": 12,
    "proposals.wizard.title_given": 10,
    "proposals.wizard.description_given": 10,
    "proposals.wizard.location_given": 10,
    "proposals.wizard.skip_location": 12,
    "proposals.wizard.rab_lines_given": 17,
    "proposals.wizard.step_done": 10,
    "proposals.wizard.media_given": 21,
    "proposals.wizard.attendees_given": 13,
    "proposals.wizard.send": 24,
}
LINE = re.compile(r"handler=(\S+) outcome=ok ms=[\d.]+ q=(\d+)")


async def test_statements_per_wizard_step(db_url, tg, launch, db):
    bot = await launch(db_url)
    officer = tg.user("Rina", language_code="id")
    head = tg.user("Budi", language_code="id")
    await seed_people(db, db_url, officer, [head])

    await head.send("/usulan")
    await head.wait_message(predicate=lambda m: "Infrastruktur fisik" in m.button_texts)
    await head.press("Infrastruktur fisik")
    await head.send("Semenisasi jalan gang Mawar")
    await head.send("Jalan gang rusak dan becek saat hujan; dipakai 40 KK.")
    await head.wait_message(t("📍 Send my current location"))
    await head.share_location(0.13370, 117.49500)
    await head.press(t("Skip ➡️"))
    await head.wait_message("Semen 50 sak x 65.000")
    await head.send("Semen 50 sak x 65.000\nPasir 3 m3 x 250rb")
    await head.wait_message("Rp 4.000.000")
    await head.press(t("✅ Done, next"))
    await head.send_album([make_jpeg(text="1"), make_jpeg(text="2"), make_jpeg(text="3")])
    await head.wait_message("📷")
    await head.press(t("➡️ Next"))
    await head.wait_message("PDF")
    await head.send_document(make_pdf("Berita acara"), file_name="berita-acara.pdf", mime_type="application/pdf")
    await head.wait_message("1")
    await head.press(t("➡️ Next"))
    await head.send("25 orang")
    summary = await head.wait_message("Semenisasi jalan gang Mawar")
    await head.press(t("📨 Send"), message=summary)
    await head.wait_message("PRL-")
    await head.wait_idle(quiet=0.5)

    seen: dict[str, list[int]] = defaultdict(list)
    for handler, queries in LINE.findall(bot.log()):
        seen[handler].append(int(queries))
    figures = {h: max(seen[h]) for h in BUDGET if seen.get(h)}
    print("\nstatements per update:", figures)
    assert set(figures) == set(BUDGET), f"steps not seen: {set(BUDGET) - set(figures)}"
    over = {h: (n, BUDGET[h]) for h, n in figures.items() if n > BUDGET[h]}
    assert not over, f"steps over their statement budget (seen, pinned): {over}"
