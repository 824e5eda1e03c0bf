"""Document metadata through the library and the CLI: front matter, what the uploader gives, what
the source knows; filters in search and answers; readers; a change of metadata alone re-indexes
without embedding anything again; a new version keeps every document's metadata and readers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lamina.data.collection import Workspace
from lamina.data.filters import FilterError, parse_cli_filters, parse_filter
from lamina.data.metadata import split_front_matter
from lamina.data.reindex import ReindexOptions, reindex
from lamina.data.store.base import Where
from tests.cli_runner import lamina

POLICY = """---
title: Travel policy 2025
year: 2025
effective: 2025-01-01
tags: [travel, money]
owner: finance
---
# Travel

Economy class for flights under six hours; the daily allowance is 60 euros.
"""
OLD = "# Travel (old)\n\nBusiness class was allowed for every flight; the daily allowance was 45 euros.\n"


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "policy.md").write_text(POLICY)
    (folder / "old.md").write_text(OLD)
    return folder


def test_front_matter_is_metadata_and_leaves_the_text() -> None:
    attrs, text = split_front_matter(POLICY)
    assert attrs == {
        "title": "Travel policy 2025",
        "year": 2025,
        "effective": "2025-01-01",
        "tags": ["travel", "money"],
        "owner": "finance",
    }
    assert text.startswith("# Travel") and "owner:" not in text
    assert split_front_matter("---\nnot: [closed\n---\nbody") == ({}, "---\nnot: [closed\n---\nbody")
    assert split_front_matter("# No front matter\n") == ({}, "# No front matter\n")


def test_metadata_filters_and_readers_in_the_library(workspace: Workspace, docs: Path) -> None:
    coll = workspace.collection("kb", create=True)
    coll.ingest([str(docs / "policy.md")], metadata={"team": "finance"}, readers=["finance"])
    coll.ingest([str(docs / "old.md")], metadata={"year": 2019, "team": "finance"})
    records = {Path(d.source).name: d for d in coll.documents()}
    policy = records["policy.md"].metadata
    assert policy["year"] == 2025 and policy["team"] == "finance" and policy["modified"].endswith("Z")
    assert records["policy.md"].reader_groups == ("finance",)
    assert records["policy.md"].title == "Travel policy 2025"

    def names(where: Where) -> set[str]:
        return {Path(h.source).name for h in coll.search("daily allowance", 5, where=where)}

    assert names(Where(fields=parse_filter({"year": {"$gte": 2020}}))) == {"policy.md"}
    assert names(Where(fields=parse_filter({"effective": {"$lte": "2025-06-30"}}))) == {"policy.md"}
    assert names(Where(fields=parse_filter({"team": "finance"}))) == {"policy.md", "old.md"}
    assert names(Where(readers=frozenset())) == {"old.md"}
    assert names(Where(readers=frozenset({"finance"}))) == {"policy.md", "old.md"}


def test_new_metadata_reindexes_without_embedding_again(workspace: Workspace, docs: Path) -> None:
    coll = workspace.collection("kb", create=True)
    first = coll.ingest([str(docs)], metadata={"team": "finance"})
    assert first.ingested == 2 and first.chunks_embedded > 0
    same = coll.ingest([str(docs)], metadata={"team": "finance"})
    assert same.unchanged == 2 and same.ingested == 0
    moved = coll.ingest([str(docs)], metadata={"team": "legal"}, readers=["legal"])
    assert moved.ingested == 2 and moved.chunks_embedded == 0  # the vectors are the same texts'
    hits = coll.search("daily allowance", 5, where=Where(fields=parse_filter({"team": "legal"})))
    assert len(hits) == 2 and all(h.metadata["team"] == "legal" for h in hits)
    assert coll.search("daily allowance", 5, where=Where(readers=frozenset({"finance"}))) == []


def test_a_new_version_keeps_each_documents_metadata_and_readers(workspace: Workspace, docs: Path) -> None:
    coll = workspace.collection("kb", create=True)
    coll.ingest([str(docs / "policy.md")], metadata={"team": "finance"}, readers=["finance"])
    coll.ingest([str(docs / "old.md")])
    result = reindex(workspace, "kb", ReindexOptions(chunk_tokens=128), switch=True)
    assert result.report.status == "completed"
    built = {Path(d.source).name: d for d in workspace.collection("kb").documents()}
    assert built["policy.md"].metadata["team"] == "finance" and built["policy.md"].reader_groups == (
        "finance",
    )
    assert built["old.md"].reader_groups == ()


def test_cli_filters_read_as_the_api_does() -> None:
    assert parse_cli_filters(["team=finance", "year>=2024", "kind=policy|memo", 'code="0042"']) == (
        *parse_filter({"team": "finance", "year": {"$gte": 2024}, "kind": {"$in": ["policy", "memo"]}}),
        *parse_filter({"code": "0042"}),
    )
    with pytest.raises(FilterError):
        parse_cli_filters(["no operator"])


def test_cli_ingest_meta_and_search_filter(docs: Path) -> None:
    lamina("ingest", str(docs / "policy.md"), "-c", "kb", "--meta", "team=finance", "--reader", "finance")
    lamina("ingest", str(docs / "old.md"), "-c", "kb", "--meta", "year=2019")
    found = lamina("search", "daily allowance", "-c", "kb", "--filter", "year<2020", "--json")
    assert [Path(h["source"]).name for h in json.loads(found.stdout)] == ["old.md"]
    assert json.loads(found.stdout)[0]["metadata"]["year"] == 2019
    bad = lamina("search", "allowance", "-c", "kb", "--filter", "bad key!=1", check=False)
    assert bad.returncode != 0 and "filter" in bad.stderr
