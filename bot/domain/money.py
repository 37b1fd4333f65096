"""Rupiah amounts: forgiving parsing of typed amounts and canonical formatting.

Indonesian writes ``.`` for thousands and ``,`` for decimals (``Rp 1.250.000,00``); people
also type English style (``1,250,000``) and shorthand (``1,25 jt``, ``500rb``, ``1,5 M``).
Ambiguity rules, in order:

* both ``.`` and ``,`` present: the last one is the decimal separator, the other groups
  thousands (``1.250.000,50`` / ``1,250,000.50``);
* one kind, several times: thousands (``1.250.000``, ``1,250,000``);
* one separator once, with a multiplier word: decimal (``1,25 jt``, ``1.5jt``, ``1.250 jt``
  = 1,25 juta);
* one separator once, without a multiplier: thousands when it groups like ``1.250`` or
  ``12,500`` (1-3 digits not starting with 0, then exactly 3), otherwise decimal
  (``1250,00`` = 1250, ``12,5`` = a fraction of a rupiah, rejected).

``M`` means *miliar* (10^9), as in Indonesian, not million.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

DEFAULT_MAX_VALUE = 10_000_000_000

EMPTY = "empty"
NOT_A_NUMBER = "not_a_number"
NEGATIVE = "negative"
ZERO = "zero"
FRACTION = "fraction"
TOO_LARGE = "too_large"
MONEY_ERROR_KINDS = (EMPTY, NOT_A_NUMBER, NEGATIVE, ZERO, FRACTION, TOO_LARGE)

# Longer than any genuine amount; also keeps digit strings far below int/str conversion limits.
_MAX_INPUT_LEN = 64

_MULTIPLIERS: dict[str, int] = {
    "k": 1_000,
    "rb": 1_000,
    "rbu": 1_000,
    "ribu": 1_000,
    "jt": 1_000_000,
    "jta": 1_000_000,
    "juta": 1_000_000,
    "m": 1_000_000_000,
    "mil": 1_000_000_000,
    "miliar": 1_000_000_000,
    "milyar": 1_000_000_000,
    "milliar": 1_000_000_000,
    "t": 1_000_000_000_000,
    "triliun": 1_000_000_000_000,
}

_NUMBER_RE = re.compile(r"(?P<num>[0-9]+(?:[.,][0-9]+)*)\s*(?:(?P<word>[a-z]+)\.?)?")
_CURRENCY_PREFIX_RE = re.compile(r"^(?:rp|idr)\.?\s*")
_CURRENCY_SUFFIX_RE = re.compile(r"\s*(?:rupiah|rp|idr)\.?$")
_DASH_SUFFIX_RE = re.compile(r"\s*[.,]?\s*-+$")
_THOUSANDS_HEAD_RE = re.compile(r"[1-9][0-9]{0,2}")


class MoneyError(ValueError):
    """An amount could not be accepted; ``kind`` is one of ``MONEY_ERROR_KINDS``."""

    def __init__(self, kind: str, *, max_value: int | None = None, value: int | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.max_value = max_value
        self.value = value

    def __repr__(self) -> str:
        return f"MoneyError({self.kind!r}, max_value={self.max_value!r}, value={self.value!r})"


def _grouped(parts: list[str]) -> bool:
    """True if ``parts`` are valid thousands groups (``1``/``12``/``123`` then ``ddd``...)."""
    return bool(_THOUSANDS_HEAD_RE.fullmatch(parts[0])) and all(len(p) == 3 for p in parts[1:])


def _interpret(num: str, has_multiplier: bool) -> Fraction:
    """Exact value of a digit string with ``.``/``,`` separators; raises MoneyError."""
    seps = {c for c in num if c in ".,"}
    if not seps:
        return Fraction(int(num))
    if len(seps) == 2:
        dec_sep = num[max(num.rfind("."), num.rfind(","))]
        thou_sep = "," if dec_sep == "." else "."
        int_part, frac = num.rsplit(dec_sep, 1)
        if dec_sep in int_part or thou_sep in frac or not _grouped(int_part.split(thou_sep)):
            raise MoneyError(NOT_A_NUMBER)
        return Fraction(f"{int_part.replace(thou_sep, '')}.{frac}")
    sep = seps.pop()
    parts = num.split(sep)
    if len(parts) > 2:
        if not _grouped(parts):
            raise MoneyError(NOT_A_NUMBER)
        return Fraction(int("".join(parts)))
    head, tail = parts
    if not has_multiplier and _grouped(parts):
        return Fraction(int(head + tail))
    return Fraction(f"{head}.{tail}")


def parse_rupiah(text: str | None, *, max_value: int = DEFAULT_MAX_VALUE) -> int:
    """Parse a typed amount into whole rupiah; raises :class:`MoneyError`."""
    if text is None:
        raise MoneyError(EMPTY)
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")
    s = unicodedata.normalize("NFKC", text).casefold().replace("\u2212", "-")
    s = " ".join(s.split())
    if not s:
        raise MoneyError(EMPTY)
    if len(s) > _MAX_INPUT_LEN:
        raise MoneyError(NOT_A_NUMBER)

    negative = False
    if s[0] in "+-":
        negative = s[0] == "-"
        s = s[1:].lstrip()
        signed = True
    else:
        signed = False
    s = _CURRENCY_PREFIX_RE.sub("", s)
    if not signed and s[:1] in ("+", "-"):
        negative = s[0] == "-"
        s = s[1:].lstrip()
    s = _DASH_SUFFIX_RE.sub("", s)
    s = _CURRENCY_SUFFIX_RE.sub("", s)
    s = _DASH_SUFFIX_RE.sub("", s)

    m = _NUMBER_RE.fullmatch(s)
    if m is None:
        raise MoneyError(NOT_A_NUMBER)
    word = m.group("word")
    multiplier = 1
    if word is not None:
        if word not in _MULTIPLIERS:
            raise MoneyError(NOT_A_NUMBER)
        multiplier = _MULTIPLIERS[word]
    value = _interpret(m.group("num"), word is not None) * multiplier

    if value == 0:
        raise MoneyError(ZERO)
    if negative:
        raise MoneyError(NEGATIVE)
    if value.denominator != 1:
        raise MoneyError(FRACTION)
    amount = int(value)
    if amount > max_value:
        raise MoneyError(TOO_LARGE, max_value=max_value, value=amount)
    return amount


def format_rupiah(n: int) -> str:
    """``1250000`` -> ``Rp 1.250.000``; negative -> ``-Rp 1.250.000``."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"expected int rupiah, got {type(n).__name__}")
    body = f"Rp {abs(n):,}".replace(",", ".")
    return f"-{body}" if n < 0 else body


_SHORT_UNITS = ((1_000_000_000, "M"), (1_000_000, "jt"), (1_000, "rb"))


def format_rupiah_short(n: int) -> str:
    """Compact rupiah for chart axes and captions: ``Rp 1,2 M``, ``Rp 850 jt``, ``Rp 47,5 jt``, ``Rp 500 rb``.

    One decimal (Indonesian comma, dropped when zero) below 100 of a unit, whole units from 100 on;
    a value that rounds up to the next unit is shown in it (``999.960.000`` -> ``Rp 1 M``).
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"expected int rupiah, got {type(n).__name__}")
    value = abs(n)
    body = f"Rp {value}"
    for i, (size, unit) in enumerate(_SHORT_UNITS):
        if value < size:
            continue
        amount = Fraction(value, size)
        places = Decimal("1") if amount >= 100 else Decimal("0.1")
        shown = (Decimal(amount.numerator) / Decimal(amount.denominator)).quantize(places, rounding=ROUND_HALF_UP)
        if i > 0 and shown >= 1000:  # e.g. 999,96 jt -> 1.000 jt: say 1 M
            size, unit = _SHORT_UNITS[i - 1]
            shown = (Decimal(value) / size).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
        text = format(shown.normalize(), "f").replace(".", ",")
        body = f"Rp {text} {unit}"
        break
    return f"-{body}" if n < 0 else body
