"""Keys and tenants on a real server: hashed keys, isolation on every endpoint, admin rights."""

from __future__ import annotations

import sqlite3

import openai
import pytest

from lamina.config import load_settings
from lamina.testing.server import finished_job
from tests.shared import RunningServer

DOC = b"# Refunds\n\nRefunds are paid within 14 days to the original payment method.\n"


@pytest.fixture(scope="module")
def alice_collection(served: RunningServer) -> str:
    with served.http("alice") as http:
        assert http.post("/v1/collections", json={"name": "private"}).status_code == 201
        job = http.post("/v1/collections/private/documents", files={"files": ("refunds.md", DOC)}).json()
        assert finished_job(http, job["id"])["state"] == "completed"
    return "private"


def test_keys_are_stored_only_as_hashes(served: RunningServer) -> None:
    db = load_settings(data_dir=served.server.data_dir).data_dir / "gateway.db"
    dump = "\n".join(sqlite3.connect(db).iterdump())
    for key in served.keys.values():
        assert key not in dump and key[4:] not in dump


def test_other_tenants_collection_is_404_everywhere(served: RunningServer, alice_collection: str) -> None:
    name = alice_collection
    with served.http("alice") as alice:
        doc_id = alice.get(f"/v1/collections/{name}/documents").json()["data"][0]["id"]
    with served.http("bob") as bob:
        assert name not in {c["name"] for c in bob.get("/v1/collections").json()["data"]}
        for method, path, kwargs in [
            ("GET", f"/v1/collections/{name}/documents", {}),
            ("POST", f"/v1/collections/{name}/search", {"json": {"query": "refunds"}}),
            ("POST", f"/v1/collections/{name}/documents", {"files": {"files": ("x.md", b"# x\n\ny\n")}}),
            ("GET", f"/v1/collections/{name}/documents/{doc_id}/content", {}),
            ("DELETE", f"/v1/collections/{name}/documents/{doc_id}", {}),
            ("DELETE", f"/v1/collections/{name}", {}),
        ]:
            resp = bob.request(method, path, **kwargs)
            assert resp.status_code == 404, (method, path, resp.text)
            assert resp.json()["error"]["type"] == "not_found_error"
        chat = {
            "model": "gemma-3-270m",
            "messages": [{"role": "user", "content": "refunds?"}],
            "collection": name,
        }
        assert bob.post("/v1/chat/completions", json=chat).status_code == 404
        assert bob.post("/v1/chat/completions", json=chat | {"model": f"rag:{name}"}).status_code == 404
        # bob may make his own collection of the same name: names are per tenant
        assert bob.post("/v1/collections", json={"name": name}).status_code == 201
        assert bob.get(f"/v1/collections/{name}/documents").json()["data"] == []
    bob_models = {m.id for m in served.client("bob").models.list().data}
    alice_models = {m.id for m in served.client("alice").models.list().data}
    assert f"rag:{name}" in alice_models and f"rag:{name}" in bob_models  # each sees its own


def test_admin_sees_every_tenant(served: RunningServer, alice_collection: str) -> None:
    with served.http("admin") as admin:
        listed = admin.get("/v1/collections").json()["data"]
        assert any(c["name"] == alice_collection and c["tenant"] == "a" for c in listed)
        docs = admin.get(f"/v1/collections/{alice_collection}/documents", params={"tenant": "a"})
        assert docs.status_code == 200 and len(docs.json()["data"]) == 1
    with served.http("bob") as bob:
        resp = bob.get(f"/v1/collections/{alice_collection}/documents", params={"tenant": "a"})
        assert resp.status_code == 403


def test_key_limited_to_models(served: RunningServer) -> None:
    client = served.client("stub-only")
    assert {m.id for m in client.models.list().data} == {"stub"}
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="gemma-3-270m", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.PermissionDeniedError):
        client.embeddings.create(model="all-MiniLM-L6-v2/onnx-int8-dynamic", input="hi")
    r = client.chat.completions.create(model="stub", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content


def test_keys_api_create_list_revoke(served: RunningServer) -> None:
    with served.http("admin") as admin:
        created = admin.post("/v1/keys", json={"name": "temp", "tenant": "c"}).json()
        key = created["key"]
        assert key.startswith("lam_") and created["tenant"] == "c"
        listed = admin.get("/v1/keys").json()["data"]
        assert any(k["name"] == "temp" for k in listed) and all("key" not in k for k in listed)
        assert key not in admin.get("/v1/keys").text
        temp = openai.OpenAI(
            base_url=served.base_url, api_key=key, max_retries=0, http_client=served.server.http_client()
        )
        assert temp.models.list().data
        assert admin.delete("/v1/keys/temp").status_code == 200
        with pytest.raises(openai.AuthenticationError):
            temp.models.list()
    with served.http("alice") as alice:
        assert alice.get("/v1/keys").status_code == 403
        assert alice.post("/v1/keys", json={"name": "sneaky", "admin": True}).status_code == 403


def test_request_log_records_requests_without_secrets(served: RunningServer) -> None:
    served.client("alice").embeddings.create(model="all-MiniLM-L6-v2/onnx-int8-dynamic", input="hello")
    with served.http("admin") as admin:
        rows = admin.get("/v1/logs", params={"limit": 200}).json()["data"]
    emb = next(r for r in rows if r["route"] == "/v1/embeddings" and r["key_name"] == "alice")
    assert emb["tenant"] == "a" and emb["status"] == 200 and emb["embedding_tokens"] > 0
    assert emb["request_id"].startswith("req_") and emb["latency_ms"] > 0
    with served.http("alice") as alice:
        mine = alice.get("/v1/logs").json()["data"]
    assert {r["tenant"] for r in mine} == {"a"}
    log = served.server.log()
    assert all(key not in log for key in served.keys.values())
