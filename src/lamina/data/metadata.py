"""What comes with a document's bytes: its metadata, its readers and the source that brought it.

Metadata has three origins, merged in this order (a later one wins a key): what the source knows
(``facts``: a file's modified time, a URL, an S3 object's tags, a Git commit), the document's own
front matter (Markdown), and what the uploader gives (``metadata`` on upload and ingest).

A document is re-indexed when its bytes change or when what was given with them does (a new tag,
new readers); ``digest`` is that second half. A modified time alone re-indexes nothing: it changes
with the bytes, or on a copy or a touch that changes nothing a reader sees.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lamina.data.filters import KEY_RE
from lamina.data.types import sha256_hex

VOLATILE = frozenset({"modified"})
FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)


@dataclass(frozen=True)
class Given:
    facts: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    readers: tuple[str, ...] = ()
    origin: str | None = None  # a source's id (``lamina sources``); None: ingested by hand

    def attrs(self, front_matter: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {**self.facts, **(front_matter or {}), **self.metadata}

    def digest(self) -> str:
        kept = {k: v for k, v in self.facts.items() if k not in VOLATILE}
        text = json.dumps(
            [kept, dict(self.metadata), list(self.readers), self.origin], sort_keys=True, default=str
        )
        return sha256_hex(text)[:16]


def modified_iso(timestamp: float) -> str:
    """A file time as metadata: ISO 8601 in UTC, so it orders as text (``{"$gte": "2025-01-01"}``)."""
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """A Markdown file's YAML front matter as metadata, and the text after it (unchanged without one).

    Dates become ISO strings; values other than strings, numbers, booleans and lists of them are
    kept as their text; keys that are not plain names are left in the text rather than lost.
    """
    match = FRONT_MATTER.match(text)
    if match is None:
        return {}, text
    import yaml

    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return {}, text  # not front matter after all: the text keeps it
    if not isinstance(data, dict) or not all(isinstance(k, str) and KEY_RE.match(k) for k in data):
        return {}, text
    return {k: _plain(v) for k, v in data.items() if v is not None}, text[match.end() :]


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [v if isinstance(v, str) else str(_plain(v)) for v in value]
    return str(value)
