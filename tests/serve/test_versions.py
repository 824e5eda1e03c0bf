"""Collection versions over HTTP: a reindex job while answers are served, an atomic switch, a rollback,
and the admin-only rules."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from lamina.testing.server import until
from tests.shared import RunningServer

DOC = (
    "# Warranty\n\n"
    + " ".join(
        f"Clause {i}: the warranty covers defects in materials for {i + 1} years and is honoured "
        "by any of our shops on presentation of the receipt."
        for i in range(8)
    )
    + "\n"
)


def _job_done(http: httpx.Client, job_id: str) -> dict[str, Any] | None:
    job = http.get(f"/v1/jobs/{job_id}").json()
    assert job["state"] not in ("failed", "cancelled", "interrupted"), job
    return job if job["state"] == "completed" else None


def test_reindex_while_answering_then_switch_and_rollback(served: RunningServer) -> None:
    with served.http("admin") as admin:
        assert admin.post("/v1/collections", json={"name": "manual"}).status_code == 201
        job = admin.post("/v1/collections/manual/documents", files={"files": ("warranty.md", DOC)}).json()
        until(lambda: _job_done(admin, job["id"]), timeout_s=120, what="the upload")

        seen: list[tuple[int, set[int]]] = []
        stop = threading.Event()

        def answer_all_the_time() -> None:
            with served.http("admin") as http:
                while not stop.is_set():
                    r = http.post("/v1/collections/manual/search", json={"query": "warranty years", "k": 3})
                    seen.append((r.status_code, {h["version"] for h in r.json().get("data", [])}))
                    chat = http.post(
                        "/v1/chat/completions",
                        json={
                            "model": "stub",
                            "collection": "manual",
                            "messages": [{"role": "user", "content": "How long is the warranty?"}],
                        },
                    )
                    seen.append((chat.status_code, set()))

        reader = threading.Thread(target=answer_all_the_time)
        reader.start()
        try:
            started = admin.post(
                "/v1/collections/manual/versions", json={"chunk_tokens": 24, "overlap_tokens": 0}
            )
            assert started.status_code == 202, started.text
            assert (
                started.json()["object"] == "reindex.job"
                and started.json()["files"][0]["name"] == "warranty.md"
            )
            done = until(lambda: _job_done(admin, started.json()["id"]), timeout_s=120, what="the reindex")
            assert done["report"]["version"]["version"] == 2
            versions = admin.get("/v1/collections/manual/versions").json()["data"]
            assert [(v["version"], v["live"], v["state"]) for v in versions] == [
                (1, True, "ready"),
                (2, False, "ready"),
            ]
            assert versions[1]["chunks"] > versions[0]["chunks"] and versions[1]["chunk_tokens"] == 24

            switched = admin.post("/v1/collections/manual/switch", json={"version": 2})
            assert switched.status_code == 200 and switched.json()["live"]
            after = admin.post("/v1/collections/manual/search", json={"query": "warranty years"}).json()
            assert {h["version"] for h in after["data"]} == {2}  # at once, not eventually
            assert admin.get("/v1/collections/manual").json()["version"] == 2

            back = admin.post("/v1/collections/manual/rollback")
            assert back.status_code == 200 and back.json()["version"] == 1
            after = admin.post("/v1/collections/manual/search", json={"query": "warranty years"}).json()
            assert {h["version"] for h in after["data"]} == {1}
            until(lambda: len(seen) > 10, what="answers during the reindex")
        finally:
            stop.set()
            reader.join()
        assert all(status == 200 for status, _ in seen), [s for s in seen if s[0] != 200][:3]
        assert all(len(v) <= 1 for _, v in seen)  # each answer from one version, never a mix

        live_drop = admin.delete("/v1/collections/manual/versions/1")
        assert live_drop.status_code == 409 and live_drop.json()["error"]["code"] == "version_conflict"
        assert admin.delete("/v1/collections/manual/versions/2").json()["deleted"]
        missing = admin.post("/v1/collections/manual/switch", json={"version": 2})
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
        bad = admin.post("/v1/collections/manual/versions", json={"chunk_tokens": 1})
        assert bad.status_code == 400 and "chunk_tokens" in bad.text
        odd = admin.post("/v1/collections/manual/versions", json={"store": "os:system"})
        assert odd.status_code == 400  # a store is one of the built-in backends, never a module path


def test_versions_are_for_admins_and_stay_in_their_tenant(served: RunningServer) -> None:
    with served.http("alice") as alice:
        alice.post("/v1/collections", json={"name": "mine"})
        refused = alice.get("/v1/collections/mine/versions")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_only"
        assert alice.post("/v1/collections/mine/rollback").status_code == 403
    with served.http("admin") as admin:
        assert admin.get("/v1/collections/mine/versions").status_code == 404  # admin's own tenant
        theirs = admin.get("/v1/collections/mine/versions", params={"tenant": "a"})
        assert theirs.status_code == 200 and [v["version"] for v in theirs.json()["data"]] == [1]
