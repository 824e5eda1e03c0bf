"""Fetch a URL for ingestion without becoming an SSRF proxy.

Every hop (the first request and each redirect) resolves the host and refuses private, loopback,
link-local, multicast and reserved addresses unless ``allow_private`` is set. Redirects, bytes and
total time are capped. Known gap: a DNS answer that changes between our check and httpx's own
lookup (rebinding) is not pinned.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from lamina.config import FetchSettings
from lamina.errors import FetchRefused
from lamina.http import tls_context

USER_AGENT = "lamina-ingest/0.1 (+https://github.com/lamina)"


@dataclass(frozen=True)
class Fetched:
    url: str
    final_url: str
    content: bytes
    content_type: str


def _blocked(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def check_target(url: str, allow_private: bool) -> None:
    """Raise ``FetchRefused`` unless ``url`` is http(s) and every address its host resolves to is public."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchRefused(f"{url}: only http and https URLs can be ingested")
    host = parts.hostname
    if not host:
        raise FetchRefused(f"{url}: URL has no host")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80))
    except socket.gaierror as exc:
        raise FetchRefused(f"{url}: cannot resolve host {host!r} ({exc.strerror})") from None
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if _blocked(ip):
            raise FetchRefused(
                f"{url}: refusing to fetch from {ip} (private, loopback or link-local address); "
                "set fetch.allow_private = true (or --allow-private) if this target is trusted"
            )


def fetch(url: str, settings: FetchSettings, *, allow_private: bool | None = None) -> Fetched:
    allow = settings.allow_private if allow_private is None else allow_private
    max_bytes = int(settings.max_mb * 1024 * 1024)
    deadline = time.monotonic() + settings.timeout_s
    current = url
    with httpx.Client(
        follow_redirects=False, timeout=settings.timeout_s, trust_env=False, verify=tls_context()
    ) as client:
        for _hop in range(settings.max_redirects + 1):
            check_target(current, allow)
            try:
                with client.stream("GET", current, headers={"User-Agent": USER_AGENT}) as resp:
                    if resp.is_redirect:
                        location = resp.headers.get("location")
                        if not location:
                            raise FetchRefused(f"{current}: redirect without a Location header")
                        current = urljoin(current, location)
                        continue
                    if resp.status_code >= 400:
                        raise FetchRefused(f"{current}: HTTP {resp.status_code} {resp.reason_phrase}")
                    declared = int(resp.headers.get("content-length") or 0)
                    if declared > max_bytes:
                        raise FetchRefused(
                            f"{current}: {declared} bytes exceeds fetch.max_mb={settings.max_mb}"
                        )
                    body = bytearray()
                    for piece in resp.iter_bytes():
                        body.extend(piece)
                        if len(body) > max_bytes:
                            raise FetchRefused(f"{current}: response exceeds fetch.max_mb={settings.max_mb}")
                        if time.monotonic() > deadline:
                            raise FetchRefused(
                                f"{current}: took longer than fetch.timeout_s={settings.timeout_s}"
                            )
                    return Fetched(url, current, bytes(body), resp.headers.get("content-type", ""))
            except httpx.TimeoutException:
                raise FetchRefused(f"{current}: timed out after {settings.timeout_s}s") from None
            except httpx.HTTPError as exc:
                raise FetchRefused(f"{current}: {type(exc).__name__}: {exc}") from None
    raise FetchRefused(f"{url}: more than fetch.max_redirects={settings.max_redirects} redirects")
