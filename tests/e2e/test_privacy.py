"""Over HTTP, the real bot process: /dataku answers with a summary and a JSON file of everything
stored; /hapusdata explains what is deleted and what is kept (and why), erases on confirmation as
explained, and a second press of the button does nothing; an administrator is told why they cannot
erase."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select

from handlers.privacy import explanation_text
from storage.db import begin_write
from storage.models import RT, Aspiration, AuditLog, Follow, NotificationPrefs, User
from tests.e2e.conftest import _I18N, ADMIN_ID, t
from tests.e2e.test_public import entity_texts

pytestmark = pytest.mark.e2e


def explanation_lines() -> tuple[list[str], list[str]]:
    """The /hapusdata explanation as shown (Indonesian, tags stripped) and its English msgid, line by
    line, so that the test can say which Indonesian line is which."""
    with _I18N.context(), _I18N.use_locale("en"):
        msgid = explanation_text()
    english, shown = re.sub(r"<[^>]+>", "", msgid).split("\n"), t(msgid).split("\n")
    assert len(english) == len(shown)  # the translation keeps the layout
    return english, shown


def section(lines: list[str], heading: int) -> list[str]:
    """The lines after ``heading`` up to the next blank line."""
    end = lines.index("", heading)
    return lines[heading + 1 : end]


async def test_dataku_and_hapusdata(tg, launch, sqlite_url, db):
    await launch(sqlite_url)
    resident = tg.user("Siti", "Aminah", username="siti_a", language_code="id")
    await resident.send("/start")
    await resident.wait_message("Halo")
    async with db(sqlite_url) as s:
        await begin_write(s)
        rt = await s.scalar(select(RT).order_by(RT.id).limit(1))
        s.add_all([Follow(user_id=resident.id, rt_id=rt.id), NotificationPrefs(user_id=resident.id, mode="mingguan")])
        s.add(Aspiration(user_id=resident.id, rt_id=rt.id, text="Lampu jalan gang Mawar mati", share_contact=True))
        await s.commit()

    await resident.send("/dataku")
    summary = await resident.wait_message(t("<b>🔐 The data stored about you</b>"))
    assert "Siti Aminah" in summary.text and "@siti_a" in summary.text
    assert t("a weekly summary") in summary.text
    document = await resident.wait_message(predicate=lambda m: m.document is not None)
    assert document.document["file_name"].startswith("data-saya-")
    export = json.loads(await resident.download(document))
    assert export["user"]["first_name"] == "Siti" and export["user"]["telegram_id"] == resident.id
    assert len(export["follows"]) == 1 and export["notification_settings"]["mode"] == "mingguan"

    await resident.send("/hapusdata")
    explanation = await resident.wait_message(t("🗑 Yes, delete my data"))
    assert len(explanation.buttons) == 2  # confirm, cancel
    # The whole explanation, as plain text with its title and two headings in bold: what is
    # deleted (follows and notice settings, vote answers, notices, name, waiting registration, the
    # names and phones of old registrations) and what is kept and why (the programme's record for
    # the audit, the ideas without their sender, consents, the audit log).
    english, shown = explanation_lines()
    assert explanation.text.split("\n") == shown
    deleted_at, kept_at = english.index("This will be deleted:"), english.index("This is kept, and why:")
    assert entity_texts(explanation, "bold") == [shown[0], shown[deleted_at], shown[kept_at]]
    deleted, kept = section(english, deleted_at), section(english, kept_at)
    assert (len(section(shown, deleted_at)), len(section(shown, kept_at))) == (len(deleted), len(kept)) == (6, 4)
    for what in (
        "the RTs and proposals you follow, and your notice settings",
        "your answers to musyawarah votes",
        "notices and reminders to you",
        "your name and username",
        "the full name and phone number on your earlier Ketua RT registrations",
    ):
        assert any(what in line for line in deleted), what
    for what in (
        "proposals, progress reports, the officers' decisions",
        "kept for the audit under the regional finance rules",
        "the ideas you sent to your RT: the text stays",
        "no longer linked to you",
        "your consent records",
        "the audit log of what you did in the bot",
    ):
        assert any(what in line for line in kept), what
    confirm = next(b["callback_data"] for b in explanation.buttons if b["text"] == t("🗑 Yes, delete my data"))
    answer = await resident.press(t("🗑 Yes, delete my data"), message=explanation)
    assert answer.answered
    await resident.wait_message(predicate=lambda m: (m.text or "").startswith("✅"))
    async with db(sqlite_url) as s:
        user = await s.get(User, resident.id)
        assert (user.first_name, user.username, user.language) == ("", None, "id") and user.erased_at is not None
        assert await s.scalar(select(func.count()).where(Follow.user_id == resident.id)) == 0
        assert await s.get(NotificationPrefs, resident.id) is None
        # The idea is kept for the RT's record, no longer linked to the resident (as explained).
        idea = await s.scalar(select(Aspiration))
        assert (idea.text, idea.user_id, idea.share_contact) == ("Lampu jalan gang Mawar mati", None, False)

    # The same button again (a double tap, or an old message): a clear answer, nothing done twice.
    again = await resident.press(data=confirm, message=explanation)
    assert again.answered and again.show_alert and again.text == t("Your data has already been deleted.")
    async with db(sqlite_url) as s:
        erasures = await s.scalar(select(func.count()).where(AuditLog.action == "privacy.erase"))
        assert erasures == 1

    admin = tg.user("Hendra", id=ADMIN_ID, language_code="id")
    await admin.send("/hapusdata")
    refusal = await admin.wait_message("ADMIN_IDS")
    assert not refusal.buttons
