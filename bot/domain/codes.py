"""Proposal codes such as ``PRL-2026-0001``: formatting, lenient parsing, detection."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

YEAR_MIN = 1900
YEAR_MAX = 2999
SEQ_MAX = 999_999_999
_SEP = r"[\s\-\u2010-\u2015/_.#:]*"


def _check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,7}", prefix):
        raise ValueError(f"code prefix must be 1-8 letters/digits starting with a letter, got {prefix!r}")
    return prefix.upper()


@lru_cache(maxsize=32)
def _patterns(prefix: str) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    p = re.escape(prefix.casefold())
    full = re.compile(rf"#?{p}{_SEP}([0-9]{{4}}){_SEP}([0-9]{{1,9}})")
    loose = re.compile(rf"#?{p}(?:{_SEP}[0-9][0-9\s\-/_.#:]*)?")
    found = re.compile(rf"(?<![a-z0-9]){p}[\-/ ]?([0-9]{{4}})[\-/ ]?([0-9]{{1,9}})(?![a-z0-9])")
    return full, loose, found


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().strip()


def _valid(year: int, seq: int) -> bool:
    return YEAR_MIN <= year <= YEAR_MAX and 1 <= seq <= SEQ_MAX


def format_code(prefix: str, year: int, seq: int) -> str:
    """``("PRL", 2026, 1)`` -> ``"PRL-2026-0001"`` (4 digits minimum, wider when needed)."""
    p = _check_prefix(prefix)
    if not _valid(year, seq):
        raise ValueError(f"invalid year/sequence: {year!r}/{seq!r}")
    return f"{p}-{year:04d}-{seq:04d}"


def parse_code(text: str | None, prefix: str) -> tuple[int, int] | None:
    """``"prl 2026 1"``, ``"PRL20260001"``, ``"prl/2026/0001"`` -> ``(2026, 1)``; else None."""
    if not isinstance(text, str):
        return None
    full, _, _ = _patterns(_check_prefix(prefix))
    m = full.fullmatch(_norm(text))
    if m is None:
        return None
    year, seq = int(m.group(1)), int(m.group(2))
    return (year, seq) if _valid(year, seq) else None


def looks_like_code(text: str | None, prefix: str) -> bool:
    """True if the whole message is meant as a code (prefix then digits), even a malformed one.

    Use it to route free text: ``"PRL-26-1"`` looks like a code (answer "kode tidak valid"),
    ``"Prolita kapan dibuka?"`` does not.
    """
    if not isinstance(text, str):
        return False
    _, loose, _ = _patterns(_check_prefix(prefix))
    s = _norm(text)
    return len(s) <= 40 and loose.fullmatch(s) is not None and any(c.isdigit() for c in s)


def find_code(text: str | None, prefix: str) -> tuple[int, int] | None:
    """The first well-formed code inside a longer text (``"cek PRL-2026-0001 ya"``), else None."""
    if not isinstance(text, str):
        return None
    _, _, found = _patterns(_check_prefix(prefix))
    for m in found.finditer(_norm(text)):
        year, seq = int(m.group(1)), int(m.group(2))
        if _valid(year, seq):
            return year, seq
    return None
