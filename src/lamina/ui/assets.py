"""The UI's static files, read once at start-up and served gzipped, with a content hash in their URL.

They are a few small files (htmx, its SSE extension, our stylesheet and script), so holding them and
their gzipped copies in memory costs less than a page of text and saves a disk read per request. A URL
carries the file's hash (``/static/htmx.min.js?v=…``), so a browser may cache it for a year and still
sees a new version at once.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from fastapi.responses import Response

STATIC_DIR = Path(__file__).with_name("static")
SERVED = (".js", ".css", ".svg", ".png", ".ico", ".txt")
YEAR = 365 * 24 * 3600


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    media_type: str
    version: str


class Assets:
    def __init__(self, folder: Path = STATIC_DIR) -> None:
        self._files: dict[str, Asset] = {}
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix in SERVED:
                body = path.read_bytes()
                media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                if media.startswith("text/") or media.endswith("javascript"):
                    media += "; charset=utf-8"
                self._files[path.name] = Asset(
                    body, gzip.compress(body, 9, mtime=0), media, hashlib.sha256(body).hexdigest()[:12]
                )

    def url(self, name: str) -> str:
        """The URL of a static file, versioned by its content."""
        return f"/static/{name}?v={self._files[name].version}"

    def response(self, request: Request, name: str) -> Response:
        asset = self._files.get(name)
        if asset is None:
            return Response("not found", status_code=404, media_type="text/plain")
        etag = f'"{asset.version}"'
        cache = f"public, max-age={YEAR}, immutable" if request.query_params.get("v") else "no-cache"
        headers = {
            "ETag": etag,
            "Cache-Control": cache,
            "X-Content-Type-Options": "nosniff",
            "Vary": "Accept-Encoding",
        }
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)
