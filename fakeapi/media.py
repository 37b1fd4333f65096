"""Media helpers: test images (with optional EXIF), Telegram-like photo processing, small fake files."""

from __future__ import annotations

import io
from datetime import datetime
from fractions import Fraction

from .errors import bad_request

# Longest-side targets of the sizes Telegram generates for a photo (s, m, x, y, w).
PHOTO_SIZE_TARGETS = (90, 320, 800, 1280, 2560)
MAX_PHOTO_SIDE = 2560


def _dms(value: float) -> tuple[Fraction, Fraction, Fraction]:
    value = abs(value)
    degrees = int(value)
    minutes_float = (value - degrees) * 60
    minutes = int(minutes_float)
    seconds = round((minutes_float - minutes) * 60 * 10000)
    return Fraction(degrees, 1), Fraction(minutes, 1), Fraction(seconds, 10000)


def make_jpeg(
    width: int = 640,
    height: int = 480,
    *,
    color: tuple[int, int, int] = (40, 120, 200),
    taken_at: datetime | str | None = None,
    gps: tuple[float, float] | None = None,
    quality: int = 85,
    text: str | None = None,
) -> bytes:
    """A small valid JPEG. ``taken_at`` sets EXIF DateTimeOriginal; ``gps`` = (latitude, longitude)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), color)
    draw = ImageDraw.Draw(image)
    # a little structure so that resized versions differ from a flat colour
    draw.rectangle(
        (width // 8, height // 8, width // 2, height // 2), fill=(255 - color[0], 200, color[2] // 2)
    )
    if text:
        draw.text((10, 10), text, fill=(255, 255, 255))
    exif = Image.Exif()
    if taken_at is not None:
        stamp = taken_at.strftime("%Y:%m:%d %H:%M:%S") if isinstance(taken_at, datetime) else str(taken_at)
        exif[0x0132] = stamp  # DateTime
        exif_ifd = exif.get_ifd(0x8769)
        exif_ifd[0x9003] = stamp  # DateTimeOriginal
        exif_ifd[0x9004] = stamp  # DateTimeDigitized
    if gps is not None:
        latitude, longitude = gps
        gps_ifd = exif.get_ifd(0x8825)
        gps_ifd[0] = b"\x02\x02\x00\x00"  # GPSVersionID
        gps_ifd[1] = "N" if latitude >= 0 else "S"
        gps_ifd[2] = _dms(latitude)
        gps_ifd[3] = "E" if longitude >= 0 else "W"
        gps_ifd[4] = _dms(longitude)
    buffer = io.BytesIO()
    if taken_at is not None or gps is not None:
        image.save(buffer, "JPEG", quality=quality, exif=exif.tobytes())
    else:
        image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def read_exif(data: bytes) -> dict[str, object]:
    """DateTimeOriginal and GPS (as decimal degrees) of a JPEG, for assertions in tests."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    exif = image.getexif()
    result: dict[str, object] = {}
    original = exif.get_ifd(0x8769).get(0x9003) or exif.get(0x0132)
    if original:
        result["taken_at"] = original
    gps = exif.get_ifd(0x8825)
    if 2 in gps and 4 in gps:

        def degrees(values, ref) -> float:  # type: ignore[no-untyped-def]
            d, m, s = (float(v) for v in values)
            value = d + m / 60 + s / 3600
            return -value if ref in ("S", "W") else value

        result["gps"] = (degrees(gps[2], gps.get(1)), degrees(gps[4], gps.get(3)))
    return result


def image_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.size


def process_photo(data: bytes, *, strip_exif: bool = True) -> list[tuple[int, int, bytes]]:
    """The sizes Telegram stores for an uploaded photo: [(width, height, jpeg bytes), ...], smallest first.

    Like Telegram, photos are re-encoded (which drops EXIF, including GPS) unless ``strip_exif`` is false,
    in which case the original bytes are kept for the largest size when no resizing is needed.
    """
    from PIL import Image, ImageOps

    if not data:
        raise bad_request("file must be non-empty")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception:
        raise bad_request("IMAGE_PROCESS_FAILED") from None
    original_format = image.format
    image = ImageOps.exif_transpose(image) or image
    width, height = image.size
    if width <= 0 or height <= 0 or width + height > 10000 or max(width, height) > 20 * min(width, height):
        raise bad_request("PHOTO_INVALID_DIMENSIONS")
    if image.mode != "RGB":
        background = Image.new("RGB", image.size, (255, 255, 255))
        if image.mode in ("RGBA", "LA", "P"):
            rgba = image.convert("RGBA")
            background.paste(rgba, mask=rgba.split()[-1])
        else:
            background.paste(image.convert("RGB"))
        image = background
    longest = max(width, height)
    sizes: list[tuple[int, int, bytes]] = []

    def encode(img: Image.Image) -> bytes:
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=87)
        return buffer.getvalue()

    def resized(target: int) -> Image.Image:
        scale = target / longest
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        return image.resize(size, Image.Resampling.LANCZOS)

    for target in PHOTO_SIZE_TARGETS:
        if target < longest and target < MAX_PHOTO_SIDE:
            small = resized(target)
            sizes.append((small.width, small.height, encode(small)))
    if longest > MAX_PHOTO_SIDE:
        big = resized(MAX_PHOTO_SIDE)
        sizes.append((big.width, big.height, encode(big)))
    elif not strip_exif and original_format == "JPEG":
        sizes.append((width, height, data))
    else:
        sizes.append((width, height, encode(image)))
    return sizes


def make_webp_sticker(size: int = 512, color: tuple[int, int, int, int] = (250, 200, 0, 255)) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((size // 8, size // 8, size * 7 // 8, size * 7 // 8), fill=color)
    buffer = io.BytesIO()
    image.save(buffer, "WEBP")
    return buffer.getvalue()


def make_ogg_voice(duration: int = 2) -> bytes:
    """Bytes that look like an OGG/Opus voice note (headers only; not playable audio)."""
    header = b"OggS\x00\x02" + b"\x00" * 20 + b"\x01\x13OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00"
    return header + b"OggS" + b"\x00" * (200 * max(1, duration))


def make_scene_jpeg(
    seed: int,
    *,
    taken_at: datetime | str | None = None,
    gps: tuple[float, float] | None = None,
    width: int = 480,
    height: int = 360,
) -> bytes:
    """A JPEG of a scene of its own: a distinct perceptual hash per ``seed`` (``make_jpeg`` images all
    look alike to a perceptual hash), with ``make_jpeg``'s EXIF capture time and GPS."""
    import io
    import random

    from PIL import Image, ImageDraw

    rnd = random.Random(seed)
    image = Image.new("RGB", (width, height), (rnd.randrange(256),) * 3)
    draw = ImageDraw.Draw(image)
    for _ in range(14):
        x, y = rnd.randrange(width - 20), rnd.randrange(height - 20)
        draw.rectangle(
            (x, y, x + rnd.randrange(10, width // 3), y + rnd.randrange(10, height // 3)),
            fill=(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)),
        )
    exif = Image.open(io.BytesIO(make_jpeg(16, 16, taken_at=taken_at, gps=gps))).info.get("exif")
    buf = io.BytesIO()
    if exif:
        image.save(buf, "JPEG", quality=85, exif=exif)
    else:
        image.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def make_pdf(text: str = "Prolita test document") -> bytes:
    """A tiny, valid one-page PDF."""
    content = f"BT /F1 18 Tf 50 750 Td ({text}) Tj ET".encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()
