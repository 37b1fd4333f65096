"""Small crafted files that would take a lot of memory to decode: decompression bombs and forged
headers, for the upload-limit tests (issue 18). Each is built in a fraction of a second and is a few
KB on disk."""

from __future__ import annotations

import io
import struct
import zlib


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int, height: int) -> bytes:
    """A valid, complete black-and-white PNG of ``width`` × ``height``: one IHDR (1-bit greyscale) and
    one IDAT of compressed zero rows. 20,000 × 20,000 is 48 KB on disk and 400 million pixels (400 MB
    once Pillow holds it, 1.6 GB as RGBA)."""
    row = bytes(1 + (width + 7) // 8)  # filter byte 0 + the row's bits, all zero
    deflate = zlib.compressobj(9)
    idat = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def png_text_bomb(chunks: int = 48, inflated: int = 1024 * 1024) -> bytes:
    """A 16 × 16 PNG carrying ``chunks`` zTXt chunks that each inflate to ``inflated`` bytes of zeros
    (Pillow inflates text chunks while it reads the header)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 120, 200)).save(buf, "PNG")
    png = buf.getvalue()
    text = b"".join(
        _png_chunk(b"zTXt", f"note{i}".encode() + b"\x00\x00" + zlib.compress(bytes(inflated), 9))
        for i in range(chunks)
    )
    return png[:33] + text + png[33:]  # after the signature (8) and IHDR (25): before IDAT


def jpeg_declaring(width: int, height: int) -> bytes:
    """A 16 × 16 JPEG whose frame header (SOF0) is edited to declare ``width`` × ``height``."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_declaring(width: int, height: int) -> bytes:
    """The classic 1 × 1 GIF with its screen and its frame edited to declare ``width`` × ``height``."""
    data = bytearray(
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00"
        b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
    )
    data[6:10] = struct.pack("<HH", width, height)
    data[24:28] = struct.pack("<HH", width, height)
    return bytes(data)


def pdf_flate_bomb(inflated_mb: int = 512) -> bytes:
    """A one-page PDF whose content stream is ``/FlateDecode`` of ``inflated_mb`` MB of zeros
    (about 0.1 % of that on disk)."""
    deflate = zlib.compressobj(9)
    megabyte = bytes(1024 * 1024)
    stream = b"".join(deflate.compress(megabyte) for _ in range(inflated_mb)) + deflate.flush()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length " + str(len(stream)).encode() + b" /Filter /FlateDecode >>\nstream\n" + stream + b"\nendstream",
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
