from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.text import TextError, clean_text, escape_html, valid_person_name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  halo  ", "halo"),
        ("jalan   rusak\tparah", "jalan rusak parah"),
        ("baris 1\nbaris 2", "baris 1\nbaris 2"),
        ("baris 1  \n   baris 2", "baris 1\nbaris 2"),
        ("a\r\nb\rc", "a\nb\nc"),
        ("a\n\n\n\n\nb", "a\n\nb"),
        ("a\x00b\x07c", "abc"),
        ("a\u200bb", "ab"),  # zero-width space removed
        ("a\u00a0\u00a0b", "a b"),  # non-breaking spaces collapse
        ("\n\n  isi  \n\n", "isi"),
        ("👨\u200d👩\u200d👧 keluarga", "👨\u200d👩\u200d👧 keluarga"),  # ZWJ emoji kept
        ("Cafe\u0301", "Café"),  # NFC
    ],
)
def test_clean_text(raw: str, expected: str) -> None:
    assert clean_text(raw, 100) == expected


@pytest.mark.parametrize("raw", ["", "   ", "\n\t\n", "\x00\x01", "\u200b", None])
def test_clean_text_empty(raw: str | None) -> None:
    with pytest.raises(TextError) as exc:
        clean_text(raw, 10)  # type: ignore[arg-type]
    assert exc.value.kind == "empty"
    assert exc.value.max_len == 10


def test_clean_text_too_long_counts_after_cleaning() -> None:
    assert clean_text("  abcde     ", 5) == "abcde"
    with pytest.raises(TextError) as exc:
        clean_text("abcdef", 5)
    assert (exc.value.kind, exc.value.max_len, exc.value.length) == ("too_long", 5, 6)


def test_text_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        clean_text("", 5)


@given(st.text(max_size=200), st.integers(min_value=1, max_value=300))
def test_clean_text_properties(raw: str, max_len: int) -> None:
    try:
        out = clean_text(raw, max_len)
    except TextError as e:
        assert e.kind in ("empty", "too_long")
        return
    assert 1 <= len(out) <= max_len
    assert out == out.strip()
    assert "  " not in out
    assert "\n\n\n" not in out
    assert not any(ord(c) < 32 and c != "\n" for c in out)
    assert clean_text(out, max_len) == out  # idempotent


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<b>x</b> & y", "&lt;b&gt;x&lt;/b&gt; &amp; y"),
        ("\"kutip\" 'satu'", "\"kutip\" 'satu'"),
        ("", ""),
    ],
)
def test_escape_html(raw: str, expected: str) -> None:
    assert escape_html(raw) == expected


@pytest.mark.parametrize(
    "name",
    [
        "Budi",
        "Budi Santoso",
        "Ni Made Ayu",
        "Drs. H. Ahmad, S.Pd.",
        "Hj. Siti Nur'aini",
        "Ir. Joko Widodo, M.M.",
        "dr. Andi, Sp.PD",
        "Muh. Rizky Al-Fatih",
        "I Gusti Ngurah",
        "Yohanes O’Neil",
        "José",
        "Ab",
        "A" * 120,
    ],
)
def test_valid_person_name(name: str) -> None:
    assert valid_person_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "A",
        "  B  ",
        "12345",
        "Budi 2",
        "Budi123",
        "A. .",
        "-- .",
        "www.budi.com",
        "budi.com",
        "https://x.id",
        "@budi",
        "budi@mail.id",
        "Budi 😀",
        "A" * 121,
        "Budi_Santoso",
        None,
    ],
)
def test_invalid_person_name(name: str | None) -> None:
    assert not valid_person_name(name)


@given(st.text(max_size=150))
def test_valid_person_name_never_raises(name: str) -> None:
    assert valid_person_name(name) in (True, False)
