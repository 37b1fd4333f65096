"""Free-text hygiene: cleaning user input, HTML escaping, person-name plausibility."""

from __future__ import annotations

import html
import re
import unicodedata

EMPTY = "empty"
TOO_LONG = "too_long"

_KEEP_FORMAT = {"\u200d", "\ufe0f"}  # zero-width joiner / variation selector (emoji sequences)
_HSPACE_RE = re.compile(r"[^\S\n]+")
_BLANK_LINES_RE = re.compile(r"\n{3,}")
_URL_RE = re.compile(
    r"(?:[a-z][a-z0-9+.\-]*://|www\.|@)|"
    r"[a-z0-9\-]+\.(?:com|net|org|id|co|io|me|info|biz|xyz|ly|gl|link|site|online|app|dev|gov|ac|sch|my)\b",
)
_NAME_CHARS_RE = re.compile(r"[^\W\d_]|[ .,'’\-]")


class TextError(ValueError):
    """Text rejected: ``kind`` is ``"empty"`` or ``"too_long"``; ``length`` is the cleaned length."""

    def __init__(self, kind: str, *, max_len: int, length: int = 0) -> None:
        super().__init__(kind)
        self.kind = kind
        self.max_len = max_len
        self.length = length

    def __repr__(self) -> str:
        return f"TextError({self.kind!r}, max_len={self.max_len!r}, length={self.length!r})"


def escape_html(s: str) -> str:
    """Escape ``&``, ``<``, ``>`` for Telegram HTML parse mode (quotes left alone)."""
    return html.escape(s, quote=False)


def _drop_char(c: str) -> bool:
    if c == "\n":
        return False
    cat = unicodedata.category(c)
    if cat in ("Cc", "Cs"):
        return not c.isspace()
    return cat == "Cf" and c not in _KEEP_FORMAT


def clean_text(s: str, max_len: int) -> str:
    """Strip, drop control characters, collapse spaces (newlines kept, at most one blank line).

    Raises ``TextError("empty")`` or ``TextError("too_long", max_len=..., length=...)``.
    """
    if max_len < 1:
        raise ValueError("max_len must be positive")
    s = unicodedata.normalize("NFC", s or "").replace("\r\n", "\n").replace("\r", "\n")
    s = s.replace("\u2028", "\n").replace("\u2029", "\n")
    s = "".join(" " if (c != "\n" and c.isspace()) else c for c in s if not _drop_char(c))
    lines = [_HSPACE_RE.sub(" ", line).strip() for line in s.split("\n")]
    s = _BLANK_LINES_RE.sub("\n\n", "\n".join(lines)).strip()
    if not s:
        raise TextError(EMPTY, max_len=max_len)
    if len(s) > max_len:
        raise TextError(TOO_LONG, max_len=max_len, length=len(s))
    return s


def valid_person_name(s: str | None) -> bool:
    """Plausible person name: 2..120 chars, at least 2 letters, only letters/spaces/``.,'-``.

    Titles like ``"Drs. H. Ahmad, S.Pd."`` or ``"Hj. Siti Nur'aini"`` pass; digits, URLs,
    ``@handles`` and emoji do not.
    """
    if not isinstance(s, str):
        return False
    name = " ".join(unicodedata.normalize("NFC", s).split())
    if not 2 <= len(name) <= 120:
        return False
    if any(not _NAME_CHARS_RE.fullmatch(c) for c in name):
        return False
    if sum(1 for c in name if c.isalpha()) < 2:
        return False
    return _URL_RE.search(name.casefold()) is None
