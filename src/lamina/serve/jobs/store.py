"""Ingest jobs as rows of the shared job table, claimed by leases, so any worker process can run any job.

A worker claims a queued job (or one whose lease ran out: its worker died) with a conditional
``UPDATE`` that only one claimant can win, picked with ``FOR UPDATE SKIP LOCKED`` on Postgres so
that workers don't queue up behind each other's row locks. It holds the job by renewing the lease
(a heartbeat) and writes progress only while it still owns it: a worker that lost its lease can no
longer overwrite the one that took the job over. The row is the only state; there is no second
queue to drift from it (RAGFlow's failure: a Redis queue and a MySQL table that disagree).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lamina.data.registry import now
from lamina.serve.db import jobs
from lamina.serve.jobs.model import QUEUED, RESUMABLE, RESUMED_AS_IS, SETTLED, Item, Job

c = jobs.c


@dataclass(frozen=True)
class Beat:
    held: bool  # the lease is still ours
    cancel: bool  # someone asked for the job to stop


class JobStore:
    def __init__(self, engine: sa.Engine, lease_s: float = 30.0) -> None:
        self.engine = engine
        self.lease_s = lease_s

    # reading --------------------------------------------------------------------------------------
    def get(self, job_id: str, tenant: str | None = None) -> Job | None:
        """The job, if it belongs to ``tenant`` (``None``: any tenant, for admins)."""
        query = sa.select(jobs).where(c.id == job_id)
        if tenant is not None:
            query = query.where(c.tenant == tenant)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _job(row) if row is not None else None

    def list(self, tenant: str | None, limit: int = 50) -> list[Job]:
        query = sa.select(jobs).order_by(c.created_at.desc(), c.id).limit(limit)
        if tenant is not None:
            query = query.where(c.tenant == tenant)
        with self.engine.connect() as conn:
            return [_job(row) for row in conn.execute(query)]

    # requests -------------------------------------------------------------------------------------
    def insert(self, job: Job) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.insert(jobs).values(id=job.id, **_values(job)))

    def request_cancel(self, job_id: str) -> None:
        """A queued job is cancelled at once; a running one is asked to stop at its worker's next beat."""
        with self.engine.begin() as conn:
            stopped = conn.execute(
                sa.update(jobs)
                .where(c.id == job_id, c.state == "queued")
                .values(state="cancelled", **_moved())
            ).rowcount
            if not stopped:
                conn.execute(
                    sa.update(jobs).where(c.id == job_id, c.state == "running").values(cancel_requested=True)
                )
            if stopped:  # its files say so too
                _set_items(conn, job_id, lambda i: "cancelled" if i.state not in SETTLED else i.state)

    def requeue(self, job_id: str) -> bool:
        """Queue an interrupted, cancelled or failed job again; its unfinished files start over."""
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(jobs)
                .where(c.id == job_id, c.state.in_(RESUMABLE))
                .values(state="queued", error=None, cancel_requested=False, lease_owner=None, **_moved())
            ).rowcount
            if done:
                _set_items(conn, job_id, lambda i: i.state if i.state in RESUMED_AS_IS else QUEUED)
        return bool(done)

    # workers --------------------------------------------------------------------------------------
    def claim(self, owner: str) -> Job | None:
        """Take the oldest job that is queued or whose worker stopped beating; None when there is none."""
        t = time.time()
        claimable = sa.or_(c.state == "queued", sa.and_(c.state == "running", c.lease_until < t))
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(jobs)
                .where(claimable)
                .order_by(c.created_at, c.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            won = conn.execute(
                sa.update(jobs)
                .where(c.id == row.id, claimable)  # re-checked: of two claimants, one wins
                .values(
                    state="running",
                    lease_owner=owner,
                    lease_until=t + self.lease_s,
                    attempts=c.attempts + 1,
                    **_moved(),
                )
            ).rowcount
            if not won:
                return None
            job = _job(row)
            job.state, job.attempts = "running", job.attempts + 1
            for item in job.items:
                if item.state not in SETTLED:
                    item.state, item.detail = QUEUED, ""
            conn.execute(sa.update(jobs).where(c.id == job.id).values(items=_items(job.items)))
        return job

    def heartbeat(self, job_id: str, owner: str) -> Beat:
        with self.engine.begin() as conn:
            held = conn.execute(
                sa.update(jobs)
                .where(c.id == job_id, c.lease_owner == owner, c.state == "running")
                .values(lease_until=time.time() + self.lease_s)
            ).rowcount
            cancel = conn.execute(sa.select(c.cancel_requested).where(c.id == job_id)).scalar()
        return Beat(bool(held), bool(cancel))

    def save(self, job: Job, owner: str, *, release: bool = False) -> bool:
        """Write the job's progress if ``owner`` still holds it (``release``: and let go of it)."""
        values = _values(job) | _moved()
        if release:
            values |= {"lease_owner": None, "lease_until": None, "cancel_requested": False}
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    sa.update(jobs).where(c.id == job.id, c.lease_owner == owner).values(**values)
                ).rowcount
            )


def _moved() -> dict[str, Any]:
    return {"version": c.version + 1, "updated_at": now()}


def _items(items: list[Item]) -> str:
    return json.dumps([dataclasses.asdict(i) for i in items])


def _values(job: Job) -> dict[str, Any]:
    return {
        "tenant": job.tenant,
        "collection": job.collection,
        "state": job.state,
        "items": _items(job.items),
        "report": json.dumps(job.report) if job.report is not None else None,
        "error": job.error,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "kind": job.kind,
        "options": json.dumps(job.options),
    }


def _set_items(conn: sa.Connection, job_id: str, state_of: Callable[[Item], str]) -> None:
    raw = conn.execute(sa.select(c["items"]).where(c.id == job_id)).scalar()
    items = [Item(**i) for i in json.loads(raw or "[]")]
    for item in items:
        item.state = state_of(item)
        if item.state == QUEUED:
            item.detail = ""
    conn.execute(sa.update(jobs).where(c.id == job_id).values(items=_items(items)))


def _job(row: sa.Row[Any]) -> Job:
    return Job(
        row.id,
        row.tenant,
        row.collection,
        [Item(**i) for i in json.loads(row.items)],
        row.state,
        json.loads(row.report) if row.report else None,
        row.error,
        row.created_at,
        row.updated_at,
        row.version,
        row.attempts,
        row.kind,
        json.loads(row.options or "{}"),
    )
