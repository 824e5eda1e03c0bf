"""Sources through the CLI, lamina.toml and the API: added, listed, synced by the server's worker on
request and on schedule, removed with their documents. Only admins add, sync or remove one (a source
reads from the server's side). A sync killed with SIGKILL: tests/system/data/test_sources_kill.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lamina.testing.inprocess import InProcessServer
from lamina.testing.server import until
from tests.cli_runner import lamina


def _folder(root: Path, n: int, word: str = "harbour") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"note-{i:03d}.md").write_text(
            f"# Note {i}\n\nThe {word} log entry {i} says the tide was high.\n"
        )
    return root


def test_cli_add_list_sync_remove(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "notes", 3)
    lamina(
        "sources",
        "add",
        "notes",
        "folder",
        f"path={folder}",
        "-c",
        "kb",
        "--reader",
        "crew",
        "--meta",
        "site=port",
    )
    listed = json.loads(lamina("sources", "list", "--json").stdout)
    assert [(s["name"], s["spec"]["kind"], s["last_status"]) for s in listed] == [("notes", "folder", None)]
    synced = json.loads(lamina("sources", "sync", "notes", "-c", "kb", "--json").stdout)
    assert synced[0]["status"] == "completed" and synced[0]["report"]["ingested"] == 3
    docs = json.loads(lamina("documents", "-c", "kb", "--json").stdout)["documents"]
    assert len(docs) == 3 and all(d["origin"] and d["readers"] == ["crew"] for d in docs)
    assert docs[0]["metadata"]["site"] == "port" and docs[0]["metadata"]["path"] == "note-000.md"
    (folder / "note-000.md").unlink()
    again = json.loads(lamina("sources", "sync", "-c", "kb", "--json").stdout)[0]["report"]
    assert (again["ingested"], again["unchanged"], again["deleted"]) == (0, 2, 1)
    table = lamina("sources", "list", env={"COLUMNS": "200"}).stdout
    assert "notes" in table and "+0 =2 -1" in table
    bad = lamina("sources", "add", "x", "s3", "bucket=b", "secret_key=hunter2", "-c", "kb", check=False)
    assert bad.returncode != 0 and "hunter2" not in bad.stdout + bad.stderr
    gone = lamina("sources", "remove", "notes", "-c", "kb")
    assert "2 document(s) deleted" in gone.stdout
    assert json.loads(lamina("documents", "-c", "kb", "--json").stdout)["documents"] == []


def test_sources_in_lamina_toml_sync_when_due(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "notes", 2)
    config = tmp_path / "lamina.toml"
    config.write_text(
        f'[[sources]]\ncollection = "kb"\nname = "notes"\nevery = "1h"\nreaders = ["crew"]\n'
        f'spec = {{ kind = "folder", path = "{folder}" }}\n'
    )
    env = {"LAMINA_CONFIG": str(config)}
    done = json.loads(lamina("sources", "sync", "--due", "--json", env=env).stdout)
    assert [(r["source"], r["status"]) for r in done] == [("notes", "completed")]
    assert json.loads(lamina("sources", "sync", "--due", "--json", env=env).stdout) == []  # next: in 1 h
    listed = json.loads(lamina("sources", "list", "--json", env=env).stdout)[0]
    assert listed["every_s"] == 3600 and listed["readers"] == ["crew"] and listed["next_sync_at"]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path
) -> Iterator[tuple[InProcessServer, dict[str, str]]]:
    config = "[serve]\nsource_poll_s = 0.5\n"
    srv = InProcessServer(tmp_path_factory.mktemp("sources"), models_dir, config=config)
    store = srv.keys()
    keys = {"admin": store.create("admin", admin=True)[1], "alice": store.create("alice")[1]}
    store.engine.dispose()
    with srv:
        yield srv, keys


def _http(server: InProcessServer, key: str) -> httpx.Client:
    return server.http_client(headers={"Authorization": f"Bearer {key}"}, timeout=60)


def test_the_api_adds_syncs_and_removes_sources_for_admins_only(
    server: tuple[InProcessServer, dict[str, str]], tmp_path: Path
) -> None:
    srv, keys = server
    folder = _folder(tmp_path / "api", 2, "lighthouse")
    spec = {"name": "notes", "spec": {"kind": "folder", "path": str(folder)}, "readers": ["crew"]}
    with _http(srv, keys["admin"]) as admin, _http(srv, keys["alice"]) as alice:
        assert admin.post("/v1/collections", json={"name": "kb"}).status_code == 201
        refused = alice.post("/v1/collections/kb/sources", json=spec)
        assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
        bad = admin.post(
            "/v1/collections/kb/sources",
            json={"name": "s", "spec": {"kind": "s3", "bucket": "b", "token": "t0ps3cret"}},
        )
        assert bad.status_code == 400 and "t0ps3cret" not in bad.text
        added = admin.post("/v1/collections/kb/sources", json=spec)
        assert added.status_code == 201, added.text
        assert alice.post("/v1/collections/kb/sources/notes/sync").status_code == 403
        assert admin.post("/v1/collections/kb/sources/notes/sync").status_code == 202
        synced = until(
            lambda: next(
                (s for s in alice.get("/v1/collections/kb/sources").json()["data"] if s["last_status"]), None
            ),
            timeout_s=60,
            what="the server's worker to sync the source",
        )
        assert synced["last_status"] == "completed" and synced["last_report"]["ingested"] == 2
        assert alice.get("/v1/collections/kb/documents").json()["data"] == []  # readers: crew only
        assert len(admin.get("/v1/collections/kb/documents").json()["data"]) == 2
        assert admin.delete("/v1/collections/kb/sources/missing").status_code == 404
        removed = admin.delete("/v1/collections/kb/sources/notes").json()
        assert removed["documents_deleted"] == 2
        assert admin.get("/v1/collections/kb/sources").json()["data"] == []


def test_a_scheduled_source_syncs_on_its_own(
    server: tuple[InProcessServer, dict[str, str]], tmp_path: Path
) -> None:
    srv, keys = server
    folder = _folder(tmp_path / "sched", 1, "ferry")
    with _http(srv, keys["admin"]) as admin:
        admin.post("/v1/collections", json={"name": "timed"})
        body = {"name": "timed", "spec": {"kind": "folder", "path": str(folder)}, "every_s": 60}
        assert admin.post("/v1/collections/timed/sources", json=body).status_code == 201
        until(
            lambda: (
                admin.get("/v1/collections/timed/sources").json()["data"][0]["last_status"] == "completed"
            ),
            timeout_s=60,
            what="the first scheduled sync",
        )
        hits = admin.post("/v1/collections/timed/search", json={"query": "ferry log"}).json()["data"]
        assert hits and hits[0]["metadata"]["path"] == "note-000.md"
