"""Wording of the officer's progress-report card: evidence flags in plain words per photo number,
distances, the order of the checks, which photos the overview image frames, and a card that stays
within one Telegram message however much the Ketua RT wrote."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from bot.domain import evidence
from bot.i18n import build_i18n
from handlers.progress.verify_render import (
    CARD_LIMIT,
    EvidenceRequest,
    ReportView,
    ReusedSource,
    card_keyboard,
    card_text,
    flag_lines,
    flag_text,
    flagged_positions,
    format_distance,
)

I18N = build_i18n()
APPROVED = "2026-04-23T02:00:00+00:00"  # 23 Apr 2026 10.00 WITA


@pytest.fixture
def en():
    with I18N.context(), I18N.use_locale("en"):
        yield


@pytest.fixture
def id_():
    with I18N.context(), I18N.use_locale("id"):
        yield


def photo(kind: str, position: int | None, file: str | None = "foto_progres", **detail) -> dict:
    return {"kind": kind, "detail": detail, "file": file if position is not None else None, "media_id": 1,
            "position": position}  # fmt: skip


@pytest.mark.parametrize(
    ("metres", "en_text", "id_text"),
    [
        (0, "0 m", "0 m"),
        (-5, "0 m", "0 m"),
        (199.6, "200 m", "200 m"),
        (999.4, "999 m", "999 m"),
        (1000, "1.0 km", "1,0 km"),
        (1449, "1.4 km", "1,4 km"),
        (9_960, "10.0 km", "10,0 km"),
        (12_345, "12 km", "12 km"),
        (1_234_567, "1.235 km", "1.235 km"),
    ],
)
def test_format_distance(metres, en_text, id_text):
    with I18N.context(), I18N.use_locale("en"):
        assert format_distance(metres) == en_text
    with I18N.context(), I18N.use_locale("id"):
        assert format_distance(metres) == id_text


SOURCE = {31: ReusedSource(dt.datetime(2026, 4, 27, 1, 0, tzinfo=dt.UTC), "PRL-2026-0003")}


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        (photo(evidence.FAR_FROM_SITE, 1, distance_m=1412, max_m=200, source="exif"),
         "Photo 2: taken 1.4 km from the proposal site"),
        (photo(evidence.FAR_FROM_SITE, None, distance_m=350, max_m=200, source="pin"),
         "The report's location pin is 350 m from the proposal site"),
        (photo(evidence.NO_EXIF, 0), "Photo 1: no capture time or GPS in the file (probably sent compressed)"),
        (photo(evidence.TAKEN_BEFORE_APPROVAL, 1, taken_at="2026-04-20T01:30:00+00:00", approved_at=APPROVED,
               days_before=3),
         "Photo 2: taken on 20 Apr 2026, before the approval on 23 Apr 2026"),
        # 23.30 UTC is already the next day in WITA (UTC+8)
        (photo(evidence.TAKEN_BEFORE_APPROVAL, 0, taken_at="2026-04-19T23:30:00+00:00", approved_at=APPROVED),
         "Photo 1: taken on 20 Apr 2026, before the approval on 23 Apr 2026"),
        (photo(evidence.REUSED_PHOTO, 2, distance=0, report_id=31, proposal_id=3),
         "Photo 3: the same picture as in the report of 27 Apr 2026 on PRL-2026-0003"),
        (photo(evidence.REUSED_PHOTO, 2, distance=4, report_id=31, proposal_id=3),
         "Photo 3: nearly the same picture as in the report of 27 Apr 2026 on PRL-2026-0003"),
        (photo(evidence.REUSED_PHOTO, 0, distance=0, report_id=99),
         "Photo 1: the same picture as in an earlier report"),
        (photo(evidence.REUSED_PHOTO, 0, distance=3), "Photo 1: nearly the same picture as in an earlier report"),
        (photo(evidence.REUSED_PHOTO, 1, "nota", distance=0, report_id=31),
         "Receipt 2: the same picture as in the report of 27 Apr 2026 on PRL-2026-0003"),
        (photo(evidence.OVER_BUDGET, None, spent=5_000_000, approved=4_750_000, over=250_000),
         "Spending Rp 5.000.000 is Rp 250.000 above the approved amount Rp 4.750.000"),
        # nasty stored rows: unknown kind (escaped), missing detail, garbage values
        (photo("<b>new_kind</b>", 0), "Photo 1: &lt;b&gt;new_kind&lt;/b&gt;"),
        ({"kind": evidence.FAR_FROM_SITE}, "The report's location pin is 0 m from the proposal site"),
        (photo(evidence.TAKEN_BEFORE_APPROVAL, 0, taken_at="yesterday<", approved_at=None),
         "Photo 1: taken on yesterday&lt;, before the approval on -"),
        (photo(evidence.OVER_BUDGET, None, spent="x", over=None),
         "Spending Rp 0 is Rp 0 above the approved amount Rp 0"),
    ],
)  # fmt: skip
def test_flag_text(en, flag, expected):
    assert flag_text(flag, SOURCE) == expected


def test_flag_text_uses_the_decimal_comma_in_indonesian(id_):
    text = flag_text(photo(evidence.FAR_FROM_SITE, 0, distance_m=1450), {})
    assert "1,4 km" in text or "1,5 km" in text


def test_flag_lines_report_level_first_then_photos_then_receipts(en):
    flags = [
        photo(evidence.REUSED_PHOTO, 0, "nota", distance=0),
        photo(evidence.REUSED_PHOTO, 1, distance=0),
        photo(evidence.NO_EXIF, 1),
        photo(evidence.FAR_FROM_SITE, 0, distance_m=500),
        photo(evidence.OVER_BUDGET, None, spent=2, approved=1, over=1),
    ]
    assert [line.split(":")[0] for line in flag_lines(flags)] == [
        "Spending Rp 2 is Rp 1 above the approved amount Rp 1",
        "Photo 1",
        "Photo 2",
        "Photo 2",
        "Receipt 1",
    ]
    assert "no capture time" in flag_lines(flags)[2]  # no_exif before reused_photo on the same photo


def _media(kind: str, position: int) -> SimpleNamespace:
    return SimpleNamespace(kind=kind, position=position)


def fake_report(**kw) -> SimpleNamespace:
    rt = SimpleNamespace(
        label=lambda: "RT 05",
        kelurahan=SimpleNamespace(name="Api-Api", kecamatan=SimpleNamespace(name="Bontang Utara")),
    )
    proposal = SimpleNamespace(
        id=7, code="PRL-2026-0001", title="Semenisasi <gang> Mawar", rt=rt, total_amount=4_750_000,
        lines=[SimpleNamespace(total=3_250_000), SimpleNamespace(total=1_500_000)], latitude=0.1335, longitude=117.4988,
    )  # fmt: skip
    media = [_media("foto_progres", 0), _media("foto_progres", 1), _media("foto_progres", 2), _media("nota", 0)]
    values = dict(
        id=11, proposal=proposal, percent=60, note="Pengecoran tahap 2", backwards_reason=None, spent_total=2_500_000,
        over_budget_note=None, latitude=0.1339, longitude=117.4991, flags=[], status="menunggu", media=media,
        created_at=dt.datetime(2026, 4, 28, 6, 5, tzinfo=dt.UTC), verified_at=None, verified_by=None,
        officer_note=None,
    )  # fmt: skip
    values.update(kw)
    report = SimpleNamespace(**values)
    report.media_of = lambda kind: [m for m in report.media if m.kind == kind]
    return report


def test_flagged_positions_are_indices_of_flagged_site_photos():
    report = fake_report(
        flags=[
            photo(evidence.NO_EXIF, 2),
            photo(evidence.REUSED_PHOTO, 0, "nota"),  # a receipt: not on the overview of site photos
            photo(evidence.OVER_BUDGET, None),
            photo(evidence.FAR_FROM_SITE, 2),
            photo(evidence.FAR_FROM_SITE, 9),  # no such photo
        ]
    )
    assert flagged_positions(report) == {2}


def test_card_shows_the_report_and_its_checks(en):
    report = fake_report(
        flags=[
            photo(evidence.FAR_FROM_SITE, 1, distance_m=1412),
            photo(evidence.OVER_BUDGET, None, spent=5_000_000, approved=4_750_000, over=250_000),
        ],
        spent_total=5_000_000,
        over_budget_note="Harga semen naik",
    )
    text = card_text(ReportView(report, "Budi <Santoso>", 30, {}))
    for seen in (
        "PRL-2026-0001",
        "Semenisasi &lt;gang&gt; Mawar",
        "RT 05, Kel. Api-Api, Kec. Bontang Utara",
        "Budi &lt;Santoso&gt;",
        "30% → <b>60%</b>",
        "Pengecoran tahap 2",
        "Rp 5.000.000",
        "💰 Spent so far: <b>Rp 5.000.000</b> of the approved Rp 4.750.000 (105%); RAB total Rp 4.750.000\n",
        "Rp 250.000 above the approved amount. Ketua RT's explanation: Harga semen naik",
        "Site photos: 3 · 🧾 Receipts: 1",
        "Location pin: 56 m from the proposal site",
        "• Photo 2: taken 1.4 km from the proposal site",
    ):
        assert seen in text, seen
    buttons = [b.text for row in card_keyboard(report).inline_keyboard for b in row]
    assert buttons == ["🖼 Photos (3)", "🧾 Receipts (1)", "🗺 Location", "✅ Verified", "📝 Ask for more evidence"]
    decided = fake_report(status="terverifikasi")
    assert [b.text for row in card_keyboard(decided).inline_keyboard for b in row][-1] == "🗺 Location"


@pytest.mark.parametrize(
    ("spent", "approved", "lines", "expected"),
    [
        # 2.500.000 / 4.750.000 = 52,6 %: rounded
        (2_500_000, 4_750_000, (3_250_000, 1_500_000),
         "💰 Spent so far: <b>Rp 2.500.000</b> of the approved Rp 4.750.000 (53%); RAB total Rp 4.750.000"),
        (0, 4_750_000, (3_250_000, 1_500_000),
         "💰 Spent so far: <b>Rp 0</b> of the approved Rp 4.750.000 (0%); RAB total Rp 4.750.000"),
        # the RAB total is the sum of the lines, shown as it is even where a stored total disagrees
        (1_000_000, 2_000_000, (700_000, 800_000, 600_000),
         "💰 Spent so far: <b>Rp 1.000.000</b> of the approved Rp 2.000.000 (50%); RAB total Rp 2.100.000"),
        # nothing approved (a damaged row): no division by zero
        (1_000_000, 0, (),
         "💰 Spent so far: <b>Rp 1.000.000</b> of the approved Rp 0 (0%); RAB total Rp 0"),
    ],
)  # fmt: skip
def test_card_spending_line_has_the_share_and_the_rab_total(en, spent, approved, lines, expected):
    report = fake_report(spent_total=spent, over_budget_note="x")
    report.proposal.total_amount = approved
    report.proposal.lines = [SimpleNamespace(total=total) for total in lines]
    assert expected in card_text(ReportView(report, "Budi", None, {})).split("\n")


@pytest.mark.parametrize(
    ("report_pin", "expected"),
    [
        ((0.1339, 117.4991), "🗺 Location pin: sent (the proposal has no site pin to compare)"),
        ((None, None), "🗺 Location pin: not sent (the proposal has no site pin to compare photo locations against)"),
    ],
)
def test_card_says_when_the_proposal_has_no_site_pin(en, report_pin, expected):
    report = fake_report(latitude=report_pin[0], longitude=report_pin[1])
    report.proposal.latitude = report.proposal.longitude = None
    assert expected in card_text(ReportView(report, "Budi", None, {})).split("\n")
    pinned = card_text(ReportView(fake_report(latitude=None, longitude=None), "Budi", None, {}))
    assert "🗺 Location pin: not sent" in pinned.split("\n")  # the site has a pin: nothing more to say


def test_card_of_a_report_answering_a_request_for_more_evidence(en):
    # 17.30 UTC is already the next day in WITA (UTC+8)
    asked = EvidenceRequest(60, dt.datetime(2026, 4, 27, 17, 30, tzinfo=dt.UTC), "Foto 1 <bukan> di lokasi & buram")
    lines = card_text(ReportView(fake_report(), "Budi", 60, {}, answers=asked)).split("\n")
    assert lines[3:5] == [
        "📈 Progress: 60% → <b>60%</b>",
        "↩️ Sent after the request for more evidence on the 60% report (28 Apr 2026): "
        "«Foto 1 &lt;bukan&gt; di lokasi &amp; buram»",
    ]
    assert "request for more evidence" not in card_text(ReportView(fake_report(), "Budi", 60, {}))


async def test_report_view_finds_the_request_the_report_answers(sessionmaker, tmp_path, en):
    """Only the report right after one sent back with "Minta bukti tambahan" says it answers it."""
    from bot.services import progress
    from handlers.progress.verify_render import report_view
    from tests.unit.test_progress_service import OFFICER_API, _roles, approved_proposal, good_photo, setup_world

    w = await setup_world(sessionmaker, tmp_path, n_rts=1)
    p = await approved_proposal(sessionmaker, w)
    head = w.heads[0]
    officer = await _roles(sessionmaker, OFFICER_API)
    async with sessionmaker() as s:
        first = await progress.report(s, head, p.id, percent=30, spent_total=0, photos=[await good_photo(s, w, 1)])
        await progress.verify(s, OFFICER_API, officer, first.id, "minta_bukti", note="Foto <1> kabur")
        again = await progress.report(s, head, p.id, percent=30, spent_total=0, photos=[await good_photo(s, w, 2)])
        await progress.verify(s, OFFICER_API, officer, again.id, "terverifikasi")
        later = await progress.report(s, head, p.id, percent=60, spent_total=0, photos=[await good_photo(s, w, 3)])
        views = [await report_view(s, await progress.get_report(s, r.id)) for r in (first, again, later)]
    assert [v.previous_percent for v in views] == [None, 30, 30]
    assert [v.answers for v in views] == [None, EvidenceRequest(30, first.created_at, "Foto <1> kabur"), None]
    assert "«Foto &lt;1&gt; kabur»" in card_text(views[1])


def test_card_fits_one_message_with_long_notes_and_many_flags(en):
    flags = [photo(evidence.REUSED_PHOTO, i % 10, distance=i % 3, report_id=31) for i in range(40)]
    report = fake_report(
        flags=flags, note="n" * 1000, backwards_reason="r" * 1000, over_budget_note="o" * 1000, spent_total=9_000_000
    )
    asked = EvidenceRequest(80, dt.datetime(2026, 4, 27, 1, 0, tzinfo=dt.UTC), "a" * 1000)
    text = card_text(ReportView(report, "x" * 200, 80, SOURCE, answers=asked))
    assert len(text) <= CARD_LIMIT
    assert "more check(s)" in text
    assert text.count("…") >= 4  # the notes were shortened
