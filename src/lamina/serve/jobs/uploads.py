"""Uploaded files land inside the tenant's data directory under a sanitised name, and stay there:
a re-ingest or a citation can point at the original bytes.

A name is reduced to its last path component and to safe characters, so ``../../x`` becomes ``x``
inside the collection's upload folder; a name with nothing left is refused.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import quote

from lamina.serve.errors import APIError, bad_request

_UNSAFE = re.compile(r"[^\w.\- ()+,@]+", re.UNICODE)
MAX_NAME = 160


def safe_name(name: str) -> str:
    """A file name that cannot leave its folder, hide, or carry control characters."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE.sub("_", name).strip(" .")
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: MAX_NAME - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else name[:MAX_NAME]
    if not name or name in {".", ".."}:
        raise bad_request(f"file name {name!r} has no usable characters; rename the file", param="files")
    return name


def public_source(source: str, folder: Path) -> str:
    """What clients see as a document's source: an upload's file name, not the server's path."""
    return source.removeprefix(str(folder).rstrip("/") + "/")


def content_url(base_url: str, collection: str, doc_id: str, page: int | None = None) -> str:
    """Where the original file is served; a PDF opens at ``#page=N``."""
    url = f"{base_url.rstrip('/')}/v1/collections/{quote(collection)}/documents/{doc_id}/content"
    return url + (f"#page={page}" if page else "")


def save(folder: Path, name: str, data: bytes) -> Path:
    """Write atomically (temp file, then rename) so a half-written upload is never ingested."""
    folder.mkdir(parents=True, exist_ok=True)
    target = (folder / safe_name(name)).resolve()
    if target.parent != folder.resolve():  # belt and braces: never outside the folder
        raise bad_request("file name resolves outside the upload folder", param="files")
    tmp = target.with_name(f".{target.name}.part")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target


def too_large(what: str, size: int, limit_mb: float) -> APIError:
    return APIError(
        413,
        f"{what} is {size / 1e6:.1f} MB, over the limit of {limit_mb:g} MB",
        "invalid_request_error",
        param="files",
        code="file_too_large",
    )
