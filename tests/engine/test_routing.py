"""Routing among a model's endpoints: each policy's choice, the load guard, breakers, and the prefix
index (in process; the Redis one in tests/test_routing_llamacpp.py with real llama.cpp servers)."""

from __future__ import annotations

import random
import time

import pytest

from lamina.engine.affinity import MemoryPrefixIndex, prefix_blocks, rendezvous, session_key
from lamina.engine.routing import Breaker, Endpoint, Route, pick
from lamina.models.types import GenerationRequest

SYSTEM = "You are the harbour master's assistant. " * 40  # ~1,600 characters: three blocks of 512


class _Upstream:
    pass


def endpoints(n: int = 3) -> list[Endpoint]:
    return [Endpoint(f"http://10.0.0.{i}/v1", _Upstream(), 1.0, Breaker()) for i in range(n)]  # type: ignore[arg-type]


def chat(*turns: str, user: str | None = None, session: str | None = None) -> GenerationRequest:
    messages = [{"role": "system", "content": SYSTEM}]
    for i, text in enumerate(turns):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return GenerationRequest(messages=messages, user=user, session=session)  # type: ignore[arg-type]


def test_prefix_blocks_name_whole_prefixes() -> None:
    first = prefix_blocks(chat("When is high tide?"), 512, "m")
    follow_up = prefix_blocks(chat("When is high tide?", "At six.", "And low tide?"), 512, "m")
    assert len(first) == 3 and follow_up[: len(first)] == first  # the turn before is a prefix
    assert prefix_blocks(chat("When is high tide?"), 512, "other") != first  # per model
    other = GenerationRequest(messages=[{"role": "system", "content": SYSTEM.upper()}])
    assert prefix_blocks(other, 512, "m")[0] != first[0]
    assert prefix_blocks(GenerationRequest(prompt="short"), 512) == []  # no whole block: nothing to match


def test_session_routing_keeps_a_conversation_on_one_endpoint_on_every_replica() -> None:
    eps = endpoints()
    rng = random.Random(1)
    for request in (chat("Hi", session="s-1"), chat("Hi", user="ada"), chat("Hi there, I need a berth")):
        route = Route("session", key=session_key(request))
        chosen = {pick(eps, set(), rng, route) for _ in range(20)}
        assert len(chosen) == 1 and next(iter(chosen))[1] == "session"
        # another replica computes the same order with no shared state
        assert rendezvous(route.key, [e.url for e in eps])[0] == next(iter(chosen))[0]
    # the conversation's next turn has the same key (its first messages did not change)
    assert session_key(chat("Hi there, I need a berth")) == session_key(
        chat("Hi there, I need a berth", "Which size?", "Twelve metres.")
    )


def test_prefix_routing_follows_the_longest_known_prefix() -> None:
    eps = endpoints()
    index = MemoryPrefixIndex()
    turn1 = prefix_blocks(chat("When is high tide?"), 512, "m")
    index.remember("m", turn1, eps[2].url)
    index.remember("m", turn1[:1], eps[0].url)  # another conversation shares only the first block
    index.remember("m", [*turn1[:1], "x"], eps[0].url)
    turn2 = prefix_blocks(chat("When is high tide?", "At six.", "And low tide?"), 512, "m")
    route = Route("prefix", blocks=turn2, known=index.lookup("m", turn2))
    assert pick(eps, set(), random.Random(0), route) == (2, "prefix_hit")
    fresh = prefix_blocks(GenerationRequest(prompt="z" * 2048), 512, "m")
    route = Route("prefix", blocks=fresh, known=index.lookup("m", fresh))
    eps[0].in_flight, eps[1].in_flight, eps[2].in_flight = 3, 1, 2
    assert pick(eps, set(), random.Random(0), route) == (1, "no_match")  # unknown: least loaded


def test_a_loaded_endpoint_gives_way_to_the_least_loaded() -> None:
    eps = endpoints()
    route = Route("prefix", bound=4, blocks=["a"], known=[eps[0].url])
    eps[0].in_flight = 4
    assert pick(eps, set(), random.Random(0), route) == (0, "prefix_hit")  # at the bound, not past it
    eps[0].server_load = 5  # the server says it runs and queues 5 (traffic not through Lamina)
    chosen, reason = pick(eps, set(), random.Random(0), route)
    assert chosen in (1, 2) and reason == "load_override"
    for e in eps:
        e.in_flight = e.server_load = 5  # everyone as loaded: stay with the prefix
    assert pick(eps, set(), random.Random(0), route) == (0, "prefix_hit")
    session = Route("session", bound=2, key="k")
    home = rendezvous("k", [e.url for e in eps])[0]
    eps[home].in_flight = eps[home].server_load = 9
    assert pick(eps, set(), random.Random(0), session)[1] == "load_override"


def test_an_open_breaker_or_a_tried_endpoint_loses_its_affinity() -> None:
    eps = endpoints()
    route = Route("prefix", blocks=["a"], known=[eps[0].url])
    eps[0].breaker.state, eps[0].breaker.opened_at = "open", time.monotonic()
    chosen, reason = pick(eps, set(), random.Random(0), route)
    assert chosen in (1, 2) and reason == "no_match"
    eps[0].breaker.success()
    assert pick(eps, {0}, random.Random(0), route)[0] in (1, 2)  # a retry goes elsewhere first
    assert pick(eps, set(), random.Random(0), Route("least_loaded"))[1] == "least_loaded"


@pytest.mark.parametrize("policy", ["weighted", "least_loaded", "session", "prefix"])
def test_every_policy_spreads_over_healthy_endpoints_only(policy: str) -> None:
    eps = endpoints()
    eps[1].breaker.state, eps[1].breaker.opened_at = "open", time.monotonic()
    rng = random.Random(3)
    for i in range(30):
        route = Route(policy, key=f"k{i}", blocks=[f"b{i}"], known=[None])
        assert pick(eps, set(), rng, route)[0] != 1


def test_the_memory_index_is_bounded_and_forgets() -> None:
    index = MemoryPrefixIndex(max_entries=3, ttl_s=0.05)
    index.remember("m", ["a", "b", "c", "d"], "u1")
    assert index.lookup("m", ["a", "b", "c", "d"]) == [None, "u1", "u1", "u1"] and len(index) == 3
    time.sleep(0.06)
    assert index.lookup("m", ["d"]) == [None]


def test_the_prompt_cache_is_off_at_temperature_0_on_llamacpp_unless_configured() -> None:
    from lamina.config import ModelSettings
    from lamina.models.base import request_body

    local = ModelSettings(backend="llamacpp", package="x", temperature=0.0)
    assert request_body("m", local, {}, stream=False)["cache_prompt"] is False  # greedy output kept
    assert "cache_prompt" not in request_body("m", local, {"temperature": 0.7}, stream=False)
    reuse = local.model_copy(update={"prompt_cache": True})
    assert request_body("m", reuse, {}, stream=False)["cache_prompt"] is True  # the documented trade
    remote = ModelSettings(backend="openai", base_url="http://x/v1", temperature=0.0)
    assert "cache_prompt" not in request_body("m", remote, {}, stream=False)  # the server's default
    assert (
        request_body("m", remote.model_copy(update={"prompt_cache": False}), {}, stream=False)["cache_prompt"]
        is False
    )
