"""The pgvector store beyond its contract: a kill -9 mid-ingest re-runs to the exact end state, and
tenants (a schema each) can't reach each other's rows, not even with a crafted filter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from lamina.config import Settings, load_settings, tenant_schema
from lamina.data.collection import Workspace
from lamina.data.embed.onnx import OnnxMiniLM
from lamina.data.reindex import ReindexOptions, reindex
from lamina.data.store import Where, make_store
from lamina.data.store.pgvector import PgVectorStore
from lamina.data.types import Chunk, doc_id_for
from lamina.testing.server import share_models
from tests.cli_runner import lamina
from tests.conftest import SCIFACT


def _settings(data_dir: Path, postgres_url: str, tenant: str) -> Settings:
    return load_settings(
        data_dir=data_dir, database_url=postgres_url, tenant=tenant, store={"backend": "pgvector"}
    )


def _documents_recorded(postgres_url: str, tenant: str) -> int:
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            table = f'"{tenant_schema(tenant)}".documents'
            if conn.execute(sa.text(f"SELECT to_regclass('{table}')")).scalar() is None:
                return 0
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() or 0)
    finally:
        engine.dispose()


def _chunk_ids(ws: Workspace) -> list[str]:
    store = ws.collection("kb").store
    assert isinstance(store, PgVectorStore)
    with store.engine.connect() as conn:
        return [r[0] for r in conn.exec_driver_sql('SELECT chunk_id FROM "lc_kb"')]


def test_kill_9_mid_ingest_then_rerun_is_exact_on_pgvector(
    tmp_path: Path, postgres_url: str, embedder: OnnxMiniLM, models_dir: Path
) -> None:
    folder = tmp_path / "abstracts"
    folder.mkdir()
    docs = 24  # six commits of four, killed after the second
    for line in (SCIFACT / "corpus.jsonl").read_text().splitlines()[:docs]:
        doc = json.loads(line)
        (folder / f"{doc['_id']}.md").write_text(f"# {doc['title']}\n\n{doc['text']}\n")
    tenant = f"k{uuid.uuid4().hex[:8]}"
    share_models(tmp_path / "data", models_dir)  # the session's embedder graphs, not a build of its own
    env = {
        "LAMINA_DATA_DIR": str(tmp_path / "data"),
        "LAMINA_DATABASE_URL": postgres_url,
        "LAMINA_TENANT": tenant,
        "LAMINA_STORE__BACKEND": "pgvector",
        "LAMINA_INGEST__BATCH_DOCUMENTS": "4",
    }
    args = ["ingest", str(folder), "-c", "kb", "--json"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "lamina", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while _documents_recorded(postgres_url, tenant) < 8:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert 8 <= _documents_recorded(postgres_url, tenant) < docs
    report = json.loads(lamina(*args, env=env).stdout)  # the same command, run again
    assert report["unchanged"] + report["ingested"] == docs

    resumed = Workspace(_settings(tmp_path / "data", postgres_url, tenant), embedder=embedder)
    clean = Workspace(
        _settings(tmp_path / "clean", postgres_url, f"c{uuid.uuid4().hex[:8]}"), embedder=embedder
    )
    try:
        clean.collection("kb", create=True).ingest([str(folder)])  # never interrupted
        got, want = _chunk_ids(resumed), _chunk_ids(clean)
        assert len(got) == len(set(got)) and sorted(got) == sorted(want)
        coll = resumed.collection("kb")
        assert {d.source: d.chunks for d in coll.documents()} == coll.store.sources()
    finally:
        resumed.registry.close()
        clean.registry.close()


def test_tenants_cannot_reach_each_others_rows(tmp_path: Path, postgres_url: str) -> None:
    a = make_store(_settings(tmp_path, postgres_url, f"a{uuid.uuid4().hex[:8]}"), "kb", 4)
    b = make_store(_settings(tmp_path, postgres_url, f"b{uuid.uuid4().hex[:8]}"), "kb", 4)
    secret = Chunk(doc_id_for("/secret.md"), "/secret.md", "", (), None, 0, 6, "secret plans", 2, 0)
    a.replace_documents(["/secret.md"], [secret], np.asarray([[1, 0, 0, 0]], dtype=np.float32))
    assert a.lexical("secret", 5) and b.count() == 0 and b.lexical("secret", 5) == []
    q = np.asarray([1, 0, 0, 0], dtype=np.float32)
    for crafted in (
        Where(source_glob="*' OR '1'='1"),
        Where(document="x' OR '1'='1"),
        Where(document='x"; SELECT * FROM "lc_kb"; --'),
    ):
        assert b.dense(q, 5, crafted) == [] and b.lexical("secret", 5, crafted) == []
        assert a.dense(q, 5, crafted) == []  # a filter is a parameter, never SQL
    assert [h.source for h in a.dense(q, 5, Where(document="/secret.md"))] == ["/secret.md"]


def test_moving_a_collection_to_pgvector_is_a_reindex_that_copies_vectors(
    tmp_path: Path, postgres_url: str, embedder: OnnxMiniLM
) -> None:
    folder = tmp_path / "abstracts"
    folder.mkdir()
    for line in (SCIFACT / "corpus.jsonl").read_text().splitlines()[:12]:
        doc = json.loads(line)
        (folder / f"{doc['_id']}.md").write_text(f"# {doc['title']}\n\n{doc['text']}\n")
    settings = load_settings(
        data_dir=tmp_path / "data", database_url=postgres_url, tenant=f"m{uuid.uuid4().hex[:8]}"
    )
    ws = Workspace(settings, embedder=embedder)  # the default store: LanceDB
    try:
        ws.collection("kb", create=True).ingest([str(folder)])
        moved = reindex(ws, "kb", ReindexOptions(store="pgvector"), switch=True)
        assert moved.report.chunks_embedded == 0 and moved.vectors_copied == moved.version.chunks > 0
        assert [v.spec.store for v in ws.versions.list("kb")] == ["lancedb", "pgvector"]
        live, old = ws.collection("kb"), ws.collection("kb", version=1)
        assert isinstance(live.store, PgVectorStore) and live.store.count() == old.store.count()
        for query in ("bone mineral density", "cancer cells in mice"):
            assert (
                live.search(query, 3, mode="dense")[0].chunk_id
                == old.search(query, 3, mode="dense")[0].chunk_id
            )
            assert {h.chunk_id for h in live.search(query, 5, mode="bm25")} == {
                h.chunk_id for h in old.search(query, 5, mode="bm25")
            }
    finally:
        ws.registry.close()
