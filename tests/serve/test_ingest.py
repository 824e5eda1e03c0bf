"""Uploads and ingest jobs on a real server: progress, events, caps, sanitised names, original bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lamina.testing.server import finished_job, sse_events
from tests.conftest import DOCS, SCIFACT
from tests.shared import RunningServer


@pytest.fixture(scope="module")
def uploaded(served: RunningServer) -> dict[str, object]:
    with served.http("alice") as http:
        assert http.post("/v1/collections", json={"name": "uploads"}).status_code == 201
        files = [
            ("files", ("test.pdf", (DOCS / "test.pdf").read_bytes(), "application/pdf")),
            ("files", ("blog.html", (DOCS / "test_blog.html").read_bytes(), "text/html")),
            ("files", ("random.bin", (DOCS / "random.bin").read_bytes(), "application/octet-stream")),
            (
                "files",
                ("../../escape.md", b"# Escape\n\nThis file tried to leave its folder.\n", "text/markdown"),
            ),
        ]
        resp = http.post("/v1/collections/uploads/documents", files=files)
        assert resp.status_code == 202, resp.text
        job = resp.json()
        assert job["object"] == "ingest.job" and job["state"] in ("queued", "running")
        with http.stream("GET", f"/v1/jobs/{job['id']}/events") as events:
            seen = [json.loads(e) for e in sse_events(list(events.iter_lines()))]
        return {"job": job, "events": seen, "final": finished_job(http, job["id"])}


def test_job_reports_per_file_progress(uploaded: dict[str, object]) -> None:
    final = uploaded["final"]
    assert isinstance(final, dict) and final["state"] == "completed"
    states = {f["name"]: f for f in final["files"]}
    assert states["test.pdf"]["state"] == "done" and states["blog.html"]["state"] == "done"
    assert states["escape.md"]["state"] == "done"
    assert states["random.bin"]["state"] in ("failed", "skipped") and states["random.bin"]["detail"]


def test_events_stream_progress_until_the_end(uploaded: dict[str, object]) -> None:
    events = uploaded["events"]
    assert isinstance(events, list) and len(events) >= 2
    assert events[-1]["state"] == "completed"
    seen_states = {f["state"] for e in events for f in e["files"]}
    assert seen_states & {"queued", "extracting", "embedding"}


def test_path_traversal_lands_inside(served: RunningServer, uploaded: dict[str, object]) -> None:
    uploads = served.server.data_dir / "tenants" / "a" / "uploads" / "uploads"
    assert (uploads / "escape.md").is_file()
    assert not (served.server.data_dir / "tenants" / "escape.md").exists()
    assert not any(Path(served.server.data_dir).parent.glob("escape.md"))


def test_original_bytes_are_served(served: RunningServer, uploaded: dict[str, object]) -> None:
    with served.http("alice") as http:
        docs = {d["source"]: d for d in http.get("/v1/collections/uploads/documents").json()["data"]}
        assert set(docs) == {"test.pdf", "blog.html", "escape.md"}
        assert docs["blog.html"]["coverage"] > 0.95 and docs["test.pdf"]["coverage"] is None  # text kept
        pdf = http.get(docs["test.pdf"]["content_url"])
        assert pdf.status_code == 200 and pdf.content == (DOCS / "test.pdf").read_bytes()
        assert pdf.headers["content-type"] == "application/pdf"
        html = http.get(docs["blog.html"]["content_url"])
        assert html.headers["content-security-policy"] == "sandbox"  # its scripts never run here


def test_search_returns_the_cli_hit_shape(served: RunningServer, uploaded: dict[str, object]) -> None:
    with served.http("alice") as http:
        hits = http.post(
            "/v1/collections/uploads/search", json={"query": "large language models", "k": 3}
        ).json()
        bm25 = http.post("/v1/collections/uploads/search", json={"query": "escape", "mode": "bm25"}).json()
        bad = http.post("/v1/collections/uploads/search", json={"query": "x", "mode": "fuzzy"})
    assert len(hits["data"]) == 3
    assert {"chunk_id", "doc_id", "source", "title", "page", "headings", "score", "text", "scores"} <= set(
        hits["data"][0]
    )
    assert bm25["data"][0]["source"].endswith("escape.md")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "mode"


def test_upload_caps(served: RunningServer) -> None:
    with served.http("alice") as http:
        http.post("/v1/collections", json={"name": "caps"})
        big = http.post(
            "/v1/collections/caps/documents", files={"files": ("big.txt", b"a" * (1024 * 1024 + 10))}
        )
        assert big.status_code == 413 and big.json()["error"]["code"] == "file_too_large"
        many = [("files", (f"f{i}.txt", b"b" * 900_000)) for i in range(4)]
        assert http.post("/v1/collections/caps/documents", files=many).status_code == 413
        empty = http.post("/v1/collections/caps/documents", data={"urls": "ftp://example.com/x"})
        assert empty.status_code == 400
        assert (
            http.post("/v1/collections/nope/documents", files={"files": ("a.txt", b"a")}).status_code == 404
        )


def test_delete_document(served: RunningServer) -> None:
    with served.http("alice") as http:
        http.post("/v1/collections", json={"name": "deletes"})
        job = http.post(
            "/v1/collections/deletes/documents",
            files={
                "files": (
                    "gone.md",
                    b"# Gone\n\nThis document about tidal energy will be deleted again by the test.\n",
                )
            },
        )
        assert finished_job(http, job.json()["id"])["state"] == "completed"
        doc = http.get("/v1/collections/deletes/documents").json()["data"][0]
        assert http.delete(f"/v1/collections/deletes/documents/{doc['id']}").status_code == 200
        assert http.get("/v1/collections/deletes/documents").json()["data"] == []
        assert http.get(doc["content_url"]).status_code == 404


def test_cancel_a_job(served: RunningServer) -> None:
    corpus = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").read_text().splitlines()[100:124]]
    files = [("files", (f"{d['_id']}.md", f"# {d['title']}\n\n{d['text']}\n".encode())) for d in corpus]
    with served.http("alice") as http:
        http.post("/v1/collections", json={"name": "cancelled"})
        job = http.post("/v1/collections/cancelled/documents", files=files).json()
        cancelled = http.delete(f"/v1/jobs/{job['id']}")
        assert cancelled.status_code == 200
        final = finished_job(http, job["id"])
        assert final["state"] == "cancelled" and final["resumable"]
        assert final["counts"].get("done", 0) < len(files)
        assert http.delete(f"/v1/jobs/{job['id']}").status_code == 409  # already ended
        with served.http("bob") as bob:
            assert bob.get(f"/v1/jobs/{job['id']}").status_code == 404  # another tenant's job
        assert http.post(f"/v1/jobs/{job['id']}/resume").status_code == 202
        assert finished_job(http, job["id"])["state"] == "completed"
        assert len(http.get("/v1/collections/cancelled/documents").json()["data"]) == len(files)
