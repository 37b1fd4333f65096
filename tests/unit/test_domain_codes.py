from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.codes import find_code, format_code, looks_like_code, parse_code


@pytest.mark.parametrize(
    ("prefix", "year", "seq", "expected"),
    [
        ("PRL", 2026, 1, "PRL-2026-0001"),
        ("PRL", 2026, 42, "PRL-2026-0042"),
        ("PRL", 2026, 9999, "PRL-2026-9999"),
        ("PRL", 2026, 10000, "PRL-2026-10000"),
        ("PRL", 2026, 123456, "PRL-2026-123456"),
        ("prl", 2027, 7, "PRL-2027-0007"),
    ],
)
def test_format_code(prefix: str, year: int, seq: int, expected: str) -> None:
    assert format_code(prefix, year, seq) == expected


@pytest.mark.parametrize(
    ("prefix", "year", "seq"),
    [("PRL", 2026, 0), ("PRL", 2026, -1), ("PRL", 26, 1), ("", 2026, 1), ("P-L", 2026, 1), ("1PR", 2026, 1)],
)
def test_format_code_rejects(prefix: str, year: int, seq: int) -> None:
    with pytest.raises(ValueError):
        format_code(prefix, year, seq)


@pytest.mark.parametrize(
    "text",
    [
        "PRL-2026-0001",
        "prl-2026-1",
        "prl 2026 1",
        "PRL20260001",
        "prl/2026/0001",
        "  Prl-2026-0001 ",
        "PRL_2026_0001",
        "PRL.2026.0001",
        "#PRL-2026-0001",
        "PRL – 2026 – 0001",
        "PRL-2026-00001",
    ],
)
def test_parse_code_accepts(text: str) -> None:
    assert parse_code(text, "PRL") == (2026, 1)


@pytest.mark.parametrize(
    "text",
    [
        "ABC-2026-0001",
        "PRLX-2026-0001",
        "PRL-0001",
        "PRL-26-1",
        "PRL-2026",
        "PRL-2026-0",
        "PRL-2026-0001x",
        "2026-0001",
        "",
        "PRL",
        "cek PRL-2026-0001",
        None,
    ],
)
def test_parse_code_rejects(text: str | None) -> None:
    assert parse_code(text, "PRL") is None


def test_parse_code_other_prefix() -> None:
    assert parse_code("abc-2026-12", "ABC") == (2026, 12)
    assert parse_code("PRL-2026-12", "ABC") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PRL-2026-0001", True),
        ("prl 2026 1", True),
        ("PRL-26-1", True),
        ("PRL-1", True),
        ("prl 2026", True),
        ("PRL", False),
        ("Prolita kapan dibuka?", False),
        ("prl itu apa", False),
        ("halo", False),
        ("cek PRL-2026-0001", False),
        ("", False),
    ],
)
def test_looks_like_code(text: str, expected: bool) -> None:
    assert looks_like_code(text, "PRL") is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tolong cek PRL-2026-0012 ya", (2026, 12)),
        ("status prl 2026 0003?", (2026, 3)),
        ("PRL20260004", (2026, 4)),
        ("xPRL-2026-0001", None),
        ("PRL-2026-0001x", None),
        ("tidak ada kode", None),
    ],
)
def test_find_code(text: str, expected: tuple[int, int] | None) -> None:
    assert find_code(text, "PRL") == expected


@given(st.integers(min_value=1900, max_value=2999), st.integers(min_value=1, max_value=10**8))
def test_format_parse_round_trip(year: int, seq: int) -> None:
    code = format_code("PRL", year, seq)
    assert parse_code(code, "PRL") == (year, seq)
    assert parse_code(code.lower(), "PRL") == (year, seq)
    assert looks_like_code(code, "PRL")
    assert find_code(f"kode {code} mohon dicek", "PRL") == (year, seq)


@given(st.text(max_size=40))
def test_parse_never_raises(text: str) -> None:
    parse_code(text, "PRL")
    looks_like_code(text, "PRL")
    find_code(text, "PRL")
