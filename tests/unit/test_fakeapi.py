"""The fake Telegram Bot API, exercised with the real aiogram client over HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.filters import CommandStart
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BufferedInputFile,
    CallbackQuery,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    ReplyParameters,
)

from fakeapi import FakeTelegram, WaitTimeout, make_jpeg, read_exif
from fakeapi.text import parse_html


class QuickSession(AiohttpSession):
    """aiogram's session without the 250 ms grace sleep on close (keeps this file fast)."""

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


def make_client(tg: FakeTelegram, token: str) -> Bot:
    return Bot(token, session=QuickSession(api=TelegramAPIServer.from_base(tg.base_url)))


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    token = tg.new_bot_token(username="prolita_test_bot", first_name="Prolita")
    client = make_client(tg, token)
    yield client
    await client.session.close()


def keyboard(*buttons: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=text, callback_data=data)] for text, data in buttons]
    )


async def test_get_me_and_raw_http(tg: FakeTelegram, bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == int(bot.token.split(":")[0])
    assert me.is_bot is True
    assert me.username == "prolita_test_bot"
    assert me.first_name == "Prolita"

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{tg.base_url}/bot{bot.token}/GETME") as response:  # case-insensitive
            assert response.status == 200
            assert (await response.json())["result"]["username"] == "prolita_test_bot"
        async with http.post(f"{tg.base_url}/bot{bot.token}/noSuchMethod", json={}) as response:
            assert response.status == 404
            assert await response.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        async with http.get(f"{tg.base_url}/botnot-a-token/getMe") as response:
            assert response.status == 401
            assert await response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
        async with http.get(f"{tg.base_url}/file/bot{bot.token}/photos/missing.jpg") as response:
            assert response.status == 404
    assert [call.method for call in tg.calls[:3]] == ["getMe", "getMe", "noSuchMethod"]
    assert tg.calls[0].ok and tg.calls[0].result["id"] == me.id


async def test_send_message_html_entities(tg: FakeTelegram, bot: Bot) -> None:
    siti = tg.user("Siti", language_code="id")
    await siti.send("/start")
    html = (
        '👍 <b>Halo</b> <i>Siti</i>, baca <a href="https://example.com">aturan</a> &amp; '
        '<code>kode</code>\n<pre><code class="language-python">x = 1</code></pre>'
    )
    sent = await bot.send_message(siti.id, html, parse_mode="HTML")
    assert sent.text == "👍 Halo Siti, baca aturan & kode\nx = 1"
    entities = [(e.type, e.offset, e.length, e.url, e.language) for e in sent.entities or []]
    # the emoji takes two UTF-16 code units
    assert entities == [
        ("bold", 3, 4, None, None),
        ("italic", 8, 4, None, None),
        ("text_link", 19, 6, "https://example.com/", None),
        ("code", 28, 4, None, None),
        ("pre", 33, 5, None, "python"),
    ]
    seen = await siti.wait_message(contains="Halo")
    assert seen.message_id == sent.message_id
    assert seen.html.startswith("👍 <b>Halo</b> <i>Siti</i>")

    for bad, reason in [
        ("<foo>x</foo>", 'Unsupported start tag "foo" at byte offset 0'),
        ("<b>tebal", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
    ]:
        with pytest.raises(TelegramBadRequest) as error:
            await bot.send_message(siti.id, bad, parse_mode="HTML")
        assert error.value.message == f"Bad Request: can't parse entities: {reason}"
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(siti.id, "<b> </b>", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(siti.id, "x" * 4097)
    assert len((await bot.send_message(siti.id, "x" * 4096)).text or "") == 4096
    # commands and links in bot text are detected, like Telegram does
    auto = await bot.send_message(siti.id, "Ketik /daftar atau buka https://prolita.id/info")
    assert [(e.type, e.offset, e.length) for e in auto.entities or []] == [
        ("bot_command", 6, 7),
        ("url", 24, 23),
    ]
    assert parse_html("a &lt;b&gt; &#128077;") == ("a <b> 👍", [])


async def test_unknown_chat_and_blocked_user(tg: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="Bad Request: chat not found"):
        await bot.send_message(123456, "halo")
    stranger = tg.user("Budi")
    with pytest.raises(TelegramForbiddenError, match="bot can't initiate conversation with a user"):
        await bot.send_message(stranger.id, "halo")

    rina = tg.user("Rina")
    await rina.send("/start")
    await bot.send_message(rina.id, "ok")
    rina.block_bot()
    with pytest.raises(TelegramForbiddenError) as error:
        await bot.send_message(rina.id, "masih di sana?")
    assert error.value.message == "Forbidden: bot was blocked by the user"
    updates = await bot.get_updates()
    member = updates[-1].my_chat_member
    assert member is not None and member.new_chat_member.status == "kicked"
    assert member.from_user.id == rina.id
    # writing again unblocks
    await rina.send("halo lagi")
    assert (await bot.send_message(rina.id, "selamat datang kembali")).text == "selamat datang kembali"


async def test_get_updates_offset_and_long_poll(tg: FakeTelegram, bot: Bot) -> None:
    dewi = tg.user("Dewi")
    await dewi.send("/start")
    await dewi.send("satu")
    first = await bot.get_updates()
    assert [u.message.text for u in first if u.message] == ["/start", "satu"]
    assert (
        first[0].message and first[0].message.entities and first[0].message.entities[0].type == "bot_command"
    )
    assert first[1].update_id == first[0].update_id + 1
    again = await bot.get_updates(offset=first[0].update_id + 1, limit=1)
    assert [u.update_id for u in again] == [first[1].update_id]  # offset confirmed the first one
    assert tg.pending_updates() and len(tg.pending_updates()) == 1

    # a long poll returns as soon as an update is available
    offset = first[1].update_id + 1
    poll = asyncio.create_task(bot.get_updates(offset=offset, timeout=5))
    await tg.wait_polling()
    sent_at = time.monotonic()
    await dewi.send("dua")
    updates = await poll
    assert time.monotonic() - sent_at < 0.2
    assert [u.message.text for u in updates if u.message] == ["dua"]
    assert tg.pending_updates() == [tg.pending_updates()[0]] and len(tg.pending_updates()) == 1

    # allowed_updates is remembered: callback queries are not even created afterwards
    await bot.get_updates(offset=updates[0].update_id + 1, allowed_updates=["message"])
    msg = await bot.send_message(dewi.id, "pilih", reply_markup=keyboard(("A", "a")))
    answer = await dewi.press("A", timeout=0.05)
    assert not answer.answered
    assert tg.pending_updates() == []
    assert msg.message_id == dewi.last_message.message_id  # type: ignore[union-attr]


async def test_get_updates_conflicts() -> None:
    async with FakeTelegram(conflict_repeat_delay=0) as tg:
        async with make_client(tg, tg.new_bot_token()) as bot:
            first = asyncio.create_task(bot.get_updates(timeout=5))
            await tg.wait_polling()
            second = asyncio.create_task(bot.get_updates(timeout=5))
            with pytest.raises(TelegramConflictError) as error:
                await first
            assert error.value.message == (
                "Conflict: terminated by other getUpdates request; "
                "make sure that only one bot instance is running"
            )
            await tg.wait_polling()
            assert await bot.set_webhook("https://bot.example.com/hook", secret_token="s3cret")
            with pytest.raises(TelegramConflictError, match="terminated by setWebhook request"):
                await second
            with pytest.raises(TelegramConflictError) as error:
                await bot.get_updates()
            assert "can't use getUpdates method while webhook is active" in error.value.message
            info = await bot.get_webhook_info()
            assert info.url == "https://bot.example.com/hook" and info.pending_update_count == 0
            with pytest.raises(TelegramRetryAfter):  # setWebhook: at most once per second
                await bot.set_webhook("https://bot.example.com/other")
            tg.config.webhook_set_rate_limit = False
            with pytest.raises(TelegramBadRequest, match="HTTPS URL must be provided"):
                await bot.set_webhook("http://bot.example.com/hook")
            with pytest.raises(TelegramBadRequest, match="ports 80, 88, 443 or 8443"):
                await bot.set_webhook("https://bot.example.com:8080/hook")
            assert await bot.delete_webhook(drop_pending_updates=True)
            assert (await bot.get_webhook_info()).url == ""
            # (offset=-1: the same offset again within 3 s would make Telegram wait at least 3 s)
            assert await bot.get_updates(offset=-1) == []


async def test_callback_query_round_trip(tg: FakeTelegram, bot: Bot) -> None:
    siti = tg.user("Siti", language_code="id")
    await siti.send("/start")
    start = (await bot.get_updates())[-1]
    question = await bot.send_message(
        siti.id, "Setuju dengan aturan?", reply_markup=keyboard(("Setuju", "agree"), ("Tolak", "decline"))
    )

    async def bot_side() -> None:
        updates = await bot.get_updates(offset=start.update_id + 1, timeout=5)
        query = updates[0].callback_query
        assert query is not None and query.data == "agree" and query.from_user.id == siti.id
        assert query.message is not None and query.message.message_id == question.message_id
        await bot.answer_callback_query(query.id, text="Terima kasih", show_alert=True)
        with pytest.raises(TelegramBadRequest, match="query is too old and response timeout expired"):
            await bot.answer_callback_query(query.id)
        await bot.edit_message_text("Anda setuju ✅", chat_id=siti.id, message_id=question.message_id)

    task = asyncio.create_task(bot_side())
    answer = await siti.press("Setuju")
    assert answer.answered and answer.text == "Terima kasih" and answer.show_alert
    edited = await siti.wait_message(contains="Anda setuju", include_edits=True)
    await task
    assert edited.message_id == question.message_id
    assert edited.edits[0]["text"] == "Setuju dengan aturan?"
    assert edited.reply_markup is None  # editing the text without reply_markup removes the keyboard
    with pytest.raises(LookupError):
        await siti.press("Setuju", timeout=0.1)

    with pytest.raises(TelegramBadRequest) as error:
        await bot.edit_message_text("Anda setuju ✅", chat_id=siti.id, message_id=question.message_id)
    assert error.value.message.startswith(
        "Bad Request: message is not modified: specified new message content"
    )
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=siti.id, message_id=999)
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(siti.id, "x", reply_markup=keyboard(("X", "d" * 65)))
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query("12345")
    assert await bot.delete_message(siti.id, question.message_id)
    assert siti.messages[-1].deleted and siti.last_message is not question
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(siti.id, question.message_id)


async def test_photo_upload_get_file_and_download(tg: FakeTelegram, bot: Bot) -> None:
    siti = tg.user("Siti")
    await siti.send("/start")
    jpeg = make_jpeg(1600, 1200)
    sent = await bot.send_photo(
        siti.id, BufferedInputFile(jpeg, "kegiatan.jpg"), caption="<b>Foto</b>", parse_mode="HTML"
    )
    assert [(p.width, p.height) for p in sent.photo or []] == [
        (90, 68),
        (320, 240),
        (800, 600),
        (1280, 960),
        (1600, 1200),
    ]
    assert sent.caption == "Foto" and sent.caption_entities and sent.caption_entities[0].type == "bold"
    largest = (sent.photo or [])[-1]
    file = await bot.get_file(largest.file_id)
    assert file.file_path and file.file_path.startswith("photos/") and file.file_size == largest.file_size
    downloaded = await bot.download(largest.file_id)
    assert downloaded is not None and downloaded.read() == await siti.download(siti.last_message)  # type: ignore[arg-type]
    recaptioned = await bot.edit_message_caption(
        chat_id=siti.id, message_id=sent.message_id, caption="Foto 2"
    )
    assert recaptioned.caption == "Foto 2" and siti.last_message.edits[0]["caption"] == "Foto"  # type: ignore[union-attr]
    with pytest.raises(TelegramBadRequest, match="there is no caption in the message to edit"):
        text_only = await bot.send_message(siti.id, "teks saja")
        await bot.edit_message_caption(chat_id=siti.id, message_id=text_only.message_id, caption="x")
    with pytest.raises(TelegramBadRequest, match="message can't be edited"):  # the user's own /start
        await bot.edit_message_text("x", chat_id=siti.id, message_id=1)
    # re-sending by file_id reuses the stored sizes
    again = await bot.send_photo(siti.id, largest.file_id)
    assert [p.file_unique_id for p in again.photo or []] == [p.file_unique_id for p in sent.photo or []]
    with pytest.raises(TelegramBadRequest, match="wrong file identifier/HTTP URL specified"):
        await bot.send_photo(siti.id, "no-such-file-id")
    with pytest.raises(TelegramBadRequest, match="IMAGE_PROCESS_FAILED"):
        await bot.send_photo(siti.id, BufferedInputFile(b"not an image", "x.jpg"))
    document = await bot.send_document(siti.id, BufferedInputFile(b"%PDF-1.4 ...", "laporan.pdf"))
    assert document.document and document.document.file_name == "laporan.pdf"
    assert document.document.mime_type == "application/pdf"

    # a user's photo loses EXIF (Telegram recompresses), a document keeps it
    original = make_jpeg(taken_at=datetime(2024, 8, 17, 9, 30), gps=(0.1301, 117.4994))
    await siti.send_photo(original, caption="progres minggu 1")
    await siti.send_document(original, file_name="progres.jpg", mime_type="image/jpeg")
    updates = await bot.get_updates()
    photo_message, document_message = updates[-2].message, updates[-1].message
    assert photo_message and photo_message.photo and photo_message.caption == "progres minggu 1"
    photo_bytes = await bot.download(photo_message.photo[-1].file_id)
    assert photo_bytes is not None and read_exif(photo_bytes.read()) == {}
    assert document_message and document_message.document
    document_bytes = await bot.download(document_message.document.file_id)
    assert document_bytes is not None
    exif = read_exif(document_bytes.read())
    assert exif["taken_at"] == "2024:08:17 09:30:00"
    latitude, longitude = exif["gps"]  # type: ignore[misc]
    assert abs(latitude - 0.1301) < 1e-4 and abs(longitude - 117.4994) < 1e-4


async def test_get_file_refuses_files_over_20_mb(tg: FakeTelegram, bot: Bot) -> None:
    siti = tg.user("Siti")
    await siti.send_document(bytes(20 * 1024 * 1024 + 1), file_name="video-besar.mp4")
    await siti.send_document(bytes(20 * 1024 * 1024), file_name="pas.bin")
    big, fits = [u.message.document for u in await bot.get_updates() if u.message]
    assert big and big.file_size == 20 * 1024 * 1024 + 1
    with pytest.raises(TelegramBadRequest) as error:
        await bot.get_file(big.file_id)
    assert error.value.message == "Bad Request: file is too big"
    assert fits and (await bot.get_file(fits.file_id)).file_path
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await bot.get_file("nope")


async def test_rate_limits_and_injected_429(tg: FakeTelegram, bot: Bot) -> None:
    siti = tg.user("Siti")
    await siti.send("/start")
    tg.config.rate_limits.enabled = True  # 1 message/s per chat with a burst of 3
    for number in range(3):
        await bot.send_message(siti.id, f"pesan {number}")
    with pytest.raises(TelegramRetryAfter) as error:
        await bot.send_message(siti.id, "terlalu cepat")
    assert error.value.retry_after == 1
    assert tg.calls[-1].response == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 1",
        "parameters": {"retry_after": 1},
    }
    tg.config.rate_limits.enabled = False

    tg.fail("sendMessage", error_code=429, retry_after=7)
    with pytest.raises(TelegramRetryAfter) as error:
        await bot.send_message(siti.id, "x")
    assert error.value.retry_after == 7
    tg.fail("sendMessage", error_code=500, times=2)
    for _ in range(2):
        with pytest.raises(TelegramServerError):
            await bot.send_message(siti.id, "x")
    assert (await bot.send_message(siti.id, "akhirnya")).text == "akhirnya"
    tg.drop_connection("getMe")
    with pytest.raises(TelegramNetworkError):
        await bot.get_me()
    tg.delay("getMe", 0.3, times=1)
    started = time.monotonic()
    await bot.get_me()
    assert time.monotonic() - started >= 0.3
    assert [c.status for c in tg.calls_of("sendMessage")][-4:] == [429, 500, 500, 200]
    last = tg.calls_of("sendMessage")[-1]
    assert last.params == {"chat_id": siti.id, "text": "akhirnya"} and last.result["text"] == "akhirnya"


async def test_set_my_commands_validation(tg: FakeTelegram, bot: Bot) -> None:
    siti = tg.user("Siti", language_code="id")
    await siti.send("/start")
    assert await bot.set_my_commands([BotCommand(command="start", description="Start")])
    assert await bot.set_my_commands(
        [BotCommand(command="start", description="Mulai"), BotCommand(command="lapor", description="Lapor")],
        language_code="id",
    )
    assert await bot.set_my_commands(
        [BotCommand(command="admin", description="Panel")], scope=BotCommandScopeChat(chat_id=siti.id)
    )
    assert [c.command for c in await bot.get_my_commands()] == ["start"]
    assert [c.description for c in await bot.get_my_commands(language_code="id")] == ["Mulai", "Lapor"]
    assert await bot.get_my_commands(language_code="en") == []  # no fallback in getMyCommands
    assert [c["command"] for c in siti.commands()] == ["admin"]  # clients do fall back by scope
    assert await bot.delete_my_commands(scope=BotCommandScopeChat(chat_id=siti.id))
    assert [c["command"] for c in siti.commands()] == ["start", "lapor"]
    for bad in ["Start", "lapor-cepat", "x" * 33, ""]:
        with pytest.raises(TelegramBadRequest) as error:
            await bot.set_my_commands([BotCommand(command=bad, description="x")])
        assert error.value.message == "Bad Request: BOT_COMMAND_INVALID"
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.set_my_commands(
            [BotCommand(command="x", description="x")], scope=BotCommandScopeChat(chat_id=1)
        )


async def test_media_group(tg: FakeTelegram, bot: Bot) -> None:
    siti = tg.user("Siti")
    await siti.send("/start")
    album = await bot.send_media_group(
        siti.id,
        [
            InputMediaPhoto(media=BufferedInputFile(make_jpeg(320, 240, color=(i * 60, 10, 10)), f"{i}.jpg"))
            for i in range(3)
        ],
    )
    assert len(album) == 3
    assert len({m.media_group_id for m in album}) == 1 and album[0].media_group_id
    assert [m.message_id for m in album] == [album[0].message_id + i for i in range(3)]
    assert [m.media_group_id for m in siti.messages[-3:]] == [album[0].media_group_id] * 3
    with pytest.raises(TelegramBadRequest):
        await bot.send_media_group(siti.id, [InputMediaPhoto(media=BufferedInputFile(make_jpeg(), "a.jpg"))])

    sent = await siti.send_album(
        [make_jpeg(64, 64), make_jpeg(64, 48), make_jpeg(48, 64)], caption="tiga foto"
    )
    updates = [u.message for u in await bot.get_updates() if u.message and u.message.photo]
    assert [m.message_id for m in updates] == [m.message_id for m in sent]
    assert {m.media_group_id for m in updates} == {sent[0].media_group_id}
    assert [m.caption for m in updates] == ["tiga foto", None, None]


async def test_reply_keyboard_contact_and_location(tg: FakeTelegram, bot: Bot) -> None:
    siti = tg.user("Siti", "Aminah", phone="+6281234567890", language_code="id")
    await siti.send("/start")
    await bot.send_message(
        siti.id,
        "Bagikan nomor Anda",
        reply_markup=ReplyKeyboardMarkup(
            keyboard=[
                [KeyboardButton(text="📱 Kirim nomor", request_contact=True)],
                [KeyboardButton(text="📍 Lokasi", request_location=True), KeyboardButton(text="Batal")],
            ],
            resize_keyboard=True,
            one_time_keyboard=True,
        ),
    )
    assert [b["text"] for b in siti.keyboard_buttons] == ["📱 Kirim nomor", "📍 Lokasi", "Batal"]
    await siti.press("Kirim nomor")
    await siti.press("📍 Lokasi", location=(0.1301, 117.4994))
    await siti.press("Batal")
    await siti.share_contact("+628999", user_id=999, first_name="Orang Lain")
    messages = [u.message for u in await bot.get_updates() if u.message][1:]
    assert messages[0] and messages[0].contact
    assert messages[0].contact.user_id == siti.id and messages[0].contact.phone_number == "+6281234567890"
    assert messages[0].contact.first_name == "Siti" and messages[0].contact.last_name == "Aminah"
    assert messages[1] and messages[1].location and messages[1].location.latitude == pytest.approx(0.1301)
    assert messages[2] and messages[2].text == "Batal"
    assert messages[3] and messages[3].contact and messages[3].contact.user_id == 999
    await bot.send_message(siti.id, "Terima kasih", reply_markup=ReplyKeyboardRemove())
    assert siti.keyboard is None

    # the bot's own location/contact, replies and ForceReply
    location = await bot.send_location(siti.id, -0.5, 117.15)
    assert location.location and location.location.longitude == pytest.approx(117.15)
    contact = await bot.send_contact(siti.id, "+62541123", "Kantor Kelurahan")
    assert contact.contact and contact.contact.first_name == "Kantor Kelurahan"
    reply = await bot.send_message(
        siti.id, "Ini balasan", reply_parameters=ReplyParameters(message_id=location.message_id)
    )
    assert reply.reply_to_message and reply.reply_to_message.message_id == location.message_id
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(siti.id, "x", reply_parameters=ReplyParameters(message_id=9999))
    orphan = await bot.send_message(
        siti.id, "x", reply_parameters=ReplyParameters(message_id=9999, allow_sending_without_reply=True)
    )
    assert orphan.reply_to_message is None
    asked = await bot.send_message(
        siti.id, "Nama lengkap?", reply_markup=ForceReply(input_field_placeholder="Nama")
    )
    answer = await siti.send("Siti Aminah")
    assert answer.reply_to_message_id == asked.message_id


async def test_poll_answers_and_chat_actions(tg: FakeTelegram, bot: Bot) -> None:
    siti = tg.user("Siti")
    await siti.send("/start")
    await bot.send_chat_action(siti.id, "typing")
    assert siti.chat_actions == ["typing"]
    with pytest.raises(TelegramBadRequest, match="wrong parameter action in request"):
        await bot.send_chat_action(siti.id, "dancing")
    poll = await bot.send_poll(siti.id, "Setuju?", ["Ya", "Tidak"], is_anonymous=False)
    assert poll.poll and poll.poll.is_anonymous is False and poll.poll.total_voter_count == 0
    await siti.vote([1])
    updates = await bot.get_updates(allowed_updates=["message", "poll", "poll_answer"])
    answer = updates[-1].poll_answer
    assert answer is not None and answer.option_ids == [1] and answer.user and answer.user.id == siti.id
    stopped = await bot.stop_poll(siti.id, poll.message_id)
    assert stopped.is_closed and [o.voter_count for o in stopped.options] == [0, 1]
    with pytest.raises(TelegramBadRequest, match="poll has already been closed"):
        await bot.stop_poll(siti.id, poll.message_id)


async def test_real_dispatcher_with_simulated_user(tg: FakeTelegram, bot: Bot) -> None:
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        await asyncio.sleep(0.05)  # the user must wait for the bot, not press a stale button
        await message.answer(
            f"Selamat datang, <b>{message.from_user.first_name}</b>!",  # type: ignore[union-attr]
            parse_mode="HTML",
            reply_markup=keyboard(("Setuju", "agree")),
        )

    @router.callback_query(F.data == "agree")
    async def agree(query: CallbackQuery) -> None:
        await query.answer("Tercatat")
        await query.message.edit_text("Terima kasih, Anda sudah setuju.")  # type: ignore[union-attr]

    @router.callback_query()
    async def unknown(query: CallbackQuery) -> None:
        await query.answer(f"Tombol tidak dikenal: {query.data}", show_alert=True)

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    polling = asyncio.create_task(dispatcher.start_polling(bot, handle_signals=False, polling_timeout=2))
    try:
        siti = tg.user("Siti", language_code="id")
        await siti.send("/start")
        welcome = await siti.wait_message(contains="Selamat datang", timeout=5)
        assert welcome.html == "Selamat datang, <b>Siti</b>!"
        assert welcome.button_texts == ["Setuju"]
        answer = await siti.press("Setuju")
        assert answer.text == "Tercatat"
        done = await siti.wait_message(contains="sudah setuju", include_edits=True, timeout=5)
        assert done is welcome and done.edited
        with pytest.raises(WaitTimeout):
            await siti.wait_message(timeout=0.1)

        # wait_message also matches button labels (what the user sees)
        await siti.send("/start")
        second = await siti.wait_message("Setuju", timeout=5)
        assert second is not welcome and second.text == "Selamat datang, Siti!"
        # pressing right after sending waits for the bot's new message (not an older one)
        await siti.send("/start")
        answer = await siti.press("Setuju")
        assert answer.answered and answer.message is not None
        assert answer.message.message_id > second.message_id
        # callback data no button carries (a modified client) still reaches the bot
        forged = await siti.press(data="admin:delete-all")
        assert forged.show_alert and forged.text == "Tombol tidak dikenal: admin:delete-all"
        methods = {c.method for c in tg.calls}
        assert {"getMe", "getUpdates", "sendMessage", "answerCallbackQuery", "editMessageText"} <= methods
    finally:
        await dispatcher.stop_polling()
        await asyncio.wait_for(polling, 5)


async def test_control_api_and_event_subscription() -> None:
    async with FakeTelegram(control_api=True) as tg:
        token = tg.new_bot_token()
        with tg.subscribe(kinds=["message", "edit"]) as events:
            async with make_client(tg, token) as bot, aiohttp.ClientSession(base_url=tg.base_url) as http:
                async with http.post("/_sim/users", json={"first_name": "Ani", "language_code": "id"}) as r:
                    user_id = (await r.json())["id"]
                async with http.post(f"/_sim/chats/{user_id}/send", json={"text": "/start"}) as r:
                    assert (await r.json())["result"]["message"]["text"] == "/start"
                update = (await bot.get_updates())[0]
                assert update.message and update.message.from_user and update.message.from_user.id == user_id
                sent = await bot.send_message(
                    user_id, "<i>Halo</i>", parse_mode="HTML", reply_markup=keyboard(("OK", "ok"))
                )
                await bot.edit_message_text("Halo lagi", chat_id=user_id, message_id=sent.message_id)
                async with http.get(f"/_sim/chats/{user_id}") as r:
                    chat = await r.json()
                assert [m["sender"] for m in chat["messages"]] == ["user", "bot"]
                assert (
                    chat["messages"][1]["html"] == "Halo lagi"
                    and chat["messages"][1]["edits"][0]["text"] == "Halo"
                )
            kinds = [(e.kind, e.message.message_id if e.message else None) for e in events.drain()]
            assert kinds == [("message", 1), ("message", 2), ("edit", 2)]
