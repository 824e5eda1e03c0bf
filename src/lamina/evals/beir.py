"""Read a dataset in BEIR layout: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lamina.data.types import Document, sha256_hex
from lamina.errors import LaminaError


@dataclass
class BeirDataset:
    name: str
    corpus: list[dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def source(self, doc_id: str) -> str:
        return f"{self.name}:{doc_id}"

    def doc_id_of(self, source: str) -> str:
        return source.split(":", 1)[1]

    def documents(self) -> Iterator[Document]:
        for row in self.corpus:
            text = row.get("text", "")
            title = row.get("title", "") or None
            yield Document(
                source=self.source(row["_id"]),
                text=text,
                content_hash=sha256_hex(f"{title}\0{text}"),
                title=title,
                format="beir",
                size_bytes=len(text.encode()),
            )


def load_beir(path: Path, split: str = "test", limit_docs: int | None = None) -> BeirDataset:
    corpus_file, queries_file, qrels_file = (
        path / "corpus.jsonl",
        path / "queries.jsonl",
        path / "qrels" / f"{split}.tsv",
    )
    for f in (corpus_file, queries_file, qrels_file):
        if not f.is_file():
            raise LaminaError(f"{path} is not a BEIR dataset: missing {f.relative_to(path)}")
    qrels: dict[str, dict[str, int]] = {}
    with qrels_file.open(newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        next(reader, None)
        for row in reader:
            if len(row) >= 3:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    with queries_file.open() as fh:
        queries = {q["_id"]: q["text"] for q in map(json.loads, fh) if q["_id"] in qrels}
    with corpus_file.open() as fh:
        corpus = [json.loads(line) for line in fh]
    if limit_docs is not None:
        corpus = corpus[:limit_docs]
    return BeirDataset(path.name, corpus, queries, qrels)


SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")


def dev_split(dataset: BeirDataset, queries: int = 300, seed: int = 7) -> BeirDataset:
    """A tuning split made from the corpus alone, so parameters are never picked on the test queries.

    For ``queries`` seeded-random documents that no test query judges and that have at least four
    sentences, the last sentence (usually the finding, as a claim states one) becomes the query and
    is cut from the document, which is its one relevant document. The other documents are unchanged.
    """
    judged = {doc for rels in dataset.qrels.values() for doc in rels}
    sentences = {
        row["_id"]: SENTENCE_END.split(row.get("text", "").strip())
        for row in dataset.corpus
        if row["_id"] not in judged
    }
    eligible = sorted(
        doc for doc, parts in sentences.items() if len(parts) >= 4 and 40 <= len(parts[-1]) <= 250
    )
    chosen = set(random.Random(seed).sample(eligible, min(queries, len(eligible))))
    corpus, dev_queries, qrels = [], {}, {}
    for row in dataset.corpus:
        if row["_id"] in chosen:
            *body, last = sentences[row["_id"]]
            row = {**row, "text": " ".join(body)}
            dev_queries[f"dev-{row['_id']}"] = last
            qrels[f"dev-{row['_id']}"] = {row["_id"]: 1}
        corpus.append(row)
    return BeirDataset(f"{dataset.name}-dev", corpus, dev_queries, qrels)
