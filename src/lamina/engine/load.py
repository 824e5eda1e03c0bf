"""What each endpoint's server says it is running and queueing, for load routing.

Lamina counts its own requests in flight, but a model server may have other clients (another
gateway, a batch job) or queue what it accepted. ``server_load = "llamacpp"`` reads llama.cpp's
``/metrics`` (``llamacpp:requests_processing`` plus ``llamacpp:requests_deferred``; the server runs
with ``--metrics``), else its ``/slots`` (slots processing a request, the queue unseen); ``"vllm"``
reads vLLM's ``/metrics`` (``vllm:num_requests_running`` plus ``vllm:num_requests_waiting``). An
endpoint that does not answer keeps its last figure; its breaker, not this, decides whether it gets
traffic.
"""

from __future__ import annotations

import asyncio
import logging
import re

import httpx
from prometheus_client.parser import text_string_to_metric_families

from lamina.engine.deployment import Deployment
from lamina.engine.routing import Endpoint

log = logging.getLogger(__name__)
# what each kind of server counts as running and as queued, in its Prometheus /metrics
QUEUES = {
    "llamacpp": ("llamacpp:requests_processing", "llamacpp:requests_deferred"),
    "vllm": ("vllm:num_requests_running", "vllm:num_requests_waiting"),
}


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of a Prometheus text exposition by metric name, with its labels (read by
    prometheus_client's own parser)."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return out


def _root(url: str) -> str:
    """The server's root: an OpenAI base URL without its ``/v1``."""
    return re.sub(r"/v1/?$", "", url.rstrip("/"))


async def server_load(client: httpx.AsyncClient, endpoint: Endpoint, kind: str) -> int | None:
    """What the endpoint's server runs and queues now, or None when it does not say."""
    root = _root(endpoint.url)
    try:
        metrics = await client.get(f"{root}/metrics")
        if metrics.status_code == 200:
            found = samples(metrics.text)
            if any(name in found for name in QUEUES[kind]):
                return int(sum(v for name in QUEUES[kind] for _, v in found.get(name, [])))
        if kind == "llamacpp":
            slots = (await client.get(f"{root}/slots")).raise_for_status().json()
            return sum(1 for s in slots if s.get("is_processing"))
        return None
    except (httpx.HTTPError, ValueError, TypeError, AttributeError):
        return None


async def poll_load(dep: Deployment) -> None:
    """Keep each endpoint's ``server_load`` current, every ``load_poll_s``, until cancelled."""
    spec = dep.spec
    async with httpx.AsyncClient(timeout=max(1.0, spec.load_poll_s), trust_env=False) as client:
        while True:
            found = await asyncio.gather(*(server_load(client, e, spec.server_load) for e in dep.endpoints))
            for endpoint, load in zip(dep.endpoints, found, strict=True):
                if load is not None:
                    endpoint.server_load = load
            await asyncio.sleep(spec.load_poll_s)
