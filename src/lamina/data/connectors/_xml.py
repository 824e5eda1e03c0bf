"""XML from a server (sitemaps, WebDAV multistatus) parsed without expanding entities.

defusedxml when it is installed; otherwise lxml with entity resolution and network access off, so
neither a billion-laughs document nor an external entity (XXE) is expanded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, cast

from lamina.data.connectors.base import SourceError


class XmlElement(Protocol):
    tag: Any  # str for elements (``{namespace}local``); lxml gives comments a function here
    text: str | None

    def __iter__(self) -> Iterator[XmlElement]: ...

    def iter(self) -> Iterator[XmlElement]: ...


def parse_xml(data: bytes, what: str) -> XmlElement:
    try:
        from defusedxml import ElementTree as safe_tree  # type: ignore[import-untyped]
    except ImportError:
        from lxml import etree

        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)
        try:
            return cast(XmlElement, etree.fromstring(data, parser))
        except etree.XMLSyntaxError as exc:
            raise SourceError(f"{what} is not valid XML ({exc})") from None
    try:
        return cast(XmlElement, safe_tree.fromstring(data))
    except Exception as exc:  # ParseError, or one of defusedxml's refusals (entities, DTDs)
        raise SourceError(f"{what} is not valid or safe XML ({type(exc).__name__}: {exc})") from None


def local(el: XmlElement) -> str:
    """The element's name without its namespace ('' for comments and processing instructions)."""
    return el.tag.rsplit("}", 1)[-1] if isinstance(el.tag, str) else ""


def children(el: XmlElement, name: str) -> Iterator[XmlElement]:
    return (c for c in el if local(c) == name)


def text_of(el: XmlElement, name: str) -> str:
    """The stripped text of the first child called ``name`` ('' when there is none)."""
    for c in children(el, name):
        return (c.text or "").strip()
    return ""
