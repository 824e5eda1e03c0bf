"""The ``lamina`` command as a user runs it: real files, exit codes, JSON for scripts.

Commands run through the installed script's own entry point (``lamina.cli.app.main``: argument
parsing, the one-line error handler, exit codes, stdout and stderr kept apart) in this process, so
that each does not pay a Python start-up (tests/cli_runner.py); ``test_python_dash_m_lamina_is_the_command``
runs real processes, for what only a process shows (``python -m lamina``, its exit status, its stderr).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from lamina.data.collection import Workspace
from lamina.evals.beir import load_beir
from lamina.testing.server import share_models
from tests.cli_runner import lamina, lamina_process
from tests.conftest import DOCS


@pytest.mark.system  # processes of their own
def test_python_dash_m_lamina_is_the_command() -> None:
    """A real process: an expected failure is one line on stderr and exit status 1, a usage error 2."""
    proc = lamina_process("search", "x", "-c", "nope")
    assert proc.returncode == 1 and proc.stdout == ""
    assert "no collection named 'nope'" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert "Traceback" not in proc.stderr
    proc = lamina_process("search", "x", "-c", "kb", "--mode", "fuzzy")
    assert proc.returncode == 2 and "fuzzy" in proc.stderr


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


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> tuple[dict[str, str], str]:
    """``lamina demo`` run once in a data directory of its own: its environment and what it printed.
    The commands that answer from the "sample" collection it makes run there (they only read it)."""
    home = tmp_path_factory.mktemp("demo")
    data_dir = home / "lamina-data"
    share_models(data_dir, models_dir)
    env = {"LAMINA_DATA_DIR": str(data_dir)}
    with pytest.MonkeyPatch.context() as mp:  # set up before any test's _isolated: isolated the same way
        mp.chdir(home)
        for key in [k for k in os.environ if k.startswith("LAMINA_") and k != "LAMINA_SHARED_DATA"]:
            mp.delenv(key)
        return env, lamina("demo", env=env).stdout


def test_demo_runs_offline(demo: tuple[dict[str, str], str]) -> None:
    env, out = demo
    assert "ingestion-faq.html" in out
    answer = out.split("3. grounded answer", 1)[1]
    assert "run the same `lamina ingest` command again" in " ".join(answer.split())  # the README's question
    again = lamina("demo", env=env).stdout
    assert "0 ingested, 4 unchanged" in again


def test_ask_json_and_models(demo: tuple[dict[str, str], str]) -> None:
    env, _ = demo
    out = json.loads(
        lamina(
            "ask", "What happens if an ingestion is interrupted?", "-c", "sample", "--json", env=env
        ).stdout
    )
    assert {"answer", "citations", "model", "usage"} <= out.keys()
    assert out["model"] == "gemma-3-270m" and out["extractive"]  # a base model's answer is chosen
    assert "run the same `lamina ingest` command again" in out["answer"]
    assert out["citations"] and {"n", "source", "page", "chunk_id", "snippet"} <= out["citations"][0].keys()

    nothing = json.loads(
        lamina(
            "ask", "What is the boiling point of liquid nitrogen?", "-c", "sample", "--json", env=env
        ).stdout
    )
    assert nothing["citations"] == [] and "could not find anything relevant" in nothing["answer"]

    short = {**env, "LAMINA_RAG__ANSWER_TOKENS": "16"}  # the model writes this one: a short answer
    direct = json.loads(
        lamina("ask", "What is the capital of France?", "--no-rag", "--json", env=short).stdout
    )
    assert direct["citations"] == [] and direct["answer"]

    models = json.loads(lamina("models", "--json", env=env).stdout)
    assert models[0]["name"] == "gemma-3-270m" and models[0]["available"] and models[0]["default"]

    proc = lamina("ask", "x", "-c", "sample", "--model", "gpt-17", check=False, env=env)
    assert proc.returncode == 1 and "configured models: gemma-3-270m" in proc.stderr


def test_chat_reads_questions_until_eof(demo: tuple[dict[str, str], str]) -> None:
    env, _ = demo
    proc = lamina(
        "chat",
        "-c",
        "sample",
        env=env,
        stdin="What does hybrid retrieval do?\nWhich database stores vectors?\n",
    )
    assert proc.stdout.count("Sources") >= 1


def test_ask_prints_the_answer_once_then_its_sources(demo: tuple[dict[str, str], str]) -> None:
    env, _ = demo
    question = "Which database stores the vectors?"
    printed = lamina("ask", question, "-c", "sample", env=env).stdout
    answer = json.loads(lamina("ask", question, "-c", "sample", "--json", env=env).stdout)
    text, _, sources = printed.partition("\nSources\n")
    assert text.strip() == answer["answer"]  # streamed once, and it is the final (cited) text
    assert "with citations" not in printed and printed.count(answer["answer"]) == 1
    assert [f"[{c['n']}]" for c in answer["citations"]] == [
        line.split()[0] for line in sources.splitlines() if line.strip()
    ]


def _tiny_beir(tmp_path: Path, sample: dict[str, object], docs: int = 20) -> Path:
    """A BEIR-format folder: the first ``docs`` abstracts of the sample, the queries that judge one of
    them and their judgements (20 abstracts, 2 queries: enough to list every configuration)."""
    data = tmp_path / "tiny"
    (data / "qrels").mkdir(parents=True)
    corpus: list[dict[str, str]] = sample["corpus"][:docs]  # type: ignore[index]
    ids = {c["_id"] for c in corpus}
    qrels: dict[str, dict[str, int]] = {
        q: rels
        for q, rels in sample["qrels"].items()  # type: ignore[attr-defined]
        if ids & rels.keys()
    }
    queries = {q: t for q, t in sample["queries"].items() if q in qrels}  # type: ignore[attr-defined]
    assert queries
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

    dev = json.loads(
        lamina(
            "eval", "retrieval", "--dataset", str(data), "--split", "dev", "--limit-docs", "6", "--json"
        ).stdout
    )
    assert dev["queries"] > 0 and all(c["ndcg@10"] >= 0 for c in dev["configs"])
    bad = lamina("eval", "retrieval", "--dataset", str(data), "--split", "train", check=False)
    assert bad.returncode != 0 and "unknown split" in bad.stderr


def test_reindex_versions_switch_rollback_drop(
    tmp_path: Path, scifact_sample: dict[str, object], workspace: Workspace
) -> None:
    data = _tiny_beir(tmp_path, scifact_sample)
    workspace.collection("tiny", create=True).ingest_documents(load_beir(data).documents())
    workspace.registry.close()

    built = json.loads(
        lamina("reindex", "-c", "tiny", "--dataset", str(data), "--chunk-tokens", "64", "--json").stdout
    )
    assert built["version"]["version"] == 2 and built["version"]["state"] == "ready"
    assert not built["switched"] and built["report"]["ingested"] == 20
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
