"""``lamina bench gateway``: the latency a gateway adds over its upstream, both measured in one run.

The same load goes straight to the upstream ("direct") and through the gateway, alternated in
time so drift on a shared machine hits both alike; what the gateway adds is the difference of the
two distributions' percentiles. The load comes from a separate process (lamina.bench.loadgen), so
the generator's CPU is never charged to either side. Phases:

* ``sequential``: concurrency 1, direct and gateway requests alternated;
* ``open_loop``: a fixed rate on a schedule that ignores completions, latency counted from each
  request's due time, so queueing shows up as latency;
* ``max_rate``: the rate stepped up until the gateway's added p99 passes the budget (or it errs);
* ``stream_ttft``: time to the first content token of a stream, at concurrency 1;
* ``apis``: concurrency 1 again, the direct chat completion beside the same question through each
  API Lamina speaks (chat completions, OpenAI's Responses, Anthropic's Messages), whole and streamed:
  what each protocol layer costs on top of the one engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from lamina.bench.loadgen import LoadGenerator
from lamina.bench.pools import APIS, Target

DEFAULT_RATES = (100.0, 200.0, 300.0, 500.0, 700.0, 1000.0)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _dist(values: Sequence[float]) -> dict[str, float | None]:
    def r(x: float) -> float | None:
        return None if x != x else round(x, 3)  # NaN -> null: the result stays valid JSON

    stats = {f"p{q}_ms": r(percentile(values, q)) for q in (50, 95, 99)}
    stats["mean_ms"] = r(sum(values) / len(values)) if values else None
    return stats


def _side(summary: dict[str, Any], key: str = "latency_ms", open_loop: bool = False) -> dict[str, Any]:
    """One target's numbers from a loadgen summary: percentiles, errors; open loop: rate, send lag."""
    side = {
        "requests": summary["count"],
        "ok": summary["ok"],
        "errors": summary["errors"],
        "error_rate": round(1 - summary["ok"] / summary["count"], 4) if summary["count"] else 0.0,
        **_dist(summary[key]),
    }
    if open_loop:  # how far behind schedule the generator sent: its own share of the latency
        side["achieved_rate"] = round(summary["ok"] / summary["seconds"], 1) if summary["seconds"] else None
        side["send_lag_p99_ms"] = _dist(summary["send_lag_ms"])["p99_ms"]
    return side


def _added(direct: dict[str, Any], gateway: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for stat in ("p50_ms", "p95_ms", "p99_ms", "mean_ms"):
        d, g = direct[stat], gateway[stat]
        out[stat] = None if d is None or g is None else round(g - d, 3)
    return out


def _compare(result: dict[str, Any], key: str = "latency_ms", open_loop: bool = False) -> dict[str, Any]:
    direct = _side(result["targets"]["direct"], key, open_loop)
    gateway = _side(result["targets"]["gateway"], key, open_loop)
    cpu = result["cpu_s"] / result["wall_s"] if result["wall_s"] else 0.0
    return {
        "direct": direct,
        "gateway": gateway,
        "added": _added(direct, gateway),
        "generator_cpu": round(cpu, 3),
    }


def bench_gateway(
    direct_url: str,
    gateway_url: str,
    direct_key: str,
    gateway_key: str,
    model_direct: str,
    model_gateway: str,
    *,
    duration_s: float = 5.0,
    rate: float = 200.0,
    rates: Sequence[float] = DEFAULT_RATES,
    step_duration_s: float | None = None,
    sequential_n: int = 300,
    stream_n: int = 100,
    p99_budget_ms: float = 20.0,
    max_error_rate: float = 0.001,
    block_s: float = 1.0,
    warmup_s: float = 0.5,
    timeout_s: float = 10.0,
    client: str = "raw",
    max_connections: int = 256,
    apis: Sequence[str] = tuple(APIS),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """All four phases against ``direct_url`` and ``gateway_url`` (both OpenAI base URLs, .../v1).

    ``apis``: the APIs of the ``apis`` phase (the gateway must be Lamina; none: no such phase).
    ``duration_s`` is the time spent on *each* side at ``rate`` (and at every step of ``rates``
    unless ``step_duration_s``). Returns plain JSON-able numbers; latencies in ms.
    """
    say = progress or (lambda _msg: None)
    targets = [
        Target("direct", direct_url, direct_key, model_direct),
        Target("gateway", gateway_url, gateway_key, model_gateway),
    ]
    loop_params = {"block_s": block_s, "warmup_s": warmup_s}
    result: dict[str, Any] = {
        "config": {
            "duration_s": duration_s,
            "rate": rate,
            "rates": [float(r) for r in rates],
            "step_duration_s": step_duration_s or duration_s,
            "sequential_n": sequential_n,
            "stream_n": stream_n,
            "p99_budget_ms": p99_budget_ms,
            "max_error_rate": max_error_rate,
            "client": client,
            "timeout_s": timeout_s,
        }
    }
    with LoadGenerator(client, max_connections, timeout_s) as gen:
        say(f"concurrency 1: {sequential_n} requests each")
        result["sequential"] = {"n": sequential_n, **_compare(gen.sequential(targets, sequential_n))}
        say(f"open loop at {rate:g} req/s for {duration_s:g}s each")
        result["open_loop"] = {
            "rate": rate,
            **_compare(gen.open_loop(targets, rate, duration_s, **loop_params)),
        }
        result["max_rate"] = _step_rates(
            gen,
            targets,
            rates,
            step_duration_s or duration_s,
            p99_budget_ms,
            max_error_rate,
            loop_params,
            say,
        )
        say(f"streams at concurrency 1: {stream_n} each")
        streamed = gen.sequential(targets, stream_n, stream=True)
        result["stream_ttft"] = {"n": stream_n, **_compare(streamed, "ttft_ms")}
        result["stream_ttft"]["total_added"] = _compare(streamed)["added"]
        if apis:
            say(f"each API at concurrency 1: {sequential_n} requests and {stream_n} streams each")
            result["apis"] = _apis(gen, targets[0], targets[1], apis, sequential_n, stream_n)
    return result


def _apis(
    gen: LoadGenerator, direct: Target, gateway: Target, apis: Sequence[str], n: int, stream_n: int
) -> dict[str, Any]:
    """Each API's latency and what it adds over the direct chat completion, measured alternated."""
    targets = [direct, *(replace(gateway, name=api, api=api) for api in apis)]
    out: dict[str, Any] = {"n": n, "stream_n": stream_n}
    for phase, count, stream, key in (
        ("whole", n, False, "latency_ms"),
        ("stream_ttft", stream_n, True, "ttft_ms"),
    ):
        result = gen.sequential(targets, count, stream=stream)
        base = _side(result["targets"]["direct"], key)
        sides = {api: _side(result["targets"][api], key) for api in apis}
        out[phase] = {
            "direct": base,
            **{api: {**side, "added": _added(base, side)} for api, side in sides.items()},
        }
    return out


def _step_rates(
    gen: LoadGenerator,
    targets: list[Target],
    rates: Sequence[float],
    seconds: float,
    budget_ms: float,
    max_error_rate: float,
    loop_params: dict[str, Any],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Step the rate up; the answer is the last rate that passed before the first that did not."""
    steps: list[dict[str, Any]] = []
    best: float | None = None
    stopped = "every rate passed"
    for r in sorted(float(x) for x in rates):
        say(f"max rate: {r:g} req/s for {seconds:g}s each")
        step = _compare(gen.open_loop(targets, r, seconds, **loop_params), open_loop=True)
        direct, gateway, added_p99 = step["direct"], step["gateway"], step["added"]["p99_ms"]
        failure = None
        if direct["error_rate"] > max_error_rate:
            failure = f"the direct path failed at {r:g} req/s: the upstream or the generator is the limit"
        elif gateway["error_rate"] > max_error_rate:
            failure = f"gateway error rate {gateway['error_rate']:.2%} at {r:g} req/s: {gateway['errors']}"
        elif added_p99 is None or added_p99 >= budget_ms:
            failure = f"added p99 {added_p99} ms at {r:g} req/s is over the {budget_ms:g} ms budget"
        steps.append(
            {
                "rate": r,
                "added_p99_ms": added_p99,
                "direct_p99_ms": direct["p99_ms"],
                "gateway_p99_ms": gateway["p99_ms"],
                "direct_error_rate": direct["error_rate"],
                "gateway_error_rate": gateway["error_rate"],
                "gateway_errors": gateway["errors"],
                "generator_cpu": step["generator_cpu"],
                "passed": failure is None,
            }
        )
        if failure is not None:
            stopped = failure
            break
        best = r
    return {
        "budget_p99_ms": budget_ms,
        "max_sustained_rate": best,
        "stopped_because": stopped,
        "steps": steps,
    }
