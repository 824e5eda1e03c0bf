"""How the collection page shows a source (where it reads, how often) and which sync it waits for.

After "Sync now" the section polls itself until that source's sync has ended: a worker takes it
(``syncing``), then records a new ``last_sync_at``. The section remembers the source and the
``last_sync_at`` it had when the sync was asked for; a different one means the sync ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

MAX_POLLS = 150  # every 2 s: five minutes, then the section stops asking (a reload asks again)


def target(spec: dict[str, Any]) -> str:
    """What a source reads from, as its spec says (a path, a URL, a bucket); specs hold no secret."""
    kind = spec.get("kind")
    if kind == "s3":
        where = f"s3://{spec.get('bucket', '')}/{spec.get('prefix') or ''}"
        return f"{where} at {spec['endpoint_url']}" if spec.get("endpoint_url") else where
    if kind == "git" and spec.get("branch"):
        return f"{spec.get('url', '')} @ {spec['branch']}"
    return str(spec.get("url") or spec.get("path") or "")


def every(seconds: int | None) -> str:
    """A schedule in words: ``every 15 min``, ``every hour``, or ``on demand``."""
    if not seconds:
        return "on demand"
    for unit, name, one in ((86400, "days", "day"), (3600, "h", "hour"), (60, "min", "minute")):
        if seconds % unit == 0:
            n = seconds // unit
            return f"every {one}" if n == 1 else f"every {n} {name}"
    return f"every {seconds} s"


@dataclass(frozen=True)
class Watch:
    """The sync the section polls for (``name`` empty: none), and the awaited source once it ended."""

    name: str = ""
    since: str = ""  # its last_sync_at when the sync was asked for (or seen running)
    polls: int = 0
    asked: bool = False  # asked for from this page: the section says so while it waits
    ended: dict[str, Any] | None = None  # the awaited source, its sync just ended: the page refreshes

    @property
    def polling(self) -> bool:
        return bool(self.name) and self.polls < MAX_POLLS


def watch(
    sources: list[dict[str, Any]], name: str = "", since: str = "", polls: int = 0, asked: bool = False
) -> Watch:
    """What to poll for next: the awaited source until its sync ends, else any source being synced."""
    ended = None
    awaited = next((s for s in sources if s["name"] == name), None)
    if awaited is not None:
        if awaited["syncing"] or (awaited["last_sync_at"] or "") == since:
            return Watch(name, since, polls, asked)
        ended = awaited
    busy = next((s for s in sources if s["syncing"]), None)
    if busy is not None:
        return Watch(busy["name"], busy["last_sync_at"] or "", ended=ended)
    return Watch(ended=ended)


def section(
    sources: list[dict[str, Any]],
    name: str,
    tenant: str | None,
    *,
    wait: str = "",
    since: str = "",
    polls: int = 0,
    asked: bool = False,
) -> dict[str, Any]:
    """The sources section's context: each source with its "Sync now" URL, and what it polls for."""
    base = f"/collections/{quote(name)}"
    where = {"tenant": tenant} if tenant else {}
    for s in sources:
        s["sync_url"] = f"{base}/sources/{quote(s['name'])}/sync" + _query(where)
    w = watch(sources, wait, since, polls, asked)
    poll = {**where, "wait": w.name, "since": w.since, "n": str(w.polls + 1)}
    return {
        "sources": sources,
        "watch": w,
        "poll_url": f"{base}/sources" + _query(poll | ({"asked": "1"} if w.asked else {})),
        "table_url": f"{base}/documents-table" + _query(where),
    }


def _query(params: dict[str, str]) -> str:
    return "?" + urlencode(params) if params else ""
