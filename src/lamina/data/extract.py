"""Bytes of one source -> cleaned Markdown with page offsets, through markitdown.

PDFs are converted page by page so that chunks can cite a page, scanned pages read by OCR and
tables kept as tables (``pdf``); images are pages to read by OCR (``images``); of an HTML page the
main content is kept whole and its chrome dropped (``html_main``), and the share of its visible
text that the extraction kept is measured (``Document.coverage``). Pages read by OCR are listed in
the document's ``meta`` (``ocr_pages``), which every chunk carries, so a citation can say so.
"""

from __future__ import annotations

import io
import json
import logging
import mimetypes
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from lamina.data.clean import clean_text
from lamina.data.html_main import coverage, main_content
from lamina.data.images import IMAGE_EXTENSIONS, image_pages
from lamina.data.metadata import split_front_matter
from lamina.data.ocr.base import OcrFailed, OcrUnavailable
from lamina.data.ocr.reader import OcrOptions
from lamina.data.pdf import PageHook, Pages, extract_pdf
from lamina.data.types import Document, attrs_json, sha256_hex
from lamina.errors import ExtractionFailed, UnsupportedDocument

for _noisy in ("pdfminer", "pdfplumber"):
    logging.getLogger(_noisy).setLevel(logging.ERROR)

HTML_EXTENSIONS = {".html", ".htm", ".xhtml"}
MARKDOWN_EXTENSIONS = {".md", ".markdown"}  # their YAML front matter becomes metadata
WHOLE_PAGE_BELOW = 0.8  # a main landmark that keeps less of the page than this is too narrow


@cache
def _markitdown() -> Any:
    from markitdown import MarkItDown

    return MarkItDown(enable_plugins=False)


def _convert(
    data: bytes, extension: str, mimetype: str = "", url: str | None = None
) -> tuple[str, str | None]:
    from markitdown import StreamInfo, UnsupportedFormatException
    from markitdown._exceptions import FileConversionException

    info = StreamInfo(extension=extension or None, mimetype=mimetype or None, url=url)
    try:
        result = _markitdown().convert_stream(io.BytesIO(data), stream_info=info)
    except UnsupportedFormatException:
        raise UnsupportedDocument("unsupported format") from None
    except FileConversionException as exc:
        raise ExtractionFailed(_conversion_reason(exc)) from None
    return result.markdown, result.title


def _conversion_reason(exc: Exception) -> str:
    attempts = getattr(exc, "attempts", None) or []
    for attempt in attempts:
        info = getattr(attempt, "exc_info", None)
        if info and info[1] is not None:
            return f"corrupt or unreadable file ({type(info[1]).__name__}: {str(info[1])[:160]})"
    return "corrupt or unreadable file"


def _extract_html(data: bytes, url: str | None) -> tuple[str, str | None, float]:
    """Markdown of the page's main content, its title, and the share of its visible text kept.

    The main landmark is taken when it keeps at least ``WHOLE_PAGE_BELOW`` of the page's visible
    text; a page whose landmark holds less of it is taken whole (less its chrome) instead."""
    try:
        html = data.decode("utf-8")
    except UnicodeDecodeError:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        html = str(best) if best is not None else data.decode("latin-1")
    markdown, title, kept = _main_markdown(html, url, landmark=True)
    if kept < WHOLE_PAGE_BELOW:
        whole = _main_markdown(html, url, landmark=False)
        if whole[2] > kept:
            markdown, title, kept = whole
    return markdown, title, kept


def _main_markdown(html: str, url: str | None, *, landmark: bool) -> tuple[str, str | None, float]:
    content = main_content(html, landmark=landmark)
    markdown = html_markdown(content.html, url)
    return markdown, content.title, round(coverage(markdown, content.visible_text), 4)


def html_markdown(html: str, url: str | None = None) -> str:
    """An HTML document as Markdown, as it is (no main-content selection)."""
    return _convert(html.encode("utf-8"), ".html", "text/html", url)[0]


def _first_heading(text: str) -> str | None:
    for line in text.split("\n", 40)[:40]:
        if line.startswith("#"):
            return line.lstrip("#").strip() or None
    return None


def _pdf_page(page: bytes) -> str:
    return _convert(page, ".pdf", "application/pdf")[0]


def _extract_image(data: bytes, ocr: OcrOptions, content_hash: str, on_page: PageHook | None) -> Pages:
    """An image's frames read by OCR, each a page."""
    if ocr.mode == "never":
        raise UnsupportedDocument("an image needs OCR, and ingest.ocr is never")
    if (missing := ocr.unavailable()) is not None:
        raise UnsupportedDocument(f"an image needs OCR: {missing}")
    texts: list[str] = []
    for number, (total, page) in enumerate(image_pages(data, ocr.max_pixels), start=1):
        try:
            texts.append(clean_text(ocr.read(page, f"{content_hash}:{number - 1}")))
        except (OcrFailed, OcrUnavailable) as exc:
            raise ExtractionFailed(f"page {number}: {exc}") from None
        if on_page is not None:
            on_page(number, total)
    return Pages.of(texts, list(range(1, len(texts) + 1)))


def extract(
    data: bytes,
    *,
    source: str,
    name: str,
    mimetype: str = "",
    max_bytes: int | None = None,
    url: str | None = None,
    ocr: OcrOptions | None = None,
    on_page: PageHook | None = None,
) -> Document:
    """Extract one source; raises ``UnsupportedDocument`` (skip) or ``ExtractionFailed`` (fail).
    ``on_page`` hears each page of a PDF or an image as it is done (and may raise to stop)."""
    if not data.strip():
        raise UnsupportedDocument("empty file")
    if max_bytes is not None and len(data) > max_bytes:
        raise UnsupportedDocument(
            f"file is {len(data) / 1e6:.1f} MB, over ingest.max_file_mb={max_bytes / 1024 / 1024:g}"
        )
    extension = PurePosixPath(name).suffix.lower()
    if not extension and mimetype:
        extension = mimetypes.guess_extension(mimetype.split(";")[0].strip()) or ""
    page_starts: tuple[int, ...] = ()
    title: str | None = None
    kept: float | None = None
    ocr = ocr or OcrOptions()
    content_hash = sha256_hex(data)
    read: list[int] = []
    front: dict[str, Any] = {}
    if extension == ".pdf" or data[:5] == b"%PDF-":
        pages = extract_pdf(data, _pdf_page, ocr, content_hash, on_page)
        text, page_starts, read = pages.text, pages.page_starts, pages.ocr_pages
        extension = ".pdf"
    elif extension in IMAGE_EXTENSIONS or mimetype.startswith("image/"):
        pages = _extract_image(data, ocr, content_hash, on_page)
        text, page_starts, read = pages.text, pages.page_starts, pages.ocr_pages
        extension = extension or ".png"
    elif extension in HTML_EXTENSIONS or mimetype.startswith("text/html"):
        markdown, title, kept = _extract_html(data, url)
        text = clean_text(markdown)
    else:
        if extension in MARKDOWN_EXTENSIONS:
            front, rest = split_front_matter(data.decode("utf-8", errors="replace"))
            data = rest.encode("utf-8") if front else data
            title = str(front.get("title") or "") or None
        markdown, converted = _convert(data, extension, mimetype.split(";")[0].strip(), url)
        title = title or converted
        text = clean_text(markdown)
    if not text.strip():
        raise UnsupportedDocument(
            f"OCR found no text on its {len(read)} page(s)" if read else "no text could be extracted"
        )
    title = (title or "").strip() or _first_heading(text) or _name_title(name)
    return Document(
        source=source,
        text=text,
        content_hash=content_hash,
        title=title,
        format=extension.lstrip("."),
        page_starts=page_starts,
        size_bytes=len(data),
        coverage=kept,
        meta=json.dumps({"ocr_pages": read}) if read else "",
        attrs=attrs_json(front),
    )


def _name_title(name: str) -> str:
    if "://" in name:
        parts = urlsplit(name)
        return PurePosixPath(parts.path).name or parts.hostname or name
    return Path(name).stem or name
