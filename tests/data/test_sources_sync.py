"""Sources that keep a collection in sync, each kind against its real server (the connectors' own
fixtures): the first sync, a change, a deletion, a sync killed midway then re-run to the exact end
state, and two workers racing for one source; metadata and readers given by the source."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from lamina.config import Settings
from lamina.data.collection import Workspace
from lamina.data.connectors import SOURCE_KINDS, make_connector, parse_spec
from lamina.data.source_store import SourceRecord, SourceStore
from lamina.data.store.base import Where
from lamina.data.syncing import sync_due, sync_source
from tests.contracts.test_connectors import SOURCES, Source

FILES = {
    "alpha.html": "Alpha notes: the harbour crane lifts forty tonnes.",
    "beta.html": "Beta notes: the ferry leaves at seven every morning.",
    "gamma.html": "Gamma notes: the lighthouse keeper logs the weather.",
    "delta.html": "Delta notes: the dry dock holds two trawlers at once.",
}


@pytest.fixture(params=SOURCE_KINDS)
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Source]:
    with ExitStack() as stack:
        made = SOURCES[request.param](tmp_path, stack)
        for rel, text in FILES.items():
            made.put(rel, text)
        yield made


@pytest.fixture
def synced(settings: Settings, workspace: Workspace, source: Source) -> tuple[Workspace, SourceRecord]:
    settings.fetch.allow_private = True  # the test servers are on 127.0.0.1
    settings.ingest.batch_documents = 1  # a commit per document, so a kill lands between two
    store = SourceStore(workspace.registry.engine)
    record = store.put("kb", "docs", parse_spec(source.spec), readers=("crew",), metadata={"site": "port"})
    return workspace, record


def documents(ws: Workspace) -> dict[str, str]:
    """Each document this source brought: its location -> its chunks' text, from the store."""
    coll = ws.collection("kb")
    records = {d.source: d for d in coll.documents()}
    assert set(coll.store.sources()) == set(records)  # the registry and the store agree
    texts = {}
    for source in records:
        hits = coll.store.lexical("notes", 50, Where(document=source))
        texts[source] = " ".join(h.text for h in hits)
    return texts


def listed(ws: Workspace, record: SourceRecord) -> set[str]:
    """What the source holds now, by its connector."""
    connector = make_connector(record.spec, fetch=ws.settings.fetch, cache_dir=ws.settings.data_dir / "c")
    try:
        return {e.location for e in connector.entries()}
    finally:
        connector.close()


def test_first_sync_change_and_deletion(synced: tuple[Workspace, SourceRecord], source: Source) -> None:
    ws, record = synced
    first = sync_source(ws, record, owner="w1")
    assert first.status == "completed", first.error
    assert first.report is not None and first.report.ingested == len(FILES) + len(source.extra)
    docs = documents(ws)
    assert set(docs) == listed(ws, record) and {source.location(rel) for rel in FILES} <= set(docs)
    coll = ws.collection("kb")
    record_of = {d.source: d for d in coll.documents()}
    alpha = record_of[source.location("alpha.html")]
    assert alpha.origin == record.id and alpha.reader_groups == ("crew",)
    assert alpha.metadata["site"] == "port" and alpha.metadata["path"] == source.path("alpha.html")
    hits = coll.search("harbour crane", 3, where=Where(readers=frozenset({"crew"})))
    assert hits and hits[0].source == source.location("alpha.html")
    assert coll.search("harbour crane", 3, where=Where(readers=frozenset({"other"}))) == []

    again = sync_source(ws, record, owner="w1")
    assert again.report is not None and again.report.ingested == 0 and again.report.deleted == 0

    source.put("beta.html", "Beta notes: the ferry now leaves at eight.")
    source.delete("gamma.html")
    changed = sync_source(ws, record, owner="w2")
    assert changed.report is not None
    # (a site's index page lists its pages: it changed too)
    assert (changed.report.ingested, changed.report.deleted) == (1 + len(source.extra), 1)
    docs = documents(ws)
    assert set(docs) == listed(ws, record) and source.location("gamma.html") not in docs
    assert "eight" in docs[source.location("beta.html")]
    kept = SourceStore(ws.registry.engine).get("kb", "docs")
    assert kept.last_status == "completed" and kept.lease_owner is None


def test_a_killed_sync_reruns_to_the_exact_end_state(
    synced: tuple[Workspace, SourceRecord], source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after two documents: the lease stays (as a dead process's would) until it runs out,
    then another worker takes the source over and finishes exactly."""
    ws, record = synced
    store = SourceStore(ws.registry.engine)
    reads = {"n": 0}
    from lamina.data.connectors import factory

    made = factory.make_connector

    def dying(*args: object, **kwargs: object) -> object:
        connector = made(*args, **kwargs)  # type: ignore[arg-type]
        read = connector.read

        def read_then_die(entry: object) -> bytes:
            reads["n"] += 1
            if reads["n"] == 3:
                raise KeyboardInterrupt  # the process dies here
            return read(entry)  # type: ignore[arg-type]

        connector.read = read_then_die  # type: ignore[method-assign]
        return connector

    monkeypatch.setattr("lamina.data.syncing.make_connector", dying)
    monkeypatch.setattr(SourceStore, "finish", lambda *a, **k: None)  # a kill records nothing
    with pytest.raises(KeyboardInterrupt):
        sync_source(ws, record, owner="dead", lease_s=0.5)
    monkeypatch.undo()
    assert len(ws.collection("kb").documents()) == 2  # two whole batches, nothing half-written
    assert sync_source(ws, record, owner="next", lease_s=0.5).status == "busy"  # the lease holds
    threading.Event().wait(0.6)
    rerun = sync_source(ws, record, owner="next")
    assert rerun.status == "completed", rerun.error
    assert rerun.report is not None and rerun.report.unchanged == 2
    assert set(documents(ws)) == listed(ws, record)
    assert store.get("kb", "docs").lease_owner is None


def test_two_workers_racing_for_one_source_sync_it_once(synced: tuple[Workspace, SourceRecord]) -> None:
    ws, record = synced
    start = threading.Barrier(2)
    results = {}

    def work(owner: str) -> None:
        start.wait()
        results[owner] = sync_source(ws, record, owner=owner).status

    threads = [threading.Thread(target=work, args=(w,)) for w in ("w1", "w2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(results.values()) == ["busy", "completed"]
    assert set(documents(ws)) == listed(ws, record)


def test_due_sources_sync_on_their_schedule(settings: Settings, workspace: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()
    (folder / "note.md").write_text("# Note\n\nThe tide table changes on Mondays.\n")
    store = SourceStore(workspace.registry.engine)
    store.put("kb", "watched", parse_spec({"kind": "folder", "path": str(folder)}), every_s=3600)
    store.put("kb", "manual", parse_spec({"kind": "folder", "path": str(folder)}))  # on demand only
    results = sync_due([workspace], owner="scheduler")
    assert [r.source for r in results] == ["watched"] and results[0].status == "completed"
    assert sync_due([workspace], owner="scheduler") == []  # next one in an hour
    listed = {r.name: r.to_dict() for r in store.list("kb")}
    assert listed["watched"]["next_sync_at"] and listed["watched"]["last_status"] == "completed"
    assert listed["manual"]["next_sync_at"] is None and listed["manual"]["last_status"] is None


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_the_lease_holds_on_sqlite_and_postgres(
    request: pytest.FixtureRequest, tmp_path: Path, database: str
) -> None:
    """One conditional UPDATE decides who syncs: the second claimant loses until the lease runs out;
    a worker that lost its lease can neither renew it nor record a result."""
    import uuid

    from lamina.config import with_schema
    from lamina.data.registry import Registry

    if database == "postgres":
        url = with_schema(str(request.getfixturevalue("postgres_url")), f"reg_{uuid.uuid4().hex[:10]}")
    else:
        url = f"sqlite:///{tmp_path / 'registry.db'}"
    store = SourceStore(Registry(url).engine)
    record = store.put("kb", "docs", parse_spec({"kind": "folder", "path": str(tmp_path)}), every_s=60)
    assert store.claim(record.id, "a", 0.5) and not store.claim(record.id, "b", 0.5)
    assert store.claim(record.id, "a", 0.5)  # its own lease: taken again (a restarted loop)
    assert [r.name for r in store.due(record.next_sync_at)] == []  # leased: not due for anyone else
    threading.Event().wait(0.6)
    assert store.claim(record.id, "b", 30) and not store.renew(record.id, "a", 30)
    store.finish(record, "a", "completed", {"ingested": 1}, None)  # a's late result is not recorded
    assert store.get("kb", "docs").last_status is None and store.get("kb", "docs").lease_owner == "b"
    store.finish(record, "b", "completed", {"ingested": 1}, None)
    done = store.get("kb", "docs")
    assert done.last_status == "completed" and done.lease_owner is None and done.next_sync_at
