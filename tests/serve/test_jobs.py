"""Leased jobs on the shared job table: one claimant wins, a silent worker loses its job to another,
a worker that lost its lease can no longer write, and a stopped worker's job ends exact on the next.

Run on SQLite and on the suite's Postgres (``gateway_engine``)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from lamina.config import Settings
from lamina.data.embed.onnx import OnnxMiniLM
from lamina.serve.jobs.manager import JobManager
from lamina.serve.jobs.model import Item, Job
from lamina.serve.jobs.store import JobStore
from lamina.serve.jobs.worker import JobWorker
from lamina.serve.policy.tenants import Tenants
from lamina.testing.server import until
from tests.conftest import SCIFACT


def _job(store: JobStore, *names: str) -> Job:
    job = Job(f"job_{time.monotonic_ns()}", "default", "kb", [Item(f"/x/{n}", n) for n in names])
    store.insert(job)
    return job


def test_of_many_claimants_one_wins(gateway_engine: sa.Engine) -> None:
    store = JobStore(gateway_engine, lease_s=30)
    job = _job(store, "a.md")
    won: list[Job] = []
    barrier = threading.Barrier(6)

    def claim(i: int) -> None:
        barrier.wait()
        found = store.claim(f"w{i}")
        if found is not None:
            won.append(found)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [j.id for j in won] == [job.id]
    assert store.claim("late") is None  # held, and nothing else queued
    current = store.get(job.id)
    assert current is not None and current.state == "running" and current.attempts == 1


def test_a_silent_worker_loses_its_job_and_can_no_longer_write(gateway_engine: sa.Engine) -> None:
    store = JobStore(gateway_engine, lease_s=0.3)
    job = _job(store, "a.md", "b.md")
    first = store.claim("a")
    assert first is not None and store.claim("b") is None
    first.items[0].state = "done"
    assert store.save(first, "a")
    time.sleep(0.4)  # "a" stopped beating
    second = store.claim("b")
    assert second is not None and second.id == job.id and second.attempts == 2
    assert [i.state for i in second.items] == ["done", "queued"]  # done stays done
    assert not store.heartbeat(job.id, "a").held
    first.items[1].state = "failed"
    assert not store.save(first, "a")  # fenced off: the row is "b"'s
    assert store.heartbeat(job.id, "b").held
    row = store.get(job.id)
    assert row is not None and [i.state for i in row.items] == ["done", "queued"]


def test_cancel_and_resume_through_the_table(gateway_engine: sa.Engine) -> None:
    store = JobStore(gateway_engine, lease_s=30)
    queued = _job(store, "q.md")
    store.request_cancel(queued.id)
    row = store.get(queued.id)
    assert row is not None and row.state == "cancelled" and row.items[0].state == "cancelled"
    assert store.requeue(queued.id) and not store.requeue(queued.id)  # queued again: nothing to resume
    running = store.claim("w")
    assert running is not None and running.id == queued.id
    assert not store.heartbeat(running.id, "w").cancel
    store.request_cancel(running.id)  # from any replica
    assert store.heartbeat(running.id, "w").cancel
    assert store.get(queued.id, tenant="someone-else") is None
    assert [j.id for j in store.list("default")] == [queued.id] and store.list("other") == []


@pytest.fixture
def tenants(settings: Settings, embedder: OnnxMiniLM) -> Iterator[Tenants]:
    small_batches = settings.ingest.model_copy(update={"batch_documents": 4})
    tenants = Tenants(settings.model_copy(update={"ingest": small_batches}), embedder)
    tenants.workspace("default").collection("kb", create=True)
    yield tenants
    tenants.close()


def _done(store: JobStore, job_id: str) -> int:
    job = store.get(job_id)
    return sum(i.state == "done" for i in job.items) if job is not None else 0


def _state(store: JobStore, job_id: str) -> str | None:
    job = store.get(job_id)
    return job.state if job is not None else None


def _corpus(folder: Path, n: int) -> list[Item]:
    folder.mkdir()
    items = []
    for line in (SCIFACT / "corpus.jsonl").read_text().splitlines()[:n]:
        doc = json.loads(line)
        path = folder / f"{doc['_id']}.md"
        path.write_text(f"# {doc['title']}\n\n{doc['text']}\n")
        items.append(Item(str(path), path.name))
    return items


def test_a_stopped_workers_job_ends_exact_on_the_next(
    gateway_engine: sa.Engine, tenants: Tenants, tmp_path: Path
) -> None:
    store = JobStore(gateway_engine, lease_s=5)
    first = JobWorker(store, tenants, poll_s=0.05, name="first")
    manager = JobManager(store, first)
    manager.start()
    items = _corpus(tmp_path / "docs", 20)  # five batches of four
    job = manager.submit("default", "kb", items)
    until(lambda: _done(store, job.id) >= 4, what="some files done")
    first.stop()
    stopped = store.get(job.id)
    assert stopped is not None and stopped.state == "queued", stopped  # let go of, not failed
    second = JobWorker(store, tenants, poll_s=0.05, name="second")
    second.start()
    try:
        until(lambda: _state(store, job.id) == "completed", timeout_s=120, what="the job to end")
    finally:
        second.stop()
    final = store.get(job.id)
    assert final is not None and final.attempts == 2 and {i.state for i in final.items} == {"done"}
    coll = tenants.workspace("default").collection("kb")
    assert coll.store.sources() == {d.source: d.chunks for d in coll.documents()}
    assert len(coll.documents()) == len(items)
