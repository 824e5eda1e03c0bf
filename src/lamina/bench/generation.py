"""``lamina bench generate``: Lamina's engine against xllamacpp called directly, in one run.

Both paths drive the same loaded llama.cpp with the same request body (Lamina's over its loopback
``/v1``, as every generation goes), so the difference is exactly Lamina's own overhead. Then 4
requests at once against 4 one after another, to show the
engine's continuous batching at work.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from lamina.config import Settings
from lamina.errors import LaminaError, UnknownModel
from lamina.models.base import LLM
from lamina.models.llamacpp import LlamaCppModel
from lamina.models.types import GenerationRequest

PROMPT = (
    "Context: Lamina is a self-hosted LLM infrastructure stack. Its data layer extracts documents, "
    "splits them into chunks, embeds them and stores them in LanceDB. Its model layer runs small "
    "models locally with llama.cpp and reaches large ones over HTTP.\n"
    "Question: Describe Lamina's architecture in detail.\nAnswer:"
)


def local_model(settings: Settings, name: str | None = None) -> LlamaCppModel:
    """The configured model ``name`` (default: the default model), run by llama.cpp in this process.

    Chosen by its configured ``backend``, as the model registry builds it: this benchmark drives
    the llama.cpp engine directly, which a model of another backend does not have.
    """
    name = name or settings.default_model
    spec = settings.models.get(name)
    if spec is None:
        raise UnknownModel(f"unknown model {name!r}; configured models: {', '.join(settings.models)}")
    if spec.backend != "llamacpp":
        raise LaminaError(
            f"model {name} has backend {spec.backend!r}; bench generate measures a local llamacpp model"
        )
    return LlamaCppModel(name, spec, settings.data_dir / "models")


def _direct(model: LlamaCppModel, body: dict[str, Any]) -> tuple[float, float, int]:
    """xllamacpp without Lamina: (seconds, time to first token, completion tokens)."""
    first: list[float] = []
    chunks: list[dict[str, Any]] = []
    started = time.perf_counter()

    def on_chunk(chunk: dict[str, Any]) -> bool:
        if not first and any(c.get("text") for c in chunk.get("choices") or []):
            first.append(time.perf_counter() - started)
        chunks.append(chunk)
        return False

    model.engine.handle_completions({**body, "stream": True}, on_chunk)
    seconds = time.perf_counter() - started
    usage: dict[str, Any] = next((c["usage"] for c in reversed(chunks) if c.get("usage")), {})
    return seconds, first[0] if first else seconds, int(usage.get("completion_tokens", 0))


def _lamina(model: LLM, request: GenerationRequest) -> tuple[float, float, int]:
    *_, last = model.stream(request)
    g = last.generation
    assert g is not None
    return g.seconds, g.first_token_seconds or g.seconds, g.usage.completion_tokens


def bench_generation(
    local: LlamaCppModel, model: LLM, *, max_tokens: int = 64, repeats: int = 5
) -> dict[str, Any]:
    """``local``: the llama.cpp model driven directly; ``model``: the same one through the engine."""
    request = GenerationRequest(prompt=PROMPT, max_tokens=max_tokens, temperature=0.0, stop=[])
    body = local.body(request)
    model.generate(request)  # warm-up: load, first prompt processing
    runs: dict[str, list[tuple[float, float, int]]] = {"direct": [], "lamina": []}
    for i in range(repeats):  # alternate the order so drift hits both alike
        for name in ("direct", "lamina") if i % 2 == 0 else ("lamina", "direct"):
            runs[name].append(_direct(local, body) if name == "direct" else _lamina(model, request))
    result: dict[str, Any] = {}
    for name, samples in runs.items():
        result[name] = {
            "tokens_per_s": round(statistics.median(n / s for s, _, n in samples), 2),
            "ttft_ms": round(statistics.median(f for _, f, _ in samples) * 1000, 1),
            "completion_tokens": samples[0][2],
        }
    result["lamina_vs_direct_tokens_per_s"] = round(
        result["lamina"]["tokens_per_s"] / result["direct"]["tokens_per_s"], 3
    )
    result["concurrency"] = _concurrency(model, request, 4)
    result["model"] = model.name
    result["threads"] = local.settings.threads or "all cores"
    result["parallel_slots"] = local.settings.parallel
    return result


def _concurrency(model: LLM, request: GenerationRequest, n: int) -> dict[str, Any]:
    started = time.perf_counter()
    sequential_tokens = sum(model.generate(request).usage.completion_tokens for _ in range(n))
    sequential = time.perf_counter() - started
    counts: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        tokens = model.generate(request).usage.completion_tokens
        with lock:
            counts.append(tokens)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    concurrent = time.perf_counter() - started
    return {
        "requests": n,
        "sequential_tokens_per_s": round(sequential_tokens / sequential, 2),
        "concurrent_tokens_per_s": round(sum(counts) / concurrent, 2),
        "speedup": round((sum(counts) / concurrent) / (sequential_tokens / sequential), 2),
    }
