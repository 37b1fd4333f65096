"""Evidence checks on progress reports, as pure rules: EXIF of site photos, distance from the site,
capture time against the approval, reused photos (perceptual hash), spending against the approved
amount, and what a change of the progress percentage needs.

Flags are facts shown to officers, never reasons to refuse a report. ``read_exif`` and
``perceptual_hash`` decode images (Pillow, ImageHash), opened through ``uploads.open_image`` (an
image over the pixel limit gives no EXIF and no hash, without being decoded): call them off the
event loop (``asyncio.to_thread``) for big files.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from bot.domain.uploads import open_image

WITA = ZoneInfo("Asia/Makassar")

# --- flag kinds ------------------------------------------------------------------------------------
FAR_FROM_SITE = "far_from_site"
TAKEN_BEFORE_APPROVAL = "taken_before_approval"
REUSED_PHOTO = "reused_photo"
NO_EXIF = "no_exif"
OVER_BUDGET = "over_budget"
FLAG_KINDS = (FAR_FROM_SITE, TAKEN_BEFORE_APPROVAL, REUSED_PHOTO, NO_EXIF, OVER_BUDGET)

MAX_DISTANCE_M = 200
HASH_DISTANCE = 6
EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)

# EXIF tags
_TAG_DATETIME = 0x0132
_IFD_EXIF = 0x8769
_IFD_GPS = 0x8825
_TAG_DATETIME_ORIGINAL = 0x9003
_TAG_DATETIME_DIGITIZED = 0x9004
_TAG_OFFSET_TIME_ORIGINAL = 0x9011
_TAG_OFFSET_TIME_DIGITIZED = 0x9012
_TAG_OFFSET_TIME = 0x9010
_TAG_ORIENTATION = 0x0112
# EXIF orientation -> the PIL.Image.Transpose that makes the image upright, as ImageOps.exif_transpose
# (0 FLIP_LEFT_RIGHT, 1 FLIP_TOP_BOTTOM, 2 ROTATE_90, 3 ROTATE_180, 4 ROTATE_270, 5 TRANSPOSE, 6 TRANSVERSE)
_UPRIGHT = {2: 0, 3: 3, 4: 1, 5: 5, 6: 4, 7: 6, 8: 2}


@dataclass(frozen=True)
class ExifInfo:
    """What a photo's EXIF says: capture time (aware) and GPS position, each None when absent."""

    taken_at: dt.datetime | None = None
    lat: float | None = None
    lon: float | None = None

    @property
    def has_gps(self) -> bool:
        return self.lat is not None and self.lon is not None

    @property
    def empty(self) -> bool:
        return self.taken_at is None and not self.has_gps


NO_INFO = ExifInfo()


@dataclass(frozen=True)
class Flag:
    """One evidence finding; ``detail`` is JSON-safe (numbers, ISO strings)."""

    kind: str
    detail: dict[str, Any] = field(default_factory=dict)


# --- EXIF --------------------------------------------------------------------------------------------


def _parse_offset(value: object) -> dt.tzinfo | None:
    if not isinstance(value, str):
        return None
    text = value.strip().rstrip("\x00")
    if len(text) != 6 or text[0] not in "+-" or text[3] != ":":
        return None
    try:
        hours, minutes = int(text[1:3]), int(text[4:6])
    except ValueError:
        return None
    if hours > 14 or minutes >= 60:
        return None
    sign = 1 if text[0] == "+" else -1
    return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))


def parse_exif_datetime(value: object, tz: dt.tzinfo = WITA, offset: object = None) -> dt.datetime | None:
    """``"YYYY:MM:DD HH:MM:SS"`` as an aware datetime: in ``offset`` (EXIF OffsetTime*) when valid,
    else in ``tz`` (cameras store local time without a zone). Blank or malformed values give None."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    text = value.strip().rstrip("\x00").strip()
    try:
        naive = dt.datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    if naive.year < 1990:
        return None
    return naive.replace(tzinfo=_parse_offset(offset) or tz)


def _rational(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def _degrees(values: object, ref: object, limit: float) -> float | None:
    if not isinstance(values, tuple | list) or not values:
        return None
    parts = [_rational(v) for v in values[:3]]
    if any(p is None or p < 0 for p in parts):
        return None
    d, m, s = ([*parts, 0.0, 0.0])[:3]
    number = d + m / 60 + s / 3600
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    if isinstance(ref, str) and ref.strip().rstrip("\x00").upper() in ("S", "W"):
        number = -number
    if abs(number) > limit:
        return None
    return number


def read_exif(data: bytes, tz: dt.tzinfo = WITA) -> ExifInfo:
    """Capture time and GPS position from an image's EXIF (``NO_INFO`` when absent or unreadable).

    The capture time is DateTimeOriginal, else DateTimeDigitized, else DateTime, read in the
    matching OffsetTime* zone when the camera wrote one, else in ``tz`` (default WITA). A GPS
    position of exactly (0, 0) is what some phones write when they had no fix: taken as absent.
    """
    try:
        with open_image(data) as image:
            exif = image.getexif()
            exif_ifd = dict(exif.get_ifd(_IFD_EXIF))
            gps_ifd = dict(exif.get_ifd(_IFD_GPS))
            base = dict(exif)
    except Exception:
        return NO_INFO
    taken_at = None
    for tag, offset_tag, ifd in (
        (_TAG_DATETIME_ORIGINAL, _TAG_OFFSET_TIME_ORIGINAL, exif_ifd),
        (_TAG_DATETIME_DIGITIZED, _TAG_OFFSET_TIME_DIGITIZED, exif_ifd),
        (_TAG_DATETIME, _TAG_OFFSET_TIME, base),
    ):
        taken_at = parse_exif_datetime(ifd.get(tag), tz, exif_ifd.get(offset_tag))
        if taken_at is not None:
            break
    lat = _degrees(gps_ifd.get(2), gps_ifd.get(1), 90.0)
    lon = _degrees(gps_ifd.get(4), gps_ifd.get(3), 180.0)
    if lat is None or lon is None or (lat == 0 and lon == 0):
        lat = lon = None
    return ExifInfo(taken_at=taken_at, lat=lat, lon=lon)


# --- perceptual hash --------------------------------------------------------------------------------


def perceptual_hash(data: bytes) -> str | None:
    """The 64-bit DCT perceptual hash (ImageHash ``phash``) as 16 hex digits; None if not an image
    (or over the pixel limit).

    Near-identical images (re-encoded, resized, slightly cropped or recoloured) differ in few bits.
    The hash is ImageHash's ``phash`` of the upright image; to keep the memory of a big photo down,
    the decoded image is made greyscale (what ``phash`` does first) before it is turned upright, so
    only one full-size colour copy exists at a time. The result is the same bits.
    """
    import imagehash
    from PIL import Image

    try:
        with open_image(data) as image:
            image.load()
            method = _UPRIGHT.get(image.getexif().get(_TAG_ORIENTATION, 1))
            grey = image.convert("L")
        if method is not None:
            grey = grey.transpose(Image.Transpose(method))
        return str(imagehash.phash(grey))
    except Exception:
        return None


def hamming(a: str, b: str) -> int | None:
    """Bits that differ between two hex hashes; None when they are not comparable."""
    if not a or not b or len(a) != len(b):
        return None
    try:
        return (int(a, 16) ^ int(b, 16)).bit_count()
    except ValueError:
        return None


def closest_hash(phash: str, earlier: Iterable[str]) -> tuple[str, int] | None:
    """The earlier hash nearest to ``phash`` and its distance (first of the nearest); None if none compare."""
    best: tuple[str, int] | None = None
    for other in earlier:
        d = hamming(phash, other)
        if d is not None and (best is None or d < best[1]):
            best = (other, d)
            if d == 0:
                break
    return best


# --- places ------------------------------------------------------------------------------------------


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine on the mean Earth radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def location_flags(
    lat: float | None,
    lon: float | None,
    site: tuple[float, float] | None,
    *,
    max_distance_m: float = MAX_DISTANCE_M,
    source: str = "exif",
) -> list[Flag]:
    """``far_from_site`` when a known position lies more than ``max_distance_m`` from the site."""
    if site is None or lat is None or lon is None:
        return []
    distance = distance_m(site[0], site[1], lat, lon)
    if distance <= max_distance_m:
        return []
    return [
        Flag(
            FAR_FROM_SITE,
            {"distance_m": round(distance), "max_m": max_distance_m, "lat": lat, "lon": lon, "source": source},
        )
    ]


# --- flags of one photo -----------------------------------------------------------------------------


def flags_for(
    photo: ExifInfo,
    phash: str | None,
    *,
    site: tuple[float, float] | None,
    approved_at: dt.datetime | None,
    earlier_hashes: Iterable[str],
    max_distance_m: float = MAX_DISTANCE_M,
    hash_distance: int = HASH_DISTANCE,
    tz: dt.tzinfo = WITA,
) -> list[Flag]:
    """Evidence flags of one site photo, in the order: no_exif, far_from_site, taken_before_approval,
    reused_photo.

    - ``no_exif``: neither a capture time nor a GPS position (e.g. a photo Telegram compressed);
    - ``far_from_site``: the EXIF position is more than ``max_distance_m`` from ``site``;
    - ``taken_before_approval``: captured on a calendar day (in ``tz``) before the approval day —
      photos from the approval day itself pass, since work may start the day it is approved;
    - ``reused_photo``: the hash is within ``hash_distance`` bits of an earlier photo's hash.
    """
    flags: list[Flag] = []
    if photo.empty:
        flags.append(Flag(NO_EXIF, {}))
    flags += location_flags(photo.lat, photo.lon, site, max_distance_m=max_distance_m)
    if approved_at is not None and photo.taken_at is not None:
        taken_day = photo.taken_at.astimezone(tz).date()
        approved_day = approved_at.astimezone(tz).date()
        if taken_day < approved_day:
            flags.append(
                Flag(
                    TAKEN_BEFORE_APPROVAL,
                    {
                        "taken_at": photo.taken_at.astimezone(dt.UTC).isoformat(),
                        "approved_at": approved_at.astimezone(dt.UTC).isoformat(),
                        "days_before": (approved_day - taken_day).days,
                    },
                )
            )
    if phash:
        match = closest_hash(phash, earlier_hashes)
        if match is not None and match[1] <= hash_distance:
            flags.append(Flag(REUSED_PHOTO, {"distance": match[1], "matched_hash": match[0]}))
    return flags


# --- spending ------------------------------------------------------------------------------------------


def spending_flags(spent: int, approved: int) -> list[Flag]:
    """``over_budget`` when the cumulative realisation exceeds the approved amount."""
    if spent > approved:
        return [Flag(OVER_BUDGET, {"spent": spent, "approved": approved, "over": spent - approved})]
    return []


# --- percent ---------------------------------------------------------------------------------------------

PERCENT_OUT_OF_RANGE = "out_of_range"
PERCENT_BACKWARDS_NEEDS_REASON = "backwards_needs_reason"
PERCENT_COMPLETE_NEEDS_PHOTO = "complete_needs_photo"


class PercentRefused(ValueError):
    """A progress percentage that can't be accepted as given; ``kind`` says why (PERCENT_*)."""

    def __init__(self, kind: str, previous: int | None, new: object) -> None:
        super().__init__(f"{kind}: {previous} -> {new}")
        self.kind = kind
        self.previous = previous
        self.new = new


@dataclass(frozen=True)
class PercentChange:
    previous: int | None
    new: int

    @property
    def delta(self) -> int:
        return self.new - (self.previous or 0)

    @property
    def backwards(self) -> bool:
        return self.previous is not None and self.new < self.previous

    @property
    def complete(self) -> bool:
        return self.new == 100


def percent_change(previous: int | None, new: int, *, reason: str | None = None, photos: int = 0) -> PercentChange:
    """Check a new percentage against the previous report's (None for the first report).

    0..100 only; going backwards needs a (non-blank) ``reason``; 100 needs at least one site photo.
    Raises :class:`PercentRefused`.
    """
    if isinstance(new, bool) or not isinstance(new, int) or not 0 <= new <= 100:
        raise PercentRefused(PERCENT_OUT_OF_RANGE, previous, new)
    if previous is not None and new < previous and not (reason or "").strip():
        raise PercentRefused(PERCENT_BACKWARDS_NEEDS_REASON, previous, new)
    if new == 100 and photos < 1:
        raise PercentRefused(PERCENT_COMPLETE_NEEDS_PHOTO, previous, new)
    return PercentChange(previous, new)
