"""Limits on the files users send (photos, receipts, musyawarah minutes), and the one way the bot opens
an image: every decode of user bytes goes through :func:`open_image`.

The limits, in one place:

- ``MAX_FILE_BYTES`` (20 MiB, the Bot API's getFile limit) for any file, images and PDFs alike:
  checked on the size Telegram declares before downloading, while downloading (the download stops
  there), and on the bytes before anything reads them.
- ``MAX_IMAGE_PIXELS`` (50 megapixels): width × height read from the image's header, before any pixel
  is decoded. Photos sent the normal way are at most 2560 px a side (6.6 MP); a phone original sent
  as a file is usually 12 MP, 50 MP in a camera's full-resolution mode (8160 × 6120 = 49.9 MP) still
  fits. Decoding the largest accepted image takes about 150 MB (JPEG, 3 bytes a pixel) to 200 MB
  (RGBA) for a moment; a 20,000 × 20,000 PNG, a few KB of zeros compressed, would take 400 MB to
  1.6 GB and is refused without decoding it. Pillow's own decompression-bomb limit
  (``Image.MAX_IMAGE_PIXELS``) is set to the same number, and its warning is turned into a refusal.
- ``IMAGE_FORMATS``: only JPEG, PNG, WebP and GIF are decoded (what phones and Telegram send); other
  formats Pillow knows (TIFF, PSD, BMP...) are not images to the bot.
- ``MAX_PNG_TEXT_BYTES``: text chunks of a PNG (which Pillow inflates while reading the header) are
  held to 4 MB in all, 1 MB each, instead of Pillow's 64 MB.

PDFs are never parsed or decompressed: a minutes PDF is recognised by its ``%PDF-`` signature,
stored as it came and sent back as a document, so only ``MAX_FILE_BYTES`` applies to it.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Pillow is imported where an image is read, not at start (memory)
    from PIL import Image as PILImage

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 50_000_000
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
MAX_PNG_TEXT_BYTES = 4 * 1024 * 1024
MAX_PNG_TEXT_CHUNK_BYTES = 1024 * 1024


class ImageTooLarge(Exception):
    """An image with more than ``limit`` pixels (``pixels`` when its header could be read)."""

    def __init__(self, pixels: int | None, limit: int = MAX_IMAGE_PIXELS) -> None:
        super().__init__(f"{pixels if pixels is not None else 'too many'} pixels > {limit}")
        self.pixels = pixels
        self.limit = limit


def too_many_pixels(width: int | None, height: int | None) -> bool:
    """Whether an image of ``width`` × ``height`` (as Telegram or a header declares it) is refused."""
    return width is not None and height is not None and width * height > MAX_IMAGE_PIXELS


def _pillow():  # -> the PIL.Image module, with the limits in force
    from PIL import Image, PngImagePlugin

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    PngImagePlugin.MAX_TEXT_MEMORY = MAX_PNG_TEXT_BYTES
    PngImagePlugin.MAX_TEXT_CHUNK = MAX_PNG_TEXT_CHUNK_BYTES
    # Above MAX_IMAGE_PIXELS Pillow only warns (it raises above twice that): make the warning an
    # error, so it is refused like the rest. Set on every call, not once: a test harness or a library
    # may have reset the warning filters since (the filter is not added twice).
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    return Image


@contextmanager
def open_image(data: bytes) -> Iterator[PILImage.Image]:
    """``data`` opened with Pillow at its first frame, its header checked: nothing is decoded yet.

    Raises :class:`ImageTooLarge` when the header declares more than ``MAX_IMAGE_PIXELS`` (also
    when Pillow's own decompression-bomb check fires, here or while the caller decodes), and
    Pillow's errors (``UnidentifiedImageError``, ``OSError``...) for anything that is not a readable
    JPEG, PNG, WebP or GIF."""
    Image = _pillow()
    try:
        image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(None) from None
    with image:
        width, height = image.size
        if too_many_pixels(width, height):
            raise ImageTooLarge(width * height)
        try:
            yield image
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageTooLarge(None) from None
