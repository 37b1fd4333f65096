from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.wilayah import find_place, normalize_place, parse_rt_number, rt_label


@pytest.mark.parametrize(
    "text",
    ["5", "05", "005", "RT 5", "RT 05", "rt.005", "RT.005", "Rt-5", "rt5", " RT 05 ", "RT:5", "rt no 5", "RT  5"],
)
def test_parse_rt_number_accepts(text: str) -> None:
    assert parse_rt_number(text) == 5


@pytest.mark.parametrize(("text", "expected"), [("1", 1), ("RT 12", 12), ("999", 999), ("rt 100", 100)])
def test_parse_rt_number_values(text: str, expected: int) -> None:
    assert parse_rt_number(text) == expected


@pytest.mark.parametrize(
    "text",
    ["0", "00", "000", "RT 0", "1000", "0005", "RW 5", "abc", "5a", "", "   ", "RT", "RT 5 RW 2", "-5", "5.5", None],
)
def test_parse_rt_number_rejects(text: str | None) -> None:
    assert parse_rt_number(text) is None


@given(st.integers(min_value=1, max_value=999))
def test_rt_label_round_trip(n: int) -> None:
    assert parse_rt_number(rt_label(n)) == n
    assert parse_rt_number(str(n)) == n


@given(st.text(max_size=30))
def test_parse_rt_number_never_raises(text: str) -> None:
    result = parse_rt_number(text)
    assert result is None or 1 <= result <= 999


@pytest.mark.parametrize(("n", "expected"), [(1, "RT 01"), (5, "RT 05"), (10, "RT 10"), (99, "RT 99"), (100, "RT 100")])
def test_rt_label(n: int, expected: str) -> None:
    assert rt_label(n) == expected


@pytest.mark.parametrize("bad", [0, -1, 1000, True])
def test_rt_label_rejects(bad: int) -> None:
    with pytest.raises(ValueError):
        rt_label(bad)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Kel. Api Api", "Api-Api"),
        ("API-API", "Api-Api"),
        ("api-api", "Api-Api"),
        ("Kelurahan Api-Api", "Api-Api"),
        ("kel api  api", "Api-Api"),
        ("Kel.Api-Api", "Api-Api"),
        ("  Bontang   Baru ", "Bontang Baru"),
        ("Kec. Bontang Utara", "Bontang Utara"),
        ("Kecamatan Bontang Utara", "bontang utara"),
        ("BONTANG_KUALA", "Bontang Kuala"),
        ("Gunung  Elai.", "Gunung Elai"),
    ],
)
def test_normalize_place_matches(a: str, b: str) -> None:
    assert normalize_place(a) == normalize_place(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [("Bontang Baru", "Bontang Kuala"), ("Guntung", "Gunung Elai"), ("Kelapa", "Lapa")],
)
def test_normalize_place_distinguishes(a: str, b: str) -> None:
    assert normalize_place(a) != normalize_place(b)


def test_normalize_place_key_shape() -> None:
    assert normalize_place("Kel. Api Api") == "api api"
    assert normalize_place("Kelapa") == "kelapa"  # no prefix stripping inside a word
    assert normalize_place("Kelurahan") == "kelurahan"  # a lone prefix word stays


def test_find_place() -> None:
    names = ["Guntung", "Loktuan", "Api-Api", "Bontang Baru"]
    assert find_place("kel. api api", names) == "Api-Api"
    assert find_place("BONTANG BARU", names) == "Bontang Baru"
    assert find_place("Belimbing", names) is None
    assert find_place("  ", names) is None


@given(st.text(max_size=40))
def test_normalize_place_idempotent(text: str) -> None:
    once = normalize_place(text)
    assert normalize_place(once) == once
