"""A web site as a source: the pages reachable from a start page (and a sitemap) on its host.

Every request goes through ``lamina.data.fetch.fetch``, so the SSRF rules, redirect, size and time caps
apply to each page, robots.txt and sitemap. Listing has to download the pages to find their links; the
bytes are kept (up to a cap) so that ``read`` right after does not download them again. A page that
answers 404 (or another lasting 4xx) is not an entry; one that fails otherwise (5xx, time-out) is still
listed and its ``read`` fails, so a site that is briefly down does not delete documents.
"""

from __future__ import annotations

import gzip
import mimetypes
import re
from collections import deque
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import PurePosixPath
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

from lamina.config import FetchSettings
from lamina.data.connectors._xml import children, local, parse_xml, text_of
from lamina.data.connectors.base import Entry, SourceError, iso_utc
from lamina.data.connectors.spec import WebSpec
from lamina.data.fetch import USER_AGENT, Fetched, check_target, fetch
from lamina.errors import FetchRefused

_HTML = ("text/html", "application/xhtml+xml")
_CACHE_BYTES = 64 * 1024 * 1024  # listed pages kept for ``read``; beyond this they are fetched again
_MAX_SITEMAPS = 50
_TRANSIENT = {408, 425, 429}


def normalize(url: str) -> str | None:
    """The URL as an entry's location: http(s) only, lower-case host, no default port, no fragment."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host if port in (None, {"http": 80, "https": 443}[scheme]) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def _status(exc: FetchRefused) -> int | None:
    found = re.search(r": HTTP (\d{3}) ", str(exc) + " ")
    return int(found.group(1)) if found else None


def _mimetype(page: Fetched) -> str:
    mt = page.content_type.split(";", 1)[0].strip().lower()
    if not mt and page.content[:1024].lstrip().lower().startswith((b"<!doctype html", b"<html")):
        return "text/html"
    return mt


def _name(url: str, mimetype: str) -> str:
    """A file name whose extension tells the format: ``about`` served as HTML is ``about.html``."""
    name = PurePosixPath(unquote(urlsplit(url).path)).name or "index"
    suffix = PurePosixPath(name).suffix.lower()
    if mimetype in _HTML or (not mimetype and not suffix):
        return name if suffix in (".html", ".htm", ".xhtml") else name + ".html"
    if not suffix:
        return name + (mimetypes.guess_extension(mimetype) or "")
    return name


def _iso(text: str) -> str | None:
    """ISO UTC from a sitemap's ``lastmod`` (W3C datetime) or an HTTP date; None when unreadable."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text) if text[:1].isdigit() else parsedate_to_datetime(text)
    except (ValueError, TypeError):
        return None
    return iso_utc(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def _path(url: str) -> str:
    """The page's path on its site (with its query): the ``path`` attribute."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _links(page: Fetched) -> list[str]:
    from lxml import etree, html

    try:
        doc = html.fromstring(page.content)
    except (etree.ParserError, ValueError):
        return []
    base = page.final_url
    for href in doc.xpath("//base/@href")[:1]:
        base = urljoin(base, str(href).strip())
    return [urljoin(base, str(href).strip()) for href in doc.xpath("//a/@href | //area/@href")]


class WebConnector:
    kind = "web"

    def __init__(self, spec: WebSpec, settings: FetchSettings, allow_private: bool = False) -> None:
        start = normalize(spec.url)
        if start is None:
            raise SourceError(f"web: {spec.url} is not an http(s) URL")
        self.spec, self.settings, self.allow_private = spec, settings, allow_private
        self.start = start
        self.scope = start
        self._netloc = urlsplit(start).netloc
        self._cache: dict[str, bytes] = {}
        self._cached = 0
        self._robots: dict[str, tuple[RobotFileParser, str]] = {}

    def _get(self, url: str) -> Fetched:
        return fetch(url, self.settings, allow_private=self.allow_private)

    def _same_host(self, url: str) -> bool:
        return urlsplit(url).netloc == self._netloc

    def _robots_for(self, url: str) -> tuple[RobotFileParser, str]:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._robots:
            rules, why = RobotFileParser(), ""
            try:
                rules.parse(self._get(origin + "/robots.txt").content.decode("utf-8", "replace").splitlines())
            except FetchRefused as exc:
                status = _status(exc)
                if status is not None and 400 <= status < 500:
                    rules.parse([])  # no robots.txt: everything is allowed
                else:  # unreachable: RFC 9309 says assume everything is disallowed
                    rules.parse(["User-agent: *", "Disallow: /"])
                    why = f" (robots.txt could not be fetched: {exc})"
            self._robots[origin] = (rules, why)
        return self._robots[origin]

    def _sitemap(self, url: str, found: dict[str, str], depth: int = 0) -> None:
        try:
            data = self._get(url).content
        except FetchRefused as exc:
            raise SourceError(f"web: cannot fetch the sitemap: {exc}") from None
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)[: int(self.settings.max_mb * 1024 * 1024)]
        root = parse_xml(data, f"web: sitemap {url}")
        if local(root) == "sitemapindex" and depth == 0:
            for sub in children(root, "sitemap"):
                loc = normalize(text_of(sub, "loc"))
                if loc and self._same_host(loc) and len(found) < self.spec.max_pages:
                    self._sitemap(loc, found, depth + 1)
            return
        for item in children(root, "url"):
            loc = normalize(text_of(item, "loc"))
            if loc and self._same_host(loc) and loc not in found:
                found[loc] = text_of(item, "lastmod")

    def entries(self) -> Iterator[Entry]:
        self._cache.clear()
        self._cached = 0
        self._robots.clear()
        try:
            check_target(self.start, self.allow_private)
        except FetchRefused as exc:
            raise SourceError(f"web: {exc}") from None
        lastmods: dict[str, str] = {}
        if self.spec.sitemap:
            self._sitemap(self.spec.sitemap, lastmods)
        # the start page's links are followed; sitemap pages are listed, not followed
        queue = deque([(self.start, 0)] + [(u, self.spec.max_depth) for u in lastmods if u != self.start])
        queued = {u for u, _ in queue}
        landed: set[str] = set()
        listed = 0
        while queue and listed < self.spec.max_pages:
            url, depth = queue.popleft()
            rules, why = self._robots_for(url)
            if not rules.can_fetch(USER_AGENT, url):
                if url == self.start:
                    raise SourceError(f"web: robots.txt does not allow {USER_AGENT} to read {url}{why}")
                continue
            try:
                page = self._get(url)
            except FetchRefused as exc:
                status = _status(exc)
                if url == self.start:
                    raise SourceError(f"web: the start page cannot be fetched: {exc}") from None
                if status is not None and 400 <= status < 500 and status not in _TRANSIENT:
                    continue  # gone
                listed += 1  # failing for now: listed, so that its document stays; ``read`` reports it
                yield Entry(url, _name(url, ""), {"path": _path(url), "url": url})
                continue
            final = normalize(page.final_url) or url
            if url == self.start and not self._same_host(final):
                raise SourceError(
                    f"web: the start page redirects to {final}; use that URL as the source's url"
                )
            if final in landed or not self._same_host(final):
                continue  # a redirect to a page already listed, or off the site
            landed.add(final)
            mimetype = _mimetype(page)
            attrs: dict[str, str | int] = {"path": _path(url), "url": url, "size": len(page.content)}
            headers = getattr(page, "headers", None)  # when ``Fetched`` carries them
            modified = headers.get("last-modified") if isinstance(headers, Mapping) else None
            stamp = _iso(modified or lastmods.get(url, ""))
            if stamp:
                attrs["modified"] = stamp
            if self._cached + len(page.content) <= _CACHE_BYTES:
                self._cache[url] = page.content
                self._cached += len(page.content)
            listed += 1
            yield Entry(url, _name(final, mimetype), dict(attrs), mimetype)
            if mimetype in _HTML and depth < self.spec.max_depth:
                for link in _links(page):
                    target = normalize(link)
                    if target and target not in queued and self._same_host(target):
                        queued.add(target)
                        queue.append((target, depth + 1))

    def read(self, entry: Entry) -> bytes:
        cached = self._cache.pop(entry.location, None)
        if cached is not None:
            self._cached -= len(cached)
            return cached
        try:
            return self._get(entry.location).content
        except FetchRefused as exc:
            raise SourceError(f"web: {exc}") from None

    def close(self) -> None:
        self._cache.clear()
        self._cached = 0
