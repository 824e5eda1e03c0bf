"""A document's (or a source's) metadata on one short line: ``team: finance · year: 2025 · path: a.md``.

What a person gave comes first; what a source's connector adds to every file (its path, then size,
times, hashes) after it, since it says least. Values are cut short; the full line is the element's
title. The page escapes it like any other text.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

# what connectors record of each file (lamina.data.connectors), least telling last
CONNECTOR_KEYS = ("path", "url", "branch", "author", "modified", "size", "commit", "blob", "etag")


def _order(key: str) -> tuple[int, int]:
    return (1, CONNECTOR_KEYS.index(key)) if key in CONNECTOR_KEYS else (0, 0)


def _shown(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if key == "modified" and isinstance(value, str):
        try:
            return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M")
        except ValueError:
            return value
    return str(value)


def meta(metadata: Mapping[str, Any] | None, limit: int = 3, width: int = 40) -> str:
    """At most ``limit`` keys, each value cut to ``width`` characters (``0``: all of them, whole)."""
    items = sorted((metadata or {}).items(), key=lambda kv: _order(kv[0]))  # stable: given order kept
    shown = items[:limit] if limit > 0 else items
    parts = []
    for key, value in shown:
        text = _shown(key, value)
        if width > 0 and len(text) > width:
            text = text[: width - 1] + "…"
        parts.append(f"{key}: {text}")
    if len(items) > len(shown):
        parts.append(f"+{len(items) - len(shown)} more")
    return " · ".join(parts)
