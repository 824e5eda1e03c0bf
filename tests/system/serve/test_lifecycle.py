"""Server lifecycle and failure paths: drain on SIGTERM, bounded in-flight, upstream faults,
client disconnects, and a server killed in the middle of an ingest job."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from lamina.config import load_settings
from lamina.data.collection import Workspace
from lamina.models.llamacpp import LlamaCppModel
from lamina.testing.server import LaminaServer, finished_job, sse_events, until
from lamina.testing.stub_upstream import StubUpstream
from tests.conftest import SCIFACT
from tests.shared import stub_model_config

CHAT = {"model": "stub", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64}


@pytest.fixture(scope="module")
def slow_stub() -> Iterator[StubUpstream]:
    with StubUpstream("ok") as upstream:
        yield upstream


def _server(
    tmp_path: Path, models_dir: Path, stub: StubUpstream, extra: str = ""
) -> tuple[LaminaServer, str]:
    server = LaminaServer(
        tmp_path / "srv", models_dir, config=extra + "\n" + stub_model_config(stub, timeout_s=2)
    )
    store = server.keys()
    key = store.create("admin", admin=True)[1]
    store.engine.dispose()
    return server, key


def test_sigterm_drains_in_flight_streams(tmp_path: Path, models_dir: Path, slow_stub: StubUpstream) -> None:
    slow_stub.set_mode("ok", chunk_delay_ms=150, reply="one two three four five six seven eight nine ten")
    server, key = _server(tmp_path, models_dir, slow_stub, "[serve]\ndrain_s = 20\n")
    server.start()
    headers = {"Authorization": f"Bearer {key}"}
    got: list[str] = []
    started = threading.Event()

    def stream() -> None:
        with httpx.stream(
            "POST",
            server.base_url + "/chat/completions",
            json=CHAT | {"stream": True},
            headers=headers,
            timeout=30,
        ) as resp:
            for line in resp.iter_lines():
                got.append(line)
                started.set()

    reader = threading.Thread(target=stream)
    reader.start()
    assert started.wait(20)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    until(lambda: not _healthy(server.root), what="the server to stop accepting")  # while draining
    reader.join(30)
    assert server.proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once drained
    events = sse_events(got)
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["choices"][0]["finish_reason"] == "stop"
    slow_stub.set_mode("ok", chunk_delay_ms=0)


def test_full_queue_gives_429_and_faults_map_to_errors(
    tmp_path: Path, models_dir: Path, slow_stub: StubUpstream
) -> None:
    server, key = _server(tmp_path, models_dir, slow_stub, "[serve]\nmax_inflight = 2\nmax_queue = 0\n")
    client = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=30)
    with server:
        slow_stub.set_mode("ok", delay_ms=1500)
        results: list[int] = []

        def call() -> None:
            try:
                client.chat.completions.create(**CHAT)  # type: ignore[arg-type]
                results.append(200)
            except openai.APIStatusError as exc:
                results.append(exc.status_code)
                if exc.status_code == 429:
                    assert exc.response.headers["retry-after"]
                    assert exc.body["code"] == "model_busy"  # type: ignore[index]

        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [200, 200, 429, 429]

        slow_stub.set_mode("error500")
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(**CHAT)  # type: ignore[arg-type]
        assert info.value.status_code == 502 and "Traceback" not in info.value.response.text

        slow_stub.set_mode("hang")
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(**CHAT)  # type: ignore[arg-type]
        assert info.value.status_code in (502, 503)

        slow_stub.set_mode("cut", cut_after=2)
        chunks, finishes = [], []
        with pytest.raises(openai.APIError):
            for chunk in client.chat.completions.create(**CHAT, stream=True):  # type: ignore[call-overload]
                chunks.append(chunk)
                finishes += [c.finish_reason for c in chunk.choices if c.finish_reason]
        assert chunks and "stop" not in finishes  # a cut stream never looks complete

        slow_stub.set_mode("ok", chunk_delay_ms=200, reply=" ".join(["word"] * 100))
        slow_stub.reset_stats()
        with httpx.stream(
            "POST",
            server.base_url + "/chat/completions",
            json=CHAT | {"stream": True},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        ) as resp:
            for i, _ in enumerate(resp.iter_lines()):
                if i > 4:
                    break  # the client goes away mid-stream
        until(
            lambda: slow_stub.stats()["responses"].get("abandoned") == 1, what="the upstream stream to close"
        )
        slow_stub.set_mode("ok", chunk_delay_ms=0, delay_ms=0)
        for _ in range(2):  # both slots are free again
            assert client.chat.completions.create(**CHAT).choices[0].message.content  # type: ignore[arg-type]
        with httpx.Client(base_url=server.root, headers={"Authorization": f"Bearer {key}"}) as http:
            rows = http.get("/v1/logs", params={"limit": 50}).json()["data"]
        assert any(r["error_type"] == "client_disconnected" for r in rows)
    slow_stub.set_mode("ok")


def test_killed_mid_job_is_taken_over_and_ends_exact(
    tmp_path: Path, models_dir: Path, slow_stub: StubUpstream
) -> None:
    """The killed server's lease runs out; the restarted server's worker claims the job and ends it."""
    config = "[ingest]\nbatch_documents = 4\n[serve]\njob_lease_s = 2\n"
    server, key = _server(tmp_path, models_dir, slow_stub, config)
    lines = (SCIFACT / "corpus.jsonl").read_text().splitlines()[:24]  # 6 batches of 4, killed in the 3rd
    corpus = [json.loads(line) for line in lines]
    files = [("files", (f"{d['_id']}.md", f"# {d['title']}\n\n{d['text']}\n".encode())) for d in corpus]
    headers = {"Authorization": f"Bearer {key}"}
    with server, httpx.Client(base_url=server.root, headers=headers, timeout=60) as http:
        http.post("/v1/collections", json={"name": "kb"})
        job_id = http.post("/v1/collections/kb/documents", files=files).json()["id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job = http.get(f"/v1/jobs/{job_id}").json()
            if job["counts"].get("done", 0) >= 8:
                break
            time.sleep(0.05)
        assert job["state"] == "running", job
        server.stop(signal.SIGKILL)
    with server, httpx.Client(base_url=server.root, headers=headers, timeout=60) as http:
        final = finished_job(http, job_id)
        assert final["state"] == "completed" and final["counts"] == {"done": len(files)}
        assert final["attempts"] == 2
        docs = http.get("/v1/collections/kb/documents").json()["data"]
        assert len(docs) == len(files)
    server.stop()
    ws = Workspace(load_settings(data_dir=server.data_dir))
    coll = ws.collection("kb")
    assert coll.store.sources() == {d.source: d.chunks for d in coll.documents()}


def test_llamacpp_frees_its_slot_when_the_stream_is_closed(llamacpp: LlamaCppModel) -> None:
    """What the gateway relies on: closing the upstream connection cancels the generation."""
    root = llamacpp.openai_base_url.removesuffix("/v1")
    body = {"prompt": "Once upon a time", "max_tokens": 2000, "ignore_eos": True, "stream": True}
    with httpx.Client(base_url=llamacpp.openai_base_url, timeout=30) as http:
        with http.stream("POST", "/completions", json=body) as resp:
            for i, _ in enumerate(resp.iter_lines()):
                if i > 6:
                    break
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            slots = httpx.get(root + "/slots", timeout=5).json()
            if not any(s["is_processing"] for s in slots):
                break
            time.sleep(0.1)
    assert not any(s["is_processing"] for s in slots)


def _healthy(root: str) -> bool:
    try:
        return httpx.get(root + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
