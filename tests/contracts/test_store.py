"""The ``ChunkStore`` Protocol's promises, checked against every registered backend alike."""

from __future__ import annotations

import dataclasses
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from lamina.config import Settings, load_settings
from lamina.data.collection import Workspace
from lamina.data.embed.onnx import OnnxMiniLM
from lamina.data.filters import FilterError, parse_filter
from lamina.data.store import STORES, ChunkStore, MemoryStore, Where, make_store
from lamina.data.types import Chunk, Document, Hit, attrs_json, doc_id_for, sha256_hex
from lamina.errors import ConfigError

DIM = 4


def _settings(tmp_path: Path, backend: str, database_url: str | None = None) -> Settings:
    """``database_url``: the suite's Postgres, for pgvector; each test gets a tenant (a schema) of its own."""
    extra: dict[str, object] = {}
    if database_url is not None:
        extra = {"database_url": database_url, "tenant": f"t{uuid.uuid4().hex[:10]}"}
    return load_settings(data_dir=tmp_path / "data", store={"backend": backend}, **extra)


@pytest.fixture(params=sorted(STORES))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, backend: str) -> str | None:
    return str(request.getfixturevalue("postgres_url")) if backend == "pgvector" else None


@pytest.fixture
def store(tmp_path: Path, backend: str, database_url: str | None) -> ChunkStore:
    return make_store(_settings(tmp_path, backend, database_url), "kb", DIM)


def chunk(source: str, ordinal: int, text: str, title: str = "") -> Chunk:
    return Chunk(
        doc_id=doc_id_for(source),
        source=source,
        title=title,
        headings=(),
        page=None,
        start=0,
        end=len(text),
        text=text,
        n_tokens=len(text.split()),
        ordinal=ordinal,
    )


def vecs(*rows: list[float]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float32).reshape(-1, DIM)


def put(store: ChunkStore, source: str, *items: tuple[str, list[float]], title: str = "") -> list[Chunk]:
    chunks = [chunk(source, i, text, title) for i, (text, _) in enumerate(items)]
    store.replace_documents([source], chunks, vecs(*(v for _, v in items)))
    return chunks


def test_an_empty_store_answers_everything_empty(store: ChunkStore) -> None:
    assert store.count() == 0 and store.version() == 0 and store.sources() == {}
    assert store.dense(vecs([1, 0, 0, 0]), 5) == []
    assert store.lexical("anything", 5) == []
    assert store.vectors(["nope"]).shape == (0, DIM)
    assert store.reused_vectors(["nope"]) == {}
    store.replace_documents(["/a.md"], [], vecs())  # nothing to replace: still fine
    store.delete_sources(["/a.md"])
    store.optimize()
    store.drop()
    assert store.count() == 0


def test_replace_makes_the_batch_the_only_chunks_of_its_sources(store: ChunkStore) -> None:
    put(
        store,
        "/a.md",
        ("alpha one", [1, 0, 0, 0]),
        ("alpha two", [0, 1, 0, 0]),
        ("alpha three", [0, 0, 1, 0]),
    )
    put(store, "/b.md", ("beta one", [0, 0, 0, 1]))
    v1 = store.version()
    assert v1 > 0
    assert store.sources() == {"/a.md": 3, "/b.md": 1} and store.count() == 4

    put(store, "/a.md", ("alpha changed", [1, 1, 0, 0]))
    assert store.version() > v1
    assert store.sources() == {"/a.md": 1, "/b.md": 1}
    assert [h.text for h in store.dense(vecs([1, 1, 0, 0]), 10, Where(document="/a.md"))] == ["alpha changed"]

    # several sources in one batch; a source with no chunks left is emptied
    a = [chunk("/a.md", 0, "alpha again")]
    c = [chunk("/c.md", 0, "gamma"), chunk("/c.md", 1, "gamma too")]
    store.replace_documents(
        ["/a.md", "/b.md", "/c.md"], [*a, *c], vecs([1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0])
    )
    assert store.sources() == {"/a.md": 1, "/c.md": 2}

    v2 = store.version()
    store.replace_documents(["/c.md"], [], vecs())
    assert store.sources() == {"/a.md": 1} and store.version() > v2


def test_delete_sources(store: ChunkStore) -> None:
    put(store, "/a.md", ("alpha", [1, 0, 0, 0]))
    put(store, "/b.md", ("beta", [0, 1, 0, 0]))
    before = store.version()
    store.delete_sources(["/a.md", "/never.md"])
    assert store.sources() == {"/b.md": 1} and store.version() > before
    store.delete_sources([])
    assert store.count() == 1


def test_dense_ranks_by_cosine_similarity(store: ChunkStore) -> None:
    put(store, "/a.md", ("east", [10, 0, 0, 0]), ("north-east", [1, 1, 0, 0]), ("north", [0, 3, 0, 0]))
    put(store, "/b.md", ("west", [-1, 0, 0, 0]))
    hits = store.dense(vecs([2, 0.5, 0, 0]), 10)
    assert [h.text for h in hits] == ["east", "north-east", "north", "west"]
    q = np.array([2, 0.5, 0, 0]) / np.linalg.norm([2, 0.5, 0, 0])
    assert hits[0].score == pytest.approx(q[0], abs=1e-5)  # cosine, not the dot product
    assert hits[1].score == pytest.approx((q[0] + q[1]) / np.sqrt(2), abs=1e-5)
    assert hits[-1].score == pytest.approx(-q[0], abs=1e-5)
    assert len(store.dense(vecs([1, 0, 0, 0]), 2)) == 2
    east = hits[0]
    assert east.source == "/a.md" and east.doc_id == doc_id_for("/a.md")
    assert east.text_hash == sha256_hex("east")[:16] and east.headings == [] and east.page is None


def test_filters_by_source_glob_and_document(store: ChunkStore) -> None:
    put(store, "/docs/guide/a.md", ("one", [1, 0, 0, 0]))
    put(store, "/docs/b.txt", ("two", [1, 0.1, 0, 0]))
    put(store, "https://example.com/c.html", ("three", [1, 0.2, 0, 0]))
    put(store, "/odd (1) & co+#~.md", ("four", [0, 0, 0, 1]))
    q = vecs([1, 0, 0, 0])

    def sources(where: Where) -> set[str]:
        return {h.source for h in store.dense(q, 10, where)}

    assert sources(Where(source_glob="*.md")) == {"/docs/guide/a.md", "/odd (1) & co+#~.md"}
    assert sources(Where(source_glob="odd (1) & co+#~.md")) == {"/odd (1) & co+#~.md"}
    assert sources(Where(source_glob="/docs/*")) == {"/docs/guide/a.md", "/docs/b.txt"}  # * spans folders
    assert sources(Where(source_glob="guide/*.md")) == {"/docs/guide/a.md"}  # relative: any depth
    assert sources(Where(source_glob="/guide/*")) == set()  # absolute: from the root
    assert sources(Where(source_glob="*/[ab].*")) == {"/docs/guide/a.md", "/docs/b.txt"}
    assert sources(Where(source_glob="https://example.com/*")) == {"https://example.com/c.html"}
    assert sources(Where(document="/docs/b.txt")) == {"/docs/b.txt"}
    assert sources(Where(document=doc_id_for("/docs/b.txt"))) == {"/docs/b.txt"}
    assert sources(Where(source_glob="*.md", document="/docs/b.txt")) == set()
    assert sources(Where(source_glob="/docs/*.md", document="/docs/guide/a.md")) == {"/docs/guide/a.md"}
    assert sources(Where()) == sources(Where(source_glob="*"))
    assert {h.source for h in store.lexical("three", 10, Where(source_glob="*.html"))} == {
        "https://example.com/c.html"
    }
    assert store.lexical("three", 10, Where(source_glob="/docs/*")) == []


# metadata filters and readers ----------------------------------------------------------------------
PEOPLE = {  # source -> (metadata, readers)
    "/m/policy-2024.md": ({"team": "finance", "year": 2024, "modified": "2024-06-30T10:00:00Z"}, ()),
    "/m/policy-2025.md": (
        {"team": "finance", "year": 2025.0, "modified": "2025-02-01T09:00:00Z"},
        ("finance",),
    ),
    "/m/memo.md": ({"team": "legal", "year": "2025", "draft": True, "note": 'l\'été "quoted"'}, ("legal",)),
    "/m/plain.md": ({}, ()),
    "/m/secret.md": ({"team": "finance", "year": 2025}, ("board", "hr")),
}


def put_people(store: ChunkStore) -> None:
    chunks = []
    for i, (source, (attrs, readers)) in enumerate(PEOPLE.items()):
        c = chunk(source, 0, f"quarterly policy text {i}")
        chunks.append(dataclasses.replace(c, attrs=attrs_json(attrs), readers=readers))
    store.replace_documents(list(PEOPLE), chunks, np.ones((len(chunks), DIM), dtype=np.float32))
    store.optimize()


def names(hits: list[Hit]) -> set[str]:
    return {h.source.removeprefix("/m/").removesuffix(".md") for h in hits}


def both(store: ChunkStore, where: Where) -> set[str]:
    """The same filter through both legs: they must agree."""
    dense = names(store.dense(vecs([1, 1, 1, 1]), 10, where))
    assert names(store.lexical("quarterly policy", 10, where)) == dense
    return dense


def test_metadata_filters_are_typed_equality_in_and_ranges(store: ChunkStore) -> None:
    put_people(store)

    def where(spec: dict[str, object]) -> set[str]:
        return both(store, Where(fields=parse_filter(spec)))

    assert where({"team": "finance"}) == {"policy-2024", "policy-2025", "secret"}
    assert where({"year": 2025}) == {"policy-2025", "secret"}  # 2025.0 is 2025; "2025" is a string
    assert where({"year": "2025"}) == {"memo"}
    assert where({"draft": True}) == {"memo"}
    assert where({"draft": 1}) == set()  # a boolean is not a number
    assert where({"note": 'l\'été "quoted"'}) == {"memo"}
    assert where({"team": {"$in": ["legal", "hr"]}}) == {"memo"}
    assert where({"year": {"$in": [2024, "2025"]}}) == {"policy-2024", "memo"}
    assert where({"year": {"$gte": 2024.5}}) == {"policy-2025", "secret"}
    assert where({"year": {"$gt": 2024, "$lte": 2025}}) == {"policy-2025", "secret"}
    assert where({"year": {"$lt": 2025}}) == {"policy-2024"}
    assert where({"modified": {"$gte": "2025-01-01"}}) == {"policy-2025"}  # ISO dates order as text
    assert where({"modified": {"$lt": "2025-01-01", "$gte": "2024-01-01"}}) == {"policy-2024"}
    assert where({"team": "finance", "year": {"$lt": 2025}}) == {"policy-2024"}
    assert where({"missing": "x"}) == set()
    assert where({"year": {"$gte": "2000"}}) == {"memo"}  # a string range skips numbers
    hit = store.dense(vecs([1, 1, 1, 1]), 10, Where(document="/m/memo.md"))[0]
    assert hit.metadata["draft"] is True and hit.metadata["note"] == 'l\'été "quoted"'


def test_readers_see_their_groups_documents_and_unrestricted_ones(store: ChunkStore) -> None:
    put_people(store)
    everyone = {"policy-2024", "plain"}
    assert both(store, Where()) == set(n.removeprefix("/m/").removesuffix(".md") for n in PEOPLE)
    assert both(store, Where(readers=frozenset())) == everyone
    assert both(store, Where(readers=frozenset({"finance"}))) == everyone | {"policy-2025"}
    assert both(store, Where(readers=frozenset({"hr", "legal"}))) == everyone | {"memo", "secret"}
    assert both(store, Where(readers=frozenset({"finance"}), fields=parse_filter({"year": 2025}))) == {
        "policy-2025"
    }


@pytest.mark.parametrize(
    "crafted",
    [
        {"team": "x' OR 1=1 OR team='"},
        {"team": 'x") OR true OR ("'},
        {"team": {"$in": ["finance' OR readers IS NULL --", "x"]}},
        {"year": {"$gte": "~' OR '1'='1"}},  # above every year held as text
        {"readers": "board"},
        {"note": "\\' OR 1=1 --"},
    ],
)
def test_a_crafted_filter_never_widens_what_a_reader_sees(
    store: ChunkStore, crafted: dict[str, object]
) -> None:
    put_people(store)
    seen = both(store, Where(readers=frozenset({"legal"}), fields=parse_filter(crafted)))
    assert seen <= {"policy-2024", "plain", "memo"}
    assert seen == set()  # and the odd value matches nothing, as any value no document holds


@pytest.mark.parametrize(
    "bad",
    [
        {"team') OR 1=1 --": "x"},
        {'a"]': 1},
        {"year": {"$regex": ".*"}},
        {"year": {"$in": "2025"}},
        {"year": {"$gte": True}},
        {"year": [1, 2]},
        {"year": {"$gte": float("inf")}},
        {"": 1},
    ],
)
def test_filters_that_cannot_be_read_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(FilterError):
        parse_filter(bad)


def test_k_rows_come_back_under_a_selective_filter(store: ChunkStore) -> None:
    """Pushed down, not post-filtered: 1 chunk in 50 passes and all k of them are found."""
    chunks, rows = [], []
    for i in range(400):
        c = chunk(f"/k/{i}.md", 0, f"alpha text {i}")
        chunks.append(
            dataclasses.replace(c, attrs=attrs_json({"g": i % 50}), readers=("r",) if i % 2 else ())
        )
        rows.append([1.0, i / 400, 0.5, 0.0])
    store.replace_documents([c.source for c in chunks], chunks, vecs(*rows))
    store.optimize()
    where = Where(fields=parse_filter({"g": 7}), readers=frozenset({"r"}))
    assert len(store.dense(vecs([0, 0, 0, 1]), 8, where)) == 8
    assert len(store.lexical("alpha", 8, where)) == 8
    where = Where(fields=parse_filter({"g": 8}), readers=frozenset())  # even rows: no readers named
    assert len(store.dense(vecs([0, 0, 0, 1]), 8, where)) == 8


def corpus(store: ChunkStore, docs: dict[str, str], titles: dict[str, str] | None = None) -> None:
    """One batch, then ``optimize``: full-text statistics are exact once writes are folded in."""
    chunks = [chunk(source, 0, text, (titles or {}).get(source, "")) for source, text in docs.items()]
    store.replace_documents(list(docs), chunks, np.eye(len(docs), DIM, dtype=np.float32))
    store.optimize()


def test_lexical_is_bm25(store: ChunkStore) -> None:
    corpus(
        store,
        {
            "/a.md": "the cat sat on the mat with another cat",
            "/b.md": "a cat and a dog in the long long long long garden of the house",
            "/c.md": "stock prices fell sharply today",
            "/d.md": "dogs bark at night",
        },
    )
    hits = store.lexical("cat", 10)
    assert [h.source for h in hits] == ["/a.md", "/b.md"]  # more occurrences in less text ranks first
    # BM25 (k1 = 1.2, b = 0.75), stop words dropped: "cat" twice in 5 terms, in 2 of 4 chunks, 5.25 on average
    idf = np.log(1 + (4 - 2 + 0.5) / (2 + 0.5))
    assert hits[0].score == pytest.approx(idf * 2 * 2.2 / (2 + 1.2 * (0.25 + 0.75 * 5 / 5.25)), rel=1e-3)
    assert hits[0].score > hits[1].score > 0
    assert [h.source for h in store.lexical("dog", 10)] == ["/d.md", "/b.md"]  # "dogs" is stemmed
    assert {h.source for h in store.lexical("price", 10)} == {"/c.md"}
    assert store.lexical("zebra", 10) == []
    assert store.lexical("   ", 10) == []
    assert store.lexical("the of and", 10) == []  # stop words only
    assert len(store.lexical("cat dog stock", 2)) == 2
    assert store.lexical("cat stock", 10)[0].source == "/c.md"  # the rarer term weighs more (idf)


def test_title_boost_adds_the_titles_own_bm25(store: ChunkStore) -> None:
    corpus(
        store,
        {
            "/a.md": "zebras graze on the plains",
            "/b.md": "zebras and zebras graze",
            "/c.md": "nothing to see",
        },
        {"/a.md": "Zebra habitats", "/b.md": "Grazing", "/c.md": "Other"},
    )
    plain = {h.source: h.score for h in store.lexical("zebra", 10)}
    boosted = {h.source: h.score for h in store.lexical("zebra", 10, title_boost=5.0)}
    assert set(plain) == set(boosted) == {"/a.md", "/b.md"}
    assert boosted["/a.md"] > plain["/a.md"]
    assert boosted["/b.md"] == pytest.approx(plain["/b.md"], rel=1e-4)
    assert max(boosted, key=boosted.__getitem__) == "/a.md"


def test_reads_from_many_threads_at_once_answer_as_one_thread_does(
    tmp_path: Path, backend: str, database_url: str | None
) -> None:
    """A hybrid search runs its legs at once, and a server runs searches at once, from the first
    (a fresh store object opens its table, and makes the title index, under concurrent reads)."""
    settings = _settings(tmp_path, backend, database_url)
    docs = {"/a.md": "zebras graze on the plains", "/b.md": "zebras and zebras graze", "/c.md": "cats"}
    corpus(make_store(settings, "kb", DIM), docs, {"/a.md": "Zebra habitats", "/b.md": "Grazing"})
    fresh = make_store(settings, "kb", DIM)
    reads = [
        lambda: [(h.chunk_id, h.score) for h in fresh.dense(vecs([1, 1, 0, 0]), 3)],
        lambda: [(h.chunk_id, h.score) for h in fresh.lexical("zebra", 3, title_boost=2.0)],
        lambda: [(h.chunk_id, h.score) for h in fresh.lexical("graze", 3)],
    ] * 4
    with ThreadPoolExecutor(len(reads)) as pool:
        together = list(pool.map(lambda read: read(), reads))
    alone = [read() for read in reads]
    assert all(together) and together == alone


def test_vectors_and_reused_vectors(store: ChunkStore) -> None:
    chunks = put(store, "/a.md", ("one", [1, 0, 0, 0]), ("two", [0, 2, 0, 0]), ("three", [0, 0, 3, 0]))
    got = store.vectors([chunks[2].chunk_id, "missing", chunks[0].chunk_id])
    assert got.dtype == np.float32 and got.shape == (2, DIM)
    np.testing.assert_allclose(got, vecs([0, 0, 3, 0], [1, 0, 0, 0]))
    reused = store.reused_vectors([chunks[1].embed_hash, "missing"])
    assert set(reused) == {chunks[1].embed_hash}
    np.testing.assert_allclose(reused[chunks[1].embed_hash], [0, 2, 0, 0])


def test_drop_empties_the_store_and_it_can_be_written_again(store: ChunkStore) -> None:
    put(store, "/a.md", ("alpha", [1, 0, 0, 0]))
    store.optimize()
    store.drop()
    assert store.count() == 0 and store.sources() == {} and store.dense(vecs([1, 0, 0, 0]), 3) == []
    put(store, "/b.md", ("beta", [0, 1, 0, 0]))
    assert store.sources() == {"/b.md": 1} and store.lexical("beta", 3)[0].source == "/b.md"


def test_a_collection_ingests_and_searches_through_the_configured_store(
    tmp_path: Path, backend: str, database_url: str | None, embedder: OnnxMiniLM
) -> None:
    ws = Workspace(_settings(tmp_path, backend, database_url), embedder=embedder)
    try:
        docs = [
            Document(f"/notes/{name}.md", text, sha256_hex(text), title=name)
            for name, text in [
                ("refunds", "# Refunds\n\nRefunds are paid within fourteen days of a return."),
                ("shipping", "# Shipping\n\nParcels ship from the warehouse every weekday morning."),
                ("privacy", "# Privacy\n\nWe never sell personal data to third parties."),
            ]
        ]
        report = ws.collection("kb", create=True).ingest_documents(docs)
        assert report.status == "completed" and report.ingested == 3
        coll = ws.collection("kb")  # opened again: the same store behind it
        assert {d.source: d.chunks for d in coll.documents()} == coll.store.sources()
        for mode in ("dense", "hybrid"):
            assert coll.search("when is my money paid back", 1, mode=mode)[0].source == "/notes/refunds.md"
        assert coll.search("refunds", 1, mode="bm25")[0].source == "/notes/refunds.md"
        assert coll.search("warehouse parcels", 3, mode="hybrid")[0].source == "/notes/shipping.md"
        again = ws.collection("kb").ingest_documents(docs)
        assert again.unchanged == 3 and again.chunks_embedded == 0
        ws.drop("kb")
        assert ws.collections() == []
        assert make_store(ws.settings, "kb", embedder.dim).count() == 0
    finally:
        ws.registry.close()


def custom_store(settings: Settings, collection: str, dim: int) -> ChunkStore:
    return MemoryStore(dim)


def not_a_store(settings: Settings, collection: str, dim: int) -> object:
    return object()


def test_the_factory_takes_a_dotted_path_and_names_the_known_backends(tmp_path: Path) -> None:
    store = make_store(_settings(tmp_path, "tests.contracts.test_store:custom_store"), "kb", DIM)
    assert isinstance(store, MemoryStore)
    with pytest.raises(ConfigError, match="lancedb, memory, pgvector"):
        make_store(_settings(tmp_path, "pgvectr"), "kb", DIM)
    with pytest.raises(ConfigError, match="needs a Postgres"):
        make_store(_settings(tmp_path, "pgvector"), "kb", DIM)
    with pytest.raises(ConfigError, match="cannot import"):
        make_store(_settings(tmp_path, "no.such.module:Store"), "kb", DIM)
    with pytest.raises(ConfigError, match="not a ChunkStore"):
        make_store(_settings(tmp_path, "tests.contracts.test_store:not_a_store"), "kb", DIM)


def test_memory_stores_are_one_per_data_directory_and_collection(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "memory")
    assert make_store(settings, "kb", DIM) is make_store(settings, "kb", DIM)
    assert make_store(settings, "kb", DIM) is not make_store(settings, "other", DIM)
    assert make_store(_settings(tmp_path / "elsewhere", "memory"), "kb", DIM) is not make_store(
        settings, "kb", DIM
    )
