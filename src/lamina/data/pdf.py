"""A PDF's text, page by page, so chunks can cite a page.

Each page is converted on its own (markitdown). A page without a usable text layer (a scan) is
rendered and read by OCR (``ingest.ocr``: auto, always, never). A page whose words line up in
columns (pdfplumber's words of a born-digital page, the OCR engine's of a scan) has its tables
written as Markdown tables, so each row keeps its header's names. ``on_page`` hears each page as it
is done, for the progress of a long scan, and may raise to stop.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lamina.data.clean import clean_text
from lamina.data.layout import page_text
from lamina.data.ocr.base import OcrFailed, OcrUnavailable, Word
from lamina.data.ocr.reader import OcrOptions
from lamina.errors import ExtractionFailed, UnsupportedDocument

PageHook = Callable[[int, int], None]  # (pages done, pages in all)
TABLE_RULE = "| --- |"


@dataclass
class Pages:
    """A paged document's text (pages joined by a blank line), where each page starts, and the
    pages read by OCR."""

    text: str
    page_starts: tuple[int, ...]
    ocr_pages: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, texts: list[str], ocr_pages: list[int]) -> Pages:
        starts, offset = [], 0
        for text in texts:
            starts.append(offset)
            offset += len(text) + 2
        return cls("\n\n".join(texts), tuple(starts), ocr_pages)


def _open(data: bytes) -> Any:
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise ExtractionFailed("encrypted PDF (password required)") from None
        raise ExtractionFailed(f"corrupt PDF ({exc})") from None


def _single(pdf: Any, index: int) -> bytes:
    import pypdfium2 as pdfium

    single = pdfium.PdfDocument.new()
    single.import_pages(pdf, [index])
    buffer = io.BytesIO()
    single.save(buffer)
    single.close()
    return buffer.getvalue()


def _tables(data: bytes) -> Iterator[str | None]:
    """Each page's text laid out from pdfplumber's words when it has a table, else None."""
    import pdfplumber

    try:
        with pdfplumber.open(io.BytesIO(data)) as pdf:
            for page in pdf.pages:
                words = [
                    Word(w["text"], w["x0"], w["top"], w["x1"], w["bottom"]) for w in page.extract_words()
                ]
                laid = page_text(words)
                yield laid if TABLE_RULE in laid else None
    except Exception:
        while True:
            yield None


def extract_pdf(
    data: bytes,
    convert: Callable[[bytes], str],
    ocr: OcrOptions,
    content_hash: str,
    on_page: PageHook | None = None,
) -> Pages:
    """The pages' cleaned text; ``convert`` turns a one-page PDF into Markdown."""
    pdf = _open(data)
    texts: list[str] = []
    read: list[int] = []
    try:
        total = len(pdf)
        tables = _tables(data)
        for index in range(total):
            layer = clean_text(convert(_single(pdf, index)))
            laid = next(tables)
            if ocr.wanted(layer):
                layer = _read(pdf, index, ocr, content_hash, layer)
                read.append(index + 1)
            elif laid is not None:
                layer = clean_text(laid)
            texts.append(layer)
            if on_page is not None:
                on_page(index + 1, total)
    finally:
        pdf.close()
    return Pages.of(texts, read)


def _read(pdf: Any, index: int, ocr: OcrOptions, content_hash: str, layer: str) -> str:
    """A page by OCR (rendered at ``ocr.dpi``, or at its scan's own resolution where that is lower);
    a page the engine cannot read keeps its text layer, and a scan with no engine installed says what
    to install."""
    try:
        page = pdf[index]
        try:
            width, height = page.get_size()  # points: 1/72 inch
            dpi = min(ocr.dpi, _scan_dpi(page) or ocr.dpi)
            scale = min(dpi / 72, (ocr.max_pixels / max(1.0, width * height)) ** 0.5)
            image = page.render(scale=scale, grayscale=True).to_pil()
        finally:
            page.close()
        return clean_text(ocr.read(image, f"{content_hash}:{index}"))
    except OcrUnavailable as exc:
        if layer.strip():
            return layer
        raise UnsupportedDocument(f"page {index + 1} has no text layer and {exc}") from None
    except OcrFailed as exc:
        if layer.strip():
            return layer
        raise ExtractionFailed(f"page {index + 1}: {exc}") from None


SCAN_COVERS = 0.5  # a picture over at least half the page is the page's scan, not a figure on it


def _scan_dpi(page: Any) -> float | None:
    """The resolution of a page's scan (its largest picture, as placed), if it has one: a page
    scanned at 200 dpi and rendered at 300 is only enlarged (its specks with it), so it is read at
    the 200 it has."""
    import pypdfium2.raw as pdfium_c

    width, height = page.get_size()
    best: tuple[float, float] | None = None
    for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=2):
        left, bottom, right, top = obj.get_bounds()
        pixels_wide, _ = obj.get_px_size()
        if right - left <= 0:
            continue
        area = (right - left) * (top - bottom)
        dpi = pixels_wide / ((right - left) / 72)
        if best is None or area > best[0]:
            best = (area, dpi)
    if best is None or best[0] < SCAN_COVERS * width * height:
        return None
    return best[1]
