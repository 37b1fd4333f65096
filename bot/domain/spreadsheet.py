"""Formula injection (CWE-1236, "CSV injection"): user text written to a file that people open in a
spreadsheet must never become a formula there.

A spreadsheet reads a cell whose text starts with ``=``, ``+``, ``-`` or ``@`` as a formula
(``=HYPERLINK("http://evil","klik")`` becomes a live link that can carry other cells' data away;
``=cmd|' /c calc'!A1`` asks to start a program), and a leading tab or carriage return can hide such a
start from a reader of the file. OWASP's rule: such a value is written with a single quote in front
(``'=HYPERLINK(...)``), which every spreadsheet shows as text. :func:`neutralise` applies it to one
string, :func:`neutralise_strings` to every string of a JSON-like value (a CSV row, a dict of lists).

Also covered, as they cost one look-up: the start after leading spaces (``" =1+1"``; LibreOffice can
trim spaces on import), a leading line feed or NUL (ASVS 1.2.10), and the compatibility forms of the
four signs that Unicode normalisation (NFKC) turns into them (full-width ``＝＋－＠``, small
``﹦﹢﹣﹫``, super- and subscript ``⁼⁺₌₊``).

Left as they are: a plain signed number written as text (``-``, ``-5``, ``+6281234567890``,
``-1.250.000``): a spreadsheet reads it as a number at worst, never as a formula, and a phone number
keeps its ``+``. Values that are not strings (amounts, counts, dates the bot computed; a negative
``int``) are never touched: they stay numbers.

Pure: no openpyxl, no I/O. The XLSX writer (:mod:`bot.services.export`) additionally makes every
string cell a string cell (``data_type "s"``), and the /dataku JSON (:mod:`bot.services.privacy`)
goes through :func:`neutralise_strings`; any CSV or JSON export added later must do the same.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

QUOTE = "'"
FORMULA_SIGNS = frozenset("=+-@")
# Characters that make a cell suspicious as its very first character, whatever follows.
LEADING_CONTROLS = frozenset("\t\r\n\0")
_PLAIN_NUMBER_RE = re.compile(r"[+-]?(?:[0-9][0-9.,]*)?")


def _sign(char: str) -> str:
    """``char`` as one of ``= + - @`` if it is one or normalises (NFKC) to one, else ``char``."""
    if char in FORMULA_SIGNS or char.isascii():
        return char
    folded = unicodedata.normalize("NFKC", char)
    return folded if folded in FORMULA_SIGNS else char


def needs_quote(value: str) -> bool:
    """Whether a spreadsheet could read ``value`` as (the start of) a formula."""
    if not value:
        return False
    if value[0] in LEADING_CONTROLS:
        return True
    rest = value.lstrip() if value[0].isspace() else value
    if not rest or _sign(rest[0]) not in FORMULA_SIGNS:
        return False
    return _PLAIN_NUMBER_RE.fullmatch(unicodedata.normalize("NFKC", rest)) is None


def neutralise(value: str) -> str:
    """``value`` with a single quote in front when a spreadsheet could read it as a formula; the
    text after the quote is unchanged. Idempotent: a neutralised value starts with the quote."""
    return QUOTE + value if needs_quote(value) else value


def neutralise_strings(value: Any) -> Any:
    """``value`` with :func:`neutralise` applied to every string in it (inside dicts, lists and
    tuples; dict keys are the exporter's own and stay); other values are returned unchanged."""
    if isinstance(value, str):
        return neutralise(value)
    if isinstance(value, dict):
        return {k: neutralise_strings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [neutralise_strings(v) for v in value]
    return value
