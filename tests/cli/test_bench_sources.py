"""``lamina bench sources`` end to end on a few documents (every kind against its real local server),
and the layout ``lamina bench search`` computes its filtered recall from, against what a store keeps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lamina.bench.search import FILTERS, KEEPS, _selected, grow
from lamina.config import Settings
from lamina.data.connectors import SOURCE_KINDS
from lamina.data.store import make_store
from lamina.data.types import Chunk
from tests.cli_runner import lamina

DOCS = 3


@pytest.mark.system  # moto's S3 server
def test_bench_sources_syncs_every_kind_and_counts_the_re_syncs() -> None:
    result = json.loads(lamina("bench", "sources", "--docs", str(DOCS), "--json").stdout)
    assert result["documents"] == DOCS and result["machine"]["cpu"]
    assert [row["kind"] for row in result["kinds"]] == list(SOURCE_KINDS)
    for row in result["kinds"]:
        kind, extra = row["kind"], row["extra_entries"]  # the web site's index page is listed too
        assert "unavailable" not in row, row
        first, again, changed = row["first"], row["unchanged"], row["changed"]
        for sync in (first, again, changed):
            assert sync["status"] == "completed", (kind, sync)
            assert sync["failed"] == 0 and sync["seconds"] > 0, (kind, sync)
        assert (first["listed"], first["ingested"], first["deleted"]) == (DOCS + extra, DOCS + extra, 0), kind
        assert first["chunks_written"] >= DOCS and first["docs_per_s"] > 0, kind
        assert (again["ingested"], again["unchanged"], again["deleted"]) == (0, DOCS + extra, 0), kind
        assert again["chunks_written"] == 0, kind
        # one document changed, one deleted (a site's index, which lists its pages, changed too)
        assert (changed["listed"], changed["deleted"]) == (DOCS - 1 + extra, 1), kind
        assert (changed["ingested"], changed["unchanged"]) == (1 + extra, DOCS - 2), kind


def test_bench_sources_refuses_an_unknown_kind() -> None:
    run = lamina("bench", "sources", "--kind", "ftp", check=False)
    assert run.returncode != 0 and "unknown kind" in run.stderr


@pytest.mark.parametrize("backend", ["memory", "lancedb"])
def test_bench_search_filters_keep_the_rows_its_recall_assumes(settings: Settings, backend: str) -> None:
    """Every filter of ``lamina bench search`` (source globs, metadata, readers) selects in a real
    store exactly the rows its exact search is computed over, and the share its label says."""
    size, dim = 400, 8
    base = [Chunk(f"d{i}", f"scifact:d{i}", "", (), None, 0, 9, f"cell text {i}", 3, 0) for i in range(7)]
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((len(base), dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks, rows = grow(base, vectors, size)
    store = make_store(settings, "layout", dim, backend)
    store.replace_documents([c.source for c in chunks], chunks, rows)
    ids = [c.chunk_id for c in chunks]
    assert len(set(ids)) == size
    shares = {"none": 1.0, "tenant (10%)": 0.1, "1%": 0.01, "metadata (1%)": 0.01}
    for label, where in FILTERS.items():
        kept = {ids[i] for i in _selected(size, label)}
        found = {h.chunk_id for h in store.dense(rows[0], size, where)}
        assert found == kept, label
        assert len(kept) == round(size * shares.get(label, 0.1)), label
    assert set(KEEPS) == set(FILTERS)
