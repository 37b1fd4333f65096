"""Evidence rules: EXIF reading, distances, photo flags, spending flags, percent changes."""

from __future__ import annotations

import datetime as dt
import io
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from bot.domain import evidence as ev
from bot.domain.evidence import ExifInfo, Flag
from fakeapi.media import make_jpeg, process_photo

WITA = ev.WITA
SITE = (0.1335, 117.4988)  # Bontang
APPROVED = dt.datetime(2026, 3, 10, 2, 0, tzinfo=dt.UTC)  # 10 March 10:00 WITA


def scene(seed: int, size: tuple[int, int] = (480, 360)) -> Image.Image:
    rnd = random.Random(seed)
    image = Image.new("RGB", size, (rnd.randrange(256),) * 3)
    draw = ImageDraw.Draw(image)
    for _ in range(14):
        x, y = rnd.randrange(size[0] - 20), rnd.randrange(size[1] - 20)
        w, h = rnd.randrange(10, size[0] // 3), rnd.randrange(10, size[1] // 3)
        draw.rectangle((x, y, x + w, y + h), fill=(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
    return image


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


# --- EXIF ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, ExifInfo()),
        (
            {"taken_at": dt.datetime(2026, 3, 12, 8, 30)},
            ExifInfo(dt.datetime(2026, 3, 12, 8, 30, tzinfo=WITA), None, None),
        ),
        ({"gps": SITE}, ExifInfo(None, SITE[0], SITE[1])),
        ({"gps": (-1.25, -70.5)}, ExifInfo(None, -1.25, -70.5)),  # S and W
        ({"gps": (0.0, 0.0)}, ExifInfo()),  # "no fix" written as 0,0
        ({"taken_at": "garbage"}, ExifInfo()),
        ({"taken_at": "0000:00:00 00:00:00"}, ExifInfo()),
        (
            {"taken_at": "2026:03:12 08:30:00", "gps": SITE},
            ExifInfo(dt.datetime(2026, 3, 12, 0, 30, tzinfo=dt.UTC), SITE[0], SITE[1]),
        ),
    ],
)
def test_read_exif(kwargs, expected):
    got = ev.read_exif(make_jpeg(**kwargs))
    assert got.taken_at == expected.taken_at
    if expected.taken_at is not None:
        assert got.taken_at.utcoffset() is not None
    for a, b in ((got.lat, expected.lat), (got.lon, expected.lon)):
        assert (a is None and b is None) or a == pytest.approx(b, abs=1e-6)


def test_read_exif_interprets_local_time_in_the_given_zone():
    data = make_jpeg(taken_at=dt.datetime(2026, 3, 12, 8, 30))
    assert ev.read_exif(data).taken_at == dt.datetime(2026, 3, 12, 0, 30, tzinfo=dt.UTC)
    jakarta = ev.read_exif(data, tz=dt.timezone(dt.timedelta(hours=7))).taken_at
    assert jakarta == dt.datetime(2026, 3, 12, 1, 30, tzinfo=dt.UTC)


def test_read_exif_uses_the_camera_offset_when_present():
    image = Image.new("RGB", (32, 32))
    exif = Image.Exif()
    ifd = exif.get_ifd(0x8769)
    ifd[0x9003] = "2026:03:12 08:30:00"
    ifd[0x9011] = "+09:00"
    buf = io.BytesIO()
    image.save(buf, "JPEG", exif=exif.tobytes())
    assert ev.read_exif(buf.getvalue()).taken_at == dt.datetime(2026, 3, 11, 23, 30, tzinfo=dt.UTC)


@pytest.mark.parametrize("data", [b"", b"not an image", make_jpeg()[:200]])
def test_read_exif_of_junk_is_empty(data):
    assert ev.read_exif(data) == ev.NO_INFO


def test_telegram_compression_drops_exif():
    original = make_jpeg(taken_at=dt.datetime(2026, 3, 12, 8, 30), gps=SITE)
    compressed = process_photo(original)[-1][2]
    assert ev.read_exif(compressed).empty and not ev.read_exif(original).empty


@pytest.mark.parametrize(
    ("value", "offset", "expected"),
    [
        ("2026:03:12 08:30:00", None, dt.datetime(2026, 3, 12, 8, 30, tzinfo=WITA)),
        (b"2026:03:12 08:30:00\x00", None, dt.datetime(2026, 3, 12, 8, 30, tzinfo=WITA)),
        ("2026:03:12 08:30:00", "+07:00", dt.datetime(2026, 3, 12, 1, 30, tzinfo=dt.UTC)),
        ("2026:03:12 08:30:00", "bogus", dt.datetime(2026, 3, 12, 8, 30, tzinfo=WITA)),
        ("2026-03-12 08:30:00", None, None),
        ("    :  :     :  :  ", None, None),
        (None, None, None),
        (12345, None, None),
    ],
)
def test_parse_exif_datetime(value, offset, expected):
    assert ev.parse_exif_datetime(value, WITA, offset) == expected


# --- distance -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "metres", "tolerance"),
    [
        (SITE, SITE, 0, 0.001),
        ((0.0, 117.0), (0.0, 118.0), 111_195, 5),  # one degree of longitude on the equator
        ((0.0, 117.0), (1.0, 117.0), 111_195, 5),
        (SITE, (SITE[0] + 0.0018, SITE[1]), 200, 1),
        ((0.0, 0.0), (0.0, 180.0), 20_015_087, 50),  # half the circumference
    ],
)
def test_distance_m(a, b, metres, tolerance):
    assert ev.distance_m(*a, *b) == pytest.approx(metres, abs=tolerance)
    assert ev.distance_m(*b, *a) == pytest.approx(ev.distance_m(*a, *b))


@given(st.floats(-89, 89), st.floats(-179, 179), st.floats(-89, 89), st.floats(-179, 179))
def test_distance_is_symmetric_and_bounded(lat1, lon1, lat2, lon2):
    d = ev.distance_m(lat1, lon1, lat2, lon2)
    assert 0 <= d <= 20_015_200
    assert d == pytest.approx(ev.distance_m(lat2, lon2, lat1, lon1), abs=1e-6)


# --- hashes -------------------------------------------------------------------------------------------


def test_perceptual_hash_survives_recompression_and_tells_scenes_apart():
    original = jpeg(scene(1))
    recompressed = process_photo(original)[-2][2]  # resized and re-encoded the way Telegram does
    h1, h2, other = ev.perceptual_hash(original), ev.perceptual_hash(recompressed), ev.perceptual_hash(jpeg(scene(2)))
    assert len(h1) == 16
    assert ev.hamming(h1, h2) <= ev.HASH_DISTANCE
    assert ev.hamming(h1, other) > ev.HASH_DISTANCE
    assert ev.perceptual_hash(b"junk") is None


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("0000000000000000", "0000000000000000", 0),
        ("0000000000000000", "ffffffffffffffff", 64),
        ("f0f0f0f0f0f0f0f0", "f0f0f0f0f0f0f0f1", 1),
        ("abc", "abcd", None),
        ("", "", None),
        ("zzzzzzzzzzzzzzzz", "0000000000000000", None),
    ],
)
def test_hamming(a, b, expected):
    assert ev.hamming(a, b) == expected


# --- photo flags --------------------------------------------------------------------------------------

NEAR = (SITE[0] + 0.0005, SITE[1])  # ~56 m
FAR = (SITE[0] + 0.01, SITE[1])  # ~1.1 km
AFTER = dt.datetime(2026, 3, 15, 9, 0, tzinfo=WITA)
SAME_DAY_EARLIER = dt.datetime(2026, 3, 10, 7, 0, tzinfo=WITA)
BEFORE = dt.datetime(2026, 3, 1, 9, 0, tzinfo=WITA)
H = "c4c43b3b3b803b3b"
H_NEAR = "c4c43b3b3b803b38"  # 2 bits away
H_FAR = "3b3bc4c4c47fc4c4"


def kinds(flags: list[Flag]) -> list[str]:
    return [f.kind for f in flags]


@pytest.mark.parametrize(
    ("photo", "phash", "site", "approved_at", "earlier", "expected"),
    [
        (ExifInfo(AFTER, *NEAR), H, SITE, APPROVED, [], []),
        (ExifInfo(AFTER, *FAR), H, SITE, APPROVED, [], ["far_from_site"]),
        (ExifInfo(AFTER, *FAR), H, None, APPROVED, [], []),  # no site to compare with
        (ExifInfo(BEFORE, *NEAR), H, SITE, APPROVED, [], ["taken_before_approval"]),
        (ExifInfo(SAME_DAY_EARLIER, *NEAR), H, SITE, APPROVED, [], []),  # the approval day itself passes
        (ExifInfo(BEFORE, *NEAR), H, SITE, None, [], []),
        (ExifInfo(), H, SITE, APPROVED, [], ["no_exif"]),
        (ExifInfo(), None, SITE, APPROVED, [H], ["no_exif"]),  # no hash, no reuse check
        (ExifInfo(AFTER), H, SITE, APPROVED, [], []),  # time without GPS: nothing to flag
        (ExifInfo(AFTER, *NEAR), H, SITE, APPROVED, [H_FAR, H], ["reused_photo"]),
        (ExifInfo(AFTER, *NEAR), H, SITE, APPROVED, [H_NEAR], ["reused_photo"]),
        (ExifInfo(AFTER, *NEAR), H, SITE, APPROVED, [H_FAR], []),
        (
            ExifInfo(BEFORE, *FAR),
            H,
            SITE,
            APPROVED,
            [H],
            ["far_from_site", "taken_before_approval", "reused_photo"],
        ),
    ],
)
def test_flags_for(photo, phash, site, approved_at, earlier, expected):
    flags = ev.flags_for(photo, phash, site=site, approved_at=approved_at, earlier_hashes=earlier)
    assert kinds(flags) == expected


def test_flag_details_carry_the_numbers():
    flags = ev.flags_for(ExifInfo(BEFORE, *FAR), H, site=SITE, approved_at=APPROVED, earlier_hashes=[H_FAR, H_NEAR])
    far, before, reused = flags
    assert far.detail["distance_m"] == pytest.approx(1112, abs=2) and far.detail["max_m"] == 200
    assert before.detail["days_before"] == 9
    assert before.detail["taken_at"] == "2026-03-01T01:00:00+00:00"
    assert reused.detail == {"distance": 2, "matched_hash": H_NEAR}


@pytest.mark.parametrize(("distance", "limit", "flagged"), [(150, 200, False), (250, 200, True), (250, 300, False)])
def test_distance_threshold(distance, limit, flagged):
    point = (SITE[0] + distance / 111_195, SITE[1])
    flags = ev.flags_for(
        ExifInfo(None, *point), None, site=SITE, approved_at=None, earlier_hashes=[], max_distance_m=limit
    )
    assert kinds(flags) == (["far_from_site"] if flagged else [])


@pytest.mark.parametrize(("threshold", "flagged"), [(1, False), (2, True), (6, True)])
def test_hash_threshold(threshold, flagged):
    flags = ev.flags_for(
        ExifInfo(AFTER), H, site=None, approved_at=None, earlier_hashes=[H_NEAR], hash_distance=threshold
    )
    assert kinds(flags) == (["reused_photo"] if flagged else [])


# --- spending -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spent", "approved", "expected"),
    [
        (0, 5_000_000, []),
        (5_000_000, 5_000_000, []),
        (5_000_001, 5_000_000, [Flag("over_budget", {"spent": 5_000_001, "approved": 5_000_000, "over": 1})]),
        (1, 0, [Flag("over_budget", {"spent": 1, "approved": 0, "over": 1})]),
    ],
)
def test_spending_flags(spent, approved, expected):
    assert ev.spending_flags(spent, approved) == expected


# --- percent --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "new", "reason", "photos", "refused"),
    [
        (None, 0, None, 0, None),
        (None, 25, None, 0, None),
        (25, 25, None, 0, None),  # same again (e.g. more evidence)
        (25, 50, None, 0, None),
        (80, 50, None, 3, "backwards_needs_reason"),
        (80, 50, "   ", 3, "backwards_needs_reason"),
        (80, 50, "Salah hitung sebelumnya", 3, None),
        (None, 100, None, 0, "complete_needs_photo"),
        (75, 100, None, 0, "complete_needs_photo"),
        (75, 100, None, 1, None),
        (100, 100, None, 2, None),
        (None, 101, None, 1, "out_of_range"),
        (None, -1, None, 1, "out_of_range"),
        (None, True, None, 1, "out_of_range"),
        (None, 50.0, None, 1, "out_of_range"),
    ],
)
def test_percent_change(previous, new, reason, photos, refused):
    if refused is None:
        change = ev.percent_change(previous, new, reason=reason, photos=photos)
        assert (change.previous, change.new) == (previous, new)
        assert change.backwards == (previous is not None and new < previous)
        assert change.complete == (new == 100)
        assert change.delta == new - (previous or 0)
    else:
        with pytest.raises(ev.PercentRefused) as e:
            ev.percent_change(previous, new, reason=reason, photos=photos)
        assert (e.value.kind, e.value.previous, e.value.new) == (refused, previous, new)


@given(st.integers(0, 100), st.integers(0, 100))
def test_percent_forward_never_needs_a_reason(a, b):
    lo, hi = sorted((a, b))
    ev.percent_change(lo, hi, photos=1)
