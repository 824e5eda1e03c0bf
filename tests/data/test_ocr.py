"""Documents as they come: real OCR (Debian's tesseract, RapidOCR's bundled models) on scans the tests
make from a known text and a table (rendered, skewed, specked, blurred); scanned PDFs, photos and
multi-page TIFFs ingested, searched and answered with their pages; born-digital PDF tables kept as
rows with their headers; mixed PDFs OCR only their image pages; and the bad inputs."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
from PIL import Image

from lamina.bench.ocr import char_accuracy, word_accuracy
from lamina.config import OCR_ENGINES
from lamina.data.collection import Workspace
from lamina.data.extract import extract
from lamina.data.layout import lines_of
from lamina.data.ocr.base import OcrFailed
from lamina.data.ocr.factory import ocr_engine
from lamina.data.ocr.reader import OcrOptions
from lamina.data.ocr.tesseract import TesseractOcr
from lamina.errors import ExtractionFailed, IngestCancelled, UnsupportedDocument
from lamina.evals.scans import scanned_copies
from lamina.testing.scans import Page, render, save, scanned
from tests.cli_runner import lamina
from tests.conftest import DOCS

INVOICE = Page(
    lines=[
        "ACME Marine Supply - Invoice INV-2024-0417",
        "Customer: Harbour Boatworks Ltd",
        "Order reference ZX7731 was delivered on 12 March 2024.",
        "Payment is due within 30 days of the invoice date.",
    ],
    table=[
        ["Item", "Description", "Qty", "Unit price"],
        ["C-031", "Bilge pump", "2", "212.75"],
        ["C-044", "Deck cleat", "8", "14.10"],
        ["C-102", "Mooring line", "3", "48.00"],
    ],
)
LETTER = Page(
    lines=[
        "Dear Ms Okafor,",
        "Thank you for your letter of 2 May about the roof of the boathouse.",
        "Our surveyor will visit on Thursday 16 May at 9 am; his reference is QV-5512.",
        "Yours sincerely, Martin Hale",
    ]
)


@pytest.fixture(scope="module")
def invoice_scan() -> Image.Image:
    return scanned(render(INVOICE))


# Debian's tesseract, a process per page: a system test (tesseract-parametrized ones are marked by
# tests/conftest.py); RapidOCR runs in this process.
TESSERACT = pytest.mark.system


def _doc(data: bytes, name: str, **options: Any) -> Any:
    return extract(data, source=name, name=name, ocr=OcrOptions(**options))


# the engines: one contract, each engine ------------------------------------------------------------


@pytest.mark.parametrize("engine", OCR_ENGINES)
def test_an_engine_reads_a_scan_with_the_words_in_place(engine: str, invoice_scan: Image.Image) -> None:
    ocr = ocr_engine(engine)  # type: ignore[arg-type]
    assert ocr.available() is None, ocr.available()
    words = ocr.words(invoice_scan, ("eng",), 60)
    text = "\n".join(line.text for line in lines_of(words))  # reading order, from the boxes
    assert "INV-2024-0417" in text and "212.75" in text
    assert char_accuracy(INVOICE.text(), text) > 0.9, text
    assert word_accuracy(INVOICE.text(), text) > 0.8
    for w in words:  # boxes inside the page, in pixels
        assert 0 <= w.x0 < w.x1 <= invoice_scan.width and 0 <= w.top < w.bottom <= invoice_scan.height
    pump = next(w for w in words if w.text.startswith("212.75"))
    item = next(w for w in words if w.text == "C-031")
    assert abs(pump.top - item.top) < 20 and pump.x0 > item.x1  # one row, left to right


@pytest.mark.parametrize("engine", OCR_ENGINES)
def test_a_scanned_table_keeps_its_rows_with_their_header(engine: str, invoice_scan: Image.Image) -> None:
    doc = _doc(save([invoice_scan], "png"), "invoice.png", engine=engine)
    text = doc.text.replace("Unitprice", "Unit price").replace("Bilgepump", "Bilge pump")
    header = next(line for line in text.splitlines() if line.startswith("| Item |"))
    assert header.count("|") == 5 and "| Description |" in header and header.endswith("| Unit price |"), text
    assert "| C-031 | Bilge pump | 2 | 212.75 |" in text  # each cell under its column


# extraction ----------------------------------------------------------------------------------------


@TESSERACT
@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "bmp", "pdf"])
def test_scans_and_photos_are_documents(fmt: str, invoice_scan: Image.Image) -> None:
    doc = _doc(save([invoice_scan], fmt), f"invoice.{fmt}")
    assert "INV-2024-0417" in doc.text and "ZX7731" in doc.text
    assert json.loads(doc.meta) == {"ocr_pages": [1]} and doc.page_starts == (0,)
    assert doc.format == fmt


@TESSERACT
def test_a_multi_page_tiff_keeps_its_page_numbers() -> None:
    data = save([scanned(render(LETTER)), scanned(render(INVOICE))], "tiff")
    doc = _doc(data, "post.tiff")
    assert len(doc.page_starts) == 2 and json.loads(doc.meta) == {"ocr_pages": [1, 2]}
    assert doc.page_at(doc.text.index("QV-5512")) == 1
    assert doc.page_at(doc.text.index("INV-2024-0417")) == 2


@TESSERACT
def test_a_mixed_pdf_reads_only_its_image_pages(invoice_scan: Image.Image) -> None:
    mixed = pdfium.PdfDocument(DOCS / "test.pdf")
    scan = pdfium.PdfDocument(save([invoice_scan], "pdf"))
    mixed.import_pages(scan)
    buffer = io.BytesIO()
    mixed.save(buffer)
    born = len(mixed) - 1
    doc = _doc(buffer.getvalue(), "mixed.pdf")
    assert json.loads(doc.meta) == {"ocr_pages": [born + 1]}
    assert doc.page_at(doc.text.index("INV-2024-0417")) == born + 1
    assert _doc(buffer.getvalue(), "mixed.pdf", mode="never").meta == ""  # the scan page is empty then


def test_a_born_digital_pdf_table_keeps_its_rows() -> None:
    doc = _doc((DOCS / "SPARSE-2024-INV-1234_borderless_table.pdf").read_bytes(), "inventory.pdf")
    assert doc.meta == ""  # a text layer: no OCR
    assert "| Product Code | Category | Unit Cost | Total Value | Last Audit | Notes |" in doc.text
    assert "| SKU-4563 | Software | $120.00 | $18,720.00 | | Critical |" in doc.text


@TESSERACT
def test_ocr_always_reads_every_page_even_with_a_text_layer() -> None:
    data = (DOCS / "SPARSE-2024-INV-1234_borderless_table.pdf").read_bytes()
    doc = _doc(data, "inventory.pdf", mode="always", dpi=150)
    assert json.loads(doc.meta) == {"ocr_pages": [1, 2]} and "SKU-4563" in doc.text


# bad input -----------------------------------------------------------------------------------------


def test_an_image_past_the_pixel_limit_is_refused_before_it_is_decoded() -> None:
    huge = save([Image.new("L", (9000, 6000), 255)], "png")  # 54 MP of white: a small file
    refused = r"9000x6000 pixels \(54 MP\), over ingest\.ocr_max_megapixels=50"
    with pytest.raises(UnsupportedDocument, match=refused):
        _doc(huge, "poster.png")


def test_a_corrupt_image_is_reported() -> None:
    with pytest.raises(ExtractionFailed, match="corrupt or unreadable image"):
        _doc(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 64, "broken.png")


@TESSERACT
def test_a_page_ocr_finds_nothing_on_says_so() -> None:
    with pytest.raises(UnsupportedDocument, match="OCR found no text on its 1 page"):
        _doc(save([Image.new("L", (800, 1000), 255)], "png"), "blank.png")


def test_without_the_ocr_engine_a_scan_says_how_to_add_it(
    monkeypatch: pytest.MonkeyPatch, invoice_scan: Image.Image
) -> None:
    monkeypatch.setattr(TesseractOcr, "available", lambda self: "tesseract is not installed: apt-get …")
    with pytest.raises(UnsupportedDocument, match="no text layer and tesseract is not installed"):
        _doc(save([invoice_scan], "pdf"), "scan.pdf")
    with pytest.raises(UnsupportedDocument, match="needs OCR: tesseract is not installed"):
        _doc(save([invoice_scan], "png"), "scan.png")
    born = _doc((DOCS / "test.pdf").read_bytes(), "test.pdf")  # born-digital PDFs need no engine
    assert born.text and born.meta == ""


def test_ocr_never_skips_an_image_saying_why(invoice_scan: Image.Image) -> None:
    with pytest.raises(UnsupportedDocument, match=r"ingest\.ocr is never"):
        _doc(save([invoice_scan], "png"), "scan.png", mode="never")


# ingestion, search, answers ------------------------------------------------------------------------


class _Pages:
    """Records each file event; cancels the run at a given page of a long scan."""

    def __init__(self, cancel_at: str | None = None) -> None:
        self.events: list[tuple[str, str]] = []
        self.cancel_at = cancel_at

    def start(self, total: int | None) -> None:
        pass

    def advance(self, *, documents: int = 0, chunks: int = 0, tokens: int = 0) -> None:
        pass

    def file(self, source: str, state: str, detail: str = "") -> None:
        self.events.append((str(state), detail))
        if detail and detail == self.cancel_at:
            raise IngestCancelled("cancelled")


@TESSERACT
def test_scans_ingest_search_and_answer_with_their_pages(workspace: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    cover = Page(lines=["Cover sheet: the March delivery of ACME Marine Supply.", "Two pages follow."])
    (folder / "invoice-scan.pdf").write_bytes(save([scanned(render(cover)), scanned(render(INVOICE))], "pdf"))
    (folder / "letter-photo.jpg").write_bytes(save([scanned(render(LETTER), skew=-1.2)], "jpeg"))
    progress = _Pages()
    coll = workspace.collection("inbox", create=True)
    report = coll.ingest([str(folder)], progress=progress)  # type: ignore[arg-type]
    assert report.ingested == 2 and report.failed == 0, report.errors
    assert ("extracting", "page 1/2") in progress.events and ("extracting", "page 2/2") in progress.events
    hits = coll.search("ZX7731", k=3, mode="bm25")  # a code only the scan holds
    assert hits and hits[0].source.endswith("invoice-scan.pdf") and hits[0].page == 2
    assert json.loads(hits[0].meta) == {"ocr_pages": [1, 2]}
    photo = coll.search("surveyor reference QV-5512", k=5)  # a code only the photo holds
    assert photo[0].source.endswith("letter-photo.jpg") and photo[0].page == 1
    out = json.loads(
        lamina("ask", "What is the unit price of the bilge pump?", "-c", "inbox", "--json").stdout
    )
    assert "212.75" in out["answer"], out
    cited = [c for c in out["citations"] if f"[{c['n']}]" in out["answer"]]
    assert any(c["source"].endswith("invoice-scan.pdf") and c["page"] == 2 and c["ocr"] for c in cited), cited


@TESSERACT
def test_a_cancelled_scan_resumes_without_reading_its_pages_again(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "long"
    folder.mkdir()
    pages = [
        scanned(render(Page(lines=[f"Page {i} of the long scan, code LS-{i:04d}."]))) for i in range(1, 5)
    ]
    (folder / "long.pdf").write_bytes(save(pages, "pdf"))
    read: list[int] = []
    words = TesseractOcr.words

    def counted(self: TesseractOcr, image: Image.Image, languages: tuple[str, ...], timeout_s: float) -> Any:
        read.append(1)
        return words(self, image, languages, timeout_s)

    monkeypatch.setattr(TesseractOcr, "words", counted)
    coll = workspace.collection("long", create=True)
    stopped = coll.ingest([str(folder)], progress=_Pages(cancel_at="page 2/4"))  # type: ignore[arg-type]
    assert stopped.status == "cancelled" and len(read) == 2 and coll.documents() == []
    report = coll.ingest([str(folder)])
    assert report.ingested == 1 and len(read) == 4  # pages 1 and 2 came from the OCR cache
    assert "LS-0004" in coll.search("LS-0004", k=1, mode="bm25")[0].text


@pytest.mark.parametrize("engine", OCR_ENGINES)
def test_a_page_over_its_time_limit_fails_on_every_engine(engine: str) -> None:
    ocr = ocr_engine(engine)  # type: ignore[arg-type]
    if ocr.available() is not None:
        pytest.skip(f"{engine} is not installed here")
    image = scanned(render(Page(lines=["A page that takes longer than its limit."], size=(800, 300))))
    with pytest.raises(OcrFailed, match="longer than"):
        ocr.words(image.convert("L"), ("eng",), 0.001)


@TESSERACT
def test_specks_are_not_read_as_punctuation(tmp_path: Path) -> None:
    """A photographed receipt's dust once read "30 days" as "30: days" (and SKU-6678 as 6675 on a
    scanned invoice): pages are despeckled, and a PDF's scan read at its own resolution."""
    (tmp_path / "in").mkdir()
    shutil.copy(DOCS / "RECEIPT-2024-TXN-98765_retail_purchase.pdf", tmp_path / "in")
    photo = next(scanned_copies([tmp_path / "in"], tmp_path / "out")[0].glob("*.jpg"))
    doc = extract(photo.read_bytes(), source=str(photo), name=photo.name, ocr=OcrOptions())
    assert "Returns within 30 days" in doc.text
