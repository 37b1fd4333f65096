"""One RAB (rencana anggaran biaya) line typed forgivingly: ``Semen 50 sak x 65.000``.

Shape: ``<description> <volume> [<unit>] (x|×|*|@) <price> [= <total>]``; without a separator
the last money token is the price (``Konsumsi rapat 1 paket 500rb``). The volume is the last
number before the unit (so ``Pipa PVC 4 inch 12 batang x 85.000`` has volume 12); the unit is
one or two words starting with a letter, or may be left out. Prices go through
:func:`bot.domain.money.parse_rupiah`. Volumes use ``,`` as decimal mark (``2,5``); ``.`` is
a thousands mark only when it groups (``1.500``), otherwise decimal (``2.5``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

from bot.domain.money import DEFAULT_MAX_VALUE, MoneyError, format_rupiah, parse_rupiah

MAX_VOLUME = 100_000
MAX_VOLUME_DECIMALS = 3
DEFAULT_MAX_LEN = 200

EMPTY = "empty"
TOO_LONG = "too_long"
NO_PRICE = "no_price"
BAD_PRICE = "bad_price"
NO_VOLUME = "no_volume"
BAD_VOLUME = "bad_volume"
VOLUME_TOO_LARGE = "volume_too_large"
NO_DESCRIPTION = "no_description"
BAD_TOTAL = "bad_total"
TOTAL_MISMATCH = "total_mismatch"
RAB_ERROR_KINDS = (
    EMPTY,
    TOO_LONG,
    NO_PRICE,
    BAD_PRICE,
    NO_VOLUME,
    BAD_VOLUME,
    VOLUME_TOO_LARGE,
    NO_DESCRIPTION,
    BAD_TOTAL,
    TOTAL_MISMATCH,
)

_LIST_MARKER_RE = re.compile(r"^(?:[0-9]{1,3}[.)]\s+|[-•*–—]+\s*)")
# "x" counts as a separator only when not glued to a preceding letter and followed by a price.
_SEP_RE = re.compile(r"[×*@]|(?<![^\W\d_])x(?=\s*(?:rp|[0-9]))", re.IGNORECASE)
_PER_UNIT_RE = re.compile(r"\s*(?:/|\bper\s)\s*[^\W\d_][\w.]*$", re.IGNORECASE)
_TRAILING_PRICE_RE = re.compile(
    r"(?:^|(?<=\s))(?P<price>(?:rp\.?\s*)?[0-9][0-9.,]*\s*(?:[^\W\d_]+\.?)?\s*(?:[.,]?-)?)$", re.IGNORECASE
)
_LEFT_RE = re.compile(
    r"^(?P<desc>.*?)(?:^|(?<=[\s:,(\-]))(?P<vol>[0-9]+(?:[.,][0-9]+)*)\s*"
    r"(?P<unit>[^\W\d_][^\s]*(?:\s+[^\W\d_][^\s]*)?)?$"
)
_DESC_TRIM = " \t:,;-–—(="


class RabError(ValueError):
    """A RAB line could not be read; ``kind`` is one of ``RAB_ERROR_KINDS``.

    Extra numbers: ``money_kind`` (bad_price/bad_total), ``max_len`` (too_long),
    ``max_volume`` (volume_too_large), ``total``/``given`` (total_mismatch).
    """

    def __init__(
        self,
        kind: str,
        *,
        money_kind: str | None = None,
        max_len: int | None = None,
        max_volume: int | None = None,
        total: int | None = None,
        given: int | None = None,
    ) -> None:
        super().__init__(kind if money_kind is None else f"{kind}:{money_kind}")
        self.kind = kind
        self.money_kind = money_kind
        self.max_len = max_len
        self.max_volume = max_volume
        self.total = total
        self.given = given


@dataclass(frozen=True)
class RabLine:
    description: str
    volume: Decimal | int
    unit: str
    unit_price: int

    @property
    def total(self) -> int:
        """Volume × unit price in whole rupiah, rounded half up."""
        if isinstance(self.volume, int):
            return self.volume * self.unit_price
        with localcontext() as ctx:
            ctx.prec = 60
            return int((self.volume * self.unit_price).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_volume(volume: Decimal | int) -> str:
    """``2.5`` -> ``"2,5"``, ``50`` -> ``"50"`` (no thousands marks, so it parses back)."""
    if isinstance(volume, int):
        return str(volume)
    if volume == volume.to_integral_value():
        return str(int(volume))
    return format(volume.normalize(), "f").replace(".", ",")


def format_rab_line(line: RabLine) -> str:
    """``Semen 50 sak x Rp 65.000`` (parses back with :func:`parse_rab_line`)."""
    parts = [line.description, format_volume(line.volume)]
    if line.unit:
        parts.append(line.unit)
    return " ".join(parts) + f" x {format_rupiah(line.unit_price)}"


def _volume(num: str) -> Decimal | int:
    """Parse a volume token; raises RabError(bad_volume / volume_too_large)."""
    if "." in num and "," in num:
        dec = "," if num.rfind(",") > num.rfind(".") else "."
        thou = "." if dec == "," else ","
        head, _, frac = num.rpartition(dec)
        groups = head.split(thou)
        if dec in head or not _grouped(groups):
            raise RabError(BAD_VOLUME)
        value = Fraction(f"{''.join(groups)}.{frac}")
    elif "," in num:
        parts = num.split(",")
        if len(parts) != 2:
            raise RabError(BAD_VOLUME)
        value = Fraction(f"{parts[0]}.{parts[1]}")
    elif "." in num:
        parts = num.split(".")
        if _grouped(parts):
            value = Fraction(int("".join(parts)))
        elif len(parts) == 2:
            value = Fraction(f"{parts[0]}.{parts[1]}")
        else:
            raise RabError(BAD_VOLUME)
    else:
        value = Fraction(int(num))
    if value <= 0:
        raise RabError(BAD_VOLUME)
    if value > MAX_VOLUME:
        raise RabError(VOLUME_TOO_LARGE, max_volume=MAX_VOLUME)
    if value.denominator == 1:
        return int(value)
    if (value * 10**MAX_VOLUME_DECIMALS).denominator != 1:
        raise RabError(BAD_VOLUME)
    return (Decimal(value.numerator) / Decimal(value.denominator)).normalize()


def _grouped(parts: list[str]) -> bool:
    return len(parts) > 1 and bool(re.fullmatch(r"[1-9][0-9]{0,2}", parts[0])) and all(len(p) == 3 for p in parts[1:])


def _price(text: str, max_price: int) -> int:
    try:
        return parse_rupiah(text, max_value=max_price)
    except MoneyError as e:
        raise RabError(BAD_PRICE, money_kind=e.kind) from None


def parse_rab_line(text: str | None, *, max_len: int = DEFAULT_MAX_LEN, max_price: int = DEFAULT_MAX_VALUE) -> RabLine:
    """Parse one typed RAB line; raises :class:`RabError`."""
    if not isinstance(text, str) or not text.strip():
        raise RabError(EMPTY)
    s = " ".join(unicodedata.normalize("NFKC", text).split())
    if len(s) > max_len:
        raise RabError(TOO_LONG, max_len=max_len)
    s = _LIST_MARKER_RE.sub("", s)

    given_total: int | None = None
    if "=" in s:
        s, _, rhs = s.rpartition("=")
        try:
            given_total = parse_rupiah(rhs)
        except MoneyError as e:
            raise RabError(BAD_TOTAL, money_kind=e.kind) from None

    seps = list(_SEP_RE.finditer(s))
    if seps:
        sep = seps[-1]
        left, right = s[: sep.start()].strip(), _PER_UNIT_RE.sub("", s[sep.end() :]).strip()
        if not right:
            raise RabError(NO_PRICE)
        price = _price(right, max_price)
        m = _LEFT_RE.match(left)
        if m is None:
            raise RabError(NO_VOLUME)
    else:
        pm = _TRAILING_PRICE_RE.search(s)
        if pm is None:
            raise RabError(NO_PRICE)
        left = s[: pm.start()].strip()
        m = _LEFT_RE.match(left)
        try:
            price = parse_rupiah(pm.group("price"), max_value=max_price)
        except MoneyError as e:
            # A lone number with a non-money word ("Semen 50 sak") is a volume, not a price.
            if m is None or e.kind == "not_a_number":
                raise RabError(NO_PRICE) from None
            raise RabError(BAD_PRICE, money_kind=e.kind) from None
        if m is None:
            raise RabError(NO_VOLUME)

    volume = _volume(m.group("vol"))
    description = " ".join(m.group("desc").split()).strip(_DESC_TRIM)
    if not any(c.isalnum() for c in description):
        raise RabError(NO_DESCRIPTION)
    unit = (m.group("unit") or "").strip()
    line = RabLine(description=description, volume=volume, unit=unit, unit_price=price)
    if given_total is not None and given_total != line.total:
        raise RabError(TOTAL_MISMATCH, total=line.total, given=given_total)
    return line
