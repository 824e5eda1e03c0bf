"""Scans made from known text, as a scanner makes them: a page rendered, a little skewed, specked
and blurred, saved as a PNG, JPEG, TIFF or an image-only PDF. The tests and the OCR benchmark
measure against the text the page was made from.

Fonts: Pillow's own (``ImageFont.load_default(size)``, inside the wheel) unless a TrueType path is
given, so a fresh machine needs nothing else.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFilter, ImageFont

A4_AT_150 = (1240, 1754)  # pixels of an A4 page at 150 dpi


@dataclass
class Page:
    """What goes on a page: paragraphs of text, then a table (header and rows) drawn in columns."""

    lines: Sequence[str]
    table: Sequence[Sequence[str]] = ()
    font_size: int = 30
    font_path: str | None = None
    size: tuple[int, int] = A4_AT_150
    columns: Sequence[int] = field(default_factory=list)  # x of each table column (default: spread)

    def text(self) -> str:
        """The text as a reader would write it down: lines, then the table's rows."""
        rows = [" ".join(row) for row in self.table]
        return "\n".join([*self.lines, *rows])


def _font(page: Page) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if page.font_path:
        return ImageFont.truetype(page.font_path, page.font_size)
    return ImageFont.load_default(size=page.font_size)


def render(page: Page) -> Image.Image:
    """The clean page, black on white."""
    image = Image.new("L", page.size, 255)
    draw = ImageDraw.Draw(image)
    font = _font(page)
    margin, step = page.size[0] // 12, int(page.font_size * 1.6)
    y = margin
    for line in page.lines:
        draw.text((margin, y), line, fill=0, font=font)
        y += step
    if page.table:
        y += step
        width = page.size[0] - 2 * margin
        n = max(len(row) for row in page.table)
        xs = list(page.columns) or [margin + i * width // n for i in range(n)]
        for r, row in enumerate(page.table):
            for x, cell in zip(xs, row, strict=False):
                draw.text((x, y), cell, fill=0, font=font)
            y += step
            if r == 0:  # a rule under the header, as most tables have
                draw.line((margin, y - step // 4, page.size[0] - margin, y - step // 4), fill=0, width=2)
    return image


def scanned(image: Image.Image, *, skew: float = 0.8, specks: float = 0.002, seed: int = 7) -> Image.Image:
    """As a flatbed scanner returns it: rotated a little, specks of dust, a soft focus."""
    rng = random.Random(seed)
    out = image.rotate(skew, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=255)
    pixels = out.load()
    assert pixels is not None
    width, height = out.size
    for _ in range(int(width * height * specks)):
        pixels[rng.randrange(width), rng.randrange(height)] = rng.choice((0, 90, 255))
    return out.filter(ImageFilter.GaussianBlur(0.6))


def save(images: Sequence[Image.Image], fmt: str, dpi: int = 150) -> bytes:
    """Pages as one file: ``pdf`` (image-only, no text layer), ``tiff`` (multi-page), ``png``,
    ``jpeg``, ``webp`` or ``bmp`` (the first page)."""
    buffer = io.BytesIO()
    first, *rest = [i.convert("RGB") if fmt in ("pdf", "jpeg") else i for i in images]
    if fmt in ("pdf", "tiff"):
        first.save(buffer, format=fmt.upper(), save_all=True, append_images=rest, resolution=dpi)
    else:
        first.save(buffer, format=fmt.upper())
    return buffer.getvalue()
