"""``lamina bench routing``: weighted against prefix routing over two real llama.cpp servers, in one run.

Two endpoints of one model (the bundled GGUF on llama.cpp's server engine, ``lamina.testing.llamacpp``,
one thread each, ``parallel`` slots, ``/metrics`` on), started once for the whole run. Tenants each
have a system prompt of about a thousand tokens (real text: the bundled samples, or a BEIR dataset's
documents) and hold multi-turn conversations through Lamina: streamed chat completions, each turn the
conversation so far (the system prompt, earlier questions and the answers the model gave) and a new
short question. Conversations arrive open loop (Poisson, ``rate`` a second, whether or not earlier
ones are done; the exponential gaps are scaled to the exact mean rate); within one, the next turn is
sent a think time after the last answer. The schedule (arrival times, tenants, questions, think
times) comes from one seed, so every phase replays the same load.

Phases, each against a fresh ``lamina serve`` (``lamina.testing.server``) in front of the same two
endpoints: ``weighted``, ``prefix``, then both again with the second endpoint kept busy by a client
that is not Lamina (long completions straight to the server, more at once than it has slots), which
only the load guard can see (``server_load = "llamacpp"``: the server's own count from its
``/metrics``). llama.cpp keeps its prompt cache across phases, so each phase's system prompts begin
with the phase's own tag: no phase finds another's prompts cached, each starts cold alike.

Per phase: TTFT (to the first content chunk, from when the turn was due) and completion time,
throughput (answered requests and output tokens per second, from the first arrival to the last
answer), each endpoint's share of the output tokens (from its llama.cpp ``/metrics``, the
busy-maker's own tokens taken off: Lamina does not say which endpoint served a request; answers
are short and much alike in length, so the share is close to the requests'), the prompt tokens the
servers computed and found in their caches, and Lamina's routing decisions by reason.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from lamina.bench.gateway import _dist
from lamina.bench.gateway_process import Gateway
from lamina.bench.hardware import machine
from lamina.bench.routing_traffic import (
    MODEL,
    Conversation,
    Hog,
    Turn,
    run_conversations,
    schedule,
    tenant_prompts,
)
from lamina.bench.sources import Text
from lamina.engine.load import samples
from lamina.testing.llamacpp import LlamaCppServer
from lamina.testing.server import LaminaServer

PHASES = ("weighted", "prefix", "weighted_overloaded", "prefix_overloaded")
LLAMA_COUNTERS = ("prompt_tokens_total", "prompt_tokens_cached_total", "tokens_predicted_total")


def _llama_counters(root: str) -> dict[str, float]:
    found = samples(httpx.get(root + "/metrics", timeout=10, trust_env=False).text)
    return {c: sum(v for _, v in found.get(f"llamacpp:{c}", [])) for c in LLAMA_COUNTERS}


def _lamina_metrics(gateway: Gateway) -> str:
    headers = {"Authorization": f"Bearer {gateway.keys['bench']}"}
    return httpx.get(gateway.root + "/metrics", headers=headers, timeout=10, trust_env=False).text


async def _until_loaded(gateway: Gateway, url: str, bound: int, timeout_s: float = 60.0) -> float:
    """Wait until Lamina routes by a load past ``bound`` at ``url`` (what its poll of the server says)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        loads = samples(await asyncio.to_thread(_lamina_metrics, gateway)).get("lamina:endpoint_load", [])
        seen = next((v for labels, v in loads if labels.get("endpoint") == url), 0.0)
        if seen > bound:
            return seen
        await asyncio.sleep(0.1)
    raise RuntimeError(f"Lamina never saw {url} loaded past {bound} within {timeout_s:g}s")


def lamina_config(routing: str, urls: Sequence[str], *, max_tokens: int, bound: int, poll_s: float) -> str:
    others = ", ".join(f'{{ base_url = "{u}" }}' for u in urls[1:])
    return f"""default_model = "{MODEL}"

[serve]
cache = false
max_inflight = 256
max_queue_wait_s = 600

[models.{MODEL}]
backend = "openai"
base_url = "{urls[0]}"
model = "gemma"
chat = false
temperature = 0.0
max_tokens = {max_tokens}
timeout_s = 600
routing = "{routing}"
route_load_bound = {bound}
server_load = "llamacpp"
load_poll_s = {poll_s}
endpoints = [{others}]
"""


def _phase_numbers(
    turns: list[Turn],
    start: float,
    end: float,
    counters: dict[str, dict[str, float]],
    lamina_text: str,
    names: dict[str, str],
) -> dict[str, Any]:
    ok = [t for t in turns if t.error is None]
    wall = end - start
    tokens = sum(t.tokens for t in ok)
    out_by = {names[u]: c["tokens_predicted_total"] for u, c in counters.items()}
    total_out = sum(out_by.values())
    computed = sum(c["prompt_tokens_total"] for c in counters.values())
    cached = sum(c["prompt_tokens_cached_total"] for c in counters.values())
    found = samples(lamina_text)
    decisions = {
        labels["reason"]: int(v)
        for labels, v in found.get("lamina:routing_decisions_total", [])
        if labels.get("model") == MODEL
    }
    ratio = [v for labels, v in found.get("lamina:prefix_hit_ratio", []) if labels.get("model") == MODEL]
    return {
        "requests": len(turns),
        "ok": len(ok),
        "errors": dict(Counter(t.error for t in turns if t.error is not None)),
        "conversations": len({t.conversation for t in turns}),
        "ttft_s": _seconds(_dist([(t.first - t.due) * 1000 for t in ok])),
        "completion_s": _seconds(_dist([(t.done - t.due) * 1000 for t in ok])),
        "seconds": round(wall, 2),
        "req_per_s": round(len(ok) / wall, 3) if wall > 0 else None,
        "output_tokens": tokens,
        "output_tok_per_s": round(tokens / wall, 2) if wall > 0 else None,
        "endpoint_share": {n: round(v / total_out, 3) if total_out else None for n, v in out_by.items()},
        "prompt_tokens": {
            "computed": int(computed),
            "cached": int(cached),
            "cached_share": round(cached / (computed + cached), 3) if computed + cached else None,
        },
        "endpoints": {names[u]: {k: int(v) for k, v in c.items()} for u, c in counters.items()},
        "routing_decisions": decisions,
        "prefix_hit_ratio": round(ratio[0], 3) if ratio else None,
    }


def _seconds(stats: dict[str, float | None]) -> dict[str, float | None]:
    """_dist's milliseconds as seconds (mean, p50, p95, p99)."""
    return {k.removesuffix("_ms"): None if v is None else round(v / 1000, 3) for k, v in stats.items()}


async def _measured(
    gateway: Gateway,
    servers: dict[str, LlamaCppServer],
    plan: list[Conversation],
    systems: list[str],
    hog: Hog | None,
    busy_url: str,
    bound: int,
) -> tuple[list[Turn], float, float, dict[str, dict[str, float]], dict[str, Any]]:
    before = {u: await asyncio.to_thread(_llama_counters, s.root) for u, s in servers.items()}
    extra: dict[str, Any] = {}
    if hog is not None:
        hog.start()
        extra["busy_load_seen"] = await _until_loaded(gateway, busy_url, bound)
    turns, start, end = await run_conversations(gateway.root + "/v1", gateway.keys["bench"], plan, systems)
    if hog is not None:
        await hog.stop()
        extra["busy_maker"] = {
            "streams": hog.streams,
            "max_tokens": hog.max_tokens,
            "requests": hog.usage["requests"],
            "errors": dict(hog.errors),
        }
    after = {u: await asyncio.to_thread(_llama_counters, s.root) for u, s in servers.items()}
    deltas = {u: {c: after[u][c] - before[u][c] for c in LLAMA_COUNTERS} for u in servers}
    if hog is not None:  # the busy-maker's own tokens are not Lamina's traffic
        for c in LLAMA_COUNTERS:
            deltas[busy_url][c] -= hog.usage[c]
    return turns, start, end, deltas, extra


@contextmanager
def _lamina(data_dir: Path, config: str, models_dir: Path) -> Iterator[Gateway]:
    """``lamina serve`` with ``config``, on a free port, with an admin key (for its /metrics); it
    shares ``models_dir``, so no phase builds the embedder's graph again."""
    server = LaminaServer(data_dir, models_dir, config=config, startup_timeout_s=120)
    store = server.keys()
    key = store.create("bench", admin=True)[1]
    store.engine.dispose()
    with server:
        assert server.proc is not None
        yield Gateway(server.root, {"bench": key}, server.proc.pid)


@contextmanager
def _endpoints(models_dir: Path, n: int, parallel: int, context: int) -> Iterator[list[LlamaCppServer]]:
    with ExitStack() as stack:
        yield [  # one after the other: the first assembles the GGUF, if it is not there yet
            stack.enter_context(LlamaCppServer(models_dir, threads=1, parallel=parallel, context=context))
            for _ in range(n)
        ]


def bench_routing(
    work: Path,
    models_dir: Path,
    texts: Sequence[Text],
    *,
    text_source: str = "samples",
    tenants: int = 8,
    prompt_chars: int = 4400,
    conversations: int = 12,
    turns: int = 3,
    rate: float = 0.25,
    think_s: float = 1.0,
    max_tokens: int = 16,
    parallel: int = 2,
    load_bound: int | None = None,
    busy_streams: int | None = None,
    busy_tokens: int = 64,
    load_poll_s: float = 0.2,
    seed: int = 0,
    phases: Sequence[str] = PHASES,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every phase of ``phases`` over two llama.cpp endpoints of the bundled model (from
    ``models_dir``), each against a fresh Lamina under ``work``; plain JSON-able numbers."""
    say = progress or (lambda _msg: None)
    bound = load_bound or parallel
    streams = busy_streams or parallel + 2  # every slot running and two waiting: always past the bound
    plan = schedule(conversations, tenants, turns, rate, think_s, seed)
    base = tenant_prompts(texts, tenants, prompt_chars)
    result: dict[str, Any] = {
        "machine": machine(),
        "config": {
            "endpoints": 2,
            "threads_per_endpoint": 1,
            "parallel": parallel,
            "tenants": tenants,
            "system_prompt_chars": prompt_chars,
            "texts": text_source,
            "conversations": conversations,
            "turns": turns,
            "rate_conversations_per_s": rate,
            "think_s": think_s,
            "max_tokens": max_tokens,
            "route_load_bound": bound,
            "load_poll_s": load_poll_s,
            "busy_streams": streams,
            "busy_tokens": busy_tokens,
            "seed": seed,
            "cache_between_phases": "servers kept; each phase's system prompts begin with its own tag",
        },
        "phases": {},
    }
    say(f"starting two llama.cpp endpoints (1 thread, {parallel} slots each)")
    with _endpoints(models_dir, 2, parallel, context=4096) as servers:
        urls = [s.base_url for s in servers]
        names = {urls[0]: "A", urls[1]: "B"}
        result["config"]["busy_endpoint"] = "B"
        by_url = dict(zip(urls, servers, strict=True))
        for number, phase in enumerate(phases, 1):
            routing, overloaded = phase.split("_")[0], phase.endswith("_overloaded")
            tag = f"[Phase {number} of the routing bench.]\n"
            systems = [tag + s for s in base]
            config = lamina_config(routing, urls, max_tokens=max_tokens, bound=bound, poll_s=load_poll_s)
            say(
                f"phase {number} {phase}: {conversations} conversations of {turns} turns at {rate:g}/s"
                + (", endpoint B kept busy from outside" if overloaded else "")
            )
            with _lamina(work / phase, config, models_dir) as gateway:
                hog = Hog(servers[1].root, streams, busy_tokens) if overloaded else None
                turned, start, end, deltas, extra = asyncio.run(
                    _measured(gateway, by_url, plan, systems, hog, urls[1], bound)
                )
                numbers = _phase_numbers(turned, start, end, deltas, _lamina_metrics(gateway), names)
            result["phases"][phase] = {"routing": routing, "overloaded": overloaded, **numbers, **extra}
            p = result["phases"][phase]
            say(
                f"  {p['ok']}/{p['requests']} ok, TTFT mean {p['ttft_s']['mean']} s, "
                f"p95 {p['ttft_s']['p95']} s, {p['req_per_s']} req/s, share {p['endpoint_share']}"
            )
    return result


def table_rows(result: dict[str, Any]) -> list[list[str]]:
    """One row per phase, for the CLI's table and the README's."""
    rows = []
    for phase, p in result["phases"].items():
        share = " / ".join(f"{v:.0%}" if v is not None else "-" for v in p["endpoint_share"].values())
        decisions = ", ".join(f"{k} {v}" for k, v in sorted(p["routing_decisions"].items()))
        errors = sum(p["errors"].values())
        rows.append(
            [
                phase.replace("_", " "),
                f"{p['ok']}" + (f" ({errors} failed)" if errors else ""),
                _pair(p["ttft_s"]),
                f"{p['completion_s']['mean']:.2f}" if p["completion_s"]["mean"] is not None else "-",
                f"{p['req_per_s']:.2f}",
                f"{p['output_tok_per_s']:.1f}",
                share,
                _prompt_tokens(p["prompt_tokens"]),
                decisions,
            ]
        )
    return rows


def _prompt_tokens(tokens: dict[str, Any]) -> str:
    share = tokens["cached_share"]
    return f"{tokens['computed']:,} · {share:.0%}" if share is not None else f"{tokens['computed']:,}"


def _pair(stats: dict[str, float | None]) -> str:
    mean, p95 = stats["mean"], stats["p95"]
    return "-" if mean is None or p95 is None else f"{mean:.2f} / {p95:.2f}"
