from __future__ import annotations

import itertools

from lamina.data.chunking import Chunker
from lamina.data.embed.onnx import OnnxMiniLM
from lamina.data.extract import extract
from lamina.data.types import Document
from tests.conftest import DOCS

LONG_SECTION = " ".join(f"Sentence number {i} talks about topic {i % 7} in some detail." for i in range(120))
MARKDOWN = f"""# Guide

Intro paragraph about the guide.

## Install

Run the installer. Then check the version.

## Usage

{LONG_SECTION}

### Advanced

Tables stay whole when they fit:

| a | b |
| --- | --- |
| 1 | 2 |
"""


def _doc(text: str, title: str = "Guide") -> Document:
    return Document(source="mem://guide.md", text=text, content_hash="h", title=title)


def test_chunks_respect_the_budget_including_context(embedder: OnnxMiniLM) -> None:
    chunker = Chunker(embedder.count_tokens, chunk_tokens=96, overlap_tokens=16)
    chunks = chunker.chunk(_doc(MARKDOWN))
    counts = embedder.count_tokens([c.indexed_text for c in chunks])
    assert max(counts) <= 96 + 2  # context line + two newlines may round by a token or two
    assert len(chunks) > 5


def test_heading_paths_and_offsets(embedder: OnnxMiniLM) -> None:
    doc = _doc(MARKDOWN)
    chunks = Chunker(embedder.count_tokens, chunk_tokens=96, overlap_tokens=16).chunk(doc)
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
        assert c.n_tokens > 0
    paths = {c.headings for c in chunks}
    assert ("Guide", "Install") in paths
    assert ("Guide", "Usage", "Advanced") in paths
    install = next(c for c in chunks if c.headings == ("Guide", "Install"))
    assert install.text == "Run the installer. Then check the version."
    assert install.context == "Guide > Install"


def test_long_sections_split_on_sentences_with_overlap(embedder: OnnxMiniLM) -> None:
    chunks = Chunker(embedder.count_tokens, chunk_tokens=96, overlap_tokens=24).chunk(_doc(MARKDOWN))
    usage = [c for c in chunks if c.headings == ("Guide", "Usage")]
    assert len(usage) >= 3
    for a, b in itertools.pairwise(usage):
        assert b.start < a.end  # overlap carries the tail of the previous chunk
        assert b.text[0].isupper()  # and starts on a sentence boundary


def test_identical_chunks_are_dropped_and_boilerplate_ignored(embedder: OnnxMiniLM) -> None:
    repeated = "Confidential - do not distribute this document to anyone.\n\n" * 3
    text = f"# A\n\n{repeated}\n# B\n\n{repeated}\n# C\n\n---\n\n* * *\n"
    chunks = Chunker(embedder.count_tokens, chunk_tokens=64, overlap_tokens=0).chunk(_doc(text, title=""))
    assert [c.headings for c in chunks] == [("A",)]  # same text under B is a duplicate; C is boilerplate


def test_pdf_chunks_carry_pages(embedder: OnnxMiniLM) -> None:
    path = DOCS / "REPAIR-2022-INV-001_multipage.pdf"
    doc = extract(path.read_bytes(), source=str(path), name=path.name)
    chunks = Chunker(embedder.count_tokens, chunk_tokens=64, overlap_tokens=0).chunk(doc)
    assert {c.page for c in chunks} == {1, 2, 3}
    assert all(c.page == doc.page_at(c.start) for c in chunks)


def test_oversize_sentence_without_spaces_is_split(embedder: OnnxMiniLM) -> None:
    blob = "".join(chr(0x4E00 + i) for i in range(600))  # 600 distinct CJK characters, no spaces
    chunks = Chunker(embedder.count_tokens, chunk_tokens=64, overlap_tokens=0).chunk(_doc(blob, title=""))
    assert len(chunks) > 2
    assert all(c.n_tokens <= 64 for c in chunks)
    assert "".join(c.text for c in chunks) == blob
