"""URL ingestion: SSRF refusals, and a real fetch from a server started on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lamina.config import FetchSettings
from lamina.data.collection import Workspace
from lamina.data.fetch import check_target, fetch
from lamina.errors import FetchRefused

PAGE = b"""<html><head><title>Loopback page</title></head><body>
<nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<main><h1>Loopback page</h1><p>The secret ingredient of the house soup is smoked paprika,
added in the last five minutes of cooking. This paragraph exists so that the page has an article.</p></main>
</body></html>"""


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/page.html":
            self._send(200, PAGE, "text/html; charset=utf-8")
        elif self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.end_headers()
        elif self.path == "/to-page":
            self.send_response(301)
            self.send_header("Location", "/page.html")
            self.end_headers()
        elif self.path == "/big":
            self._send(200, b"a" * 300_000, "text/plain")
        else:
            self._send(404, b"not found", "text/plain")

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost:8080/admin",
        "http://10.0.0.5/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://0.0.0.0/",
        "http://[::ffff:127.0.0.1]/",
    ],
)
def test_private_targets_are_refused(url: str) -> None:
    with pytest.raises(FetchRefused, match="refusing"):
        check_target(url, allow_private=False)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://x/"])
def test_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(FetchRefused, match="only http"):
        check_target(url, allow_private=False)


def test_loopback_server_refused_by_default(server: str) -> None:
    with pytest.raises(FetchRefused, match="refusing"):
        fetch(f"{server}/page.html", FetchSettings())


def test_real_fetch_with_explicit_override(server: str) -> None:
    got = fetch(f"{server}/to-page", FetchSettings(), allow_private=True)
    assert got.final_url.endswith("/page.html")
    assert b"smoked paprika" in got.content
    assert got.content_type.startswith("text/html")


def test_redirect_loop_is_capped(server: str) -> None:
    with pytest.raises(FetchRefused, match="max_redirects"):
        fetch(f"{server}/loop", FetchSettings(max_redirects=3), allow_private=True)


def test_size_is_capped(server: str) -> None:
    with pytest.raises(FetchRefused, match="max_mb"):
        fetch(f"{server}/big", FetchSettings(max_mb=0.1), allow_private=True)


def test_http_errors_are_reported(server: str) -> None:
    with pytest.raises(FetchRefused, match="404"):
        fetch(f"{server}/missing", FetchSettings(), allow_private=True)


def test_ingest_url_end_to_end(workspace: Workspace, server: str) -> None:
    coll = workspace.collection("web", create=True)
    refused = coll.ingest([f"{server}/page.html"])
    assert refused.failed == 1 and "refusing" in refused.errors[0]["reason"]
    report = coll.ingest([f"{server}/page.html"], allow_private=True)
    assert report.ingested == 1
    hits = coll.search("what makes the soup special", k=1)
    assert "smoked paprika" in hits[0].text
    assert hits[0].source == f"{server}/page.html"
    assert "About" not in hits[0].text  # navigation chrome dropped
