from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.money import MONEY_ERROR_KINDS, MoneyError, format_rupiah, parse_rupiah


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1250000", 1_250_000),
        ("1.250.000", 1_250_000),
        ("1,250,000", 1_250_000),
        ("Rp 1.250.000", 1_250_000),
        ("Rp1.250.000,-", 1_250_000),
        ("rp. 1.250.000,00", 1_250_000),
        ("RP 1.250.000.-", 1_250_000),
        ("IDR 1,250,000.00", 1_250_000),
        ("1.250.000 rupiah", 1_250_000),
        ("  Rp   50.000  ", 50_000),
        ("1,25 jt", 1_250_000),
        ("1.25jt", 1_250_000),
        ("1,25 juta", 1_250_000),
        ("1.5jt", 1_500_000),
        ("50 juta", 50_000_000),
        ("50jt", 50_000_000),
        ("50 JT", 50_000_000),
        ("Rp 50jt", 50_000_000),
        ("500rb", 500_000),
        ("500 ribu", 500_000),
        ("500 rb.", 500_000),
        ("50k", 50_000),
        ("1,5 M", 1_500_000_000),
        ("1,5 miliar", 1_500_000_000),
        ("2 milyar", 2_000_000_000),
        ("1.250", 1_250),
        ("1,250", 1_250),
        ("12.500", 12_500),
        ("1250,00", 1_250),
        ("1250.00", 1_250),
        ("1,255 rb", 1_255),
        ("1.250 jt", 1_250_000),
        ("1.250.000 rb", 1_250_000_000),
        ("1.250,5 rb", 1_250_500),
        ("+5000", 5_000),
        ("１２３４", 1_234),  # full-width digits
        ("10.000.000.000", 10_000_000_000),
        ("0,5 jt", 500_000),
    ],
)
def test_parse_rupiah_accepts(text: str, expected: int) -> None:
    assert parse_rupiah(text) == expected


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (None, "empty"),
        ("lima puluh ribu", "not_a_number"),
        ("1e9", "not_a_number"),
        ("abc", "not_a_number"),
        ("Rp", "not_a_number"),
        ("-", "not_a_number"),
        ("50 sak", "not_a_number"),
        ("1.25.000", "not_a_number"),
        ("1.250,000.00", "not_a_number"),
        ("5.000 - 10.000", "not_a_number"),
        ("--5000", "not_a_number"),
        ("1" * 80, "not_a_number"),
        ("-5000", "negative"),
        ("-Rp 1.250.000", "negative"),
        ("Rp -5.000", "negative"),
        ("−5000", "negative"),  # unicode minus
        ("0", "zero"),
        ("Rp 0,-", "zero"),
        ("-0", "zero"),
        ("0 jt", "zero"),
        ("12,5", "fraction"),
        ("1.250.000,50", "fraction"),
        ("1,2555 rb", "fraction"),
        ("0.500", "fraction"),
        ("Rp 50.000.000.000", "too_large"),
        ("10.000.000.001", "too_large"),
        ("11 M", "too_large"),
        ("1 triliun", "too_large"),
    ],
)
def test_parse_rupiah_rejects(text: str | None, kind: str) -> None:
    with pytest.raises(MoneyError) as exc:
        parse_rupiah(text)
    assert exc.value.kind == kind
    assert kind in MONEY_ERROR_KINDS


def test_too_large_carries_numbers_and_custom_max() -> None:
    with pytest.raises(MoneyError) as exc:
        parse_rupiah("60 jt", max_value=50_000_000)
    assert exc.value.kind == "too_large"
    assert exc.value.max_value == 50_000_000
    assert exc.value.value == 60_000_000
    assert parse_rupiah("50 jt", max_value=50_000_000) == 50_000_000


def test_money_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        parse_rupiah("abc")


def test_parse_rupiah_rejects_non_str() -> None:
    with pytest.raises(TypeError):
        parse_rupiah(5000)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "Rp 0"),
        (1, "Rp 1"),
        (999, "Rp 999"),
        (1_000, "Rp 1.000"),
        (1_250_000, "Rp 1.250.000"),
        (50_000_000, "Rp 50.000.000"),
        (-1_250_000, "-Rp 1.250.000"),
    ],
)
def test_format_rupiah(n: int, expected: str) -> None:
    assert format_rupiah(n) == expected


@pytest.mark.parametrize("bad", [1.5, "1000", True, None])
def test_format_rupiah_rejects_non_int(bad: object) -> None:
    with pytest.raises(TypeError):
        format_rupiah(bad)  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=10**10))
def test_format_parse_round_trip(n: int) -> None:
    assert parse_rupiah(format_rupiah(n)) == n


@given(st.integers(min_value=1, max_value=10**10))
def test_plain_and_english_forms_round_trip(n: int) -> None:
    assert parse_rupiah(str(n)) == n
    assert parse_rupiah(f"{n:,}") == n
    assert parse_rupiah(f"Rp{n:,}".replace(",", ".") + ",-") == n


@given(st.integers(min_value=1, max_value=9_999), st.integers(min_value=0, max_value=99))
def test_juta_with_decimals(whole: int, cents: int) -> None:
    expected = whole * 1_000_000 + cents * 10_000
    assert parse_rupiah(f"{whole},{cents:02d} jt") == expected
    assert parse_rupiah(f"{whole}.{cents:02d}jt") == expected


@given(st.text(max_size=80))
def test_parse_never_raises_other_errors(text: str) -> None:
    try:
        value = parse_rupiah(text)
    except MoneyError as e:
        assert e.kind in MONEY_ERROR_KINDS
    else:
        assert isinstance(value, int)
        assert 1 <= value <= 10_000_000_000


@given(st.text(alphabet="0123456789.,-+ rpRPjtbukmJ", max_size=30))
def test_parse_never_raises_other_errors_money_like(text: str) -> None:
    try:
        value = parse_rupiah(text)
    except MoneyError as e:
        assert e.kind in MONEY_ERROR_KINDS
    else:
        assert 1 <= value <= 10_000_000_000
