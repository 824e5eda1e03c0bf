"""Documents only their readers see, on a real server: search, documents, originals, grounded answers
and both answer caches, the SDK and the MCP tools; metadata filters over the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lamina.client import Lamina
from lamina.testing.inprocess import InProcessServer
from lamina.testing.server import finished_job
from lamina.testing.stub_upstream import StubUpstream
from tests.serve.test_mcp import McpSession, over_http
from tests.shared import stub_model_config

BUDGET = b"# Travel budget\n\nThe travel budget for 2025 is 48,000 euros, approved by the finance team.\n"
HANDBOOK = b"# Handbook\n\nOffice hours are 9 to 17. The travel policy asks for economy class.\n"
SALARIES = b"# Salaries\n\nThe salary review happens every March; raises average 3 percent.\n"


@pytest.fixture(scope="module")
def readers(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path
) -> Iterator[tuple[InProcessServer, dict[str, str]]]:
    """Both answer caches on; keys of tenant a in the finance group, the hr group and none."""
    with StubUpstream("ok") as stub:
        config = "[serve]\nsemantic_cache = true\n\n" + stub_model_config(stub)
        server = InProcessServer(tmp_path_factory.mktemp("readers"), models_dir, config=config)
        store = server.keys()
        keys = {
            "fin": store.create("fin", tenant="a", groups=["finance"])[1],
            "hr": store.create("hr", tenant="a", groups=["hr"])[1],
            "plain": store.create("plain", tenant="a")[1],
            "admin": store.create("admin", admin=True)[1],
        }
        store.engine.dispose()
        with server:
            with _http(server, keys["admin"]) as admin:
                admin.post("/v1/collections", json={"name": "kb"}, params={"tenant": "a"})
                for name, data, meta, groups in [
                    ("budget.md", BUDGET, {"year": 2025, "team": "finance"}, ["finance"]),
                    ("handbook.md", HANDBOOK, {"year": 2024, "team": "office"}, []),
                    ("salaries.md", SALARIES, {"year": 2025, "team": "hr"}, ["hr", "board"]),
                ]:
                    form = {"metadata": json.dumps(meta), "readers": groups}
                    job = admin.post(
                        "/v1/collections/kb/documents",
                        files={"files": (name, data)},
                        data=form,
                        params={"tenant": "a"},
                    )
                    assert job.status_code == 202, job.text
                    assert finished_job(admin, job.json()["id"])["state"] == "completed"
            yield server, keys


def _http(server: InProcessServer, key: str) -> httpx.Client:
    return server.http_client(headers={"Authorization": f"Bearer {key}"}, timeout=120)


def _search(http: httpx.Client, query: str, **extra: object) -> set[str]:
    r = http.post("/v1/collections/kb/search", json={"query": query, "k": 10, **extra})
    assert r.status_code == 200, r.text
    return {h["source"] for h in r.json()["data"]}


def test_each_key_finds_only_what_its_groups_may_read(
    readers: tuple[InProcessServer, dict[str, str]],
) -> None:
    server, keys = readers
    seen = {}
    for name in ("fin", "hr", "plain", "admin"):
        with _http(server, keys[name]) as http:
            params = {"tenant": "a"} if name == "admin" else {}
            found = http.post(
                "/v1/collections/kb/search", json={"query": "travel budget salary", "k": 10}, params=params
            )
            listed = http.get("/v1/collections/kb/documents", params=params).json()["data"]
            seen[name] = {h["source"] for h in found.json()["data"]}
            assert {d["source"] for d in listed} == seen[name]
    assert seen["fin"] == {"budget.md", "handbook.md"}
    assert seen["hr"] == {"salaries.md", "handbook.md"}
    assert seen["plain"] == {"handbook.md"}
    assert seen["admin"] == {"budget.md", "handbook.md", "salaries.md"}


def test_another_readers_document_is_a_404_everywhere(
    readers: tuple[InProcessServer, dict[str, str]],
) -> None:
    server, keys = readers
    with _http(server, keys["fin"]) as fin:
        docs = fin.get("/v1/collections/kb/documents").json()["data"]
        budget = next(d for d in docs if d["source"] == "budget.md")
        assert budget["readers"] == ["finance"] and budget["metadata"]["year"] == 2025
        assert fin.get(f"/v1/collections/kb/documents/{budget['id']}/content").status_code == 200
    with _http(server, keys["plain"]) as plain:
        for method, path in [
            ("GET", f"/v1/collections/kb/documents/{budget['id']}/content"),
            ("DELETE", f"/v1/collections/kb/documents/{budget['id']}"),
        ]:
            r = plain.request(method, path)
            assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error", r.text
        assert _search(plain, "travel budget", document=budget["id"]) == set()


def test_filters_narrow_and_never_widen(readers: tuple[InProcessServer, dict[str, str]]) -> None:
    server, keys = readers
    with _http(server, keys["fin"]) as fin:
        assert _search(fin, "travel", filter={"year": 2025}) == {"budget.md"}
        assert _search(fin, "travel", filter={"year": {"$lt": 2025}}) == {"handbook.md"}
        assert _search(fin, "salary", filter={"team": {"$in": ["hr", "finance"]}}) == {"budget.md"}
        assert _search(fin, "salary", filter={"team": "hr' OR '1'='1"}) == set()
        for bad in ({"team') OR 1=1 --": "x"}, {"year": {"$regex": "."}}, {"year": {"$in": 3}}):
            r = fin.post("/v1/collections/kb/search", json={"query": "salary", "filter": bad})
            assert r.status_code == 400 and r.json()["error"]["param"] == "filter", r.text
        hits = fin.post("/v1/collections/kb/search", json={"query": "travel budget", "k": 1}).json()["data"]
        assert hits[0]["metadata"] == {
            "modified": hits[0]["metadata"]["modified"],
            "team": "finance",
            "year": 2025,
        }
        chat = {"model": "stub", "messages": [{"role": "user", "content": "hi"}], "filter": {"year": 2025}}
        r = fin.post("/v1/chat/completions", json=chat)  # a filter without a collection narrows nothing
        assert r.status_code == 400 and r.json()["error"]["param"] == "filter"


def test_answers_and_both_caches_are_per_reader(readers: tuple[InProcessServer, dict[str, str]]) -> None:
    server, keys = readers

    def ask(http: httpx.Client, question: str) -> httpx.Response:
        body = {"model": "stub", "messages": [{"role": "user", "content": question}], "collection": "kb"}
        r = http.post("/v1/chat/completions", json=body | {"temperature": 0})
        assert r.status_code == 200, r.text
        return r

    with _http(server, keys["fin"]) as fin, _http(server, keys["plain"]) as plain:
        first = ask(fin, "What is the travel budget for 2025?")
        assert first.headers["x-lamina-cache"] == "miss"
        cited = {c["source"] for c in first.json()["choices"][0]["message"]["citations"]}
        assert "budget.md" in cited
        assert ask(fin, "What is the travel budget for 2025?").headers["x-lamina-cache"] == "hit"
        # the same question, and one of the same meaning, from a reader outside finance: never the
        # cached answer, and no citation of the budget
        for question in ("What is the travel budget for 2025?", "What is the 2025 travel budget?"):
            other = ask(plain, question)
            assert other.headers.get("x-lamina-cache") == "miss"
            message = other.json()["choices"][0]["message"]
            assert "budget.md" not in {c["source"] for c in message.get("citations", [])}
            assert "48,000" not in message["content"]


def test_the_sdk_uploads_with_metadata_and_readers_and_filters(
    readers: tuple[InProcessServer, dict[str, str]],
) -> None:
    server, keys = readers
    with Lamina(base_url=server.base_url, api_key=keys["hr"], http_client=server.http_client()) as client:
        job = client.documents.upload(
            "kb",
            [("memo.md", b"# Memo\n\nThe board meets in June.\n")],
            metadata={"kind": "memo"},
            readers=["hr"],
        )
        assert job.wait().state == "completed"
        hits = client.search("board meets", collection="kb", filter={"kind": "memo"})
        assert [h.source for h in hits] == ["memo.md"] and hits[0].metadata["kind"] == "memo"
        memo = next(d for d in client.documents.list("kb") if d.source == "memo.md")
        assert memo.readers == ["hr"] and memo.metadata["kind"] == "memo"
    with Lamina(base_url=server.base_url, api_key=keys["fin"], http_client=server.http_client()) as client:
        assert client.search("board meets", collection="kb", filter={"kind": "memo"}) == []


def test_mcp_tools_see_what_the_key_reads(readers: tuple[InProcessServer, dict[str, str]]) -> None:
    server, keys = readers
    for key, expected in (("fin", {"budget.md", "handbook.md"}), ("plain", {"handbook.md"})):
        session = McpSession(over_http(server, keys[key]))
        try:
            result = session.call("search", collection="kb", query="travel budget", k=10)
            passages = json.loads(result.content[0].text)["passages"]  # type: ignore[union-attr]
            assert {p["source"] for p in passages} == expected
            narrowed = session.call("search", collection="kb", query="travel", filter={"year": 2024})
            sources = {p["source"] for p in json.loads(narrowed.content[0].text)["passages"]}  # type: ignore[union-attr]
            assert sources == {"handbook.md"}
        finally:
            session.close()
