"""The stub OpenAI upstream, driven by the official openai client, and the gateway benchmark on it.

One stub process serves the whole module; each test sets the fault mode it needs at run time.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from lamina.bench.gateway import bench_gateway, percentile
from lamina.bench.gateway_process import lamina_gateway
from lamina.bench.gateway_scenarios import stub_model
from lamina.testing.loopback import PassthroughProxy
from lamina.testing.stub_upstream import StubUpstream

REPLY = "Hello from the stub."
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def stub() -> Iterator[StubUpstream]:
    with StubUpstream() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh(stub: StubUpstream) -> None:
    """Every test starts from mode ok, default timings, and zero counts."""
    stub.configure(mode="ok", delay_ms=0, chunk_delay_ms=0, slow_ms=1000, cut_after=2, reset_stats=True)


@pytest.fixture
def client(stub: StubUpstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=stub.base_url, api_key="x", max_retries=0, timeout=10.0)


def sse_events(body: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, checking that every event is ``data: ...\\n\\n``."""
    assert body.endswith("\n\n")
    events = body[:-2].split("\n\n")
    assert all(e.startswith("data: ") and "\n" not in e for e in events), events
    return [e.removeprefix("data: ") for e in events]


def test_chat_non_streamed(client: openai.OpenAI, stub: StubUpstream) -> None:
    done = client.chat.completions.create(model="stub", messages=HI)
    assert done.object == "chat.completion"
    assert done.choices[0].message.role == "assistant"
    assert done.choices[0].message.content == REPLY
    assert done.choices[0].finish_reason == "stop"
    assert done.usage is not None
    assert done.usage.completion_tokens == 4
    assert done.usage.total_tokens == done.usage.prompt_tokens + 4


def test_max_tokens_cuts_the_reply(client: openai.OpenAI) -> None:
    done = client.chat.completions.create(model="stub", messages=HI, max_tokens=2)
    assert done.choices[0].message.content == "Hello from"
    assert done.choices[0].finish_reason == "length"


def test_chat_stream_wire_format(stub: StubUpstream) -> None:
    body = {"model": "stub", "messages": HI, "stream": True, "stream_options": {"include_usage": True}}
    response = httpx.post(stub.base_url + "/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    words = [c["choices"][0]["delta"].get("content") for c in chunks[1:] if c["choices"]]
    assert [w for w in words if w] == ["Hello", " from", " the", " stub."]  # one chunk per word
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert [f for f in finishes if f] == ["stop"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    assert all(c["usage"] is None for c in chunks[:-1])


def test_chat_stream_through_openai_client(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="stub", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


def test_completions(client: openai.OpenAI, stub: StubUpstream) -> None:
    done = client.completions.create(model="stub", prompt="hi", max_tokens=16)
    assert done.object == "text_completion"
    assert done.choices[0].text == REPLY
    assert done.usage is not None and done.usage.completion_tokens == 4
    streamed = list(client.completions.create(model="stub", prompt="hi", stream=True))
    assert "".join(c.choices[0].text for c in streamed) == REPLY
    assert [c.choices[0].finish_reason for c in streamed if c.choices[0].finish_reason] == ["stop"]
    assert stub.stats()["requests"] == {"/v1/completions": 2}


def test_models_and_health(client: openai.OpenAI, stub: StubUpstream) -> None:
    assert [m.id for m in client.models.list()] == ["stub"]
    assert httpx.get(stub.root_url + "/health").json() == {"status": "ok"}


def test_error500(client: openai.OpenAI, stub: StubUpstream) -> None:
    stub.set_mode("error500")
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="stub", messages=HI)
    assert caught.value.status_code == 500
    error: Any = caught.value.body
    assert error["type"] == "server_error" and error["message"]


def test_error429_carries_retry_after(client: openai.OpenAI, stub: StubUpstream) -> None:
    stub.set_mode("error429", retry_after=7)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="stub", messages=HI)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "7"


def test_hang_times_the_client_out_and_lets_go(client: openai.OpenAI, stub: StubUpstream) -> None:
    stub.set_mode("hang")
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.5).chat.completions.create(model="stub", messages=HI)
    assert 0.4 < time.monotonic() - started < 5
    stub.set_mode("ok")  # the hung request was released when the client left: the stub still serves
    assert client.chat.completions.create(model="stub", messages=HI).choices[0].message.content == REPLY
    assert stub.stats()["requests"]["/v1/chat/completions"] == 2


def test_cut_leaves_an_incomplete_stream(client: openai.OpenAI, stub: StubUpstream) -> None:
    stub.set_mode("cut", cut_after=2)
    got = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in client.chat.completions.create(model="stub", messages=HI, stream=True):
            got.append(chunk)
    assert "".join(c.choices[0].delta.content or "" for c in got) == "Hello from"
    assert all(c.choices[0].finish_reason is None for c in got)
    with pytest.raises(httpx.RemoteProtocolError):  # on the wire: the body never ends, no [DONE]
        httpx.post(
            stub.base_url + "/chat/completions", json={"model": "stub", "messages": HI, "stream": True}
        )


def test_slow_spaces_the_chunks(client: openai.OpenAI, stub: StubUpstream) -> None:
    stub.set_mode("slow", slow_ms=150)
    arrivals = []
    for chunk in client.chat.completions.create(model="stub", messages=HI, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert len(gaps) == 3 and min(gaps) > 0.12


def test_fail_rate_fails_some(client: openai.OpenAI, stub: StubUpstream) -> None:
    stub.set_mode("fail_rate", fail_rate=0.5, seed=1)
    failed = 0
    for _ in range(40):
        try:
            client.chat.completions.create(model="stub", messages=HI)
        except openai.InternalServerError:
            failed += 1
    assert 5 < failed < 35
    stats = stub.stats()
    assert stats["responses"] == {"500": failed, "200": 40 - failed}
    assert stats["total"] == 40


def test_stats_count_by_route_and_reset(client: openai.OpenAI, stub: StubUpstream) -> None:
    client.chat.completions.create(model="stub", messages=HI)
    client.chat.completions.create(model="stub", messages=HI)
    client.models.list()
    httpx.get(stub.root_url + "/health")
    stats = stub.stats()
    assert stats["requests"] == {"/v1/chat/completions": 2, "/v1/models": 1}  # health is not traffic
    assert stats["total"] == 3
    stub.reset_stats()
    assert stub.stats() == {"requests": {}, "responses": {}, "total": 0}


def test_control_rejects_unknown_settings(stub: StubUpstream) -> None:
    assert httpx.post(stub.root_url + "/_control", json={"mode": "explode"}).status_code == 400
    assert httpx.post(stub.root_url + "/_control", json={"colour": 1}).status_code == 400
    with pytest.raises(ValueError, match="unknown mode"):
        StubUpstream("explode")


def test_mode_chosen_at_start_up() -> None:
    with StubUpstream("error500") as broken:
        assert httpx.post(broken.base_url + "/chat/completions", json={"messages": HI}).status_code == 500


def test_passthrough_proxy_relays(stub: StubUpstream) -> None:
    with PassthroughProxy(stub.base_url) as proxy:
        relayed = openai.OpenAI(base_url=proxy.base_url, api_key="x", max_retries=0)
        assert relayed.chat.completions.create(model="stub", messages=HI).choices[0].message.content == REPLY
        streamed = relayed.chat.completions.create(model="stub", messages=HI, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in streamed) == REPLY
    assert stub.stats()["requests"] == {"/v1/chat/completions": 2}


def test_percentile_interpolates() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert percentile([], 50) != percentile([], 50)  # NaN


def test_bench_gateway_shape(stub: StubUpstream) -> None:
    """Stub as both endpoints for ~2 s: every phase present, JSON-able, no errors; no timing claims."""
    result = bench_gateway(
        stub.base_url,
        stub.base_url,
        "x",
        "x",
        "stub",
        "stub",
        duration_s=0.4,
        rate=100,
        rates=(50, 100),
        sequential_n=20,
        stream_n=10,
        block_s=0.2,
        warmup_s=0.1,
        apis=(),  # the stub speaks chat completions only; see the next test
    )
    json.dumps(result, allow_nan=False)
    for phase in ("sequential", "open_loop", "stream_ttft"):
        for side in ("direct", "gateway"):
            assert result[phase][side]["errors"] == {}
            assert result[phase][side]["p99_ms"] >= result[phase][side]["p50_ms"] > 0
        assert set(result[phase]["added"]) == {"p50_ms", "p95_ms", "p99_ms", "mean_ms"}
    assert result["sequential"]["direct"]["requests"] == 20
    assert result["open_loop"]["direct"]["requests"] == 40
    steps = result["max_rate"]["steps"]
    assert [s["rate"] for s in steps] == [50, 100]
    assert all({"added_p99_ms", "passed", "gateway_error_rate"} <= set(s) for s in steps)
    assert result["max_rate"]["max_sustained_rate"] in (None, 50, 100)
    stats = stub.stats()
    assert stats["responses"] == {"200": stats["total"]} and stats["total"] > 200


@pytest.mark.system  # processes of their own
def test_bench_gateway_measures_every_api_through_lamina(stub: StubUpstream, tmp_path: Path) -> None:
    """The ``apis`` phase on a real Lamina: chat completions, Responses and Messages all answer,
    whole and streamed, each beside the direct call; no timing claims."""
    config = "[serve]\nmax_inflight = 64\n\n" + stub_model("stub", stub.base_url)
    with lamina_gateway(tmp_path, config, {"bench": ["--admin"]}) as gateway:
        result = bench_gateway(
            stub.base_url, gateway.root + "/v1", "x", gateway.keys["bench"], "stub", "stub",
            duration_s=0.2, rate=50, rates=(50,), sequential_n=10, stream_n=5, block_s=0.1, warmup_s=0.05,
        )  # fmt: skip
    apis = result["apis"]
    for phase, n in (("whole", 10), ("stream_ttft", 5)):
        for api in ("chat", "responses", "messages"):
            side = apis[phase][api]
            assert side["errors"] == {} and side["requests"] == n, (phase, api, side)
            assert set(side["added"]) == {"p50_ms", "p95_ms", "p99_ms", "mean_ms"}
