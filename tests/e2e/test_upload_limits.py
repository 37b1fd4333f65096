"""Hostile images against the real bot process (issue 18): a Ketua RT sends decompression-bomb PNGs as
files in the /usulan wizard's photo step and its minutes step; each is refused with a short message,
the wizard stays where it was, nothing of the bomb is stored, the bot's memory hardly moves and its
log has no traceback; a normal photo and a PDF then carry on to the summary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.domain import uploads
from fakeapi import make_jpeg, make_pdf
from storage.models import Media, Proposal
from tests.e2e.conftest import t
from tests.e2e.test_proposal_wizard import seed_people
from tests.hostile_files import png_bomb

pytestmark = pytest.mark.e2e

TOO_BIG = t(
    "This picture is too large to process (at most {limit} megapixels). Please send a smaller one, "
    "or send it as a normal photo instead of a file."
).format(limit=uploads.MAX_IMAGE_PIXELS // 1_000_000)
PHOTO_STEP = t("Send <b>1 to 10 photos</b> of the site as it is now (several at once is fine). Photos so far: {n}.")
MINUTES_STEP = t("Send the <b>musyawarah minutes</b> (berita acara): a photo of it, or a PDF file. Files so far: {n}.")
PHOTOS_SAVED = t("📷 Photos saved: {n} of at most {max}. Send more, or tap <b>➡️ Next</b>.")
MINUTES_SAVED = t("📄 Minutes saved: {n} file(s). Send another page, or tap <b>➡️ Next</b>.")


def _status_kb(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(field + r":\s+(\d+)", text).group(1))


def _reset_peak(pid: int) -> bool:
    """Reset the bot process's peak memory (VmHWM) to what it holds now; False where /proc does not
    let us (not Linux, or not allowed)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def test_bomb_pngs_are_refused_in_the_wizard_which_then_goes_on(db_url, tg, launch, db):
    bot = await launch(db_url)
    officer = tg.user("Rina", language_code="id")
    head = tg.user("Budi", language_code="id")
    await seed_people(db, db_url, officer, [head])
    await head.send("/usulan")
    await head.press("Sosial budaya")
    await head.send("Pelatihan kader posyandu")
    await head.send("Pelatihan untuk 20 kader selama 2 hari.")
    await head.wait_message(t("📍 Send my current location"))
    await head.press(t("Skip ➡️"))
    await head.wait_message("Gang Mawar")
    await head.press(t("Skip ➡️"))
    await head.send("Konsumsi 40 kotak x 25rb")
    await head.press(t("✅ Done, next"))
    await head.wait_message(PHOTO_STEP.format(n=0))

    pid = bot.proc.pid
    measured = _reset_peak(pid)
    rss_before = _status_kb(pid, "VmRSS") if measured else 0
    # 20,000 × 20,000 (48 KB; Pillow's own bomb check fires) and 9,000 × 9,000 (10 KB; under Pillow's
    # default limit, so only our limit stops it), sent as files: Telegram would not take them as photos.
    for width in (20_000, 9_000):
        await head.send_document(png_bomb(width, width), file_name=f"denah-{width}.png", mime_type="image/png")
        refused = await head.wait_message(TOO_BIG, timeout=20)
        assert not refused.button_texts  # no Next: still no photo
    if measured:
        grew_mb = (_status_kb(pid, "VmHWM") - rss_before) / 1024
        print(f"bot peak memory rose by {grew_mb:.1f} MB while refusing both bombs")
        assert grew_mb < 100, grew_mb  # 400 MB to 1.6 GB had they been decoded

    await head.send_photo(make_jpeg(text="lokasi"))  # the same step carries on
    await head.wait_message(PHOTOS_SAVED.format(n=1, max=10))
    await head.press(t("➡️ Next"))
    await head.wait_message(MINUTES_STEP.format(n=0))
    await head.send_document(png_bomb(20_000, 20_000), file_name="berita-acara.png", mime_type="image/png")
    await head.wait_message(TOO_BIG, timeout=20)
    await head.send_document(
        make_pdf("Berita acara musyawarah"), file_name="berita-acara.pdf", mime_type="application/pdf"
    )
    await head.wait_message(MINUTES_SAVED.format(n=1))
    await head.press(t("➡️ Next"))
    await head.send("20")
    summary = await head.wait_message("Pelatihan kader posyandu", predicate=lambda m: t("📨 Send") in m.button_texts)
    assert "Rp 1.000.000" in summary.text

    async with db(db_url) as s:
        p = await s.scalar(select(Proposal))
        assert (p.status, p.attendees) == ("draf", 20)
        assert len(p.media_of("foto_awal")) == 1 and len(p.media_of("bukti_musyawarah")) == 1
        assert await s.scalar(select(func.count()).select_from(Media)) == 2  # nothing of the bombs
        assert await s.scalar(select(func.count()).select_from(Media).where(Media.width > 10_000)) == 0
    log = bot.log()
    assert "Traceback" not in log and "DecompressionBomb" not in log
    assert "refused a document" in log  # each refusal is one plain line
