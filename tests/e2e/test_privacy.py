"""Over HTTP, the real bot process: /dataku answers with a summary and a JSON file of everything
stored; /hapusdata explains, erases on confirmation, and a second press of the button does nothing;
an administrator is told why they cannot erase."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from storage.db import begin_write
from storage.models import RT, AuditLog, Follow, NotificationPrefs, User
from tests.e2e.conftest import ADMIN_ID, t

pytestmark = pytest.mark.e2e


async def test_dataku_and_hapusdata(tg, launch, sqlite_url, db):
    await launch(sqlite_url)
    resident = tg.user("Siti", "Aminah", username="siti_a", language_code="id")
    await resident.send("/start")
    await resident.wait_message("Halo")
    async with db(sqlite_url) as s:
        await begin_write(s)
        rt = await s.scalar(select(RT).order_by(RT.id).limit(1))
        s.add_all([Follow(user_id=resident.id, rt_id=rt.id), NotificationPrefs(user_id=resident.id, mode="mingguan")])
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
    confirm = next(b["callback_data"] for b in explanation.buttons if b["text"] == t("🗑 Yes, delete my data"))
    answer = await resident.press(t("🗑 Yes, delete my data"), message=explanation)
    assert answer.answered
    await resident.wait_message(predicate=lambda m: (m.text or "").startswith("✅"))
    async with db(sqlite_url) as s:
        user = await s.get(User, resident.id)
        assert (user.first_name, user.username, user.language) == ("", None, "id") and user.erased_at is not None
        assert await s.scalar(select(func.count()).where(Follow.user_id == resident.id)) == 0
        assert await s.get(NotificationPrefs, resident.id) is None

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
