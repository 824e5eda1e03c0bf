"""Prometheus metrics, named after vLLM's where they mean the same (``lamina:`` for ``vllm:``).

Per-request metrics come from the same record the request log gets, once a request is over, so
the two never disagree. Gauges (requests running per model) are read live from the gateway at
scrape time. Labels are bounded: route template, model, status, key name and tenant; never a key,
never user text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from lamina.data.progress import IngestReport
from lamina.engine.gateway import ModelGateway
from lamina.serve.context import RequestContext
from lamina.serve.observe.requestlog import LogRecord

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80)
Budgets = Callable[[], list[tuple[str, str, str, float]]]  # (scope, name, tenant, USD left)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


class _Live(Collector):
    """Read at scrape time: in-flight and waiting generations, breaker states, budgets left."""

    def __init__(
        self, gateway: ModelGateway, budgets: Callable[[], list[tuple[str, str, str, float]]]
    ) -> None:
        self.gateway = gateway
        self.budgets = budgets

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield from self._routing()
        running = GaugeMetricFamily(
            "lamina:num_requests_running", "Generations in flight per model.", labels=["model"]
        )
        for model, n in sorted(self.gateway.running().items()):
            running.add_metric([model], n)
        yield running
        waiting = GaugeMetricFamily(
            "lamina:num_requests_waiting", "Requests waiting in the queue per model.", labels=["model"]
        )
        for model, n in sorted(self.gateway.waiting().items()):
            waiting.add_metric([model], n)
        yield waiting
        breakers = GaugeMetricFamily(
            "lamina:breaker_state",
            "Circuit breaker per endpoint: 0 closed, 1 half-open, 2 open.",
            labels=["model", "endpoint"],
        )
        for model, endpoint, code in self.gateway.breakers():
            breakers.add_metric([model, endpoint], code)
        yield breakers
        budgets = GaugeMetricFamily(
            "lamina:budget_remaining_usd",
            "USD left in the current budget period, per key and per tenant with a budget.",
            labels=["scope", "name", "tenant"],
        )
        for scope, name, tenant, left in self.budgets():
            budgets.add_metric([scope, name, tenant], left)
        yield budgets

    def _routing(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """Routing decisions by reason, and the share of prefix-routed requests that found a prefix."""
        decisions = CounterMetricFamily(
            "lamina:routing_decisions",
            "Endpoint choices by reason: weighted, least_loaded, session, prefix_hit, no_match (prefix "
            "routing found no known prefix), load_override (the preferred endpoint was loaded), probe.",
            labels=["model", "reason"],
        )
        ratio = GaugeMetricFamily(
            "lamina:prefix_hit_ratio",
            "Of the requests prefix routing placed, the share sent to an endpoint holding a prefix.",
            labels=["model"],
        )
        load = GaugeMetricFamily(
            "lamina:endpoint_load",
            "Requests in flight at an endpoint (or its server's own count).",
            labels=["model", "endpoint"],
        )
        for name, dep in sorted(self.gateway.deployments.items()):
            for reason, n in sorted(dep.routed.items()):
                decisions.add_metric([name, reason], n)
            placed = sum(dep.routed[r] for r in ("prefix_hit", "no_match", "load_override"))
            if dep.spec.routing == "prefix" and placed:
                ratio.add_metric([name], dep.routed["prefix_hit"] / placed)
            for endpoint in dep.endpoints:
                load.add_metric([name, endpoint.url], endpoint.load)
        yield decisions
        yield ratio
        yield load


class Metrics:
    def __init__(self, gateway: ModelGateway, budgets: Budgets = list) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "lamina:requests",
            "API requests by route, model and status.",
            ["route", "model", "status", "key_name", "tenant"],
            registry=r,
        )
        self.e2e = Histogram(
            "lamina:e2e_request_latency_seconds",
            "Whole request, first byte in to last byte out.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "lamina:time_to_first_token_seconds",
            "Time to the first generated token.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.per_token = Histogram(
            "lamina:time_per_output_token_seconds",
            "Inter-token latency of a stream: (end - first token) / (tokens - 1), per request.",
            ["model"],
            buckets=(*OVERHEAD_BUCKETS, 1.0, 2.5),
            registry=r,
        )
        self.finished = Counter(
            "lamina:request_success",
            "Generations that finished, by finish reason (stop, length, …).",
            ["model", "finished_reason"],
            registry=r,
        )
        self.cache = Counter(
            "lamina:cache_requests",
            "Cacheable requests by outcome: hit (free) or miss.",
            ["model", "result"],
            registry=r,
        )
        self.queue_time = Histogram(
            "lamina:request_queue_time_seconds",
            "Time a request waited in its model's queue.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "lamina:gateway_overhead_seconds",
            "Time spent in Lamina, the upstream model's time excluded.",
            ["model"],
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter(
            "lamina:prompt_tokens", "Prompt tokens.", ["model", "tenant"], registry=r
        )
        self.generation_tokens = Counter(
            "lamina:generation_tokens", "Generated tokens.", ["model", "tenant"], registry=r
        )
        self.spend = Counter("lamina:spend_usd", "Spend in USD.", ["model", "key_name", "tenant"], registry=r)
        self.embedding_tokens = Counter(
            "lamina:embedding_tokens", "Tokens embedded for /v1/embeddings.", ["model", "tenant"], registry=r
        )
        self.ingest_documents = Counter(
            "lamina:ingest_documents",
            "Documents through ingest jobs, by outcome.",
            ["tenant", "outcome"],
            registry=r,
        )
        self.ingest_chunks = Counter(
            "lamina:ingest_chunks", "Chunks written by ingest jobs.", ["tenant"], registry=r
        )
        self.ingest_tokens = Counter(
            "lamina:ingest_embedded_tokens", "Tokens embedded by ingest jobs.", ["tenant"], registry=r
        )
        r.register(_Live(gateway, budgets))

    def observe(self, rec: LogRecord, ctx: RequestContext) -> None:
        upstream_ms, queue_ms = ctx.upstream_ms, ctx.queue_ms
        model = rec.model or ""
        tenant = rec.tenant or ""
        self.requests.labels(rec.route, model, str(rec.status), rec.key_name or "", tenant).inc()
        if not model:
            return
        self.e2e.labels(model).observe(rec.latency_ms / 1000)
        if rec.ttft_ms is not None:
            self.ttft.labels(model).observe(rec.ttft_ms / 1000)
            if rec.completion_tokens > 1:
                tail_s = max(0.0, rec.latency_ms - rec.ttft_ms) / 1000
                self.per_token.labels(model).observe(tail_s / (rec.completion_tokens - 1))
        finish = ctx.finish_reason
        if finish and rec.status == 200:
            self.finished.labels(model, finish).inc()
        if rec.cached or ctx.cache_miss:
            self.cache.labels(model, "hit" if rec.cached else "miss").inc()
        if queue_ms is not None:
            self.queue_time.labels(model).observe(queue_ms / 1000)
        if upstream_ms is not None:  # the queue is the model's capacity, not the gateway's overhead
            overhead = rec.latency_ms - upstream_ms - (queue_ms or 0.0)
            self.overhead.labels(model).observe(max(0.0, overhead) / 1000)
        if rec.cost_usd:
            self.spend.labels(model, rec.key_name or "", tenant).inc(rec.cost_usd)
        if rec.prompt_tokens:
            self.prompt_tokens.labels(model, tenant).inc(rec.prompt_tokens)
        if rec.completion_tokens:
            self.generation_tokens.labels(model, tenant).inc(rec.completion_tokens)
        if rec.embedding_tokens:
            self.embedding_tokens.labels(model, tenant).inc(rec.embedding_tokens)

    def observe_job(self, tenant: str, report: IngestReport | None) -> None:
        """Count what a finished job's run did (``None``: the job ended before its run did)."""
        if report is None:
            return
        documents = {
            "ingested": report.ingested,
            "unchanged": report.unchanged,
            "skipped": report.skipped,
            "failed": report.failed,
            "deleted": report.deleted,
        }
        for outcome, count in documents.items():
            if count:
                self.ingest_documents.labels(tenant, outcome).inc(count)
        self.ingest_chunks.labels(tenant).inc(report.chunks_written)
        self.ingest_tokens.labels(tenant).inc(report.tokens_embedded)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
