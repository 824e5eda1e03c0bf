"""Ingestion through the real pipeline: idempotence, updates, sync, bad files, model mismatch."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lamina.data.collection import Collection, Workspace
from lamina.data.registry import Registry
from lamina.data.store.lance import LanceStore
from lamina.errors import EmbeddingMismatch, LaminaError
from tests.conftest import DOCS

CORPUS = [
    "test.docx",
    "test_blog.html",
    "REPAIR-2022-INV-001_multipage.pdf",
    "test_mskanji.csv",
    "random.bin",
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    for name in CORPUS[:3]:
        shutil.copy(DOCS / name, root / name)
    for name in CORPUS[3:]:
        shutil.copy(DOCS / name, root / "sub" / name)
    (root / "notes.md").write_text(
        "# Notes\n\nThe quarterly offsite is in Lisbon this year, on the 4th of May.\n"
    )
    (root / "empty.txt").write_text("")
    (root / ".hidden.md").write_text("# Hidden\n\nThis file is hidden and must not be ingested by default.\n")
    return root


def _store_sources(ws: Workspace, name: str) -> dict[str, int]:
    return ws.collection(name).store.sources()


def test_ingest_reports_and_reingest_embeds_nothing(workspace: Workspace, folder: Path) -> None:
    coll = workspace.collection("kb", create=True)
    first = coll.ingest([str(folder)])
    assert (first.ingested, first.skipped, first.failed) == (5, 2, 0)
    assert {Path(e["source"]).name: e["reason"] for e in first.errors} == {
        "random.bin": "unsupported format",
        "empty.txt": "empty file",
    }
    assert first.chunks_written == coll.store.count() > 5
    registry_counts = {d.source: d.chunks for d in coll.documents()}
    assert registry_counts == coll.store.sources()
    assert not any(".hidden" in s for s in registry_counts)

    again = coll.ingest([str(folder)])
    assert (again.ingested, again.unchanged, again.chunks_embedded, again.tokens_embedded) == (0, 5, 0, 0)
    assert coll.store.count() == first.chunks_written


def test_changed_file_replaces_its_chunks_and_sync_removes_gone_ones(
    workspace: Workspace, folder: Path
) -> None:
    coll = workspace.collection("kb", create=True)
    coll.ingest([str(folder)])
    notes = folder / "notes.md"
    notes.write_text("# Notes\n\nThe quarterly offsite moved to Porto, on the 9th of June.\n")
    report = coll.ingest([str(folder)])
    assert (report.ingested, report.unchanged) == (1, 4)
    texts = [h.text for h in coll.search("where is the quarterly offsite", k=50, mode="bm25")]
    assert any("Porto" in t for t in texts)
    assert not any("Lisbon" in t for t in texts)

    (folder / "test.docx").unlink()
    without_sync = coll.ingest([str(folder)])
    assert without_sync.deleted == 0
    assert str(folder / "test.docx") in coll.store.sources()
    synced = coll.ingest([str(folder)], sync=True)
    assert synced.deleted == 1
    assert str(folder / "test.docx") not in coll.store.sources()
    assert {d.source: d.chunks for d in coll.documents()} == coll.store.sources()


def test_sync_only_touches_the_given_folder(workspace: Workspace, folder: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.md").write_text(
        "# Keep\n\nThis document lives in another folder and must survive a sync.\n"
    )
    coll = workspace.collection("kb", create=True)
    coll.ingest([str(folder), str(other)])
    report = coll.ingest([str(folder / "sub")], sync=True)
    assert report.deleted == 0
    assert str(other / "keep.md") in coll.store.sources()


def test_include_and_exclude_globs(workspace: Workspace, folder: Path) -> None:
    workspace.settings.ingest.include = ["*.md", "*.csv"]
    workspace.settings.ingest.exclude = [*workspace.settings.ingest.exclude, "sub/**"]
    report = workspace.collection("kb", create=True).ingest([str(folder)])
    assert report.ingested == 1  # notes.md only: the csv is under sub/
    assert report.skipped == 0


def test_size_limit_refuses_large_files(workspace: Workspace, folder: Path) -> None:
    workspace.settings.ingest.max_file_mb = 0.01
    report = workspace.collection("kb", create=True).ingest([str(folder)])
    reasons = {Path(e["source"]).name: e["reason"] for e in report.errors}
    assert "max_file_mb" in reasons["test.docx"]
    assert report.ingested == 2  # notes.md and the csv are small


def test_missing_path_is_an_error_before_anything_runs(workspace: Workspace, tmp_path: Path) -> None:
    coll = workspace.collection("kb", create=True)
    with pytest.raises(LaminaError, match="no such file"):
        coll.ingest([str(tmp_path / "nope")])


def test_other_embedding_model_is_refused(workspace: Workspace) -> None:
    workspace.registry.create_collection("legacy", "bge-small-en-v1.5/onnx", 384)
    with pytest.raises(EmbeddingMismatch, match=r"bge-small-en-v1\.5"):
        workspace.collection("legacy")


def test_unknown_collection_lists_known_ones(workspace: Workspace) -> None:
    workspace.collection("alpha", create=True)
    with pytest.raises(LaminaError, match="known: alpha"):
        workspace.collection("beta")


def test_invalid_collection_name(workspace: Workspace) -> None:
    with pytest.raises(LaminaError, match="invalid collection name"):
        workspace.collection("../etc", create=True)


def test_crash_between_store_commit_and_registry_is_repaired_by_rerun(
    workspace: Workspace, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worst moment to die: chunks committed, registry not yet written."""
    coll = workspace.collection("kb", create=True)
    workspace.settings.ingest.batch_documents = 2

    calls = {"n": 0}
    real_upsert = Registry.upsert_documents

    def dying_upsert(self: Registry, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # as if the process were killed right after the store commit
        real_upsert(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Registry, "upsert_documents", dying_upsert)
    with pytest.raises(KeyboardInterrupt):
        coll.ingest([str(folder)])
    monkeypatch.setattr(Registry, "upsert_documents", real_upsert)
    assert workspace.registry.require_collection("kb").last_run["status"] == "interrupted"  # type: ignore[index]

    resumed = coll.ingest([str(folder)])
    assert resumed.status == "completed"
    assert (resumed.unchanged, resumed.ingested) == (1, 4)  # first batch kept; the lagging one is redone
    clean = Workspace(
        workspace.settings.model_copy(update={"data_dir": folder.parent / "clean"}),
        embedder=workspace.embedder,
    )
    clean.collection("kb", create=True).ingest([str(folder)])
    assert sorted(_chunk_ids(coll)) == sorted(_chunk_ids(clean.collection("kb")))


def _chunk_ids(coll: Collection) -> list[str]:
    assert isinstance(coll.store, LanceStore)
    return coll.store.column("chunk_id")


def test_a_page_that_lost_text_is_reported_and_indexed(workspace: Workspace, tmp_path: Path) -> None:
    """Coverage is recorded per document; under ingest.min_coverage the run says so (kind
    "low coverage") and the page is indexed all the same."""
    folder = tmp_path / "pages"
    folder.mkdir()
    shutil.copy(DOCS / "test_wikipedia.html", folder / "wiki.html")
    (folder / "notes.md").write_text("# Notes\n\nPlain text has no coverage to measure.\n")
    workspace.settings.ingest.min_coverage = 1.0  # the wiki page keeps ~99%: under it
    report = workspace.collection("kb", create=True).ingest([str(folder)])
    assert (report.ingested, report.low_coverage, report.failed) == (2, 1, 0)
    (warning,) = report.errors
    assert warning["kind"] == "low coverage" and warning["source"].endswith("wiki.html")
    assert "of the page's visible text" in warning["reason"]
    coverage = {Path(d.source).name: d.coverage for d in workspace.collection("kb").documents()}
    assert coverage["notes.md"] is None
    assert coverage["wiki.html"] is not None and 0.95 < coverage["wiki.html"] < 1.0
