"""A WebDAV folder as a source (Nextcloud, ownCloud, SharePoint's DAV, Apache mod_dav, wsgidav ...).

The folder is walked one level at a time (``PROPFIND`` with ``Depth: 1``): many servers refuse
``Depth: infinity``. Only hrefs under the folder on the same server are followed. The multistatus XML
is parsed without expanding entities. Basic authentication, or digest when the server asks for it;
the password never appears in a message.
"""

from __future__ import annotations

import contextlib
import mimetypes
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import PurePosixPath
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

import httpx

from lamina.config import FetchSettings
from lamina.data.connectors._xml import XmlElement, children, local, parse_xml, text_of
from lamina.data.connectors.base import Entry, SourceError, env_secret, iso_utc, mask, read_secrets
from lamina.data.connectors.spec import WebDavSpec
from lamina.data.fetch import USER_AGENT, check_target
from lamina.errors import FetchRefused

_PROPFIND = b"""<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/><d:getlastmodified/><d:getcontentlength/>
<d:getetag/><d:getcontenttype/></d:prop></d:propfind>"""
_MAX_FOLDERS = 10_000


def _props(response: XmlElement) -> dict[str, XmlElement]:
    """The properties a ``<response>`` found (its propstat with a 200 status)."""
    found: dict[str, XmlElement] = {}
    for propstat in children(response, "propstat"):
        if " 200 " not in text_of(propstat, "status") + " ":
            continue
        for prop in children(propstat, "prop"):
            found.update((local(p), p) for p in prop)
    return found


class WebDavConnector:
    kind = "webdav"

    def __init__(self, spec: WebDavSpec, settings: FetchSettings, allow_private: bool = False) -> None:
        self.spec, self.settings, self.allow_private = spec, settings, allow_private
        self.root = spec.url if spec.url.endswith("/") else spec.url + "/"
        parts = urlsplit(self.root)
        self._origin = (parts.scheme, parts.netloc)
        self._root_path = unquote(parts.path)
        self.scope = self.root
        self._secrets: list[str] = []
        self._client: httpx.Client | None = None

    def _credentials(self) -> tuple[str, str] | None:
        spec = self.spec
        if spec.secrets_file is not None:
            found = read_secrets(spec.secrets_file, ("username", "password"), "webdav")
            pair = (found["username"], found["password"])
        elif spec.username_env and spec.password_env:
            pair = (
                env_secret(spec.username_env, "webdav", "username_env"),
                env_secret(spec.password_env, "webdav", "password_env"),
            )
        else:
            return None
        self._secrets = [pair[1]]
        return pair

    def _http(self, digest: bool = False) -> httpx.Client:
        if self._client is None or digest:
            if self._client is not None:
                self._client.close()
            pair = self._credentials()
            auth: httpx.Auth | None = None
            if pair:
                auth = httpx.DigestAuth(*pair) if digest else httpx.BasicAuth(*pair)
            self._client = httpx.Client(
                auth=auth,
                timeout=self.settings.timeout_s,
                trust_env=False,
                follow_redirects=False,
                headers={"User-Agent": USER_AGENT},
            )
        return self._client

    def _fail(self, text: str) -> SourceError:
        return SourceError(mask(f"webdav: {text}", self._secrets))

    def _propfind(self, folder: str) -> XmlElement:
        headers = {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"}
        try:
            resp = self._http().request("PROPFIND", folder, content=_PROPFIND, headers=headers)
            challenge = resp.headers.get("www-authenticate", "").lower()
            if resp.status_code == 401 and "digest" in challenge and "basic" not in challenge:
                resp = self._http(digest=True).request("PROPFIND", folder, content=_PROPFIND, headers=headers)
        except httpx.HTTPError as exc:
            raise self._fail(f"cannot reach {folder}: {type(exc).__name__}: {exc}") from None
        if resp.status_code in (401, 403):
            who = (
                f"secrets_file {self.spec.secrets_file}"
                if self.spec.secrets_file
                else f"the environment variables {self.spec.username_env} and {self.spec.password_env}"
                if self.spec.username_env
                else "no credentials were given"
            )
            raise self._fail(f"{folder} refused access (HTTP {resp.status_code}): check {who}")
        if resp.status_code != 207:
            raise self._fail(f"PROPFIND {folder} answered HTTP {resp.status_code} (is it a WebDAV folder?)")
        return parse_xml(resp.content, f"webdav: the answer for {folder}")

    def _canonical(self, href: str, base: str) -> tuple[str, str] | None:
        """(URL, decoded path) of an href when it is under the source folder on the same server."""
        parts = urlsplit(urljoin(base, href))
        path = unquote(parts.path)
        if (parts.scheme, parts.netloc) != self._origin or not path.startswith(self._root_path):
            return None
        if ".." in PurePosixPath(path).parts:
            return None
        return urlunsplit((*self._origin, quote(path, safe="/~!$&'()*+,;=:@"), "", "")), path

    def entries(self) -> Iterator[Entry]:
        try:
            check_target(self.root, self.allow_private)
        except FetchRefused as exc:
            raise SourceError(f"webdav: {exc}") from None
        folders, seen = [self.root], {self._root_path}
        while folders:
            folder = folders.pop()
            folder_path = unquote(urlsplit(folder).path)
            for response in children(self._propfind(folder), "response"):
                found = self._canonical(text_of(response, "href"), folder)
                if found is None or found[1].rstrip("/") == folder_path.rstrip("/"):
                    continue
                url, path = found
                props = _props(response)
                rtype = props.get("resourcetype")
                if rtype is not None and any(local(c) == "collection" for c in rtype):
                    key = path.rstrip("/") + "/"
                    if key not in seen:
                        if len(seen) >= _MAX_FOLDERS:  # refuse rather than list part of the source
                            raise SourceError(f"webdav: {self.root} holds more than {_MAX_FOLDERS} folders")
                        seen.add(key)
                        folders.append(url.rstrip("/") + "/")
                    continue
                yield self._entry(url, path, props)

    def _entry(self, url: str, path: str, props: dict[str, XmlElement]) -> Entry:
        def text(name: str) -> str:
            el = props.get(name)
            return (el.text or "").strip() if el is not None else ""

        attrs: dict[str, str | int] = {"path": path[len(self._root_path) :], "url": url}
        if text("getlastmodified"):
            with contextlib.suppress(TypeError, ValueError):
                attrs["modified"] = iso_utc(parsedate_to_datetime(text("getlastmodified")))
        if text("getcontentlength").isdigit():
            attrs["size"] = int(text("getcontentlength"))
        if text("getetag"):
            attrs["etag"] = text("getetag").removeprefix("W/").strip('"')
        name = PurePosixPath(path).name
        mimetype = text("getcontenttype").split(";")[0].strip() or mimetypes.guess_type(name)[0] or ""
        return Entry(url, name, attrs, mimetype)

    def read(self, entry: Entry) -> bytes:
        if self._canonical(entry.location, self.root) is None:
            raise self._fail(f"{entry.location} is not under {self.root}")
        try:
            resp = self._http().get(entry.location)
        except httpx.HTTPError as exc:
            raise self._fail(f"cannot read {entry.location}: {type(exc).__name__}: {exc}") from None
        if resp.status_code != 200:
            raise self._fail(f"cannot read {entry.location}: HTTP {resp.status_code}")
        return resp.content

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
