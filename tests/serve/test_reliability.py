"""Retries, circuit breakers and fallbacks on a real server, with stub upstreams that fail on purpose."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from lamina.testing.inprocess import InProcessServer
from lamina.testing.stub_upstream import StubUpstream

CHAT = {"model": "split", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


@pytest.fixture(scope="module")
def stubs() -> Iterator[tuple[StubUpstream, StubUpstream]]:
    with StubUpstream("ok") as broken, StubUpstream("ok") as healthy:
        yield broken, healthy


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path, stubs: tuple[StubUpstream, StubUpstream]
) -> Iterator[openai.OpenAI]:
    broken, healthy = stubs
    config = f"""
[models.split]
backend = "openai"
base_url = "{broken.base_url}"
model = "stub"
chat = true
max_retries = 2
breaker_failures = 2
breaker_cooldown_s = 1.5
timeout_s = 5
first_token_timeout_s = 1
endpoints = [{{ base_url = "{healthy.base_url}", weight = 1 }}]

[models.dead]
backend = "openai"
base_url = "{broken.base_url}"
model = "stub"
chat = true
max_retries = 1
breaker_failures = 100
fallbacks = ["split"]
"""
    server = InProcessServer(tmp_path_factory.mktemp("reliability"), models_dir, config=config)
    store = server.keys()
    key = store.create("admin", admin=True)[1]
    store.engine.dispose()
    with server:
        yield openai.OpenAI(
            http_client=server.http_client(), base_url=server.base_url, api_key=key, max_retries=0, timeout=30
        )


def test_breaker_keeps_traffic_off_a_dead_endpoint_then_probes(
    client: openai.OpenAI, stubs: tuple[StubUpstream, StubUpstream]
) -> None:
    broken, healthy = stubs
    broken.set_mode("error500")
    for s in stubs:
        s.reset_stats()
    for _ in range(20):  # retries land on the healthy endpoint: every request is answered
        assert client.chat.completions.create(**CHAT).choices[0].message.content  # type: ignore[arg-type]
    failed = broken.stats()["total"]
    assert failed <= 2  # the breaker opened after 2 failures: no more traffic while open
    assert healthy.stats()["total"] >= 20
    broken.set_mode("ok")
    time.sleep(1.6)  # cooldown over: the next request may probe the recovered endpoint
    for _ in range(20):
        client.chat.completions.create(**CHAT)  # type: ignore[arg-type]
    assert broken.stats()["total"] > failed  # probed, closed, and back in rotation


def test_streams_retry_before_the_first_byte(
    client: openai.OpenAI, stubs: tuple[StubUpstream, StubUpstream]
) -> None:
    broken, _ = stubs
    broken.set_mode("ok", delay_ms=3000)  # no first token within first_token_timeout_s
    for _ in range(3):
        text = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(**CHAT, stream=True)  # type: ignore[call-overload]
            if c.choices
        )
        assert text
    broken.set_mode("ok", delay_ms=0)


def test_fallback_answers_when_a_model_is_down(
    client: openai.OpenAI, stubs: tuple[StubUpstream, StubUpstream]
) -> None:
    broken, _ = stubs
    broken.set_mode("error500")
    r = client.chat.completions.create(**CHAT | {"model": "dead"})  # type: ignore[arg-type]
    assert r.model == "split" and r.choices[0].message.content
    broken.set_mode("error429")
    stream = client.chat.completions.create(**CHAT | {"model": "dead"}, stream=True)  # type: ignore[call-overload]
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    broken.set_mode("ok")


def test_client_errors_are_not_retried(
    client: openai.OpenAI, stubs: tuple[StubUpstream, StubUpstream]
) -> None:
    for s in stubs:
        s.reset_stats()
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="split", messages=[{"role": "user", "content": "hi"}], n=0)  # type: ignore[arg-type]
    assert sum(s.stats()["total"] for s in stubs) == 0  # refused at the edge, nothing sent upstream
    # the model's own 400 (a tool result that answers no call): no retry, no other endpoint tried
    orphan = {"role": "tool", "tool_call_id": "call_nobody", "content": "?"}
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="split", messages=[{"role": "user", "content": "hi"}, orphan])  # type: ignore[list-item]
    assert sum(s.stats()["total"] for s in stubs) == 1
