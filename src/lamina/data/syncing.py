"""One sync of one source into its collection, under the source's lease, and the loop that runs the
due ones (``lamina sources sync --due``, every server and ``lamina worker``).

A sync lists the whole source first: a source that cannot be listed fails the sync and deletes
nothing. Then it is an ingestion like any other (incremental by content hash and by what the source
says of each item: tags, readers), and at the end the documents this source brought that it no
longer lists are deleted. Batches commit atomically and deletions come last, so a sync killed at
any point re-runs to the exact end state.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from lamina.config.data import every_seconds
from lamina.data.collection import Workspace
from lamina.data.connectors import make_connector, parse_spec
from lamina.data.filters import check_groups, check_metadata
from lamina.data.metadata import Given
from lamina.data.progress import IngestReport, Progress
from lamina.data.registry import check_name
from lamina.data.source_store import SourceRecord, SourceStore
from lamina.errors import LaminaError

log = logging.getLogger(__name__)
LEASE_S = 60.0


@dataclass
class SyncResult:
    source: str
    status: str  # completed, failed, cancelled, interrupted, or busy (another worker has it)
    report: IngestReport | None = None
    error: str | None = None
    seconds: float = 0.0
    listed: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "status": self.status,
            "seconds": round(self.seconds, 3),
        }
        out["listed"] = self.listed
        if self.report is not None:
            out["report"] = self.report.to_dict()
        if self.error:
            out["error"] = self.error
        return out


class _Lease:
    """Renews the lease while a sync runs (every third of its length), in a daemon thread."""

    def __init__(self, store: SourceStore, source_id: str, owner: str, lease_s: float) -> None:
        self.store, self.source_id, self.owner, self.lease_s = store, source_id, owner, lease_s
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease {source_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                if not self.store.renew(self.source_id, self.owner, self.lease_s):
                    self.lost = True
                    log.warning("source %s: lease lost to another worker", self.source_id)
                    return
            except Exception as exc:  # the registry is away for a moment: the lease may still hold
                log.warning("source %s: cannot renew the lease (%s)", self.source_id, exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def sync_source(
    ws: Workspace,
    record: SourceRecord,
    *,
    owner: str,
    lease_s: float = LEASE_S,
    progress: Progress | None = None,
    allow_private: bool = False,
) -> SyncResult:
    """Sync ``record`` into its collection if no other worker is syncing it (else ``busy``)."""
    store = SourceStore(ws.registry.engine)
    started = time.perf_counter()
    if not store.claim(record.id, owner, lease_s):
        return SyncResult(record.name, "busy", error="another worker is syncing this source")
    lease = _Lease(store, record.id, owner, lease_s)
    result = SyncResult(record.name, "failed")
    try:
        result = _run(ws, record, progress, allow_private)
    except KeyboardInterrupt:
        result.status, result.error = "interrupted", "interrupted"
        raise
    except LaminaError as exc:  # SourceError among them: the source as a whole failed
        result.error = str(exc)
    finally:
        lease.stop()
        result.seconds = time.perf_counter() - started
        report = result.report.to_dict() if result.report is not None else None
        store.finish(
            record, owner, result.status, report | {"listed": result.listed} if report else None, result.error
        )
    return result


def _run(ws: Workspace, record: SourceRecord, progress: Progress | None, allow_private: bool) -> SyncResult:
    coll = ws.collection(record.collection, create=True)
    cache = ws.settings.data_dir / "source-cache"
    connector = make_connector(
        record.spec, fetch=ws.settings.fetch, cache_dir=cache, allow_private=allow_private
    )
    try:
        entries = list(connector.entries())  # the whole listing before anything is deleted
        given = Given(metadata=record.metadata, readers=record.readers, origin=record.id)
        report = coll.ingest_entries(entries, connector.read, given, progress=progress)
    finally:
        connector.close()
    error = None
    if report.failed:
        error = f"{report.failed} item(s) failed: " + "; ".join(
            f"{e['source']}: {e['reason']}" for e in report.errors[:3] if e["kind"] == "failed"
        )
    return SyncResult(record.name, report.status, report, error, listed=len(entries))


def configured(ws: Workspace) -> list[SourceRecord]:
    """The ``[[sources]]`` of the configuration, put in the registry (added, or changed in place)."""
    store = SourceStore(ws.registry.engine)
    out = []
    for entry in ws.settings.sources:
        check_name(entry.collection)
        out.append(
            store.put(
                entry.collection,
                entry.name,
                parse_spec(entry.spec),
                every_s=every_seconds(entry.every),
                readers=check_groups(entry.readers),
                metadata=check_metadata(entry.metadata),
            )
        )
    return out


def remove_source(ws: Workspace, collection: str, name: str, *, keep_documents: bool = False) -> int:
    """Forget a source and (unless kept) delete the documents it brought; how many were deleted."""
    record = SourceStore(ws.registry.engine).remove(collection, name)
    if keep_documents or ws.registry.get_collection(collection) is None:
        return 0
    coll = ws.collection(collection)
    brought = [d.source for d in coll.documents() if d.origin == record.id]
    coll.delete_documents(brought)
    return len(brought)


def sync_due(workspaces: list[Workspace], owner: str, lease_s: float = LEASE_S) -> list[SyncResult]:
    """Every scheduled source whose time has come, in each workspace (a tenant's each), once."""
    results = []
    for ws in workspaces:
        for record in SourceStore(ws.registry.engine).due():
            try:
                results.append(sync_source(ws, record, owner=owner, lease_s=lease_s))
            except Exception:  # one broken source never stops the others
                log.exception("source %s of %s: sync crashed", record.name, record.collection)
    return results


__all__ = ["LEASE_S", "SyncResult", "configured", "remove_source", "sync_due", "sync_source"]
