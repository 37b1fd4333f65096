"""The /progres dialog's own input rules: typed percentages, typed spending (0 included) and the way
back through the steps that only some reports have (a reason when lower, a note when over budget)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.money import MoneyError
from handlers.progress.report import Laporan, parse_percent, parse_spending, previous_step


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("60", 60),
        ("60%", 60),
        ("60 %", 60),
        (" 60 persen ", 60),
        ("60 Persen", 60),
        ("60percent", 60),
        ("0", 0),
        ("100%", 100),
        ("120", 120),  # out of range is explained by the caller, not taken as "not a number"
        ("", None),
        ("enam puluh", None),
        ("60,5", None),
        ("-10", None),
        ("50-60", None),
        ("１２", None),  # full-width digits: asked again rather than guessed
        ("99999", None),
        ("%", None),
    ],
)
def test_parse_percent(text, expected):
    assert parse_percent(text) == expected


@given(st.text(max_size=40))
def test_parse_percent_never_raises(text):
    value = parse_percent(text)
    assert value is None or 0 <= value <= 9999


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("Rp 0", 0),
        ("rp0,-", 0),
        ("0.000", 0),
        ("1250000", 1_250_000),
        ("1.250.000", 1_250_000),
        ("Rp 1,25 jt", 1_250_000),
        ("50jt", 50_000_000),
        ("500rb", 500_000),
        ("Rp1.250.000,-", 1_250_000),
    ],
)
def test_parse_spending(text, expected):
    assert parse_spending(text) == expected


@pytest.mark.parametrize(("text", "kind"), [("-5000", "negative"), ("lima juta", "not_a_number"), ("", "empty")])
def test_parse_spending_refuses(text, kind):
    with pytest.raises(MoneyError) as exc:
        parse_spending(text)
    assert exc.value.kind == kind


APPROVED = 4_750_000


@pytest.mark.parametrize(
    ("current", "data", "expected"),
    [
        (Laporan.persen, {}, None),
        (Laporan.foto, {"prev": 50, "pct": 60}, Laporan.persen),
        (Laporan.foto, {"prev": 50, "pct": 25}, Laporan.alasan),
        (Laporan.alasan, {"prev": 50, "pct": 25}, Laporan.persen),
        (Laporan.foto, {"prev": None, "pct": 0}, Laporan.persen),
        (Laporan.lokasi, {}, Laporan.foto),
        (Laporan.catatan, {}, Laporan.lokasi),
        (Laporan.biaya, {}, Laporan.catatan),
        (Laporan.nota, {"spent": 1_000_000}, Laporan.biaya),
        (Laporan.nota, {"spent": 6_000_000}, Laporan.lebih),
        (Laporan.lebih, {"spent": 6_000_000}, Laporan.biaya),
        (Laporan.ringkasan, {"spent": 1}, Laporan.nota),
        # a reason or note step left behind after the answer before it changed
        (Laporan.alasan, {"prev": 50, "pct": 75}, Laporan.persen),
        (Laporan.lebih, {"spent": 1_000}, Laporan.biaya),
    ],
)
def test_previous_step(current, data, expected):
    assert previous_step(current, data, APPROVED) == expected
