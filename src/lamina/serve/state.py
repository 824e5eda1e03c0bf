"""Everything one running server holds, built once at start-up and closed at shutdown."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import sqlalchemy as sa

from lamina.config import Settings
from lamina.data.embed.base import Embedder
from lamina.engine.engine import Engine
from lamina.engine.gateway import ModelGateway
from lamina.serve import db
from lamina.serve.cluster import SYNC_S, Cluster, apply_view, shared_breakers
from lamina.serve.http.auth import Authenticator
from lamina.serve.jobs.manager import JobManager
from lamina.serve.jobs.store import JobStore
from lamina.serve.jobs.worker import JobWorker
from lamina.serve.observe.metrics import Metrics
from lamina.serve.observe.requestlog import RequestLog
from lamina.serve.observe.tracing import RecentSpans, Tracing
from lamina.serve.policy.cache import ResponseCache, SimilarQuestions, make_cache, make_similar
from lamina.serve.policy.counters import make_counters
from lamina.serve.policy.keys import KeyStore
from lamina.serve.policy.limits import Limiter
from lamina.serve.policy.prefix_index import RedisPrefixIndex
from lamina.serve.policy.tenants import Tenants
from lamina.serve.process import process_name
from lamina.serve.redislink import link_for
from lamina.serve.responses.store import ResponseStore
from lamina.serve.services import Services

log = logging.getLogger("lamina.serve")


@dataclass
class ServerState:
    settings: Settings
    engine: sa.Engine
    keys: KeyStore
    auth: Authenticator
    tenants: Tenants
    generation: Engine  # the one way to generate (lamina.engine)
    jobs: JobManager
    request_log: RequestLog
    metrics: Metrics
    limiter: Limiter
    cache: ResponseCache | None
    similar: SimilarQuestions | None
    tracing: Tracing
    responses: ResponseStore  # the Responses API's stored responses
    cluster: Cluster | None = None  # what replicas share about models, with redis_url
    draining: bool = False
    _sync: asyncio.Task[None] | None = None
    services: Services = field(init=False)  # what the API routes and the web UI call

    @classmethod
    def build(cls, settings: Settings, *, auth: bool = True, embedder: Embedder | None = None) -> ServerState:
        engine = db.connect(settings.gateway_url)
        keys = KeyStore(engine)
        tenants = Tenants(settings, embedder)
        generation = Engine(settings)
        gateway = generation.gateway
        if settings.redis_url:  # prefix routing alike on every replica
            gateway.prefix_index = RedisPrefixIndex(link_for(settings))
        limiter = Limiter(settings, make_counters(settings, engine))
        metrics = Metrics(gateway, lambda: limiter.budgets_remaining(keys.list()))
        store = JobStore(engine, settings.serve.job_lease_s)
        worker = (
            JobWorker(
                store,
                tenants,
                poll_s=settings.serve.job_poll_s,
                on_finished=lambda job, report: metrics.observe_job(job.tenant, report),
                source_poll_s=settings.serve.source_poll_s,
            )
            if settings.serve.worker
            else None
        )
        state = cls(
            settings=settings,
            engine=engine,
            keys=keys,
            auth=Authenticator(keys, enabled=auth),
            tenants=tenants,
            generation=generation,
            jobs=JobManager(store, worker),
            request_log=RequestLog(engine, settings.serve.log_flush_s, enabled=settings.serve.request_log),
            metrics=metrics,
            limiter=limiter,
            cache=make_cache(settings),
            similar=make_similar(settings),
            tracing=Tracing(settings),
            responses=ResponseStore(engine, settings.serve.responses_retention_days),
            cluster=Cluster(link_for(settings), process_name()) if settings.redis_url else None,
        )
        state.services = Services.build(
            tenants=tenants,
            jobs=state.jobs,
            keys=keys,
            limiter=limiter,
            forget_keys=state.auth.forget,
            engine=engine,
            request_log=state.request_log,
            max_upload_mb=settings.serve.max_upload_mb,
        )
        return state

    @property
    def gateway(self) -> ModelGateway:
        """The engine's table of models (deployments, breakers, queues)."""
        return self.generation.gateway

    @property
    def recent_spans(self) -> RecentSpans | None:
        """Finished spans kept in memory (``serve.trace_recent``), for the web UI's request pages."""
        return self.tracing.recent

    async def start(self) -> None:
        """Load what the first request would otherwise wait for: the embedder and the default model."""
        await asyncio.to_thread(self.jobs.start)
        self.request_log.start()
        await asyncio.to_thread(self.tenants.embedder.embed, ["warm up"])
        await self.gateway.get(self.settings.default_model)
        if self.cluster is not None:
            await self._exchange(self.cluster)
            self._sync = asyncio.create_task(self._keep_in_sync(self.cluster))

    async def _exchange(self, cluster: Cluster) -> None:
        view = await asyncio.to_thread(cluster.exchange, shared_breakers(self.gateway))
        if view is not None:
            apply_view(self.gateway, view)

    async def _keep_in_sync(self, cluster: Cluster) -> None:
        while True:
            await asyncio.sleep(SYNC_S)
            try:
                await self._exchange(cluster)
            except Exception:  # never let the sync die: the next round may work
                log.exception("replica sync failed")

    async def stop(self) -> None:
        if self._sync is not None:
            self._sync.cancel()
        if self.cluster is not None:
            await asyncio.to_thread(self.cluster.leave)
        await asyncio.to_thread(self.jobs.stop)
        await self.request_log.stop()
        await self.generation.aclose()
        self.tenants.close()
        self.engine.dispose()
        self.tracing.shutdown()
