"""Every configured model as a deployment, loaded on first use: the engine's table of models."""

from __future__ import annotations

import asyncio

from lamina.config import ModelSettings, Settings
from lamina.engine.admission import FairQueue
from lamina.engine.affinity import MemoryPrefixIndex, PrefixIndex
from lamina.engine.deployment import Deployment
from lamina.engine.factory import make_upstream
from lamina.engine.load import poll_load
from lamina.engine.routing import Breaker, Endpoint
from lamina.errors import UnknownModel
from lamina.http import api_key
from lamina.models.registry import ModelRegistry


class ModelGateway:
    """Every configured model as a deployment; local ones are loaded on first use (the default at start)."""

    def __init__(self, settings: Settings, registry: ModelRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self._deployments: dict[str, Deployment] = {}
        self._lock = asyncio.Lock()
        # which endpoint served each prompt prefix: this process's, or Redis's (set by lamina.serve)
        self.prefix_index: PrefixIndex = MemoryPrefixIndex()
        self._pollers: list[asyncio.Task[None]] = []

    @property
    def names(self) -> list[str]:
        return list(self.settings.models)

    def spec(self, name: str) -> ModelSettings:
        if name not in self.settings.models:
            raise UnknownModel(f"model {name!r} does not exist; see GET /v1/models")
        return self.settings.models[name]

    async def get(self, name: str) -> Deployment:
        found = self._deployments.get(name)
        if found is not None:
            return found
        spec = self.spec(name)
        async with self._lock:
            if name not in self._deployments:
                llm = self.registry.get(name)
                endpoints = [
                    self._endpoint(spec, e.base_url, e.weight, e.api_key_env, name)
                    for e in await asyncio.to_thread(llm.endpoints)  # a local model loads here
                ]
                serve = self.settings.serve
                queue = FairQueue(name, serve.max_inflight, serve.max_queue, serve.max_queue_wait_s)
                dep = Deployment(name, spec, llm, endpoints, queue)
                dep.index = self.prefix_index
                dep.can = await asyncio.to_thread(llm.capabilities)
                if spec.server_load != "none":
                    self._pollers.append(asyncio.create_task(poll_load(dep), name=f"load {name}"))
                self._deployments[name] = dep
        return self._deployments[name]

    async def unreachable(self) -> dict[str, str]:
        """Loaded models whose upstream does not answer ``GET /models`` (a cheap liveness probe)."""
        problems: dict[str, str] = {}
        for name, dep in list(self._deployments.items()):
            if not any([await e.upstream.alive() for e in dep.endpoints]):
                problems[name] = "no endpoint answering"
        return problems

    @staticmethod
    def _endpoint(spec: ModelSettings, url: str, weight: float, key_env: str | None, name: str) -> Endpoint:
        upstream = make_upstream(
            url,
            api_key=api_key(key_env, f"model {name}: api_key_env"),
            timeout_s=spec.timeout_s,
            connect_timeout_s=spec.connect_timeout_s,
        )
        return Endpoint(url, upstream, weight, Breaker(spec.breaker_failures, spec.breaker_cooldown_s))

    async def chain(self, name: str) -> list[Deployment]:
        """The model and then its fallbacks, in order."""
        return [await self.get(n) for n in (name, *self.spec(name).fallbacks)]

    def breakers(self) -> list[tuple[str, str, int]]:
        """(model, endpoint URL, state code) of every loaded endpoint, for the metric."""
        return [(n, e.url, e.breaker.code) for n, d in self._deployments.items() for e in d.endpoints]

    @property
    def deployments(self) -> dict[str, Deployment]:
        """The loaded deployments, by name."""
        return dict(self._deployments)

    def running(self) -> dict[str, int]:
        return {name: dep.queue.running for name, dep in self._deployments.items()}

    def waiting(self) -> dict[str, int]:
        return {name: dep.queue.waiting for name, dep in self._deployments.items()}

    async def aclose(self) -> None:
        for task in self._pollers:
            task.cancel()
        self._pollers.clear()
        for dep in self._deployments.values():
            for endpoint in dep.endpoints:
                await endpoint.upstream.aclose()
        self._deployments.clear()
