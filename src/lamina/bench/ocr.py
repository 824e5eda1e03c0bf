"""``lamina bench ocr``: each OCR engine on scans made from text nobody here wrote.

Pages are rendered from real text (SciFact abstracts by default), rasterised at each resolution,
skewed, specked and blurred as a flatbed scanner leaves them (``lamina.testing.scans``), then read
by every engine in the same run. Character accuracy is 1 - (edit distance / reference length) over
the text with whitespace folded; word accuracy the share of the reference's words found in order;
pages per second is wall time of the engine alone, on this machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from PIL import ImageFont

from lamina.config.data import OcrEngineName
from lamina.data.layout import page_text
from lamina.data.ocr.factory import ocr_engine
from lamina.testing.scans import Page, render, scanned


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, one row at a time."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _folded(text: str) -> str:
    return " ".join(text.split())


def char_accuracy(reference: str, read: str) -> float:
    ref, hyp = _folded(reference), _folded(read)
    return max(0.0, 1 - edit_distance(ref, hyp) / max(1, len(ref)))


def word_accuracy(reference: str, read: str) -> float:
    """Share of the reference's words the reading has, in order (longest common subsequence)."""
    ref, hyp = reference.split(), read.split()
    previous = [0] * (len(hyp) + 1)
    for word in ref:
        current = [0]
        for j, other in enumerate(hyp, start=1):
            current.append(previous[j - 1] + 1 if word == other else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1] / max(1, len(ref))


def pages_of(texts: Sequence[str], dpi: int, lines_per_page: int = 28) -> list[Page]:
    """Texts wrapped to an A4 page at ``dpi`` in an 11-point font, one page each (cut to fit)."""
    size = (round(8.27 * dpi), round(11.69 * dpi))
    font_size = round(11 / 72 * dpi)
    font = ImageFont.load_default(size=font_size)
    width = size[0] * 10 // 12
    pages = []
    for text in texts:
        lines: list[str] = []
        line = ""
        for word in text.split():
            candidate = f"{line} {word}".strip()
            if font.getlength(candidate) <= width:
                line = candidate
                continue
            lines.append(line)
            line = word
        lines.append(line)
        pages.append(Page(lines=lines[:lines_per_page], font_size=font_size, size=size))
    return pages


def bench_ocr(
    texts: Sequence[str],
    engines: Sequence[OcrEngineName] = ("tesseract", "rapidocr"),
    dpis: Sequence[int] = (150, 300),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    say = progress or (lambda _msg: None)
    results: list[dict[str, Any]] = []
    for dpi in dpis:
        pages = pages_of(texts, dpi)
        images = [scanned(render(p), seed=i) for i, p in enumerate(pages)]
        for name in engines:
            engine = ocr_engine(name)
            if (missing := engine.available()) is not None:
                results.append({"engine": name, "dpi": dpi, "unavailable": missing})
                continue
            say(f"{name} at {dpi} dpi: {len(images)} pages")
            engine.words(images[0], ("eng",), 120)  # load its models: not charged to the pages
            chars, words, seconds = [], [], 0.0
            for page, image in zip(pages, images, strict=True):
                began = time.perf_counter()
                read = page_text(engine.words(image, ("eng",), 120))
                seconds += time.perf_counter() - began
                chars.append(char_accuracy(page.text(), read))
                words.append(word_accuracy(page.text(), read))
            results.append(
                {
                    "engine": name,
                    "dpi": dpi,
                    "pages": len(images),
                    "char_accuracy": round(sum(chars) / len(chars), 4),
                    "worst_page_char_accuracy": round(min(chars), 4),
                    "word_accuracy": round(sum(words) / len(words), 4),
                    "pages_per_s": round(len(images) / seconds, 3),
                    "s_per_page": round(seconds / len(images), 3),
                }
            )
    return {"pages": len(texts), "results": results}
