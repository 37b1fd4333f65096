"""The crashes tests/e2e/test_fuzz.py found, one test each, over HTTP against the real bot process:
a button pressed on a message Telegram sends as inaccessible, forged callback data with numbers
outside the database's range or with NUL, a reply refused because the person blocked the bot
meanwhile, and the broadcast's area picker (its buttons could not be built)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from storage.models import AuditLog
from tests.e2e.conftest import ADMIN_ID, t
from tests.e2e.test_progress_report import approved
from tests.e2e.test_proposal_wizard import seed_people
from tests.e2e.test_review import seed, start_chat

pytestmark = pytest.mark.e2e

STALE = t("This button is no longer valid. Please use the latest message, or type /start.")


def answer_of(tg, query_id: str):
    return next(r for r in tg.callback_queries() if r.id == query_id)


async def answered(tg, query_id: str, timeout: float = 10.0):
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (record := answer_of(tg, query_id)).answered:
        assert loop.time() < deadline, f"callback query {query_id} not answered"
        await asyncio.sleep(0.05)
    return record.answer


async def test_a_button_on_an_inaccessible_message_goes_on_in_a_new_message(db_url, tg, launch, db):
    await launch(db_url)
    officer = tg.user("Rina", language_code="id")
    head = tg.user("Budi", language_code="id")
    await seed_people(db, db_url, officer, [head])
    await head.send("/usulan")
    question = await head.wait_message(predicate=lambda m: "Sosial budaya" in m.button_texts)
    data = question.button("Sosial budaya")["callback_data"]
    # Telegram sends the message as InaccessibleMessage (date 0): it cannot be edited.
    query = await head.send_callback(data, message=question, inaccessible=True)
    assert await answered(tg, query) is not None
    await head.wait_message(t("Category: <b>{name}</b>").format(name="Sosial budaya"))
    await head.wait_message(t("Type a short <b>title</b>, e.g. <i>Semenisasi jalan gang RT 05</i>."))
    assert not question.edited  # the old message is left as it was
    # Forged presses on a message without text (a category chosen on the bot's map pin, say) and
    # Batal on an inaccessible message: answered, nothing breaks.
    await head.send("Pelatihan kader posyandu")
    await head.wait_message(t("Describe it in a few sentences: what will be done, and why the residents need it."))
    cancel = await head.send_callback("nav:cancel", inaccessible=True)
    assert await answered(tg, cancel) is not None
    await head.wait_message()


async def test_forged_callback_data_is_refused_as_a_stale_button(db_url, tg, launch, db, tmp_path):
    await launch(db_url)
    officer = tg.user("Rina", language_code="id")
    head = tg.user("Budi", language_code="id")
    await start_chat(officer, head)
    w = await seed(db, db_url, tmp_path, officer, head)
    p = await approved(db, tg, w, officer, "Drainase gang Melati")
    await head.send("/progres")  # at the percentage question, where "pg:pct:<id>:<n>" is a real button
    await head.wait_message(predicate=lambda m: "50%" in m.button_texts)
    forged = [
        f"pp:open:{2**31}:0:",  # one past the largest id of an integer column (PropCb cannot even pack it)
        "pp:open:99999999999999999999:0:",  # beyond 64 bits
        "pp:open:-1:0:",
        f"pg:start:{2**31 + 5}:",
        "kd:open:9223372036854775808",
        f"pg:pct:{p.id}:²",  # a digit to str.isdigit(), not to int()
        "pub:card:10000000000:1",
        "rg:kec:4294967296",
        "\x00\x01\x02",
        "pp:open:999:0:\x00",
    ]
    for data in forged:
        answer = await answered(tg, await head.send_callback(data))
        assert (answer["text"], answer["show_alert"]) == (STALE, True), data
    async with db(db_url) as s:
        rows = (await s.scalars(select(AuditLog).where(AuditLog.action == "denied.stale_button"))).all()
        assert [(r.actor_id, r.reason) for r in rows] == [(head.id, d.replace("\x00", "\\x00")) for d in forged]
    await head.press("50%")  # the dialog is where it was
    await head.wait_message("📎")


async def test_a_reply_refused_because_the_user_blocked_the_bot_meanwhile_is_no_error(db_url, tg, launch):
    bot = await launch(db_url)
    siti = tg.user("Siti", language_code="id")
    await siti.send("/start")
    await siti.wait_message()
    siti.block_bot()
    # A message Telegram had queued before the block: the bot's answer is refused with 403.
    message = {"message_id": 99, "date": int(time.time()), "chat": {"id": siti.id, "type": "private",
               "first_name": siti.first_name}, "from": siti.to_json(), "text": "halo"}  # fmt: skip
    tg.inject_update("message", message)
    refused = await tg.wait_for_call(
        "sendMessage", finished=True, predicate=lambda c: str(c.params.get("chat_id")) == str(siti.id) and not c.ok
    )
    assert refused.error_code == 403
    await bot.stop()
    assert "ERROR" not in bot.log() and tg.pending_updates() == []


async def test_broadcast_to_an_area_offers_its_kelurahan_and_rts(db_url, tg, launch):
    await launch(db_url)
    admin = tg.user("Hendra", language_code="id", id=ADMIN_ID)
    await admin.send("/siaran")
    await admin.press(t("🏘 An area: kecamatan, kelurahan or RT"))
    await admin.press("Bontang Utara")
    await admin.wait_message(t("Choose the kelurahan, or the whole kecamatan."), include_edits=True)
    await admin.press("Api-Api")
    rts = t("Choose an RT (its Ketua RT and followers), or the whole kelurahan.")
    await admin.wait_message(rts, include_edits=True)
    await admin.press(t("Everyone in Kel. {name}").format(name="Api-Api"))
    await admin.wait_message(t("The message will reach <b>{n}</b> people. Please type the message (plain text, at "
                               "most {max} characters). /batal to stop.").split("{n}")[0])  # fmt: skip
