"""Real documents through the real converters."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from lamina.data.extract import extract
from lamina.data.types import Document
from lamina.errors import ExtractionFailed, UnsupportedDocument

from .conftest import DOCS


def _extract(path: Path) -> Document:
    return extract(path.read_bytes(), source=str(path), name=path.name)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("test.pdf", "Large language models"),
        ("test.docx", "AutoGen"),
        ("test.pptx", "AutoGen"),
        ("test.xlsx", "|"),
        ("test_blog.html", "inference parameters"),
        ("test_wikipedia.html", "Microsoft Corporation"),
        ("test.epub", "Test EPUB"),
        ("test_notebook.ipynb", "Test Notebook"),
        ("test.json", "{"),
        ("test_rss.xml", "Microsoft"),
        ("test_outlook_msg.msg", "Test Email"),
        ("test_mskanji.csv", "佐藤太郎"),
    ],
)
def test_every_format_extracts_text(name: str, expected: str) -> None:
    doc = _extract(DOCS / name)
    assert expected in doc.text
    assert doc.title
    assert doc.content_hash and len(doc.content_hash) == 64


def test_cp932_csv_becomes_a_table() -> None:
    doc = _extract(DOCS / "test_mskanji.csv")
    assert "| 名前 | 年齢 | 住所 |" in doc.text
    assert "名古屋" in doc.text


def test_pdf_pages_are_recorded() -> None:
    doc = _extract(DOCS / "REPAIR-2022-INV-001_multipage.pdf")
    assert len(doc.page_starts) == 3
    assert doc.page_at(0) == 1
    assert doc.page_at(len(doc.text) - 1) == 3
    assert "GRAND TOTAL" in doc.text[doc.page_starts[1] :]


def test_html_drops_navigation_chrome() -> None:
    wiki = _extract(DOCS / "test_wikipedia.html")
    assert "Main menu" not in wiki.text
    assert "Jump to content" not in wiki.text
    blog = _extract(DOCS / "test_blog.html")
    assert "Skip to main content" not in blog.text
    assert "#" in blog.text  # headings survive


def test_links_are_reduced_to_their_text() -> None:
    doc = extract(
        b"# T\n\nSee [the docs](https://example.com/x) and ![a chart](c.png).", source="m", name="m.md"
    )
    assert "See the docs and a chart." in doc.text


def test_junk_is_unsupported() -> None:
    with pytest.raises(UnsupportedDocument, match="unsupported"):
        _extract(DOCS / "random.bin")


def test_empty_file_is_skipped() -> None:
    with pytest.raises(UnsupportedDocument, match="empty"):
        extract(b"  \n", source="e.txt", name="e.txt")


def test_oversize_file_is_refused() -> None:
    with pytest.raises(UnsupportedDocument, match="max_file_mb"):
        extract(b"x" * 2048, source="big.txt", name="big.txt", max_bytes=1024)


def test_corrupt_pdf_fails_with_reason() -> None:
    data = (DOCS / "test.pdf").read_bytes()[:3000]
    with pytest.raises(ExtractionFailed, match="corrupt"):
        extract(data, source="broken.pdf", name="broken.pdf")


def test_encrypted_pdf_fails_with_reason() -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(DOCS / "test.pdf").pages:
        writer.add_page(page)
    writer.encrypt(user_password="secret", owner_password="owner")
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(ExtractionFailed, match="encrypted"):
        extract(buffer.getvalue(), source="locked.pdf", name="locked.pdf")
