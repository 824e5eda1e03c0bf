"""The main content of an HTML page, and what share of the page's visible text an extraction kept.

Readability keeps one "article" block, which loses most of a reference page (its tables) and of a
release-notes page. Pages say where their content is: HTML landmarks (``<main>``,
``role="main"``, a lone ``<article>``) are what documentation generators (Sphinx, MkDocs,
Docusaurus, Read the Docs), wikis and blogs emit. So the content is the main landmark when there
is one, else the body; from it the page's chrome is dropped: navigation, banner, footer and
sidebar landmarks (``<nav>``, ``<aside>``, ``role="navigation"`` …), a ``<header>`` or
``<footer>`` outside an article, and elements whose class names say menu, sidebar, breadcrumb or
toolbar. Everything else is kept, so nothing a reader sees is lost silently, and ``coverage``
measures it: the share of the page's visible words (less that chrome) that the extracted text
still has.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import lxml.html
from lxml import etree

INVISIBLE_TAGS = ("script", "style", "noscript", "template", "head", "svg", "canvas", "iframe", "object")
CHROME_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search"}
# Class (or, outside the main landmark, id) words that name page chrome.
CHROME_WORDS = {
    "nav",
    "navbar",
    "navigation",
    "menu",
    "menubar",
    "sidebar",
    "sphinxsidebar",
    "breadcrumb",
    "breadcrumbs",
    "toolbar",
    "footer",
    "skip",
    "editsection",
    "cookie",
    "cookies",
    "share",
    "social",
}
PERMALINKS = {"¶", "#", "§", "🔗"}  # a heading's link to itself
_SPLIT = re.compile(r"[\s_\-]+")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class MainContent:
    html: str  # the content as an HTML document, for the Markdown converter
    title: str | None
    visible_text: str  # the page's visible text less its chrome: what an extraction should keep


def main_content(html: str, *, landmark: bool = True) -> MainContent:
    """The page's content (its main landmark, or its body) without chrome; see the module doc.
    ``landmark=False`` takes the body even where a main landmark exists."""
    root = _parse(html)
    title = _title(root)
    for element in list(root.iter(*INVISIBLE_TAGS)):
        _drop(element)
    for element in [e for e in root.iter() if _hidden(e)]:
        _drop(element)
    body = root.find("body")
    if body is None:
        body = root
    main = _main_landmark(body) if landmark else None
    inside = set(main.iter()) if main is not None else set()
    for element in [e for e in body.iter() if e is not main and _is_chrome(e, inside_main=e in inside)]:
        _drop(element)
    visible = text_of(body)
    content = main if main is not None else body
    heading = content.find(".//h1")
    if heading is not None and (text := " ".join(heading.text_content().split()).rstrip("¶#").strip()):
        title = text
    page = lxml.html.Element("html")
    etree.SubElement(page, "body").append(content)
    return MainContent(lxml.html.tostring(page, encoding="unicode"), title, visible)


def text_of(element: etree._Element) -> str:
    """An element's text, its pieces apart (``<h1>A</h1><p>B</p>`` is "A B", not "AB")."""
    return " ".join(" ".join(element.itertext()).split())


def words(text: str) -> Counter[str]:
    """The bag of words coverage compares (case-folded)."""
    return Counter(w.casefold() for w in _WORD.findall(text))


def coverage(kept: str, reference: str) -> float:
    """The share of ``reference``'s words (counted with repeats) that ``kept`` still has."""
    want = words(reference)
    total = sum(want.values())
    if not total:
        return 1.0
    have = words(kept)
    return sum(min(count, have[word]) for word, count in want.items()) / total


def _parse(html: str) -> lxml.html.HtmlElement:
    try:
        root = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError):  # XML declaration with encoding, empty document
        root = lxml.html.document_fromstring(html.encode("utf-8"))
    return root


def _title(root: lxml.html.HtmlElement) -> str | None:
    element = root.find(".//title")
    text = " ".join(element.text_content().split()) if element is not None else ""
    return text or None


def _hidden(element: etree._Element) -> bool:
    if not isinstance(element.tag, str):
        return False
    style = (element.get("style") or "").replace(" ", "").lower()
    return (
        element.get("hidden") is not None
        or element.get("aria-hidden") == "true"
        or "display:none" in style
        or "visibility:hidden" in style
    )


def _main_landmark(body: etree._Element) -> etree._Element | None:
    """``<main>`` or ``role="main"`` (the outermost), else a lone ``<article>``."""
    for element in body.iter():
        if not isinstance(element.tag, str):
            continue
        if element.tag == "main" or (element.get("role") or "").lower() == "main":
            return element
    articles = [a for a in body.iter("article") if not any(p.tag == "article" for p in a.iterancestors())]
    return articles[0] if len(articles) == 1 else None


def _is_chrome(element: etree._Element, *, inside_main: bool) -> bool:
    if not isinstance(element.tag, str):
        return False
    role = (element.get("role") or "").lower()
    if element.tag == "nav" or role in CHROME_ROLES - ({"complementary"} if inside_main else set()):
        return True
    if element.tag == "aside":  # a page's sidebar; inside the content, a footnote or a callout
        return not inside_main
    if element.tag == "a" and (element.get("href") or "").startswith("#"):
        return element.text_content().strip() in PERMALINKS
    if element.tag in ("header", "footer") and not any(a.tag == "article" for a in element.iterancestors()):
        return not inside_main or element.tag == "footer"
    names = element.get("class") or ""
    if not inside_main:
        names += " " + (element.get("id") or "")
    return any(word in CHROME_WORDS for word in _SPLIT.split(names.lower()) if word)


def _drop(element: etree._Element) -> None:
    """Remove ``element`` but keep the text that follows it (its tail belongs to the parent)."""
    if element.getparent() is not None:
        element.drop_tree()
