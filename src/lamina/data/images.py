"""Image files as documents: each frame (a multi-page TIFF has several) is a page to read by OCR.

Pillow opens lazily, so the size is checked before any pixel is decoded: an image past
``max_pixels`` (a decompression bomb, or a poster) is refused with its size; a file Pillow cannot
read is reported as corrupt, never a crash of the batch.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator

from PIL import Image, ImageSequence, UnidentifiedImageError

from lamina.errors import ExtractionFailed, UnsupportedDocument

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"}


def image_pages(data: bytes, max_pixels: int) -> Iterator[tuple[int, Image.Image]]:
    """The image's frames, decoded one at a time (grey, which is what OCR reads), each with how
    many frames the image has."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise UnsupportedDocument(f"refused as a decompression bomb: {exc}") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise ExtractionFailed(f"corrupt or unreadable image ({type(exc).__name__})") from None
        with image:
            total = getattr(image, "n_frames", 1)
            for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
                width, height = frame.size
                if width * height > max_pixels:
                    raise UnsupportedDocument(
                        f"page {number} is {width}x{height} pixels ({width * height / 1e6:.0f} MP), "
                        f"over ingest.ocr_max_megapixels={max_pixels / 1e6:g}"
                    )
                try:
                    yield total, frame.convert("L")
                except (OSError, ValueError, SyntaxError) as exc:
                    raise ExtractionFailed(f"corrupt image, page {number} ({type(exc).__name__})") from None
