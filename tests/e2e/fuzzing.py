"""A seeded generator of random and malformed Telegram updates, sent through the fake Bot API as a
Telegram client (or Telegram itself) could send them. Used by tests/e2e/test_fuzz.py.

Everything comes from one ``random.Random(seed)``: the same seed sends the same kinds of updates
with the same contents (the bot's answers, and so the buttons harvested from them, may differ in
timing). What is sent stays within what Telegram can deliver: texts of at most 4,096 UTF-16 units
without NUL (a longer paste arrives split in several messages, as clients send it), captions of
at most 1,024, callback data of 1-64 bytes (any bytes a modified client puts there), locations
within ±90/±180; every update built here is checked against aiogram's ``Update`` model (which
follows the Bot API) before it is queued. Update types the bot did not ask for are delivered as
Telegram does for updates created before the bot's allowed_updates took effect.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import pkgutil
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiogram.filters.callback_data import CallbackData
from aiogram.types import Update

from fakeapi import ChatMessage, FakeTelegram, SimUser, make_jpeg, make_pdf
from fakeapi.text import utf16_len
from handlers.common import KNOWN_COMMANDS, MENU_LABELS
from tests.e2e.conftest import t

MAX_TEXT = 4096  # UTF-16 units in one message
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64  # bytes

# --- odd text ------------------------------------------------------------------------------------

ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u180e", "\u200e", "\u200f", "\u00ad"]
BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u061c"]
COMBINING = ["\u0301", "\u0300", "\u0308", "\u0336", "\u20dd", "\u0489", "\u034f", "\u0e49"]
EMOJI = ["👍", "🙂", "🏗️", "👨‍👩‍👧‍👦", "🇮🇩", "👍🏽", "🧑🏿‍🔧", "❤️‍🔥", "1️⃣", "🫠", "🏳️‍🌈", "🤌🏻"]
SCRIPTS = [
    "مرحبا بالعالم",  # Arabic (RTL)
    "שלום עולם",  # Hebrew (RTL)
    "ꦱꦸꦒꦼꦁ",  # Javanese
    "ᬅᬓ᭄ᬱᬭ",  # Balinese
    "漢字テスト",
    "한국어 ㅤ",  # with the Hangul filler, an "invisible" letter
    "Ｆｕｌｌｗｉｄｔｈ",
    "𝐁𝐨𝐥𝐝 𝓈𝒸𝓇𝒾𝓅𝓉",
    "ℌ𝔢𝔩𝔩𝔬",
    "İıŞşĞğ",
    "ß ẞ ﬀ ﬁ",
    "ǅ ǈ ǋ",
]
ODD_DIGITS = ["²", "³", "¹⁰", "①②", "⑳", "½", "¾", "٢٥", "۵۰", "５０", "𝟓𝟎", "߅", "〇", "Ⅻ", "⁴²", "₅"]
MONEY_JUNK = [
    "Rp -5.000", "-0", "0", "00", "0,0", "1e9", "1E400", "NaN", "inf", "-inf", "0x10", "1_000", "1,25,000",
    "Rp1.250.000,-", "Rp 50.000.000,00", "50jt jt", "50 juta miliar", "1.000.000.000.000.000.000", "9" * 40,
    "1/2", "½ jt", "٥٠ ribu", "５０rb", "1,5jt", "1.5.5", "Rp", "rb", "jt", "-", ".", ",", "1,", ",5", "1..2",
    "Rp 12.500.000 + 500rb", "10%", "150%", "-10%", "50,5%", "101", "100", "99999999999999999999999",
    "2147483648", "9223372036854775808", "-9223372036854775809", "1e-9", "0.0000001", "lima puluh ribu",
]  # fmt: skip
RAB_JUNK = [
    "Semen 50 sak x 65.000", "Semen 50 sak x -5000", "Semen 1e400 sak x 1", "Semen 99999999999999 sak x 99999999999",
    "x x x", "Tukang 10 hari @150rb", "Tukang @ @ @", "Pasir 3 m3 x 250rb = 750rb", "Pasir 3 m3 x 250rb = 1jt",
    "a" * 300 + " 1 x 1", "1 x 1", "Semen ² sak x 65.000", "Semen 5 sak x ½ jt", "Cat\t5\tkaleng\tx\t90rb",
    "Semen 50 sak x 65.000\n" * 60, "Semen 0 sak x 65.000", "Semen 50 sak x 0", "Lampu 1 paket x 50.000.000.000",
    "Semen 50 sak x 65.000 x 2", "Semen -50 sak x 65.000", "@150rb", "Semen 50 sak x Rp",
]  # fmt: skip
CODES = [
    "PRL-2026-0001", "prl 2026 1", "PRL20260001", "PRL-9999-99999999999999999999", "PRL-2026--1", "PRL--",
    "PRL-0000-0000", "prl-2026-０００１", "PRL-2026-0001; DROP TABLE proposals; --", "PRL-2026-" + "9" * 30,
    "PRL-²⁰²⁶-0001", "PRL-2026-0001\u200b",
]  # fmt: skip
INJECTION = [
    "<b>tebal</b>", "</code></pre>", "<a href='javascript:alert(1)'>x</a>", "&amp;&lt;&gt;&", "<tg-spoiler>",
    "'; DROP TABLE users; --", '" OR 1=1 --', "{name}", "{0}", "{}", "{code!r}", "{x.__class__}", "%s %d %(a)s",
    "$(rm -rf /)", "../../../../etc/passwd", "\\x00", "${jndi:ldap://x}", "@everyone", "#hashtag", "https://t.me/x",
]  # fmt: skip
ANSWERS = [
    "Budi Santoso", "Semenisasi jalan gang Mawar", "Jalan gang rusak dan becek saat hujan; dipakai 40 KK.",
    "Gang Mawar, depan masjid", "25", "25 orang", "0", "1", "-1", "1000", "50", "75%", "30/11 20:00",
    "kemarin", "besok jam 8", "31/02 25:61", "22.00-05.00", "21:00–06:00", "6-21", "00.00-00.00", "25:00-26:00",
    "rt 5", "RT.005", "5", "05", "099", "+6281234567890", "081234", "ya", "tidak", "batal", "kembali", "back",
    "stop", "lanjut", "900001", "-900001", "99999999999999999999", "@prolita_test_bot", "id", "en", "?",
]  # fmt: skip
PHONES = ["+6281234567890", "081234", "+1", "+62 (812) 345-6789", "(021) 555 0101", "+0000000000000", "12"]
LOCATIONS = [
    (0.1337, 117.4995), (0.0, 0.0), (90.0, 180.0), (-90.0, -180.0), (-6.2, 106.8), (0.13370001, 117.49999999),
    (51.5, -0.12), (1e-9, -1e-9), (89.999999, -179.999999),
]  # fmt: skip
FILE_NAMES = [
    "foto.jpg", "berita-acara.pdf", "../../../../tmp/evil.jpg", "..\\..\\evil.pdf", "a" * 250 + ".jpg",
    "фото 📷.jpeg", "\u202egpj.exe", "nota", ".jpg", "con.pdf", "x.JPG", "x.pdf.exe", "nul", "x\u200b.pdf",
]  # fmt: skip
LANGUAGES = [None, "id", "en", "ar", "zh-hans", "pt-br", "jv", "xx"]
ODD_NAMES = [
    "Budi", "<b>Budi</b>", "\u202eidub", "Ｓｉｔｉ", "🙂" * 10, "x" * 64, "a&b <c>", "İbrahim", "ㅤ", "D'Angelo",
    "{name}", "Z\u0336a\u0336l\u0336g\u0336o\u0336",
]  # fmt: skip


def callback_data_classes() -> list[type[CallbackData]]:
    """Every CallbackData class of the bot: all modules under handlers/ are imported first."""
    import handlers

    for module in pkgutil.walk_packages(handlers.__path__, "handlers."):
        importlib.import_module(module.name)
    found: list[type[CallbackData]] = []

    def walk(cls: type[CallbackData]) -> None:
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("handlers") and sub not in found:
                found.append(sub)
            walk(sub)

    walk(CallbackData)
    return sorted(found, key=lambda c: c.__prefix__)


@functools.cache
def _samples() -> tuple[list[bytes], bytes]:
    jpegs = [make_jpeg(160 + 40 * i, 120 + 30 * i, color=(40 * i, 120, 200), text=str(i)) for i in range(4)]
    return jpegs, make_pdf("Berita acara fuzz")


def fit_utf16(text: str, limit: int) -> str:
    """The longest prefix of ``text`` within ``limit`` UTF-16 units (never half a surrogate pair)."""
    if utf16_len(text) <= limit:
        return text
    out, used = [], 0
    for ch in text:
        size = 2 if ord(ch) > 0xFFFF else 1
        if used + size > limit:
            break
        out.append(ch)
        used += size
    return "".join(out)


def fit_bytes(text: str, limit: int = MAX_CALLBACK_DATA) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


class UpdateFuzzer:
    """Sends one random update at a time on behalf of a :class:`SimUser`; ``counts`` says what was sent."""

    _turns = itertools.count()

    def __init__(self, tg: FakeTelegram, rng: random.Random) -> None:
        self.tg = tg
        self.rng = rng
        self.classes = callback_data_classes()
        self.counts: Counter[str] = Counter()
        self.forged: Counter[str] = Counter()  # forged callback data per CallbackData class
        self.bot_user = tg.default_bot.user_json()
        self._jpegs, self._pdf = _samples()
        self._next_id = 10**15
        self.kinds: list[tuple[str, float, Callable[[SimUser], Any]]] = [
            ("text", 26, self.text),
            ("answer", 10, self.answer_text),
            ("command", 8, self.command),
            ("menu_label", 4, self.menu_label),
            ("long_text", 2, self.long_text),
            ("sticker", 2, self.sticker),
            ("photo", 4, self.photo),
            ("album", 1, self.album),
            ("document", 4, self.document),
            ("voice", 1, self.voice),
            ("location", 3, self.location),
            ("contact", 2, self.contact),
            ("other_message", 2, self.other_message),
            ("edited_message", 3, self.edited_message),
            ("press_seen_button", 8, self.press_seen),
            ("forged_callback", 14, self.forged_callback),
            ("random_callback", 2, self.random_callback),
            ("group_message", 1, self.group_message),
            ("odd_update", 3, self.odd_update),
        ]

    # --------------------------------------------------------------------------------- basics

    def _id(self) -> int:
        self._next_id += self.rng.randint(1, 1000)
        return self._next_id

    def pick(self, items: list[Any]) -> Any:
        return items[self.rng.randrange(len(items))]

    async def one(self, user: SimUser) -> str:
        """Send one update (or, for a long paste or an album, the few a client sends); returns its kind."""
        kinds, weights = zip(*[(k, w) for k, w, _ in self.kinds], strict=True)
        kind = self.rng.choices(kinds, weights)[0]
        action = next(a for k, _, a in self.kinds if k == kind)
        sent = await action(user)
        if sent is False:  # nothing of that kind was possible here (e.g. no message to edit)
            kind = "text"
            await self.text(user)
        self.counts[kind] += 1
        return kind

    def inject(self, update_type: str, payload: dict[str, Any], *, unasked: bool = False) -> None:
        Update.model_validate({"update_id": 1, update_type: payload})  # what Telegram sends: valid per the API
        self.tg.inject_update(update_type, payload, ignore_allowed_updates=unasked)

    # ---------------------------------------------------------------------------------- texts

    def random_text(self) -> str:
        r = self.rng.random()
        pick = self.pick
        if r < 0.08:  # empty-ish: only invisible characters
            return "".join(pick(ZERO_WIDTH + BIDI) for _ in range(self.rng.randint(1, 6)))
        if r < 0.16:
            return pick(SCRIPTS) + pick(BIDI) + pick(SCRIPTS)
        if r < 0.24:  # combining marks piled up ("zalgo")
            base = pick(["a", "5", "Rp", "PRL", "ا", "ก"])
            return base + "".join(pick(COMBINING) for _ in range(self.rng.randint(1, 60)))
        if r < 0.32:
            return "".join(pick(EMOJI) for _ in range(self.rng.randint(1, 30)))
        if r < 0.42:
            return pick(MONEY_JUNK)
        if r < 0.5:
            return pick(ODD_DIGITS) + pick(["", " orang", "%", " jt", " sak"])
        if r < 0.58:
            return pick(RAB_JUNK)
        if r < 0.64:
            return pick(CODES)
        if r < 0.72:
            return pick(INJECTION)
        if r < 0.8:  # a mix of everything
            parts = [pick(ZERO_WIDTH + BIDI + COMBINING + EMOJI + SCRIPTS + ODD_DIGITS + MONEY_JUNK) for _ in range(8)]
            return " ".join(parts)
        if r < 0.88:  # control characters (no NUL: Telegram does not deliver it in text)
            return "".join(chr(self.rng.choice([*range(1, 32), 127, *range(0x80, 0xA0)])) for _ in range(5)) + "x"
        if r < 0.94:  # random code points outside the surrogates
            return "".join(chr(self.rng.choice([self.rng.randint(1, 0xD7FF), self.rng.randint(0xE000, 0x10FFFF)]))
                           for _ in range(self.rng.randint(1, 40)))  # fmt: skip
        return pick(ANSWERS) + pick(["", " ", "\n", "\n\n"]) + pick(ANSWERS)

    async def _send_text(self, user: SimUser, text: str) -> None:
        text = fit_utf16(text, MAX_TEXT)
        try:
            await user.send(text)
        except ValueError:  # all whitespace: a client would not send it
            await user.send(self.pick(ANSWERS))

    async def text(self, user: SimUser) -> None:
        await self._send_text(user, self.random_text())

    async def answer_text(self, user: SimUser) -> None:
        """Plausible answers to the dialogs' questions, so the fuzz also moves through them."""
        await self._send_text(user, self.pick(ANSWERS + RAB_JUNK[:3] + CODES[:3]))

    async def long_text(self, user: SimUser) -> None:
        """Exactly 4,096 UTF-16 units, or a longer paste split into 4,096-unit messages."""
        piece = self.pick(["a", "é", "🙂", "Semen 50 sak x 65.000\n", "ا", "\u200b", "x\u0301", "Rp 1.000 "])
        total = self.pick([MAX_TEXT, MAX_TEXT, MAX_TEXT + 1, 2 * MAX_TEXT + 17])
        text = piece * (total // max(1, utf16_len(piece)) + 1)
        remaining = fit_utf16(text, total)
        while remaining:
            chunk = fit_utf16(remaining, MAX_TEXT)
            await self._send_text(user, chunk)
            remaining = remaining[len(chunk) :]

    async def command(self, user: SimUser) -> None:
        name = self.pick([*sorted(KNOWN_COMMANDS), "kembali", "admin", "x" * 33, "USULAN", "Start", "start_", "1"])
        suffix = self.pick(["", "", "@prolita_test_bot", "@other_bot", "@"])
        args = self.pick(["", "", " " + self.random_text(), " 2025", " -1", " 99999999999999999999", " 0",
                          " PRL-2026-0001", " kd_1", " " + "x" * 200, "\n" + self.random_text()])  # fmt: skip
        await self._send_text(user, self.pick(["/", "/", "/", "//", " /"]) + name + suffix + args)

    async def menu_label(self, user: SimUser) -> None:
        labels = [*MENU_LABELS, "✖️ Cancel", "Skip ➡️", "📱 Send my phone number", "📍 Send my current location"]
        label = self.pick(labels)
        text = self.pick([t(label), label, t(label) + " ", t(label).upper()])
        await self._send_text(user, text)

    # ---------------------------------------------------------------------------------- media

    def _caption(self) -> str | None:
        if self.rng.random() < 0.5:
            return None
        return fit_utf16(self.random_text(), MAX_CAPTION) or None

    async def sticker(self, user: SimUser) -> None:
        await user.send_sticker(self.pick(EMOJI))

    async def photo(self, user: SimUser) -> None:
        await user.send_photo(self.pick(self._jpegs), caption=self._caption())

    async def album(self, user: SimUser) -> None:
        items: list[bytes | tuple[str, bytes]] = []
        for _ in range(self.rng.randint(2, 4)):
            if self.rng.random() < 0.25:
                items.append((self.pick(FILE_NAMES), self.pick([self._pdf, self.pick(self._jpegs)])))
            else:
                items.append(self.pick(self._jpegs))
        await user.send_album(items, caption=self._caption())

    async def document(self, user: SimUser) -> None:
        jpeg = self.pick(self._jpegs)
        data, mime = self.pick(
            [
                (b"MZ\x90\x00" + bytes(self.rng.getrandbits(8) for _ in range(300)), "application/x-msdownload"),
                (self._pdf, "image/jpeg"),  # a PDF that says it is a photo
                (jpeg, "application/pdf"),  # a photo that says it is a PDF
                (jpeg[:200], "image/jpeg"),  # a cut-off photo
                (b"GIF89a" + bytes(self.rng.getrandbits(8) for _ in range(64)), "image/gif"),
                (bytes(self.rng.getrandbits(8) for _ in range(512)), "image/png"),
                (b"%PDF-1.4\n%broken", "application/pdf"),
                ("nota toko bangunan ✓".encode(), "text/plain"),
                (self._pdf, "application/pdf"),
                (jpeg, "image/jpeg"),
                (jpeg, "application/octet-stream"),
            ]
        )
        declared = self.pick([None, None, None, 30_000_000, 20 * 1024 * 1024 + 1])
        await user.send_document(
            data, file_name=self.pick(FILE_NAMES), mime_type=mime, caption=self._caption(), file_size=declared
        )

    async def voice(self, user: SimUser) -> None:
        await user.send_voice(duration=self.rng.randint(1, 3))

    async def location(self, user: SimUser) -> None:
        lat, lon = self.pick(LOCATIONS)
        live = self.pick([None, None, 60, 86400, 0x7FFFFFFF])
        accuracy = self.pick([None, 0.0, 1500.0])
        await user.share_location(lat, lon, live_period=live, horizontal_accuracy=accuracy)

    async def contact(self, user: SimUser) -> None:
        if user.phone and self.rng.random() < 0.4:
            await user.share_contact()  # their own, as the phone button sends it
            return
        await user.share_contact(
            self.pick(PHONES), first_name=self.pick(ODD_NAMES), user_id=self.pick([None, user.id + 1, 900001])
        )

    async def other_message(self, user: SimUser) -> None:
        """Messages of kinds the bot never asks for: dice, venue, a poll, a forward, a reply to the bot."""
        conv = user.chat()
        bot_messages = [m for m in conv.history() if m.from_bot and not m.deleted]
        choice = self.rng.randrange(5)
        if choice == 0:
            await user.send_raw({"dice": {"emoji": self.pick(["🎲", "🎯", "🏀"]), "value": self.rng.randint(1, 6)}})
        elif choice == 1:
            lat, lon = self.pick(LOCATIONS)
            venue = {"location": {"latitude": lat, "longitude": lon}, "title": self.random_text()[:60] or "x",
                     "address": self.pick(INJECTION)}  # fmt: skip
            await user.send_raw({"venue": venue, "location": venue["location"]})
        elif choice == 2:
            options = [{"persistent_id": str(i), "text": o, "voter_count": 0} for i, o in enumerate(["Ya", "Tidak"])]
            poll = {"id": str(self._id()), "question": "Setuju?", "options": options, "total_voter_count": 0,
                    "is_closed": False, "is_anonymous": True, "type": "regular", "allows_multiple_answers": False,
                    "allows_revoting": True, "members_only": False}  # fmt: skip
            await user.send_raw({"poll": poll})
        elif choice == 3:
            origin = {"type": "user", "date": int(time.time()) - 3600, "sender_user": self.tg.users[0].to_json()}
            await user.send_raw({"text": self.pick(CODES + ANSWERS), "forward_origin": origin})
        else:
            if not bot_messages:
                return False
            await user.send(self.pick(ANSWERS), reply_to=self.pick(bot_messages))
        return None

    async def edited_message(self, user: SimUser) -> bool | None:
        """A user's earlier text message edited (the bot does not ask for edited_message updates;
        Telegram still delivers those made before allowed_updates took effect)."""
        own = [m for m in user.chat().history() if m.from_user and m.text and not m.deleted]
        if not own:
            return False
        message: ChatMessage = self.pick(own[-20:])
        new = dict(message.data)
        new["text"] = fit_utf16(self.random_text(), MAX_TEXT) or "x"
        new.pop("entities", None)
        self.tg.world.edit_message(message, new)
        self.inject("edited_message", message.data, unasked=True)
        return None

    async def group_message(self, user: SimUser) -> None:
        """The bot added to a group by a resident: a message there (the bot answers private chats only)."""
        chat = {"id": -(10**12) - self.rng.randint(1, 10**6), "type": self.pick(["group", "supergroup"]),
                "title": self.pick(["RT 05 Api-Api", "<b>Warga</b>", "ㅤ"])}  # fmt: skip
        text = self.pick(["/start", "/usulan@prolita_test_bot", "/cek PRL-2026-0001", "halo", *CODES])
        payload = {"message_id": self.rng.randint(1, 10**6), "date": int(time.time()), "chat": chat,
                   "from": user.to_json(), "text": text}  # fmt: skip
        if text.startswith("/"):
            payload["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        self.inject("message", payload)

    # ------------------------------------------------------------------------------- callbacks

    def seen_callback_data(self) -> list[str]:
        """Every callback_data of every button the bot has shown to anyone (replayed and mutated)."""
        seen = []
        for conv in self.tg.world.conversations.values():
            for message in conv.history():
                if message.from_bot:
                    seen += [b["callback_data"] for b in message.buttons if "callback_data" in b]
        return seen

    def _target(self, user: SimUser) -> tuple[ChatMessage, bool] | None:
        """A bot message of the user's chat to press on, and whether to send it as inaccessible."""
        messages = [m for m in user.chat().history() if m.from_bot and not m.deleted]
        if not messages:
            return None
        message = messages[-1] if self.rng.random() < 0.6 else self.pick(messages)
        return message, self.rng.random() < 0.08

    async def _press(self, user: SimUser, data: str, message: ChatMessage | None = None) -> bool | None:
        target = self._target(user)
        if target is None:
            return False
        shown, inaccessible = target
        await user.send_callback(fit_bytes(data) or "x", message=message or shown, inaccessible=inaccessible)
        return None

    async def press_seen(self, user: SimUser) -> bool | None:
        """A real button: the user's own (old ones too), or one the bot showed somebody else."""
        own = [(m, b["callback_data"]) for m in user.chat().history() if m.from_bot and not m.deleted
               for b in m.buttons if "callback_data" in b]  # fmt: skip
        if own and self.rng.random() < 0.7:
            message, data = self.pick(own[-30:] if self.rng.random() < 0.7 else own)
            return await self._press(user, data, message)
        seen = self.seen_callback_data()
        if not seen:
            return False
        return await self._press(user, self.pick(seen))

    def _ids(self) -> list[int]:
        """Numbers found in buttons shown to anyone: ids of other users' proposals, reports, ideas..."""
        ids = []
        for data in self.seen_callback_data()[-400:]:
            for part in data.split(":")[1:]:
                if part.lstrip("-").isdigit() and len(part) < 19:
                    ids.append(int(part))
        return ids or [1]

    def _int_value(self, ids: list[int]) -> str:
        r = self.rng.random()
        if r < 0.45:
            return str(self.pick(ids) + self.pick([0, 0, 0, 1, -1]))
        if r < 0.55:
            return str(-self.pick(ids))
        return self.pick(["0", "-1", "1", "2147483647", "2147483648", str(2**63 - 1), str(2**63), str(2**64 + 5),
                          str(-(2**63) - 1), "1" + "0" * 30, "", "abc", "1.5", "1e3", "0x1f", " 1", "٣", "+5", "--1",
                          "00000000000000000000001", "NaN", "²"])  # fmt: skip

    def _str_value(self, actions: list[str]) -> str:
        r = self.rng.random()
        if r < 0.55 and actions:
            return self.pick(actions)
        return self.pick(["", "x", "ok", "send", "open", "drop_ok", "revoke_ok", "erase", "🙂", "a b", "%3A", "None",
                          "null", "../", "<b>", "'", "A" * 20, self.random_text()[:12]])  # fmt: skip

    def forge(self, cls: type[CallbackData]) -> str:
        """Data with ``cls``'s prefix: known and junk values, wrong field counts, at the 64-byte limit."""
        sep = cls.__separator__
        seen = [d.split(sep) for d in self.seen_callback_data() if d.startswith(cls.__prefix__ + sep)]
        ids = self._ids()
        values = []
        for index, (_name, field) in enumerate(cls.model_fields.items(), 1):
            known = [parts[index] for parts in seen if len(parts) > index]
            if field.annotation is int:
                values.append(self._int_value([int(k) for k in known if k.lstrip("-").isdigit()] + ids))
            else:
                values.append(self._str_value(known))
        r = self.rng.random()
        if r < 0.12 and values:  # too few fields
            values = values[: self.rng.randrange(len(values))]
        elif r < 0.24:  # too many
            values += [self._int_value(ids) for _ in range(self.rng.randint(1, 4))]
        data = sep.join([cls.__prefix__, *values])
        if r > 0.88:  # up to exactly 64 bytes, the last field padded (multi-byte characters at the edge)
            data = fit_bytes(data + self.pick(["9", "é", "🙂", ":", "0"]) * 64)
        return fit_bytes(data)

    async def forged_callback(self, user: SimUser) -> bool | None:
        # The classes in turn (shared by all fuzzers), so that even a short run forges every one.
        cls = self.classes[next(UpdateFuzzer._turns) % len(self.classes)]
        self.forged[cls.__name__] += 1
        return await self._press(user, self.forge(cls))

    async def random_callback(self, user: SimUser) -> bool | None:
        """Random bytes (NUL and control characters included) or random characters, 1-64 bytes."""
        size = self.rng.randint(1, MAX_CALLBACK_DATA)
        if self.rng.random() < 0.5:
            data = bytes(self.rng.getrandbits(8) for _ in range(size)).decode("latin-1")
        else:
            data = bytes(self.rng.getrandbits(8) for _ in range(size)).decode("utf-8", errors="replace")
        return await self._press(user, fit_bytes(data) or "\x00")

    # ------------------------------------------------------------------------------ odd updates

    def _private_chat(self, user: SimUser) -> dict[str, Any]:
        return {"id": user.id, "type": "private", "first_name": user.first_name}

    def _member(self, user_json: dict[str, Any], status: str) -> dict[str, Any]:
        if status == "kicked":
            return {"status": "kicked", "user": user_json, "until_date": 0}
        return {"status": status, "user": user_json}

    async def odd_update(self, user: SimUser) -> None:
        """Update types the bot has no handler for, and poll answers to polls it never sent."""
        now = int(time.time())
        me = user.to_json()
        group = {"id": -(10**12) - self.rng.randint(1, 10**6), "type": "supergroup", "title": "Warga RT"}
        bot_messages = [m.message_id for m in user.chat().history() if m.from_bot] or [1]
        kind = self.pick(["message_reaction", "message_reaction_count", "inline_query", "chosen_inline_result",
                          "poll_answer", "poll_answer", "poll", "my_chat_member", "chat_member", "chat_join_request",
                          "channel_post", "block"])  # fmt: skip
        self.counts["odd:" + kind] += 1
        if kind == "block":  # the user blocks the bot (and writes again later, which unblocks it)
            user.block_bot()
            return
        if kind == "message_reaction":
            emoji = [{"type": "emoji", "emoji": self.pick(["👍", "🔥", "❤", "🤔"])}]
            self.inject(kind, {"chat": self._private_chat(user), "message_id": self.pick(bot_messages), "user": me,
                               "date": now, "old_reaction": self.pick([[], emoji]),
                               "new_reaction": self.pick([emoji, []])}, unasked=True)  # fmt: skip
        elif kind == "message_reaction_count":
            counts = [{"type": {"type": "emoji", "emoji": "👍"}, "total_count": self.rng.randint(0, 10**6)}]
            self.inject(kind, {"chat": group, "message_id": 5, "date": now, "reactions": counts}, unasked=True)
        elif kind == "inline_query":
            self.inject(kind, {"id": str(self._id()), "from": me, "query": fit_utf16(self.random_text(), 256),
                               "offset": self.pick(["", "10", "junk"]),
                               "chat_type": self.pick(["sender", "private", "group"])}, unasked=True)  # fmt: skip
        elif kind == "chosen_inline_result":
            self.inject(kind, {"result_id": str(self._id()), "from": me, "query": self.pick(CODES)}, unasked=True)
        elif kind == "poll_answer":
            poll_id = self.pick([str(self._id()), "0", "-1", "x" * 60, "5"])
            options = self.pick([[], [0], [0, 1], [9999], [2**31]])
            answer: dict[str, Any] = {"poll_id": poll_id, "option_ids": options,
                                      "option_persistent_ids": [str(o) for o in options]}  # fmt: skip
            if self.rng.random() < 0.2:
                answer["voter_chat"] = group
            else:
                answer["user"] = me
            self.inject(kind, answer)
        elif kind == "poll":
            options = [{"persistent_id": "0", "text": "Ya", "voter_count": 1}]
            self.inject(kind, {"id": str(self._id()), "question": "?", "options": options, "total_voter_count": 1,
                               "is_closed": True, "is_anonymous": False, "type": "regular",
                               "allows_multiple_answers": False, "allows_revoting": True, "members_only": False},
                        unasked=True)  # fmt: skip
        elif kind == "my_chat_member":  # added to a group by the user
            old, new = self._member(self.bot_user, "left"), self._member(self.bot_user, "member")
            self.inject(kind, {"chat": group, "from": me, "date": now, "old_chat_member": old, "new_chat_member": new},
                        unasked=True)  # fmt: skip
        elif kind == "chat_member":
            self.inject(kind, {"chat": group, "from": me, "date": now, "old_chat_member": self._member(me, "member"),
                               "new_chat_member": self._member(me, self.pick(["left", "kicked"]))},
                        unasked=True)  # fmt: skip
        elif kind == "chat_join_request":
            self.inject(kind, {"chat": group, "from": me, "user_chat_id": user.id, "date": now,
                               "bio": self.pick(INJECTION)}, unasked=True)  # fmt: skip
        elif kind == "channel_post":
            channel = {"id": -(10**12) - 7, "type": "channel", "title": "Info Kelurahan"}
            post = {"message_id": self.rng.randint(1, 10**6), "date": now, "chat": channel, "sender_chat": channel,
                    "text": self.pick(["/start", *CODES])}  # fmt: skip
            self.inject(kind, post, unasked=True)

