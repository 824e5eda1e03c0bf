"""``lamina eval extraction``: how much of a page's content an extraction keeps, and how much chrome.

Each page of a set comes with its gold content, named by XPath in the set's ``pages.json``::

    {"path": "pages/library-datetime.html", "kind": "documentation",
     "main": "//div[@role='main']", "drop": ["//a[@class='headerlink']"]}

``main`` is the content a reader came for (one or more elements), ``drop`` the parts of it that are
chrome all the same. **Coverage** is the share of the gold content's words (counted with repeats)
that the extracted text has; **boilerplate kept** the share of the words outside it (the page's
other visible text: navigation, headers, footers, sidebars) that the extracted text has beyond the
content's own. Lamina's extraction is measured beside the baselines that are installed:
readability (what Lamina used before) and trafilatura.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lxml.html

from lamina.data.clean import clean_text
from lamina.data.extract import extract, html_markdown
from lamina.data.html_main import INVISIBLE_TAGS, text_of, words
from lamina.errors import LaminaError

Extractor = Callable[[bytes, str], str]


@dataclass(frozen=True)
class Page:
    path: Path
    kind: str
    main: str
    drop: tuple[str, ...] = ()


def load_pages(manifest: Path) -> list[Page]:
    try:
        rows = json.loads(manifest.read_text(encoding="utf-8"))
        pages = [
            Page(manifest.parent / r["path"], str(r.get("kind", "")), r["main"], tuple(r.get("drop", [])))
            for r in rows
        ]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise LaminaError(f"{manifest}: not a page manifest ({exc})") from None
    if missing := [str(p.path) for p in pages if not p.path.is_file()]:
        raise LaminaError(f"{manifest}: pages missing: {', '.join(missing)}")
    return pages


def gold(page: Page) -> tuple[str, str]:
    """(the page's content text, its other visible text) as the manifest names them."""
    root = lxml.html.document_fromstring(page.path.read_bytes())
    for element in list(root.iter(*INVISIBLE_TAGS)):
        element.drop_tree()
    for xpath in page.drop:
        for element in root.xpath(xpath):
            element.drop_tree()
    mains = root.xpath(page.main)
    if not mains:
        raise LaminaError(f"{page.path}: the gold content {page.main!r} matches nothing")
    content = " ".join(text_of(m) for m in mains)
    for element in mains:
        element.drop_tree()
    body = root.find("body")
    rest = text_of(body if body is not None else root)
    return content, rest


def score(kept: str, content: str, rest: str) -> dict[str, float]:
    have, want, chrome = words(kept), words(content), words(rest)
    covered = sum(min(n, have[w]) for w, n in want.items())
    extra = have - want  # what the extraction has beyond the content's own words
    leaked = sum(min(n, extra[w]) for w, n in chrome.items())
    return {
        "coverage": round(covered / max(1, sum(want.values())), 4),
        "boilerplate_kept": round(leaked / max(1, sum(chrome.values())), 4),
    }


def readability_extract(data: bytes, name: str) -> str:
    """What Lamina did before: readability's article, converted by the same Markdown converter."""
    from readability import Document as Readable

    article = Readable(data.decode("utf-8", "replace")).summary(html_partial=False)
    return clean_text(html_markdown(article))


def trafilatura_extract(data: bytes, name: str) -> str:
    import trafilatura

    text = trafilatura.extract(
        data.decode("utf-8", "replace"), output_format="markdown", include_tables=True, favor_recall=True
    )
    return clean_text(str(text or ""))


def extractors() -> dict[str, Extractor]:
    """Each baseline whose library is installed (Lamina's own extraction is measured beside them)."""
    found: dict[str, Extractor] = {}
    for name, module, function in (
        ("readability (before)", "readability", readability_extract),
        ("trafilatura", "trafilatura", trafilatura_extract),
    ):
        try:
            __import__(module)
        except ImportError:
            continue
        found[name] = function
    return found


def evaluate_extraction(manifest: Path) -> dict[str, Any]:
    pages = load_pages(manifest)
    baselines = extractors()
    methods = ["lamina", *baselines]
    rows: list[dict[str, Any]] = []
    for page in pages:
        content, rest = gold(page)
        data = page.path.read_bytes()
        size = sum(words(content).values())
        doc = extract(data, source=page.path.name, name=page.path.name)
        row: dict[str, Any] = {"page": page.path.name, "kind": page.kind, "content_words": size}
        row["lamina"] = score(doc.text, content, rest)
        row["lamina_reported_coverage"] = doc.coverage
        for name, function in baselines.items():
            row[name] = score(function(data, page.path.name), content, rest)
        rows.append(row)
    summary = {
        name: {
            "coverage_mean": round(statistics.fmean(r[name]["coverage"] for r in rows), 4),
            "coverage_min": min(r[name]["coverage"] for r in rows),
            "coverage_overall": _overall(rows, name),
            "boilerplate_kept_mean": round(statistics.fmean(r[name]["boilerplate_kept"] for r in rows), 4),
        }
        for name in methods
    }
    return {"pages": rows, "summary": summary, "methods": methods}


def _overall(rows: list[dict[str, Any]], name: str) -> float:
    """Coverage over all pages' words together (a long page weighs more)."""
    total = sum(int(r["content_words"]) for r in rows) or 1
    return round(sum(float(r[name]["coverage"]) * int(r["content_words"]) for r in rows) / total, 4)
