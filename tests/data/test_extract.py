"""Real documents through the real converters."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from lamina.data.extract import extract
from lamina.data.types import Document
from lamina.errors import ExtractionFailed, UnsupportedDocument
from tests.conftest import DOCS

SETS = Path(__file__).resolve().parents[2] / "evals" / "sets"


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


def test_a_documentation_page_keeps_its_tables_and_drops_its_navigation() -> None:
    """Python's library reference (Sphinx): readability kept 6% of it, the strftime table lost."""
    doc = _extract(SETS / "python-docs" / "docs" / "library-time.html")
    assert doc.title == "time — Time access and conversions"
    assert "| `%j` | Day of the year as a decimal number [001,366]. |" in doc.text
    assert "Previous topic" not in doc.text and "Report a Bug" not in doc.text  # sidebar, footer
    assert "¶" not in doc.text  # headings' links to themselves
    assert doc.coverage is not None and doc.coverage > 0.98


def test_main_content_is_the_landmark_without_chrome_and_is_measured() -> None:
    page = b"""<html><head><title>Site | Page</title><style>p {color: red}</style></head><body>
      <div class="navbar">Home Products Blog</div>
      <main><h1>Widgets</h1><p>A widget turns twice a day.</p>
        <div hidden>secret draft</div><aside class="note">Widgets are never sold in pairs.</aside>
        <div class="breadcrumbs">Home / Widgets</div></main>
      <footer>Copyright 2026</footer></body></html>"""
    doc = extract(page, source="w.html", name="w.html")
    assert doc.title == "Widgets"
    assert "A widget turns twice a day." in doc.text
    assert "never sold in pairs" in doc.text  # a callout inside the content is content
    for chrome in ("Products", "secret draft", "Home /", "Copyright"):
        assert chrome not in doc.text
    assert doc.coverage == 1.0


def test_a_main_landmark_that_misses_most_of_the_page_gives_way_to_the_whole_page() -> None:
    prose = " ".join(f"Paragraph {i} says something the reader came for." for i in range(40))
    page = f"<html><body><main><p>Only a teaser.</p></main><div><p>{prose}</p></div></body></html>"
    doc = extract(page.encode(), source="t.html", name="t.html")
    assert "Paragraph 39 says something" in doc.text
    assert doc.coverage is not None and doc.coverage > 0.95


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
