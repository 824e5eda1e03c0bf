"""``lamina bench gateway --scenarios``: the gateway under overload, unfair load, budget races,
dead upstreams and a long soak, each on stub upstreams and a real ``lamina serve`` process.

Every scenario returns plain numbers and the goal it is judged by; where a baseline makes sense it
runs in the same call (fairness: the same load with ``fair_share = "none"``, first come first
served). Requests come from an httpx client in this process, at rates far under its ceiling.
"""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from lamina.bench.gateway import percentile
from lamina.bench.gateway_process import Gateway, lamina_gateway
from lamina.testing.stub_upstream import StubUpstream

SERVICE_MS = 200  # what one stub answer takes: capacity = max_inflight / 0.2 s


def stub_model(name: str, url: str, **extra: Any) -> str:
    lines = [f"[models.{name}]", 'backend = "openai"', f'base_url = "{url}"', 'model = "stub"', "chat = true"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


@dataclass
class Outcome:
    status: int  # 0: timed out or the connection failed
    seconds: float
    retry_after: str | None = None
    usage: dict[str, int] | None = None
    done_at: float = 0.0


async def _call(
    http: httpx.AsyncClient,
    key: str,
    model: str = "stub",
    *,
    timeout_s: float = 10.0,
    stream: bool = False,
    cancel_after: int | None = None,
) -> Outcome:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    headers = {"Authorization": f"Bearer {key}", "x-request-timeout": str(timeout_s)}
    began = time.perf_counter()
    try:
        if stream:
            async with http.stream(
                "POST",
                "/v1/chat/completions",
                json={**body, "stream": True},
                headers=headers,
                timeout=timeout_s,
            ) as r:
                n = 0
                async for _ in r.aiter_lines():
                    n += 1
                    if cancel_after is not None and n >= cancel_after:
                        break  # the client goes away mid-stream
                return Outcome(r.status_code, time.perf_counter() - began, done_at=time.perf_counter())
        r = await http.post("/v1/chat/completions", json=body, headers=headers, timeout=timeout_s)
    except httpx.TimeoutException:
        return Outcome(0, time.perf_counter() - began, done_at=time.perf_counter())
    except httpx.TransportError:
        return Outcome(-1, time.perf_counter() - began, done_at=time.perf_counter())
    usage = r.json().get("usage") if r.status_code == 200 else None
    return Outcome(
        r.status_code, time.perf_counter() - began, r.headers.get("retry-after"), usage, time.perf_counter()
    )


async def _open_loop(
    http: httpx.AsyncClient, call: Callable[[], Any], rate: float, seconds: float
) -> list[Outcome]:
    tasks = []
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(call()))
    return list(await asyncio.gather(*tasks))


def _ms(values: list[float]) -> dict[str, float | None]:
    return {f"p{q}_ms": round(percentile(values, q) * 1000, 1) if values else None for q in (50, 99)}


def overload(work: Path, seconds: float = 30.0, factor: float = 10.0) -> dict[str, Any]:
    """10x the capacity for ``seconds``: 429s (each with Retry-After), never 5xx or a hung request."""
    inflight = 4
    capacity = inflight / (SERVICE_MS / 1000)
    with (
        StubUpstream("ok", delay_ms=SERVICE_MS) as stub,
        lamina_gateway(
            work / "overload",
            f"[serve]\nmax_inflight = {inflight}\nmax_queue = 64\n\n" + stub_model("stub", stub.base_url),
            {"load": ["--admin"]},
        ) as gw,
    ):

        async def run() -> list[Outcome]:
            limits = httpx.Limits(max_connections=2000, max_keepalive_connections=500)
            async with httpx.AsyncClient(base_url=gw.root, limits=limits) as http:
                return await _open_loop(
                    http, lambda: _call(http, gw.keys["load"]), capacity * factor, seconds
                )

        began = time.perf_counter()
        outcomes = asyncio.run(run())
    statuses = Counter(o.status for o in outcomes)
    refused = [o for o in outcomes if o.status == 429]
    return {
        "capacity_rps": capacity,
        "offered_rps": capacity * factor,
        "seconds": seconds,
        "requests": len(outcomes),
        "ok": statuses[200],
        "refused_429": statuses[429],
        "server_errors_5xx": sum(n for s, n in statuses.items() if s >= 500),
        "timeouts_or_failed": statuses[0] + statuses[-1],
        "429_without_retry_after": sum(1 for o in refused if not o.retry_after),
        "goodput_rps": round(statuses[200] / (max(o.done_at for o in outcomes) - began), 1),
        "retry_after_s": sorted({o.retry_after for o in refused if o.retry_after}, key=float)[:10],
        "ok_latency": _ms([o.seconds for o in outcomes if o.status == 200]),
        "refusal_latency": _ms([o.seconds for o in refused]),
        "goal": "0 5xx, 0 timeouts, every 429 with Retry-After; goodput near capacity",
    }


def fairness(work: Path, seconds: float = 20.0) -> dict[str, Any]:
    """Tenant A floods; B asks at a modest rate. B's latency alone, then beside A's flood, under VTC
    and under first-come-first-served; then both flood and the service gap between them is tracked."""
    inflight = 4
    results: dict[str, Any] = {}
    for share in ("tenant", "none"):
        with (
            StubUpstream("ok", delay_ms=SERVICE_MS) as stub,
            lamina_gateway(
                work / f"fair-{share}",
                f'[serve]\nmax_inflight = {inflight}\nmax_queue = 512\nfair_share = "{share}"\n\n'
                + stub_model("stub", stub.base_url),
                {"a": ["--tenant", "a"], "b": ["--tenant", "b"]},
            ) as gw,
        ):
            results[share] = asyncio.run(fair_run(gw, inflight, seconds))
    vtc, fifo = results["tenant"], results["none"]
    return {
        "capacity_rps": inflight / (SERVICE_MS / 1000),
        "b_alone": vtc["b_alone"],
        "b_beside_flood_vtc": vtc["b_flooded"],
        "b_beside_flood_fifo": fifo["b_flooded"],
        "b_p50_ratio_vtc": ratio(vtc["b_flooded"], vtc["b_alone"]),
        "b_p50_ratio_fifo": ratio(fifo["b_flooded"], fifo["b_alone"]),
        "both_backlogged_max_service_gap_vtc": vtc["max_gap"],
        "both_backlogged_max_service_gap_fifo": fifo["max_gap"],
        "one_request_service": vtc["one_request"],
        "goal": "B within 2x of alone while A is backlogged; service gap bounded (VTC), not growing",
    }


def ratio(a: dict[str, float | None], b: dict[str, float | None]) -> float | None:
    x, y = a["p50_ms"], b["p50_ms"]
    return round(x / y, 2) if x and y else None


class Spread(httpx.AsyncBaseTransport):
    """Sends each request to the next of several servers in turn: replicas behind a balancer."""

    def __init__(self, roots: list[str]) -> None:
        self.targets = [httpx.URL(r) for r in roots]
        self._next = 0
        self._inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=500))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        target = self.targets[self._next % len(self.targets)]
        self._next += 1
        request.url = request.url.copy_with(host=target.host, port=target.port)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def fair_run(
    gw: Gateway, inflight: int, seconds: float, transport: httpx.AsyncBaseTransport | None = None
) -> dict[str, Any]:
    """The fairness load against ``gw`` (or, with ``transport``, wherever it sends each request)."""
    capacity = inflight / (SERVICE_MS / 1000)
    limits = httpx.Limits(max_connections=500)
    async with httpx.AsyncClient(base_url=gw.root, limits=limits, timeout=60, transport=transport) as http:

        def b_call() -> Any:
            return _call(http, gw.keys["b"], timeout_s=60)

        alone = await _open_loop(http, b_call, capacity * 0.2, seconds / 4)
        stop = asyncio.Event()
        served: dict[str, list[Outcome]] = {"a": [], "b": []}

        async def flood(who: str, width: int) -> None:
            async def worker() -> None:
                while not stop.is_set():
                    served[who].append(await _call(http, gw.keys[who], timeout_s=60))

            await asyncio.gather(*(worker() for _ in range(width)))

        flooding = asyncio.create_task(flood("a", inflight * 6))
        await asyncio.sleep(2)  # A is backlogged
        beside = await _open_loop(http, b_call, capacity * 0.2, seconds / 2)
        # both backlogged: B with a third of A's connections
        began = time.perf_counter()
        b_flood = asyncio.create_task(flood("b", inflight * 2))
        await asyncio.sleep(seconds / 2)
        stop.set()
        await asyncio.gather(flooding, b_flood)
    gap, one = _service_gap(served, began)
    return {
        "b_alone": _ms([o.seconds for o in alone]),
        "b_flooded": _ms([o.seconds for o in beside]),
        "max_gap": gap,
        "one_request": one,
    }


def _service_gap(served: dict[str, list[Outcome]], since: float) -> tuple[float, float]:
    """VTC's measure: the largest difference in service (input + 2 x output tokens) received by
    the two backlogged tenants at any moment since ``since``; and one request's service."""
    events = sorted(
        (
            o.done_at,
            who,
            (o.usage or {}).get("prompt_tokens", 0) + 2 * (o.usage or {}).get("completion_tokens", 0),
        )
        for who, outs in served.items()
        for o in outs
        if o.status == 200 and o.done_at >= since
    )
    total = {"a": 0.0, "b": 0.0}
    gap = 0.0
    for _, who, service in events:
        total[who] += service
        gap = max(gap, abs(total["a"] - total["b"]))
    one = max((s for _, _, s in events), default=0)
    return gap, float(one)


def budget_race(work: Path, concurrent: int = 100) -> dict[str, Any]:
    """``concurrent`` requests at once against a budget that admits about ten."""
    price_in, price_out = 1000.0, 2000.0
    # reservation of one request: (2 chars + 16) prompt tokens and 16 completion tokens
    reservation = (18 * price_in + 16 * price_out) / 1e6
    budget = round(reservation * 10, 6)  # ten reservations fit at once
    with (
        StubUpstream("ok", delay_ms=50) as stub,
        lamina_gateway(
            work / "budget",
            "[serve]\nmax_inflight = 256\n\n"
            + stub_model(
                "stub", stub.base_url, price_input_per_mtok=price_in, price_output_per_mtok=price_out
            ),
            {"capped": ["--budget-usd", str(budget), "--budget-period", "total"], "admin": ["--admin"]},
        ) as gw,
    ):

        async def run() -> list[Outcome]:
            async with httpx.AsyncClient(base_url=gw.root, limits=httpx.Limits(max_connections=200)) as http:
                return list(
                    await asyncio.gather(*(_call(http, gw.keys["capped"]) for _ in range(concurrent)))
                )

        outcomes = asyncio.run(run())
        time.sleep(1.5)  # the request log is written in batches
        rows = httpx.get(
            gw.root + "/v1/usage",
            params={"by": "key"},
            headers={"Authorization": f"Bearer {gw.keys['admin']}"},
        ).json()["data"]
    spent = sum(r["spend_usd"] for r in rows if r["key"] == "capped")
    statuses = Counter(o.status for o in outcomes)
    return {
        "concurrent": concurrent,
        "budget_usd": budget,
        "one_reservation_usd": reservation,
        "ok": statuses[200],
        "refused_429": statuses[429],
        "spent_usd": round(spent, 6),
        "overspend_usd": round(max(0.0, spent - budget), 6),
        "goal": "overspend <= one reservation",
    }


def faults(work: Path, seconds: float = 20.0, rate: float = 20.0) -> dict[str, Any]:
    """A model whose only deployment fails every request, with a fallback: what got answered, and
    what the dead deployment received beyond its breaker's failures and half-open probes."""
    failures, cooldown = 3, 2.0
    with (
        StubUpstream("error500") as dead,
        StubUpstream("ok", delay_ms=20) as backup,
        lamina_gateway(
            work / "faults",
            "[serve]\nmax_inflight = 64\n\n"
            + stub_model(
                "flaky",
                dead.base_url,
                max_retries=0,
                breaker_failures=failures,
                breaker_cooldown_s=cooldown,
                fallbacks=["backup"],
            )
            + stub_model("backup", backup.base_url),
            {"load": ["--admin"]},
        ) as gw,
    ):

        async def run() -> list[Outcome]:
            async with httpx.AsyncClient(base_url=gw.root) as http:
                return await _open_loop(http, lambda: _call(http, gw.keys["load"], "flaky"), rate, seconds)

        outcomes = asyncio.run(run())
        dead_calls = dead.stats()["total"]
    probes = math.ceil(seconds / cooldown)
    statuses = Counter(o.status for o in outcomes)
    return {
        "requests": len(outcomes),
        "answered_share": round(statuses[200] / len(outcomes), 4),
        "dead_deployment_requests": dead_calls,
        "allowed_failures_plus_probes": failures + probes,
        "sent_while_open": max(0, dead_calls - failures - probes),
        "goal": "every request answered through the fallback; nothing sent while the breaker is open",
    }


def soak(work: Path, total: int = 10_000, concurrency: int = 16) -> dict[str, Any]:
    """``total`` mixed requests (plain, streamed, streams cancelled midway): the gateway's RSS."""
    with (
        StubUpstream("ok", chunk_delay_ms=1) as stub,
        lamina_gateway(
            work / "soak",
            "[serve]\nmax_inflight = 64\n\n" + stub_model("stub", stub.base_url),
            {"load": ["--admin"]},
        ) as gw,
    ):

        async def run(n: int) -> Counter[int]:
            statuses: Counter[int] = Counter()
            queue = iter(range(n))
            async with httpx.AsyncClient(base_url=gw.root) as http:

                async def worker() -> None:
                    for i in queue:
                        kind = i % 4  # plain, plain, streamed, streamed and cancelled
                        out = await _call(
                            http, gw.keys["load"], stream=kind >= 2, cancel_after=3 if kind == 3 else None
                        )
                        statuses[out.status] += 1

                await asyncio.gather(*(worker() for _ in range(concurrency)))
            return statuses

        asyncio.run(run(500))  # warm up: caches, pools, the request log's first batches
        start = gw.rss_mib()
        began = time.perf_counter()
        statuses = asyncio.run(run(total))
        seconds = time.perf_counter() - began
        time.sleep(1.0)
        end = gw.rss_mib()
    return {
        "requests": total,
        "statuses": dict(statuses),
        "seconds": round(seconds, 1),
        "rss_start_mib": round(start, 1),
        "rss_end_mib": round(end, 1),
        "rss_growth_pct": round((end - start) / start * 100, 2),
        "goal": "RSS growth <= 5%",
    }


SCENARIOS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "overload": overload,
    "fairness": fairness,
    "budget_race": budget_race,
    "faults": faults,
    "soak": soak,
}


def run_scenarios(names: list[str], say: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lamina-scenarios-")))
        for name in names:
            say(f"scenario {name}…")
            began = time.perf_counter()
            out[name] = SCENARIOS[name](work)
            out[name]["wall_s"] = round(time.perf_counter() - began, 1)
    return out
