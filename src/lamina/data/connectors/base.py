"""What a source connector is: everything a source holds now (``entries``), and one item's bytes (``read``).

A sync driver hashes the bytes, ingests what changed and deletes what disappeared, so a connector must
never answer with a *partial* listing: when the source as a whole cannot be listed it raises
``SourceError`` instead of yielding less (an empty listing would delete the collection). One item that
cannot be read raises from ``read`` (``OSError`` or ``SourceError``) and the driver goes on.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from lamina.errors import LaminaError


class SourceError(LaminaError):
    """The source as a whole cannot be reached or listed; the message says what to fix, never a secret."""


@dataclass(frozen=True)
class Entry:
    """One item a source holds now.

    ``location`` is the item's identity across syncs (a path, a URL, ``git+URL@branch:path``,
    ``s3://bucket/key``); ``name`` is a file name whose extension tells the format; ``attrs`` holds
    JSON-safe scalars (or lists of str) the source knows: always ``path``, where known ``url``,
    ``modified`` (ISO 8601 UTC), ``size`` and the kind's own (``commit``, ``etag``, ``tag.<Key>`` ...).
    """

    location: str
    name: str
    attrs: dict[str, Any] = field(hash=False)
    mimetype: str = ""


class Connector(Protocol):
    kind: str
    scope: str  # a short description for people ("s3://bucket/prefix"), never with credentials

    def entries(self) -> Iterator[Entry]:
        """Everything the source holds now; raises ``SourceError`` rather than list part of it."""
        ...

    def read(self, entry: Entry) -> bytes:
        """The bytes of one listed item; ``OSError`` or ``SourceError`` when that item cannot be read."""
        ...

    def close(self) -> None: ...


def iso_utc(moment: datetime | float) -> str:
    """``2025-01-31T12:00:00Z`` from a datetime (naive means UTC) or a POSIX timestamp."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def strip_userinfo(url: str) -> str:
    """``url`` without any ``user:password@`` (what may be shown or stored)."""
    parts = urlsplit(url)
    if not parts.netloc or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def mask(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every (non-trivial) secret replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def read_secrets(path: Path, keys: tuple[str, ...], kind: str) -> dict[str, str]:
    """``keys`` from a TOML or JSON secrets file (by content, whatever its extension)."""
    try:
        text = path.expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceError(f"{kind}: cannot read secrets_file {path}: {exc.strerror}") from None
    data: Any
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError):
        # the parser's message may quote a line of the file, so it is not repeated here
        raise SourceError(f"{kind}: secrets_file {path} is neither valid TOML nor valid JSON") from None
    missing = [k for k in keys if not isinstance(data.get(k), str) or not data[k]]
    if missing:
        raise SourceError(f"{kind}: secrets_file {path} lacks {', '.join(missing)} (strings)")
    return {k: data[k] for k in keys}


def env_secret(name: str, kind: str, field_name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SourceError(f"{kind}: environment variable {name} ({field_name}) is not set")
    return value
