"""Local GGUF models on llama.cpp's own server engine, through xllamacpp (prebuilt wheels, no compiler).

The engine does continuous batching over ``parallel`` slots and listens on a loopback port: its
OpenAI-compatible ``/v1`` is the model's endpoint (``lamina.engine`` reaches it as any upstream),
its ``/tokenize`` the tokenizer. It is loaded lazily, once per process and configuration.
"""

from __future__ import annotations

import importlib
import threading
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx

from lamina import checksums
from lamina.config import EndpointSettings, ModelSettings
from lamina.config.models import Capability
from lamina.cpu import restricted_cores
from lamina.errors import ModelUnavailable
from lamina.models.base import ConfiguredModel

PROMPT_CACHE_MIB = 256
_ENGINES: dict[tuple[str, int, int, int], Any] = {}
_ENGINES_LOCK = threading.Lock()


def resolve_gguf(settings: ModelSettings, models_dir: Path) -> Path:
    """The GGUF file of a model: its ``path``, or assembled from its PyPI ``package`` (sha256-checked)."""
    if settings.path is not None:
        path = settings.path.expanduser()
    else:
        assert settings.package is not None
        try:
            package = importlib.import_module(settings.package.replace("-", "_"))
        except ImportError:
            raise ModelUnavailable(
                f"model package {settings.package} is not installed: pip install {settings.package}"
            ) from None
        try:
            path = _assembled(package, models_dir / package.MODEL_NAME)
        except (ValueError, FileExistsError, FileNotFoundError) as exc:
            raise ModelUnavailable(f"cannot assemble the GGUF from {settings.package}: {exc}") from None
    if not path.is_file():
        raise ModelUnavailable(f"GGUF file not found: {path}")
    with path.open("rb") as fh:
        if fh.read(4) != b"GGUF":
            raise ModelUnavailable(f"{path} is not a GGUF file (bad magic bytes)")
    return path


def _assembled(package: Any, target: Path) -> Path:
    """``package.assemble(target)``, which hashes the whole file every time (over a second for the
    default model, at every start of every process): skipped while the file's stamp
    (``lamina.checksums``) says it still has the package's sha256."""
    expected = str(getattr(package, "EXPECTED_SHA256", ""))
    if expected and checksums.trusted(target, expected):
        return target
    path = Path(package.assemble(target))
    if expected:
        checksums.record(path, expected)
    return path


def _engine(path: Path, n_ctx: int, threads: int, parallel: int, *, metrics: bool = False) -> Any:
    """The engine for this file and shape, loaded once per process; ``metrics``: serve Prometheus
    ``/metrics`` too (what a model server run for routing tests reports its load with)."""
    key = (str(path.resolve()), n_ctx, threads, parallel)  # one engine for a file, however linked
    with _ENGINES_LOCK:
        if key in _ENGINES:
            return _ENGINES[key]
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = n_ctx * parallel  # llama.cpp splits the context across slots
        params.n_parallel = parallel
        params.n_batch = 512
        threads = threads or restricted_cores()  # llama.cpp counts the machine's cores, not this process's
        if threads:
            params.cpuparams.n_threads = threads
            params.cpuparams_batch.n_threads = threads
        params.verbosity = 0
        params.warmup = False
        params.cache_ram_mib = PROMPT_CACHE_MIB  # llama.cpp's default (8 GiB) reads as a leak in a server
        params.port = 0  # listens on a free loopback port: used for /tokenize
        params.use_jinja = True  # the model's own chat template: tool calls where it supports them
        params.endpoint_metrics = metrics
        try:
            engine = xllamacpp.Server(params)
        except RuntimeError:
            raise ModelUnavailable(
                f"llama.cpp could not load {path}: the file is corrupt, not a model it supports, "
                "or does not fit in memory"
            ) from None
        _ENGINES[key] = engine
        return engine


class LlamaCppModel(ConfiguredModel):
    def __init__(self, name: str, settings: ModelSettings, models_dir: Path) -> None:
        super().__init__(name, settings)
        self._models_dir = models_dir

    @cached_property
    def path(self) -> Path:
        return resolve_gguf(self.settings, self._models_dir)

    @cached_property
    def engine(self) -> Any:
        return _engine(self.path, self.settings.context_window, self.settings.threads, self.settings.parallel)

    @cached_property
    def _http(self) -> httpx.Client:
        return httpx.Client(base_url=self.engine.listening_address, timeout=30, trust_env=False)

    def load(self) -> None:
        """Load now rather than on the first request."""
        _ = self.engine

    def endpoints(self) -> list[EndpointSettings]:
        """llama.cpp's own server on a loopback port, loaded first (a managed upstream)."""
        return [EndpointSettings(base_url=self.openai_base_url)]

    @property
    def openai_base_url(self) -> str:
        """llama.cpp's own OpenAI-compatible server on a loopback port: the engine as an HTTP upstream."""
        return str(self.engine.listening_address).rstrip("/") + "/v1"

    def capabilities(self) -> list[Capability]:
        """As configured, less tools when the GGUF's chat template cannot render them: llama.cpp
        would drop the tools without a word (its ``/props`` says ``supports_tools``)."""
        configured = self.settings.can
        if "tools" in configured:
            caps = self._http.get("/props").json().get("chat_template_caps") or {}
            if not caps.get("supports_tools", True):
                return [c for c in configured if c != "tools"]
        return configured

    def count_tokens(self, text: str) -> int:
        resp = self._http.post("/tokenize", json={"content": text, "add_special": True})
        resp.raise_for_status()
        return len(resp.json()["tokens"])

    def schema_fields(self, schema: dict[str, Any], *, chat: bool) -> dict[str, Any]:
        """llama.cpp turns the schema into a grammar: ``response_format`` for chat, ``json_schema``
        for completions."""
        if chat:
            return {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "output", "schema": schema},
                }
            }
        return {"json_schema": schema}

    def close(self) -> None:
        if "_http" in self.__dict__:
            self._http.close()
