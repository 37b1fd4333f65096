"""Regional names and numbers: RT numbers, kelurahan/kecamatan name matching, labels."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

RT_MIN = 1
RT_MAX = 999

_RT_RE = re.compile(r"(?:rt\s*[.\-:/#]?\s*(?:no\.?\s*)?)?([0-9]{1,3})")
_PUNCT_RE = re.compile(r"[\s\-\u2010-\u2015._/,'’`]+")
_PREFIX_RE = re.compile(r"^(?:kelurahan|kecamatan|kel|kec|desa)\s+(?=\S)")


def parse_rt_number(text: str | None) -> int | None:
    """``"5"``, ``"005"``, ``"RT 05"``, ``"rt.005"``, ``"Rt-5"`` -> 5; anything else -> None."""
    if not isinstance(text, str):
        return None
    s = unicodedata.normalize("NFKC", text).casefold().strip()
    m = _RT_RE.fullmatch(s)
    if m is None:
        return None
    n = int(m.group(1))
    return n if RT_MIN <= n <= RT_MAX else None


def normalize_place(name: str) -> str:
    """Comparison key for kelurahan/kecamatan names: ``"Kel. Api Api"`` -> ``"api api"``."""
    s = unicodedata.normalize("NFKC", name).casefold()
    s = _PUNCT_RE.sub(" ", s).strip()
    # Strip administrative prefixes, possibly repeated ("Kel. Kelurahan X" from sloppy CSVs).
    while True:
        stripped = _PREFIX_RE.sub("", s)
        if stripped == s:
            return s
        s = stripped


def find_place(query: str, names: Iterable[str]) -> str | None:
    """The first of ``names`` whose normalized form equals the query's, else None."""
    key = normalize_place(query)
    if not key:
        return None
    for name in names:
        if normalize_place(name) == key:
            return name
    return None


def rt_label(n: int) -> str:
    """``5`` -> ``"RT 05"``, ``123`` -> ``"RT 123"``."""
    if isinstance(n, bool) or not isinstance(n, int) or not RT_MIN <= n <= RT_MAX:
        raise ValueError(f"RT number must be {RT_MIN}..{RT_MAX}, got {n!r}")
    return f"RT {n:02d}"
