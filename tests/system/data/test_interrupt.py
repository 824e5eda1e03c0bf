"""Kill an ingestion (SIGKILL, SIGINT) mid-run, re-run it, and check the end state is exact."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lamina.config import load_settings
from lamina.data.collection import Workspace
from lamina.data.embed.onnx import OnnxMiniLM
from lamina.data.store.lance import LanceStore
from lamina.testing.server import share_models
from tests.cli_runner import lamina
from tests.conftest import SCIFACT

DOCS = 24  # abstracts: six commits of four, interrupted after the second


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("interrupt") / "abstracts"
    root.mkdir()
    lines = (SCIFACT / "corpus.jsonl").read_text().splitlines()[:DOCS]
    for line in lines:
        doc = json.loads(line)
        (root / f"{doc['_id']}.md").write_text(f"# {doc['title']}\n\n{doc['text']}\n")
    return root


@pytest.fixture(scope="module")
def never_interrupted(
    folder: Path, tmp_path_factory: pytest.TempPathFactory, embedder: OnnxMiniLM
) -> list[str]:
    """The chunk ids of the same folder ingested in one go, never interrupted."""
    ws = Workspace(load_settings(data_dir=tmp_path_factory.mktemp("clean")), embedder=embedder)
    ws.collection("kb", create=True).ingest([str(folder)])
    ids = sorted(_chunk_ids(ws))
    ws.registry.close()
    return ids


def _env(data_dir: Path, models_dir: Path) -> dict[str, str]:
    share_models(data_dir, models_dir)  # the session's embedder graphs, not a build of its own
    return {"LAMINA_DATA_DIR": str(data_dir), "LAMINA_INGEST__BATCH_DOCUMENTS": "4"}


def _start(folder: Path, data_dir: Path, models_dir: Path) -> subprocess.Popen[str]:
    """``lamina ingest`` in a process of its own, to kill."""
    return subprocess.Popen(
        [sys.executable, "-m", "lamina", *_ingest_args(folder)],
        env={**os.environ, **_env(data_dir, models_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _ingest_args(folder: Path) -> tuple[str, ...]:
    return ("ingest", str(folder), "-c", "kb", "--json")


def _documents_recorded(data_dir: Path) -> int:
    db = data_dir / "registry.db"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return int(conn.execute("SELECT count(*) FROM documents").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _interrupt_after(proc: subprocess.Popen[str], data_dir: Path, docs: int, sig: int) -> None:
    deadline = time.monotonic() + 120
    while _documents_recorded(data_dir) < docs:
        assert proc.poll() is None, f"ingest ended before it could be interrupted: {proc.communicate()}"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.wait(timeout=60)


def _chunk_ids(ws: Workspace) -> list[str]:
    store = ws.collection("kb").store
    assert isinstance(store, LanceStore)
    return store.column("chunk_id")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_interrupted_ingest_resumes_to_the_exact_end_state(
    sig: int,
    folder: Path,
    tmp_path: Path,
    models_dir: Path,
    embedder: OnnxMiniLM,
    never_interrupted: list[str],
) -> None:
    data_dir = tmp_path / "interrupted"
    proc = _start(folder, data_dir, models_dir)
    _interrupt_after(proc, data_dir, 8, sig)
    if sig == signal.SIGINT:
        assert proc.returncode == 130
        assert "re-run the same command" in (proc.stderr.read() if proc.stderr else "")
    recorded = _documents_recorded(data_dir)
    assert 8 <= recorded < DOCS

    resumed = lamina(*_ingest_args(folder), env=_env(data_dir, models_dir))  # the same command, again
    report = json.loads(resumed.stdout)
    assert report["unchanged"] >= recorded
    assert report["unchanged"] + report["ingested"] == DOCS

    resumed_ws = Workspace(load_settings(data_dir=data_dir), embedder=embedder)
    got = _chunk_ids(resumed_ws)
    assert len(got) == len(set(got)), "duplicate chunks after resume"
    assert sorted(got) == never_interrupted
    assert {d.source: d.chunks for d in resumed_ws.collection("kb").documents()} == resumed_ws.collection(
        "kb"
    ).store.sources()
    last = resumed_ws.registry.require_collection("kb").last_run
    assert last is not None and last["status"] == "completed"
    resumed_ws.registry.close()


class _SwallowsCtrlC:
    """A ``Progress`` whose extraction step swallows a Ctrl-C, as markitdown's RSS check does."""

    def start(self, total: int | None) -> None:
        pass

    def advance(self, *, documents: int = 0, chunks: int = 0, tokens: int = 0) -> None:
        pass

    def file(self, source: str, state: str, detail: str = "") -> None:
        if state == "extracting":
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)
            except KeyboardInterrupt:
                pass  # `except BaseException` in a converter


def test_a_ctrl_c_swallowed_by_a_converter_still_stops_the_run(folder: Path, workspace: Workspace) -> None:
    coll = workspace.collection("kb", create=True)
    with pytest.raises(KeyboardInterrupt):
        coll.ingest([str(folder)], progress=_SwallowsCtrlC())
    assert workspace.collection("kb").info.last_run["status"] == "interrupted"  # type: ignore[index]
    assert coll.documents() == []  # stopped after the first document, before its batch was written
