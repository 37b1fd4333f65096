from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.money import format_rupiah
from bot.domain.rab import (
    MAX_VOLUME,
    RAB_ERROR_KINDS,
    RabError,
    RabLine,
    format_rab_line,
    format_volume,
    parse_rab_line,
)


@pytest.mark.parametrize(
    ("text", "desc", "volume", "unit", "price"),
    [
        ("Semen 50 sak x 65.000", "Semen", 50, "sak", 65_000),
        ("tukang 10 hari @150rb", "tukang", 10, "hari", 150_000),
        ("Pasir 3 m3 x 250rb", "Pasir", 3, "m3", 250_000),
        ("Cat tembok 2,5 galon x Rp 180.000", "Cat tembok", Decimal("2.5"), "galon", 180_000),
        ("Konsumsi rapat 1 paket 500rb", "Konsumsi rapat", 1, "paket", 500_000),
        ("Konsumsi rapat 1 paket Rp 500.000,-", "Konsumsi rapat", 1, "paket", 500_000),
        ("Pipa PVC 4 inch 12 batang x 85.000", "Pipa PVC 4 inch", 12, "batang", 85_000),
        ("Sewa molen 3 hari × 350 ribu", "Sewa molen", 3, "hari", 350_000),
        ("Semen 50 sak X 65000", "Semen", 50, "sak", 65_000),
        ("Semen 50 sak * 65000", "Semen", 50, "sak", 65_000),
        ("Semen 50sak x65.000", "Semen", 50, "sak", 65_000),
        ("Semen 50 sak x Rp65.000,-", "Semen", 50, "sak", 65_000),
        ("tukang 10 hari @ 150rb/hari", "tukang", 10, "hari", 150_000),
        ("tukang 10 hari @ 150rb per hari", "tukang", 10, "hari", 150_000),
        ("Tukang batu 10 hari kerja x 150rb", "Tukang batu", 10, "hari kerja", 150_000),
        ("Cat 2.5 kaleng x 100rb", "Cat", Decimal("2.5"), "kaleng", 100_000),
        ("Kertas 1.500 lembar x 500", "Kertas", 1_500, "lembar", 500),
        ("Kabel 0,75 m x 10rb", "Kabel", Decimal("0.75"), "m", 10_000),
        ("Semen 50 x 65000", "Semen", 50, "", 65_000),  # unit may be left out
        ("Kayu 5x7 10 batang x 50rb", "Kayu 5x7", 10, "batang", 50_000),
        ("box 5 buah x 10rb", "box", 5, "buah", 10_000),  # 'x' inside a word is no separator
        ("Mixer 2 unit x 5jt", "Mixer", 2, "unit", 5_000_000),
        ("1. Semen 50 sak x 65.000", "Semen", 50, "sak", 65_000),
        ("- Semen 50 sak x 65.000", "Semen", 50, "sak", 65_000),
        ("Semen: 50 sak x 65.000", "Semen", 50, "sak", 65_000),
        ("Semen - 50 sak x 65.000", "Semen", 50, "sak", 65_000),
        ("  Semen   Gresik  50  sak  x  65.000  ", "Semen Gresik", 50, "sak", 65_000),
        ("Semen 50 sak x 65.000 = 3.250.000", "Semen", 50, "sak", 65_000),
        ("Semen 50 sak x 65.000 = Rp 3,25 jt", "Semen", 50, "sak", 65_000),
        ("Cat 1,125 kaleng x 100rb", "Cat", Decimal("1.125"), "kaleng", 100_000),
        ("Paving 100000 buah x 2rb", "Paving", 100_000, "buah", 2_000),
    ],
)
def test_parse_rab_line(text: str, desc: str, volume: int | Decimal, unit: str, price: int) -> None:
    line = parse_rab_line(text)
    assert line == RabLine(desc, volume, unit, price)
    assert type(line.volume) is type(volume)


@pytest.mark.parametrize(
    ("text", "kind", "money_kind"),
    [
        ("", "empty", None),
        ("   ", "empty", None),
        (None, "empty", None),
        ("semen x 65000", "no_volume", None),
        ("semen sak x 65000", "no_volume", None),
        ("Semen 65000", "no_volume", None),
        ("Semen 50 sak", "no_price", None),
        ("Semen", "no_price", None),
        ("Kabel 50 m", "no_price", None),
        ("Semen 50 sak x", "no_price", None),
        ("Semen 50 sak @", "no_price", None),
        ("semen 50 sak x abc", "no_price", None),
        ("Semen 50 sak x 65.000 (toko A)", "bad_price", "not_a_number"),
        ("Semen 50 sak x 0", "bad_price", "zero"),
        ("Semen 50 sak x 12,5", "bad_price", "fraction"),
        ("Semen 50 sak x 50 M", "bad_price", "too_large"),
        ("Konsumsi 1 paket 0", "bad_price", "zero"),
        ("50 sak x 65.000", "no_description", None),
        ("- 50 sak x 65.000", "no_description", None),
        ("Semen 0 sak x 65.000", "bad_volume", None),
        ("Semen 0,0 sak x 65.000", "bad_volume", None),
        ("Cat 1,3333 kaleng x 100", "bad_volume", None),
        ("Semen 1,2,3 sak x 100", "bad_volume", None),
        ("Semen 100001 sak x 100", "volume_too_large", None),
        ("Semen 200.000 sak x 100", "volume_too_large", None),
        ("Semen 50 sak x 65.000 = 3.000.000", "total_mismatch", None),
        ("Semen 50 sak x 65.000 = banyak", "bad_total", "not_a_number"),
        ("Semen " + "a" * 200 + " 50 sak x 65.000", "too_long", None),
    ],
)
def test_parse_rab_line_errors(text: str | None, kind: str, money_kind: str | None) -> None:
    with pytest.raises(RabError) as exc:
        parse_rab_line(text)
    assert exc.value.kind == kind
    assert exc.value.money_kind == money_kind
    assert kind in RAB_ERROR_KINDS


def test_error_details() -> None:
    with pytest.raises(RabError) as exc:
        parse_rab_line("Semen 50 sak x 65.000 = 3.000.000")
    assert (exc.value.total, exc.value.given) == (3_250_000, 3_000_000)
    with pytest.raises(RabError) as exc:
        parse_rab_line("x" * 50, max_len=20)
    assert (exc.value.kind, exc.value.max_len) == ("too_long", 20)
    with pytest.raises(RabError) as exc:
        parse_rab_line("Semen 100001 sak x 100")
    assert exc.value.max_volume == MAX_VOLUME


def test_custom_max_price() -> None:
    with pytest.raises(RabError) as exc:
        parse_rab_line("Genset 1 unit x 60jt", max_price=50_000_000)
    assert (exc.value.kind, exc.value.money_kind) == ("bad_price", "too_large")


@pytest.mark.parametrize(
    ("volume", "price", "total"),
    [
        (50, 65_000, 3_250_000),
        (Decimal("2.5"), 180_000, 450_000),
        (Decimal("2.5"), 1, 3),  # 2.5 -> 3 (half up)
        (Decimal("1.5"), 1, 2),
        (Decimal("0.5"), 1, 1),
        (Decimal("0.25"), 1, 0),
        (Decimal("1.125"), 3, 3),  # 3.375 -> 3
        (Decimal("0.333"), 1_000_000, 333_000),
        (100_000, 10_000_000_000, 1_000_000_000_000_000),
    ],
)
def test_total(volume: int | Decimal, price: int, total: int) -> None:
    assert RabLine("x", volume, "u", price).total == total


@pytest.mark.parametrize(
    ("volume", "text"),
    [(50, "50"), (Decimal("2.5"), "2,5"), (Decimal("2.50"), "2,5"), (Decimal("3.0"), "3"), (Decimal("0.125"), "0,125")],
)
def test_format_volume(volume: int | Decimal, text: str) -> None:
    assert format_volume(volume) == text


def test_format_rab_line() -> None:
    assert format_rab_line(RabLine("Semen", 50, "sak", 65_000)) == "Semen 50 sak x Rp 65.000"
    assert format_rab_line(RabLine("Cat", Decimal("2.5"), "", 10)) == "Cat 2,5 x Rp 10"


_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=10)
_desc = st.lists(st.one_of(_word, st.integers(1, 999).map(str)), min_size=0, max_size=4).flatmap(
    lambda rest: _word.map(lambda first: " ".join([first, *rest]))
)
_volume = st.one_of(
    st.integers(min_value=1, max_value=MAX_VOLUME),
    st.integers(min_value=1, max_value=MAX_VOLUME * 1000 - 1)
    .filter(lambda k: k % 1000)
    .map(lambda k: (Decimal(k) / 1000).normalize()),
)
_unit = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8).filter(lambda u: u != "x")
_price = st.integers(min_value=1, max_value=10**10)


@given(_desc, _volume, _unit, _price, st.booleans())
def test_formatted_line_parses_back(
    desc: str, volume: int | Decimal, unit: str, price: int, pretty_price: bool
) -> None:
    price_text = format_rupiah(price) if pretty_price else str(price)
    text = f"{desc} {format_volume(volume)} {unit} x {price_text}"
    line = parse_rab_line(text)
    assert line == RabLine(desc, volume, unit, price)
    assert parse_rab_line(format_rab_line(line)) == line


@given(_desc, st.integers(min_value=1, max_value=999), _unit, _price)
def test_at_sign_and_plain_str_volume(desc: str, volume: int, unit: str, price: int) -> None:
    assert parse_rab_line(f"{desc} {volume} {unit} @ {price}") == RabLine(desc, volume, unit, price)


@given(st.text(max_size=250))
def test_parse_never_raises_other_errors(text: str) -> None:
    try:
        line = parse_rab_line(text)
    except RabError as e:
        assert e.kind in RAB_ERROR_KINDS
    else:
        assert line.description
        assert 0 < line.volume <= MAX_VOLUME
        assert line.unit_price >= 1
        assert line.total >= 0


@given(st.text(alphabet="Semn 0123456789.,xX×@*rpRbjt=-/", max_size=60))
def test_parse_never_raises_other_errors_rab_like(text: str) -> None:
    try:
        parse_rab_line(text)
    except RabError as e:
        assert e.kind in RAB_ERROR_KINDS
