"""bot.domain.spreadsheet: OWASP's single quote in front of what a spreadsheet would read as a formula
(CWE-1236), nothing else changed."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.spreadsheet import needs_quote, neutralise, neutralise_strings

FORMULAS = [
    '=HYPERLINK("http://evil.example","klik")',
    "=cmd|' /c calc'!A1",
    "=1+1",
    "=",
    "+1+1",
    "+cmd|' /c calc'!A0",
    "-2+3",
    "-1-1",
    "--1",
    "-A1",
    "- semen",
    "@SUM(A1)",
    "@",
    "\t=1+1",
    "\tketerangan",
    "\rketerangan",
    "\nketerangan",
    "\0x",
    " =1+1",  # after leading spaces
    "\u00a0=1+1",
    "\u3000@SUM(A1)",
    "＝1+1",  # full-width
    "＋1+1",
    "－1+1",
    "＠SUM(A1)",
    "﹦1",  # small form
    "﹫SUM(A1)",
    "⁼1",  # superscript
    "₊1+1",  # subscript
    "+62 812-3456",  # a phone written with spaces is not a plain number
    "-5%",
    "-1e3",
]
LEFT_ALONE = [
    "",
    " ",
    "Semenisasi gang Mawar",
    "Semen 50 sak",
    "a=b",
    "1+1",
    "PRL-2026-0001",
    "#N/A",  # an error literal, not a formula: the XLSX writer makes it a string cell
    "'=already quoted",
    "-",  # a plain signed number, or just the sign: read as a number at worst
    "+",
    "-5",
    "+5",
    "-1.250.000",
    "-1,5",
    "+6281234567890",
    "－５",  # full-width, still a plain number
    "−1+1",  # U+2212 MINUS SIGN: no spreadsheet starts a formula with it
    "“=x”",
]


@pytest.mark.parametrize("value", FORMULAS)
def test_formula_starts_get_a_quote(value: str) -> None:
    assert needs_quote(value)
    assert neutralise(value) == "'" + value


@pytest.mark.parametrize("value", LEFT_ALONE)
def test_other_text_is_left_alone(value: str) -> None:
    assert not needs_quote(value)
    assert neutralise(value) == value


def test_neutralise_strings_only_touches_strings() -> None:
    data = {
        "title": "=HYPERLINK(\"http://evil\",\"klik\")",
        "amount": -5,
        "ratio": -0.5,
        "flag": True,
        "none": None,
        "phone": "+6281234567890",
        "lines": ["@SUM(A1)", "Semen", 3, ("+1+1", "-")],
        "nested": {"note": "\tx", "=key": "ok"},
    }
    assert neutralise_strings(data) == {
        "title": "'=HYPERLINK(\"http://evil\",\"klik\")",
        "amount": -5,
        "ratio": -0.5,
        "flag": True,
        "none": None,
        "phone": "+6281234567890",
        "lines": ["'@SUM(A1)", "Semen", 3, ["'+1+1", "-"]],
        "nested": {"note": "'\tx", "=key": "ok"},  # keys are the exporter's own
    }
    assert neutralise_strings(-7) == -7 and neutralise_strings("-") == "-"


PLAIN_NUMBER = re.compile(r"[+-]?([0-9][0-9.,]*)?")


def _spreadsheet_would_see_a_formula(cell: str) -> bool:
    """A model of the spreadsheets' rule: after leading whitespace, the first character (NFKC) is one
    of = + - @ and the whole is not a plain signed number."""
    head = unicodedata.normalize("NFKC", cell.lstrip())
    return bool(head) and head[0] in "=+-@" and PLAIN_NUMBER.fullmatch(head) is None


@given(st.text(max_size=60))
def test_property_never_a_formula_and_nothing_lost(value: str) -> None:
    out = neutralise(value)
    assert out in (value, "'" + value)  # only ever a quote in front; the text itself is kept
    assert neutralise(out) == out  # idempotent
    assert not _spreadsheet_would_see_a_formula(out)
    assert out[:1] not in ("\t", "\r", "\n", "\0")


@given(st.sampled_from("=+-@＝＋－＠\t\r"), st.text(min_size=1, max_size=40))
def test_property_a_formula_start_is_always_quoted(start: str, rest: str) -> None:
    value = start + rest
    if PLAIN_NUMBER.fullmatch(unicodedata.normalize("NFKC", value)):
        assert neutralise(value) == value  # a plain signed number: -5, +62812...
    else:
        assert neutralise(value) == "'" + value
