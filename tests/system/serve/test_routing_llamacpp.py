"""Prefix routing over two real llama.cpp servers and two Lamina replicas sharing Redis: a
conversation's turns stay on the endpoint that holds its prefix whichever replica and API (chat
completions, Messages, Responses) they arrive by; an endpoint past its load bound is passed over;
an endpoint that dies loses its prefixes and traffic moves on."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import redis

from lamina.engine.affinity import prefix_blocks
from lamina.models.types import GenerationRequest
from lamina.testing.llamacpp import LlamaCppServer
from lamina.testing.server import LaminaServer, until

SYSTEM = "You answer questions about the harbour of Port Lamina, its tides, berths and fees. " * 15


@pytest.fixture(scope="module")
def twins(models_dir: Path) -> Iterator[tuple[LlamaCppServer, LlamaCppServer]]:
    """Two endpoints of one model, one slot each: one request in flight loads a server fully."""
    with (
        LlamaCppServer(models_dir, threads=1, parallel=1) as a,
        LlamaCppServer(models_dir, threads=1, parallel=1) as b,
    ):
        yield a, b


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory,
    models_dir: Path,
    redis_url: str,
    twins: tuple[LlamaCppServer, LlamaCppServer],
) -> Iterator[list[tuple[LaminaServer, str]]]:
    a, b = twins
    config = f"""default_model = "twin"
redis_url = "{redis_url}"

[serve]
cache = false

[models.twin]
backend = "openai"
base_url = "{a.base_url}"
model = "gemma"
chat = false
temperature = 0.0
max_tokens = 4
routing = "prefix"
prefix_block_chars = 256
route_load_bound = 1
server_load = "llamacpp"
load_poll_s = 0.2
breaker_failures = 1
max_retries = 2
endpoints = [{{ base_url = "{b.base_url}" }}]
"""
    running = []
    try:
        for n in (1, 2):
            server = LaminaServer(tmp_path_factory.mktemp(f"replica{n}"), models_dir, config=config)
            store = server.keys()
            key = store.create("admin", admin=True)[1]
            store.engine.dispose()
            running.append((server.start(), key))
        yield running
    finally:
        for server, _ in running:
            server.stop()


def owners(redis_url: str, messages: list[dict[str, str]]) -> dict[str, str]:
    """Each block of this conversation's prefix that Redis remembers (as every replica sees it), and
    the endpoint holding it."""
    blocks = prefix_blocks(GenerationRequest(messages=messages), 256, "twin")  # type: ignore[arg-type]
    keys = [f"lamina:prefix:twin:{h}" for h in blocks]
    found = redis.Redis.from_url(redis_url).mget(keys)
    return {k: v.decode() for k, v in zip(keys, found, strict=True) if v is not None}


def decisions(server: LaminaServer, key: str) -> dict[str, float]:
    text = httpx.get(f"{server.root}/metrics", headers={"Authorization": f"Bearer {key}"}).text
    found = re.findall(
        r'^lamina:routing_decisions_total\{model="twin",reason="(\w+)"\} ([0-9.]+)', text, re.M
    )
    return {reason: float(n) for reason, n in found}


def chat(server: LaminaServer, key: str, messages: list[dict[str, str]]) -> str:
    client = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=120)
    answer = client.chat.completions.create(model="twin", messages=messages)  # type: ignore[arg-type]
    return answer.choices[0].message.content or ""


def conversation(topic: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": f"{topic}. {SYSTEM}"},
        {"role": "user", "content": "When is high tide?"},
    ]


def test_a_conversation_stays_where_its_prefix_is_across_replicas_and_apis(
    replicas: list[tuple[LaminaServer, str]], redis_url: str, twins: tuple[LlamaCppServer, LlamaCppServer]
) -> None:
    (r1, k1), (r2, k2) = replicas
    messages = conversation("Tides")
    chat(r1, k1, messages)
    first = set(owners(redis_url, messages).values())
    assert len(first) == 1  # turn 1 went to one endpoint, which now holds every block of it
    messages.append({"role": "assistant", "content": "At six in the morning."})
    before = decisions(r2, k2).get("prefix_hit", 0)
    messages.append({"role": "user", "content": "And low tide?"})
    reply = anthropic.Anthropic(base_url=r2.root, api_key=k2, max_retries=0, timeout=120).messages.create(
        model="twin",
        system=messages[0]["content"],
        messages=messages[1:],  # type: ignore[arg-type]
        max_tokens=4,
    )
    assert reply.content is not None
    messages.append({"role": "assistant", "content": "At noon."})
    assert decisions(r2, k2).get("prefix_hit", 0) == before + 1  # the other replica knew, through Redis
    messages.append({"role": "user", "content": "Is there a fee for a berth?"})
    client = openai.OpenAI(base_url=r1.base_url, api_key=k1, max_retries=0, timeout=120)
    client.responses.create(model="twin", input=messages, max_output_tokens=4)  # type: ignore[arg-type]
    assert set(owners(redis_url, messages).values()) == first  # all three turns on the one endpoint


def test_an_endpoint_past_its_load_bound_is_passed_over(
    replicas: list[tuple[LaminaServer, str]], redis_url: str, twins: tuple[LlamaCppServer, LlamaCppServer]
) -> None:
    (r1, k1), _ = replicas
    messages = conversation("Berths")
    chat(r1, k1, messages)
    home = next(iter(owners(redis_url, messages).values()))
    busy = next(t for t in twins if t.base_url == home)
    stop = threading.Event()

    def hog() -> None:  # clients that do not come through Lamina keep the endpoint's one slot busy
        with httpx.Client(timeout=120) as http:
            while not stop.is_set():
                http.post(
                    f"{busy.base_url}/completions", json={"prompt": "Count: 1, 2, 3,", "max_tokens": 64}
                )

    threads = [threading.Thread(target=hog, daemon=True) for _ in range(2)]  # one running, one queued
    for thread in threads:
        thread.start()
    try:
        until(
            lambda: re.search(
                rf'^lamina:endpoint_load\{{endpoint="{re.escape(home)}",model="twin"\}} [2-9]',
                httpx.get(f"{r1.root}/metrics", headers={"Authorization": f"Bearer {k1}"}).text,
                re.M,
            ),
            timeout_s=30,
            what="the replica to see the endpoint's own load",
        )
        before = decisions(r1, k1).get("load_override", 0)
        messages.append({"role": "assistant", "content": "At six."})
        messages.append({"role": "user", "content": "Which berth is free?"})
        chat(r1, k1, messages)
        assert decisions(r1, k1).get("load_override", 0) == before + 1
        assert set(owners(redis_url, messages).values()) != {home}  # served by the other endpoint
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)


def test_an_endpoint_that_dies_loses_its_prefixes_and_traffic_moves_on(
    replicas: list[tuple[LaminaServer, str]], redis_url: str, twins: tuple[LlamaCppServer, LlamaCppServer]
) -> None:
    _, (r2, k2) = replicas
    messages = conversation("Fees")
    chat(r2, k2, messages)
    blocks = owners(redis_url, messages)
    home = next(iter(blocks.values()))
    messages.append({"role": "assistant", "content": "Twelve euros."})
    dead = next(t for t in twins if t.base_url == home)
    other = next(t for t in twins if t is not dead)
    dead.kill()
    messages.append({"role": "user", "content": "Is the fee per night?"})
    assert chat(r2, k2, messages) is not None  # answered by the other endpoint, after one retry
    moved: dict[str, Any] = owners(redis_url, messages)
    assert set(moved.values()) == {other.base_url}  # its prefixes now live there
    messages.append({"role": "assistant", "content": "Yes."})
    messages.append({"role": "user", "content": "And per week?"})
    before = decisions(r2, k2).get("prefix_hit", 0)
    chat(r2, k2, messages)
    assert decisions(r2, k2).get("prefix_hit", 0) == before + 1
