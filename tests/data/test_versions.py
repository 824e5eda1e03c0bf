"""Collection versions in the data layer: a rebuild beside the live version, switch, rollback, resume,
vectors copied for the same embedder and never mixed across embedders."""

from __future__ import annotations

from pathlib import Path

import pytest

from lamina.config import load_settings
from lamina.data.collection import Workspace
from lamina.data.embed.onnx import VARIANT_NAMES
from lamina.data.reindex import ReindexOptions, reindex
from lamina.data.store import make_store
from lamina.errors import CollectionNotFound, EmbeddingMismatch, IngestCancelled, LaminaError

TOPICS = ["refunds", "shipping", "warranty", "returns", "invoices", "accounts"]


def _docs(root: Path) -> Path:
    folder = root / "docs"
    folder.mkdir()
    for i, topic in enumerate(TOPICS):
        body = " ".join(
            f"The {topic} policy, clause {j}: customers of plan {i} are covered for {j + 2} weeks "
            f"and may ask support to review a {topic} case by mail or phone."
            for j in range(6)
        )
        (folder / f"{topic}.md").write_text(
            f"# {topic.title()}\n\n{body}\n\n## Contact\n\nWrite to {topic}@example.com.\n"
        )
    return folder


class _StopAfter:
    """A ``Progress`` that stops the run once ``n`` documents are written (as Ctrl-C would)."""

    def __init__(self, n: int) -> None:
        self.n, self.done = n, 0

    def start(self, total: int | None) -> None:
        pass

    def advance(self, *, documents: int = 0, chunks: int = 0, tokens: int = 0) -> None:
        pass

    def file(self, source: str, state: str, detail: str = "") -> None:
        if state == "done":
            self.done += 1
            if self.done >= self.n:
                raise IngestCancelled("stopped by the test")


def test_a_version_is_built_beside_the_live_one_then_switched_and_rolled_back(
    tmp_path: Path, workspace: Workspace
) -> None:
    live = workspace.collection("kb", create=True)
    live.ingest([str(_docs(tmp_path))])
    before = [h.chunk_id for h in live.search("warranty cover", k=3)]

    result = reindex(workspace, "kb", ReindexOptions(chunk_tokens=24, overlap_tokens=0))
    built = result.version
    assert (built.number, built.state, built.live) == (2, "ready", False)
    v1 = workspace.versions.get("kb", 1)
    assert built.spec.chunk_tokens == 24 and built.chunks > v1.chunks > 0  # smaller chunks, more of them
    again = workspace.collection("kb")
    assert again.info.version == 1 and [h.chunk_id for h in again.search("warranty cover", k=3)] == before

    in_flight = workspace.collection("kb")  # a request that opened the collection before the switch
    assert workspace.versions.switch("kb", 2).live
    switched = workspace.collection("kb")
    assert switched.info.version == 2 and switched.info.chunks == built.chunks
    assert switched.chunking.chunk_tokens == 24
    assert all(len(h.text) < 300 for h in switched.search("warranty cover", k=3))
    assert [h.chunk_id for h in in_flight.search("warranty cover", k=3)] == before  # finishes on v1
    assert {c.name: c.version for c in workspace.collections()} == {"kb": 2}

    # a document ingested now goes to the live version, with its chunking
    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "new.md").write_text("# Gift cards\n\n" + "Gift cards never expire and can be split. " * 12)
    switched.ingest([str(extra)])
    assert workspace.versions.get("kb", 2).documents == len(TOPICS) + 1
    assert workspace.versions.get("kb", 1).documents == len(TOPICS)

    with pytest.raises(LaminaError, match="is live"):
        workspace.drop_version("kb", 2)
    rolled = workspace.versions.rollback("kb")
    assert rolled.number == 1 and workspace.collection("kb").info.version == 1
    assert workspace.versions.get("kb", 2).previous
    dropped = workspace.drop_version("kb", 2)
    assert [v.number for v in workspace.versions.list("kb")] == [1]
    assert make_store(workspace.settings, dropped.key, dropped.spec.dim).count() == 0
    with pytest.raises(CollectionNotFound):
        workspace.versions.switch("kb", 2)
    with pytest.raises(LaminaError, match="no previous version"):
        workspace.versions.rollback("kb")
    with pytest.raises(LaminaError, match="kept for versions"):
        workspace.collection("kb--v3", create=True)


def test_an_interrupted_reindex_resumes_and_copies_vectors_of_the_same_embedder(
    tmp_path: Path, workspace: Workspace
) -> None:
    workspace.settings.ingest.batch_documents = 2
    live = workspace.collection("kb", create=True)
    live.ingest([str(_docs(tmp_path))])

    stopped = reindex(workspace, "kb", progress=_StopAfter(2))
    assert stopped.report.status == "cancelled" and stopped.version.state == "building"
    with pytest.raises(LaminaError, match="still being built"):
        workspace.versions.switch("kb", stopped.version.number)

    resumed = reindex(workspace, "kb", switch=True)
    assert resumed.resumed and resumed.version.number == stopped.version.number == 2
    assert resumed.report.unchanged == 2 and resumed.report.ingested == len(TOPICS) - 2
    assert resumed.report.chunks_embedded == 0 and resumed.vectors_copied == resumed.report.chunks_written
    assert resumed.switched and resumed.version.live and resumed.version.chunks == live.store.count()
    new = workspace.collection("kb")
    assert [h.chunk_id for h in new.search("refunds")] == [h.chunk_id for h in live.search("refunds")]


def test_a_version_with_another_embedder_never_mixes_vectors(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "lamina-data")  # embedding.variant = "auto"
    ws = Workspace(settings)
    ws.settings.ingest.batch_documents = 2
    live = ws.collection("kb", create=True)
    live.ingest([str(_docs(tmp_path))])
    int8, fp32 = VARIANT_NAMES["int8"], VARIANT_NAMES["fp32"]
    assert live.embedder.name == int8

    half = reindex(ws, "kb", ReindexOptions(embedding_variant="fp32"), progress=_StopAfter(2))
    assert half.version.state == "building" and half.version.spec.embedding_model == fp32
    same = reindex(ws, "kb")  # int8 again: does not continue the fp32 build
    assert same.version.number == 3 and same.version.spec.embedding_model == int8
    assert same.report.chunks_embedded == 0  # copied from the live int8 version
    other = reindex(ws, "kb", ReindexOptions(embedding_variant="fp32"))
    assert other.resumed and other.version.number == 2
    assert other.vectors_copied == 0 and other.report.chunks_embedded == other.report.chunks_written > 0

    ws.versions.switch("kb", 2)
    now = ws.collection("kb")
    assert now.embedder.name == fp32 and now.search("shipping weeks", k=1)[0].source.endswith("shipping.md")
    pinned = Workspace(load_settings(data_dir=tmp_path / "lamina-data", embedding={"variant": "int8"}))
    with pytest.raises(EmbeddingMismatch, match="lamina reindex -c kb"):
        pinned.collection("kb")  # this configuration cannot embed queries for the live fp32 version
    ws.registry.close()
    pinned.registry.close()
