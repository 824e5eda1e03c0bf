"""The sources of each collection, kept in the registry, and the lease that lets one worker sync one
source at a time across every process and replica sharing the registry.

A lease is a conditional UPDATE (free, expired, or already ours), so SQLite and Postgres both decide
a race in one statement: the loser sees zero rows changed and leaves the sync to the winner. A
worker renews its lease while it syncs; one killed mid-sync stops renewing, and once the lease runs
out another worker takes the source over and re-runs it to the exact end state.
"""

from __future__ import annotations

import builtins
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lamina.data.connectors import SourceSpec, describe, parse_spec
from lamina.data.registry import now
from lamina.data.registry_schema import sources
from lamina.errors import LaminaError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MIN_EVERY_S = 60


class SourceNotFound(LaminaError):
    pass


@dataclass
class SourceRecord:
    id: str
    collection: str
    name: str
    spec: SourceSpec
    every_s: int | None
    readers: tuple[str, ...]
    metadata: dict[str, Any]
    created_at: str
    next_sync_at: float | None = None
    last_sync_at: str | None = None
    last_status: str | None = None
    last_report: dict[str, Any] | None = None
    last_error: str | None = None
    lease_owner: str | None = None
    lease_until: float | None = None

    @property
    def syncing(self) -> bool:
        return self.lease_until is not None and self.lease_until > time.time()

    def to_dict(self) -> dict[str, Any]:
        """As the API, the CLI's ``--json`` and the UI show it: the spec holds no secret to hide."""
        return {
            "id": self.id,
            "object": "source",
            "collection": self.collection,
            "name": self.name,
            "spec": describe(self.spec),
            "every_s": self.every_s,
            "readers": list(self.readers),
            "metadata": self.metadata,
            "created_at": self.created_at,
            "next_sync_at": _iso(self.next_sync_at) if self.every_s else None,
            "last_sync_at": self.last_sync_at,
            "last_status": self.last_status,
            "last_report": self.last_report,
            "last_error": self.last_error,
            "syncing": self.syncing,
        }


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(moment))


def _record(row: Any) -> SourceRecord:
    return SourceRecord(
        id=row.id,
        collection=row.collection,
        name=row.name,
        spec=parse_spec(json.loads(row.spec)),
        every_s=row.every_s,
        readers=tuple(json.loads(row.readers)) if row.readers else (),
        metadata=json.loads(row.metadata) if row.metadata else {},
        created_at=row.created_at,
        next_sync_at=row.next_sync_at,
        last_sync_at=row.last_sync_at,
        last_status=row.last_status,
        last_report=json.loads(row.last_report) if row.last_report else None,
        last_error=row.last_error,
        lease_owner=row.lease_owner,
        lease_until=row.lease_until,
    )


class SourceStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def put(
        self,
        collection: str,
        name: str,
        spec: SourceSpec,
        *,
        every_s: int | None = None,
        readers: tuple[str, ...] = (),
        metadata: dict[str, Any] | None = None,
    ) -> SourceRecord:
        """Add a source, or change the one of that name (its history and lease stay)."""
        if not NAME_RE.match(name):
            raise LaminaError(f"invalid source name {name!r}: use letters, digits, '_', '-' or '.'")
        if every_s is not None and every_s < MIN_EVERY_S:
            raise LaminaError(f"a source syncs at most every {MIN_EVERY_S} s (asked: every {every_s} s)")
        values = {
            "spec": json.dumps(describe(spec), sort_keys=True),
            "every_s": every_s,
            "readers": json.dumps(list(readers)) if readers else None,
            "metadata": json.dumps(metadata) if metadata else None,
        }
        with self.engine.begin() as conn:
            found = conn.execute(
                sa.select(sources.c.id).where(sources.c.collection == collection, sources.c.name == name)
            ).first()
            if found is None:
                conn.execute(
                    sa.insert(sources).values(
                        id="src_" + secrets.token_hex(8),
                        collection=collection,
                        name=name,
                        created_at=now(),
                        next_sync_at=time.time() if every_s else None,  # a scheduled source syncs soon
                        **values,
                    )
                )
            else:
                conn.execute(sa.update(sources).where(sources.c.id == found.id).values(**values))
        return self.get(collection, name)

    def list(self, collection: str | None = None) -> list[SourceRecord]:
        query = sa.select(sources).order_by(sources.c.collection, sources.c.name)
        if collection is not None:
            query = query.where(sources.c.collection == collection)
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(query)]

    def get(self, collection: str, name: str) -> SourceRecord:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(sources).where(sources.c.collection == collection, sources.c.name == name)
            ).first()
        if row is None:
            raise SourceNotFound(
                f"collection {collection!r} has no source {name!r} (see: lamina sources list)"
            )
        return _record(row)

    def remove(self, collection: str, name: str) -> SourceRecord:
        record = self.get(collection, name)
        with self.engine.begin() as conn:
            conn.execute(sa.delete(sources).where(sources.c.id == record.id))
        return record

    def forget_collection(self, collection: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(sources).where(sources.c.collection == collection))

    def due(self, moment: float | None = None) -> builtins.list[SourceRecord]:
        """Scheduled sources whose time has come and that nobody is syncing."""
        t = time.time() if moment is None else moment
        free = sa.or_(sources.c.lease_until.is_(None), sources.c.lease_until < t)
        query = sa.select(sources).where(sources.c.next_sync_at <= t, free).order_by(sources.c.next_sync_at)
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(query)]

    def request(self, source_id: str) -> None:
        """Ask for a sync as soon as a worker is free (the API's and the UI's "sync now")."""
        with self.engine.begin() as conn:
            conn.execute(sa.update(sources).where(sources.c.id == source_id).values(next_sync_at=time.time()))

    # the lease ----------------------------------------------------------------------------------
    def claim(self, source_id: str, owner: str, lease_s: float) -> bool:
        """Take the source for ``owner`` if it is free, its lease ran out, or it is already ours."""
        t = time.time()
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(sources)
                .where(
                    sources.c.id == source_id,
                    sa.or_(
                        sources.c.lease_until.is_(None),
                        sources.c.lease_until < t,
                        sources.c.lease_owner == owner,
                    ),
                )
                .values(lease_owner=owner, lease_until=t + lease_s)
            )
        return bool(done.rowcount)

    def renew(self, source_id: str, owner: str, lease_s: float) -> bool:
        """Extend our lease; False when it was lost (it ran out and another worker took it)."""
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(sources)
                .where(sources.c.id == source_id, sources.c.lease_owner == owner)
                .values(lease_until=time.time() + lease_s)
            )
        return bool(done.rowcount)

    def finish(
        self,
        record: SourceRecord,
        owner: str,
        status: str,
        report: dict[str, Any] | None,
        error: str | None,
    ) -> None:
        """Record the outcome, schedule the next sync and free the lease (if still ours)."""
        next_at = time.time() + record.every_s if record.every_s else None
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(sources)
                .where(sources.c.id == record.id, sources.c.lease_owner == owner)
                .values(
                    last_sync_at=now(),
                    last_status=status,
                    last_report=json.dumps(report) if report is not None else None,
                    last_error=error,
                    next_sync_at=next_at,
                    lease_owner=None,
                    lease_until=None,
                )
            )
