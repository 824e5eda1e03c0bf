"""Two ``lamina serve`` replicas and a ``lamina worker``, each its own process, on one Postgres and
one Redis, act as one gateway; and each fault the deployment layer promises to survive.

Every process shares the data directory (the LanceDB vectors and the uploads), the database and
Redis; the replicas run no worker of their own (``serve.worker = false``).
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from lamina.config import LimitSettings, load_settings
from lamina.data.collection import Workspace
from lamina.serve.policy.counters.redis import RedisCounters
from lamina.serve.policy.limits import budget_counter
from lamina.serve.redislink import RETRY_S, RedisLink
from lamina.testing.postgres import new_database
from lamina.testing.redis import RedisServer
from lamina.testing.server import LaminaServer, LaminaWorker, finished_job, until
from lamina.testing.stub_upstream import StubUpstream
from tests.conftest import SCIFACT
from tests.shared import stub_model_config

PRICE_IN, PRICE_OUT = 1000.0, 2000.0  # USD per million tokens, as stub_model_config sets them
HOLD_S = 3.0


@dataclass
class Cluster:
    a: LaminaServer
    b: LaminaServer
    worker: LaminaWorker
    redis: RedisServer
    database_url: str
    flaky: StubUpstream
    keys: dict[str, str]
    root: Path
    models_dir: Path

    def counters(self) -> RedisCounters:
        return RedisCounters(RedisLink(self.redis.url))

    def client(self, server: LaminaServer, key: str = "admin") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[key]}"}
        return httpx.Client(base_url=server.root, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path, postgres_url: str, stub: StubUpstream
) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    redis = RedisServer(root / "redis").start()
    flaky = StubUpstream("ok")
    flaky.start()
    slow = StubUpstream("ok", chunk_delay_ms=60, reply=" ".join(["word"] * 60))
    slow.start()
    database_url = new_database(postgres_url, "cluster")  # this module's gateway and registries
    config = (
        'default_model = "stub"\n'
        + stub_model_config(stub)
        + stub_model_config(flaky, "flaky")
        + "breaker_failures = 2\nbreaker_cooldown_s = 60\n"
        + stub_model_config(slow, "slow", timeout_s=30)
        + "[ingest]\nbatch_documents = 4\n"
        + f"[serve]\nworker = false\njob_lease_s = 2\nreservation_hold_s = {HOLD_S}\n"
        + "rate_window_s = 3600\njob_poll_s = 0.2\n"
    )
    env = {"LAMINA_DATABASE_URL": database_url, "LAMINA_REDIS_URL": redis.url}
    data = root / "data"
    a = LaminaServer(data, models_dir, config=config, env=env, home=root / "a")
    b = LaminaServer(data, models_dir, config=config, env=env, home=root / "b")
    worker = LaminaWorker(data, models_dir, config=config, env=env, home=root / "w1")
    store = a.keys()
    keys = {"admin": store.create("admin", admin=True)[1]}
    keys["plain"] = store.create("plain")[1]
    keys["rpm40"] = store.create("rpm40", limits=LimitSettings(rpm=40))[1]
    keys["budget"] = store.create("budget", limits=LimitSettings(budget_usd=0.5, budget_period="total"))[1]
    keys["streamer"] = store.create("streamer", limits=LimitSettings(budget_usd=100, budget_period="total"))[
        1
    ]
    store.engine.dispose()
    try:
        a.start(), b.start(), worker.start()
        yield Cluster(a, b, worker, redis, database_url, flaky, keys, root, models_dir)
    finally:
        for proc in (a, b, worker):
            proc.stop()
        for upstream in (flaky, slow):
            upstream.stop()
        redis.stop()


def _chat(content: str, model: str = "stub", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 16, **extra}


async def _burst(cluster: Cluster, key: str, n: int) -> list[httpx.Response]:
    """``n`` requests at once, alternating between the replicas."""
    headers = {"Authorization": f"Bearer {cluster.keys[key]}"}
    async with httpx.AsyncClient(headers=headers, timeout=60, limits=httpx.Limits(max_connections=n)) as http:
        servers = [cluster.a, cluster.b]
        return await asyncio.gather(
            *(
                http.post(servers[i % 2].base_url + "/chat/completions", json=_chat(f"request {i}"))
                for i in range(n)
            )
        )


def test_a_rate_limit_holds_across_replicas(cluster: Cluster) -> None:
    """LiteLLM #2730: 3 replicas with rpm=10 let 30 through. Here 200 at once across two: exactly 40."""
    left = 3600 - time.time() % 3600
    if left < 60:  # the window (rate_window_s = 3600) must not turn during the burst
        time.sleep(left + 1)
    statuses = Counter(r.status_code for r in asyncio.run(_burst(cluster, "rpm40", 200)))
    assert statuses == {200: 40, 429: 160}, statuses


def test_a_budget_raced_from_both_replicas_is_overspent_by_at_most_one_reservation(cluster: Cluster) -> None:
    responses = asyncio.run(_burst(cluster, "budget", 80))
    ok = [r.json() for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert ok and refused and all(r.json()["error"]["code"] == "budget_exceeded" for r in refused)
    spent = sum(
        (u["prompt_tokens"] * PRICE_IN + u["completion_tokens"] * PRICE_OUT) / 1e6
        for u in (r["usage"] for r in ok)
    )
    one_reservation = ((len("request 10") + 16) * PRICE_IN + 16 * PRICE_OUT) / 1e6
    assert spent <= 0.5 + one_reservation
    counted = cluster.counters().used(budget_counter("key", "budget", "total"))
    assert counted == pytest.approx(spent, rel=1e-6)  # settled to the real cost, on both replicas


def test_a_job_uploaded_through_one_replica_streams_from_the_other_and_answers_are_shared(
    cluster: Cluster,
) -> None:
    doc = b"# Refunds\n\nRefunds are paid within 14 days of the return.\n"
    question = _chat("When are refunds paid?", model="rag:kb", temperature=0)
    with cluster.client(cluster.a) as a, cluster.client(cluster.b) as b:
        assert a.post("/v1/collections", json={"name": "kb"}).status_code in (200, 201)
        job = a.post("/v1/collections/kb/documents", files={"files": ("refunds.md", doc)}).json()
        with b.stream("GET", f"/v1/jobs/{job['id']}/events") as events:
            states = [
                json.loads(line[5:])["state"] for line in events.iter_lines() if line.startswith("data:")
            ]
        assert states[-1] == "completed" and len(states) >= 2, states
        first = a.post("/v1/chat/completions", json=question)
        assert first.status_code == 200 and first.headers["x-lamina-cache"] == "miss"
        again = b.post("/v1/chat/completions", json=question)  # made on A, a hit on B
        assert again.headers["x-lamina-cache"] == "hit"
        assert again.json()["choices"][0]["message"] == first.json()["choices"][0]["message"]
        changed = doc.replace(b"14 days", b"30 days")
        rejob = b.post("/v1/collections/kb/documents", files={"files": ("refunds.md", changed)}).json()
        assert finished_job(b, rejob["id"])["state"] == "completed"
        retired = a.post("/v1/chat/completions", json=question)  # the re-ingest retired it on A
        assert retired.headers["x-lamina-cache"] == "miss"


def _breaker_open(server: LaminaServer, key: str) -> bool:
    metrics = httpx.get(server.root + "/metrics", headers={"Authorization": f"Bearer {key}"}).text
    return any(
        line.startswith("lamina:breaker_state{") and 'model="flaky"' in line and line.endswith(" 2.0")
        for line in metrics.splitlines()
    )


def test_an_endpoint_failing_through_one_replica_is_skipped_by_the_other(cluster: Cluster) -> None:
    cluster.flaky.set_mode("ok")
    with cluster.client(cluster.a) as a, cluster.client(cluster.b) as b:
        assert b.post("/v1/chat/completions", json=_chat("hi", "flaky")).status_code == 200  # B knows it
        cluster.flaky.set_mode("error500")
        for _ in range(2):  # breaker_failures = 2, through A only
            assert a.post("/v1/chat/completions", json=_chat("hi", "flaky")).status_code >= 500
        assert _breaker_open(cluster.a, cluster.keys["admin"])
        until(lambda: _breaker_open(cluster.b, cluster.keys["admin"]), timeout_s=5, what="B to open it")
        cluster.flaky.reset_stats()
        skipped = b.post("/v1/chat/completions", json=_chat("hi", "flaky"))
        assert skipped.status_code == 502 and "circuit open" in skipped.json()["error"]["message"]
        assert cluster.flaky.stats()["total"] == 0  # B never sent it there
    cluster.flaky.set_mode("ok")


def _stream(server: LaminaServer, key: str, got: dict[str, Any], name: str) -> None:
    body = _chat("tell me a story", "slow", stream=True, max_tokens=200)
    lines: list[str] = []
    try:
        with httpx.stream(
            "POST",
            server.base_url + "/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        ) as resp:
            for line in resp.iter_lines():
                lines.append(line)
                got[name + ":lines"] = len(lines)
        got[name] = lines
    except httpx.HTTPError as exc:
        got[name] = exc


def test_a_replica_killed_mid_stream_leaves_the_other_unaffected_and_its_reservation_lapses(
    cluster: Cluster,
) -> None:
    counters = cluster.counters()
    got: dict[str, Any] = {}
    key = cluster.keys["streamer"]
    threads = [
        threading.Thread(target=_stream, args=(server, key, got, name))
        for server, name in ((cluster.a, "a"), (cluster.b, "b"))
    ]
    for t in threads:
        t.start()
    until(lambda: got.get("a:lines", 0) > 3 and got.get("b:lines", 0) > 3, what="both streams to flow")
    assert counters.holds() == 2
    cluster.a.stop(signal.SIGKILL)
    try:
        for t in threads:
            t.join(timeout=60)
        assert isinstance(got["a"], httpx.HTTPError)  # A's client lost its stream
        b_lines = got["b"]
        assert isinstance(b_lines, list) and [x for x in b_lines if x][-1] == "data: [DONE]"  # B's went on
        until(lambda: counters.holds() == 1, what="B to settle")  # A's reservation is still held
        time.sleep(HOLD_S)
        with cluster.client(cluster.b, "streamer") as b:
            assert b.post("/v1/chat/completions", json=_chat("and now?")).status_code == 200  # sweeps holds
        until(lambda: counters.holds() == 0, what="A's hold to lapse")  # and this request's settled
    finally:
        cluster.a.start()


def test_the_worker_killed_mid_job_the_job_finishes_on_another_exact(cluster: Cluster) -> None:
    lines = (SCIFACT / "corpus.jsonl").read_text().splitlines()[:24]  # 6 batches of 4, killed in the 3rd
    corpus = [json.loads(line) for line in lines]
    files = [("files", (f"{d['_id']}.md", f"# {d['title']}\n\n{d['text']}\n".encode())) for d in corpus]
    with cluster.client(cluster.a) as a, cluster.client(cluster.b) as b:
        a.post("/v1/collections", json={"name": "sci"})
        job_id = a.post("/v1/collections/sci/documents", files=files).json()["id"]
        until(
            lambda: b.get(f"/v1/jobs/{job_id}").json()["counts"].get("done", 0) >= 8,
            timeout_s=120,
            what="the worker to be well into the job",
        )
        cluster.worker.stop(signal.SIGKILL)
        second = LaminaWorker(
            cluster.root / "data",
            cluster.models_dir,
            config=cluster.worker.config_path.read_text(),
            env=cluster.worker.extra_env,
            home=cluster.root / "w2",
        )
        with second:
            final = finished_job(b, job_id)
        assert final["state"] == "completed" and final["counts"] == {"done": len(files)}
        assert final["attempts"] == 2
        assert len(b.get("/v1/collections/sci/documents").json()["data"]) == len(files)
    settings = load_settings(data_dir=cluster.root / "data", database_url=cluster.database_url)
    coll = Workspace(settings).collection("sci")
    assert coll.store.sources() == {d.source: d.chunks for d in coll.documents()}  # exact: no duplicates


def test_with_redis_stopped_requests_answer_budgets_refuse_and_all_recovers(cluster: Cluster) -> None:
    cluster.redis.stop()
    try:
        with cluster.client(cluster.a, "plain") as plain, cluster.client(cluster.b, "streamer") as budgeted:
            assert plain.post("/v1/chat/completions", json=_chat("still there?")).status_code == 200
            refused = budgeted.post("/v1/chat/completions", json=_chat("and me?"))
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "counters_unavailable"
            assert refused.headers["retry-after"] == "1"
            cluster.redis.start()
            time.sleep(RETRY_S)
            until(
                lambda: budgeted.post("/v1/chat/completions", json=_chat("back?")).status_code == 200,
                what="budgets to work again",
            )
    finally:
        if cluster.redis.proc is None:
            cluster.redis.start()


def test_an_agent_loop_spans_the_replicas(cluster: Cluster, stub: StubUpstream) -> None:
    """The tool call comes through one replica, the tool result goes through the other; a repeat of
    the first turn is the shared (Redis) cache's, tool calls included."""
    tools: list[Any] = [
        {
            "type": "function",
            "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    question: list[Any] = [{"role": "user", "content": "Look it up."}]
    a, b = (
        openai.OpenAI(base_url=s.base_url, api_key=cluster.keys["admin"], max_retries=0, timeout=30)
        for s in (cluster.a, cluster.b)
    )
    first = a.chat.completions.create(model="stub", messages=question, tools=tools, temperature=0)
    calls = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls" and calls
    turn: list[Any] = [
        *question,
        {"role": "assistant", "content": None, "tool_calls": [c.model_dump() for c in calls]},
        {"role": "tool", "tool_call_id": calls[0].id, "content": "found"},
    ]
    final = b.chat.completions.create(model="stub", messages=turn, tools=tools)
    assert final.choices[0].message.content
    sent = stub.client.get("/_requests").json()[-1]["body"]
    assert sent["messages"][1]["tool_calls"][0]["id"] == calls[0].id
    assert sent["messages"][2]["tool_call_id"] == calls[0].id
    with cluster.client(cluster.b) as http:
        again = http.post(
            "/v1/chat/completions",
            json={"model": "stub", "messages": question, "tools": tools, "temperature": 0},
        )
    assert again.headers["x-lamina-cache"] == "hit"
    assert again.json()["choices"][0]["message"]["tool_calls"][0]["id"] == calls[0].id
