"""The ``lamina`` command as a user runs it: a real process, real files, JSON for scripts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lamina.data.collection import Workspace
from lamina.evals.beir import load_beir

from .conftest import DOCS


def lamina(
    *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "lamina", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"lamina {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    root.mkdir()
    for name in ["test.docx", "REPAIR-2022-INV-001_multipage.pdf", "random.bin"]:
        shutil.copy(DOCS / name, root / name)
    return root


def test_ingest_collections_documents_search_json(corpus: Path) -> None:
    out = json.loads(lamina("ingest", str(corpus), "-c", "kb", "--json").stdout)
    assert (out["ingested"], out["skipped"], out["failed"]) == (2, 1, 0)
    assert out["errors"][0]["reason"] == "unsupported format"

    cols = json.loads(lamina("collections", "--json").stdout)
    assert isinstance(cols, list) and cols[0]["name"] == "kb"
    assert {"name", "documents", "chunks", "embedding_model"} <= cols[0].keys()
    assert cols[0]["documents"] == 2 and cols[0]["chunks"] > 2

    docs = json.loads(lamina("documents", "-c", "kb", "--json").stdout)
    assert len(docs["documents"]) == 2
    assert docs["last_run"]["errors"][0]["source"].endswith("random.bin")

    hits = json.loads(lamina("search", "grand total of the repair", "-c", "kb", "-k", "3", "--json").stdout)
    assert len(hits) == 3
    assert {"text", "source", "page", "headings", "score", "chunk_id"} <= hits[0].keys()
    assert hits[0]["page"] in (1, 2, 3)

    human = lamina("search", "grand total", "-c", "kb", "--mode", "bm25", "--source", "*.pdf").stdout
    assert "REPAIR-2022-INV-001_multipage.pdf" in human


def test_errors_are_one_clean_line(tmp_path: Path) -> None:
    proc = lamina("search", "x", "-c", "nope", check=False)
    assert proc.returncode == 1
    assert "no collection named 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr

    (tmp_path / "lamina.toml").write_text("[chunking]\nchunk_tokens = 'big'\n")
    proc = lamina("collections", check=False)
    assert proc.returncode == 1
    assert "chunking.chunk_tokens" in proc.stderr and "Traceback" not in proc.stderr

    (tmp_path / "lamina.toml").unlink()
    proc = lamina("ingest", str(tmp_path / "missing"), "-c", "kb", check=False)
    assert proc.returncode == 1 and "no such file" in proc.stderr


def test_usage_errors_and_help() -> None:
    assert "ingest" in lamina("--help").stdout
    proc = lamina("search", "x", "-c", "kb", "--mode", "fuzzy", check=False)
    assert proc.returncode == 2 and "fuzzy" in proc.stderr


def test_demo_runs_offline() -> None:
    out = lamina("demo").stdout
    assert "ingestion-faq.html" in out
    answer = out.split("3. grounded answer", 1)[1]
    assert "run the same `lamina ingest` command again" in " ".join(answer.split())  # the README's question
    again = lamina("demo").stdout
    assert "0 ingested, 4 unchanged" in again


def test_ask_json_and_models() -> None:
    lamina("demo")  # ingests the samples into "sample" and answers once
    out = json.loads(
        lamina("ask", "What happens if an ingestion is interrupted?", "-c", "sample", "--json").stdout
    )
    assert {"answer", "citations", "model", "usage"} <= out.keys()
    assert out["model"] == "gemma-3-270m" and out["extractive"]  # a base model's answer is chosen
    assert "run the same `lamina ingest` command again" in out["answer"]
    assert out["citations"] and {"n", "source", "page", "chunk_id", "snippet"} <= out["citations"][0].keys()

    nothing = json.loads(
        lamina("ask", "What is the boiling point of liquid nitrogen?", "-c", "sample", "--json").stdout
    )
    assert nothing["citations"] == [] and "could not find anything relevant" in nothing["answer"]

    direct = json.loads(lamina("ask", "What is the capital of France?", "--no-rag", "--json").stdout)
    assert direct["citations"] == [] and direct["answer"]

    models = json.loads(lamina("models", "--json").stdout)
    assert models[0]["name"] == "gemma-3-270m" and models[0]["available"] and models[0]["default"]

    proc = lamina("ask", "x", "-c", "sample", "--model", "gpt-17", check=False)
    assert proc.returncode == 1 and "configured models: gemma-3-270m" in proc.stderr


def test_chat_reads_questions_until_eof() -> None:
    lamina("demo")
    proc = subprocess.run(
        [sys.executable, "-m", "lamina", "chat", "-c", "sample"],
        input="What does hybrid retrieval do?\nWhich database stores vectors?\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("Sources") >= 1


def test_ask_prints_the_answer_once_then_its_sources() -> None:
    lamina("demo")
    question = "Which database stores the vectors?"
    printed = lamina("ask", question, "-c", "sample").stdout
    answer = json.loads(lamina("ask", question, "-c", "sample", "--json").stdout)
    text, _, sources = printed.partition("\nSources\n")
    assert text.strip() == answer["answer"]  # streamed once, and it is the final (cited) text
    assert "with citations" not in printed and printed.count(answer["answer"]) == 1
    assert [f"[{c['n']}]" for c in answer["citations"]] == [
        line.split()[0] for line in sources.splitlines() if line.strip()
    ]


def _tiny_beir(tmp_path: Path, sample: dict[str, object], docs: int = 60) -> Path:
    """A BEIR-format folder: the first ``docs`` abstracts of the sample, its queries and judgements."""
    data = tmp_path / "tiny"
    (data / "qrels").mkdir(parents=True)
    corpus: list[dict[str, str]] = sample["corpus"][:docs]  # type: ignore[index]
    qrels: dict[str, dict[str, int]] = sample["qrels"]  # type: ignore[assignment]
    queries: dict[str, str] = sample["queries"]  # type: ignore[assignment]
    (data / "corpus.jsonl").write_text("".join(json.dumps(c) + "\n" for c in corpus))
    (data / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items())
    )
    lines = [f"{q}\t{d}\t{r}" for q, rels in qrels.items() for d, r in rels.items()]
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(lines) + "\n")
    return data


def test_eval_retrieval_prints_every_configuration(tmp_path: Path, scifact_sample: dict[str, object]) -> None:
    """A tiny BEIR-format dataset: every configuration is listed with its settings, test and dev."""
    data = _tiny_beir(tmp_path, scifact_sample)
    out = json.loads(lamina("eval", "retrieval", "--dataset", str(data), "--json").stdout)
    labels = [c["label"] for c in out["configs"]]
    assert labels[:4] == ["dense", "bm25", "hybrid", "hybrid, plain RRF (k=60)"]
    assert any("convex" in label for label in labels) and any("PRF" in label for label in labels)
    assert all({"settings", "ndcg@10", "recall@100", "mrr@10"} <= c.keys() for c in out["configs"])
    assert out["hybrid"] == {k: out["configs"][2][k] for k in ("ndcg@10", "recall@100", "mrr@10")}
    assert out["embedding_model"] == "all-MiniLM-L6-v2/onnx-int8-dynamic"

    dev = json.loads(lamina("eval", "retrieval", "--dataset", str(data), "--split", "dev", "--json").stdout)
    assert dev["queries"] > 0 and all(c["ndcg@10"] >= 0 for c in dev["configs"])
    bad = lamina("eval", "retrieval", "--dataset", str(data), "--split", "train", check=False)
    assert bad.returncode != 0 and "unknown split" in bad.stderr


def test_reindex_versions_switch_rollback_drop(
    tmp_path: Path, scifact_sample: dict[str, object], workspace: Workspace
) -> None:
    data = _tiny_beir(tmp_path, scifact_sample, docs=40)
    workspace.collection("tiny", create=True).ingest_documents(load_beir(data).documents())
    workspace.registry.close()

    built = json.loads(
        lamina("reindex", "-c", "tiny", "--dataset", str(data), "--chunk-tokens", "64", "--json").stdout
    )
    assert built["version"]["version"] == 2 and built["version"]["state"] == "ready"
    assert not built["switched"] and built["report"]["ingested"] == 40
    listed = json.loads(lamina("versions", "-c", "tiny", "--dataset", str(data), "--json").stdout)
    assert [(v["version"], v["live"], v["chunk_tokens"]) for v in listed] == [(1, True, 256), (2, False, 64)]
    assert all(0 < v["ndcg@10"] <= 1 for v in listed)
    table = lamina("versions", "-c", "tiny", env={"COLUMNS": "200"}).stdout
    assert "1 (live)" in table and "64/32" in table

    assert json.loads(lamina("switch", "-c", "tiny", "2", "--json").stdout)["live"]
    assert json.loads(lamina("collections", "--json").stdout)[0]["version"] == 2
    assert json.loads(lamina("rollback", "-c", "tiny", "--json").stdout)["version"] == 1
    missing = lamina("switch", "-c", "tiny", "9", check=False)
    assert (
        missing.returncode != 0 and "has no version 9" in missing.stderr and "Traceback" not in missing.stderr
    )
    lamina("drop", "tiny", "--version", "2", "--yes")
    assert [v["version"] for v in json.loads(lamina("versions", "-c", "tiny", "--json").stdout)] == [1]
