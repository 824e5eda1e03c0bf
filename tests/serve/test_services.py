"""The service layer the API routes and the web UI share, in process (no server): tenant rules first.

A non-admin key sees only its own tenant; another tenant's collection, document or job is a 404; only
naming another tenant (``?tenant=``) is a 403; an admin sees and acts for every tenant.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

import lamina
from lamina.config import LimitSettings, Settings
from lamina.data.embed.onnx import OnnxMiniLM
from lamina.serve.errors import APIError
from lamina.serve.observe.requestlog import LogFilter, LogRecord
from lamina.serve.policy.keys import Principal
from lamina.serve.services import Services, access
from lamina.serve.state import ServerState
from lamina.testing.aio import run as run_async

T = TypeVar("T")
ALICE = Principal("alice", "a")
BOB = Principal("bob", "b")
ADMIN = Principal("root", "default", admin=True)
SAMPLE = Path(lamina.__file__).parent / "samples" / "lamina-overview.md"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return run_async(coro)


def status_of(coro: Coroutine[Any, Any, Any]) -> int:
    with pytest.raises(APIError) as err:
        run(coro)
    return err.value.status


class Upload:
    """What a web framework hands over for an uploaded file."""

    def __init__(self, filename: str, data: bytes) -> None:
        self._name, self._data = filename, data

    @property
    def filename(self) -> str | None:
        return self._name

    @property
    def size(self) -> int | None:
        return len(self._data)

    async def read(self, size: int = -1) -> bytes:
        return self._data


@pytest.fixture
def state(settings: Settings, embedder: OnnxMiniLM) -> Iterator[ServerState]:
    state = ServerState.build(settings, embedder=embedder)  # not started: jobs stay queued
    yield state
    state.tenants.close()
    state.engine.dispose()


@pytest.fixture
def services(state: ServerState) -> Services:
    return state.services


# access -------------------------------------------------------------------------------------------
def test_access_rule() -> None:
    assert access.tenant_filter(ALICE) == "a" and access.tenant_filter(ADMIN) is None
    assert access.may_see(ALICE, "a") and not access.may_see(ALICE, "b") and access.may_see(ADMIN, "b")
    assert access.tenant_for(ALICE, None) == access.tenant_for(ALICE, "a") == "a"
    assert access.tenant_for(ADMIN, "b") == "b" and access.tenant_for(ADMIN, None) == "default"
    with pytest.raises(APIError) as err:
        access.tenant_for(ALICE, "b")
    assert err.value.status == 403 and err.value.code == "admin_only"
    assert access.visible_tenants(ALICE, lambda: ["default", "a", "b"]) == ["a"]
    assert access.visible_tenants(ADMIN, lambda: ["default", "a", "b"]) == ["default", "a", "b"]


# collections and documents ------------------------------------------------------------------------
def test_collections_per_tenant(services: Services) -> None:
    colls = services.collections
    made = run(colls.create(ALICE, "notes"))
    assert made["object"] == "collection" and made["tenant"] == "a" and made["name"] == "notes"
    assert status_of(colls.create(ALICE, "notes")) == 409
    assert [c["name"] for c in run(colls.list(ALICE))] == ["notes"]
    assert run(colls.list(BOB)) == []
    # another tenant's collection does not exist for bob; naming alice's tenant is refused
    assert status_of(colls.describe(BOB, "notes")) == 404
    assert status_of(colls.documents(BOB, "notes")) == 404
    assert status_of(colls.delete(BOB, "notes")) == 404
    assert status_of(colls.search(BOB, "notes", "anything")) == 404
    assert status_of(colls.list(BOB, "a")) == 403
    assert status_of(colls.describe(ALICE, "no-such")) == 404
    assert status_of(colls.describe(ALICE, "../bad name")) == 404
    # the admin sees every tenant's and acts for one by naming it
    assert ("a", "notes") in {(c["tenant"], c["name"]) for c in run(colls.list(ADMIN))}
    assert run(colls.list(ADMIN, "b")) == []
    assert run(colls.describe(ADMIN, "notes", "a"))["tenant"] == "a"
    assert status_of(colls.describe(ADMIN, "notes")) == 404  # its own tenant has none
    run(colls.delete(ADMIN, "notes", "a"))
    assert run(colls.list(ALICE)) == []


def test_documents_search_and_originals(state: ServerState, services: Services) -> None:
    colls = services.collections
    run(colls.create(ALICE, "docs"))
    state.tenants.workspace("a").collection("docs").ingest([str(SAMPLE)])
    docs, last_run = run(colls.documents(ALICE, "docs", base_url="http://x"))
    assert [d["source"] for d in docs] == [str(SAMPLE)] and last_run is not None
    doc_id = docs[0]["id"]
    assert docs[0]["content_url"] == f"http://x/v1/collections/docs/documents/{doc_id}/content"
    original = run(colls.original(ALICE, "docs", doc_id))
    assert original.path == SAMPLE and original.url is None and not original.inline_safe
    hits = run(colls.search(ALICE, "docs", "what is lamina", k=2, mode="bm25"))
    assert hits and hits[0]["doc_id"] == doc_id and "scores" in hits[0]
    # bob can neither read nor delete alice's document, even knowing its id
    assert status_of(colls.original(BOB, "docs", doc_id)) == 404
    assert status_of(colls.delete_document(BOB, "docs", doc_id)) == 404
    assert status_of(colls.original(ALICE, "docs", "doc-that-is-not")) == 404
    run(colls.delete_document(ADMIN, "docs", doc_id, "a"))
    assert run(colls.documents(ALICE, "docs"))[0] == []


# jobs ---------------------------------------------------------------------------------------------
def test_jobs_per_tenant(services: Services) -> None:
    run(services.collections.create(ALICE, "inbox"))
    jobs = services.jobs
    job = run(jobs.start_ingest(ALICE, "inbox", [Upload("../../a note.md", b"# Hi\n\nText.")]))
    assert job.tenant == "a" and [i.name for i in job.items] == ["a note.md"] and job.state == "queued"
    assert status_of(jobs.start_ingest(BOB, "inbox", [Upload("x.md", b"x")])) == 404
    assert status_of(jobs.start_ingest(ALICE, "inbox")) == 400
    assert status_of(jobs.start_ingest(ALICE, "inbox", urls=["ftp://example.com/x"])) == 400
    assert jobs.get(ALICE, job.id).id == job.id and jobs.get(ADMIN, job.id).id == job.id
    with pytest.raises(APIError) as err:
        jobs.get(BOB, job.id)
    assert err.value.status == 404
    assert [j.id for j in jobs.list(ALICE)] == [job.id] and jobs.list(BOB) == []
    assert [j.id for j in jobs.list(ADMIN)] == [job.id]
    assert [j.id for j in jobs.list(ADMIN, tenant="a", collection="inbox")] == [job.id]
    assert jobs.list(ALICE, collection="other") == []
    assert status_of(jobs.cancel(BOB, job.id)) == 404
    assert status_of(jobs.resume(ALICE, job.id)) == 409  # queued: nothing to resume
    assert run(jobs.cancel(ALICE, job.id)).state == "cancelled"
    assert status_of(jobs.cancel(ALICE, job.id)) == 409  # it has ended

    async def watched() -> list[dict[str, Any] | None]:
        async def connected() -> bool:
            return False

        return [e async for e in jobs.watch(job, connected)]

    events = run(watched())
    assert len(events) == 1 and events[0] is not None and events[0]["state"] == "cancelled"
    assert run(jobs.resume(ALICE, job.id)).state == "queued"


# keys ---------------------------------------------------------------------------------------------
def test_keys_are_for_admins(services: Services) -> None:
    keys = services.keys
    assert status_of(keys.list(ALICE)) == 403
    assert status_of(keys.create(ALICE, "sneaky", admin=True)) == 403
    info, secret = run(keys.create(ADMIN, "carol", tenant="c", limits=LimitSettings(budget_usd=5)))
    assert secret.startswith("lam_") and info.tenant == "c"
    assert "carol" in {k.name for k in run(keys.list(ADMIN))}
    assert keys.spent(info) == 0.0
    assert status_of(keys.create(ADMIN, "bad name!")) == 400
    run(keys.revoke(ADMIN, "carol"))
    assert status_of(keys.revoke(ADMIN, "carol")) == 404
    assert status_of(keys.revoke(ALICE, "carol")) == 403


# usage and the request log ------------------------------------------------------------------------
def test_usage_per_tenant(state: ServerState, services: Services) -> None:
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    for i, (key, tenant, status) in enumerate([("alice", "a", 200), ("alice", "a", 500), ("bob", "b", 200)]):
        state.request_log.add(
            LogRecord(now, f"req_{i}", "POST", "/v1/chat/completions", status, 5.0, key, tenant, "stub", 3, 4)
        )
    usage = services.usage

    async def summaries() -> tuple[Any, ...]:
        return (
            await usage.summary(ALICE, "key"),
            await usage.summary(ADMIN, "key"),
            await usage.recent(BOB),
            await usage.requests(ALICE, LogFilter(status="error")),
            await usage.choices(ALICE),
            await usage.buckets(ADMIN, "2000-01-01", 10, "key"),
        )

    alice, admin, bob_rows, errors, choices, buckets = run(summaries())
    assert [(r["key"], r["requests"], r["errors"]) for r in alice] == [("alice", 2, 1)]
    assert {r["key"]: r["requests"] for r in admin} == {"alice": 2, "bob": 1}
    assert [r["request_id"] for r in bob_rows] == ["req_2"]
    assert [r["status"] for r in errors] == [500]
    assert choices["key_names"] == ["alice"]
    assert {r["name"]: r["requests"] for r in buckets} == {"alice": 2, "bob": 1}
    row_id = errors[0]["id"]
    assert run(usage.request(ALICE, row_id)) is not None
    assert run(usage.request(BOB, row_id)) is None  # another tenant's request is not there
    assert run(usage.request(ADMIN, row_id)) is not None
