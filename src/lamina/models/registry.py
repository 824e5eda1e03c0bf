"""Models declared in configuration, by name; each is built on first use and kept for the process.

A backend is one entry in ``BACKENDS`` (like llm's default plugins): a factory that builds the model
and a probe that says whether it can be used now. Adding a backend touches this table only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamina.config import ModelSettings, Settings
from lamina.errors import LaminaError, UnknownModel
from lamina.models.base import Model


@dataclass
class ModelInfo:
    name: str
    backend: str
    location: str
    context_window: int
    chat: bool
    available: bool
    detail: str
    price_input_per_mtok: float
    price_output_per_mtok: float
    default: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _llamacpp(name: str, spec: ModelSettings, models_dir: Path) -> Model:
    from lamina.models.llamacpp import LlamaCppModel

    return LlamaCppModel(name, spec, models_dir)


def _openai(name: str, spec: ModelSettings, models_dir: Path) -> Model:
    from lamina.models.openai import OpenAIModel

    return OpenAIModel(name, spec)


def _probe_gguf(spec: ModelSettings, models_dir: Path) -> tuple[bool, str]:
    from lamina.models.llamacpp import resolve_gguf

    path = resolve_gguf(spec, models_dir)
    return True, f"{path} ({path.stat().st_size / 1e6:.0f} MB)"


def _probe_http(spec: ModelSettings, models_dir: Path) -> tuple[bool, str]:
    import httpx

    assert spec.base_url is not None
    resp = httpx.get(spec.base_url.rstrip("/") + "/models", timeout=min(5.0, spec.timeout_s), trust_env=False)
    return resp.status_code < 500, f"HTTP {resp.status_code}"


@dataclass(frozen=True)
class Backend:
    build: Callable[[str, ModelSettings, Path], Model]
    probe: Callable[[ModelSettings, Path], tuple[bool, str]]


BACKENDS: dict[str, Backend] = {
    "llamacpp": Backend(_llamacpp, _probe_gguf),
    "openai": Backend(_openai, _probe_http),
}


class ModelRegistry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._models: dict[str, Model] = {}

    @property
    def names(self) -> list[str]:
        return list(self.settings.models)

    def get(self, name: str | None = None) -> Model:
        name = name or self.settings.default_model
        if name not in self.settings.models:
            raise UnknownModel(f"unknown model {name!r}; configured models: {', '.join(self.names)}")
        if name not in self._models:
            spec = self.settings.models[name]
            self._models[name] = BACKENDS[spec.backend].build(name, spec, self.settings.data_dir / "models")
        return self._models[name]

    def describe(self, *, probe: bool = True) -> list[ModelInfo]:
        """Every configured model and whether it can be used now (file present, endpoint answering)."""
        out = []
        for name, spec in self.settings.models.items():
            location = str(spec.path or spec.package or spec.base_url)
            available, detail = self._probe(name) if probe else (False, "not checked")
            out.append(
                ModelInfo(
                    name=name,
                    backend=spec.backend,
                    location=location,
                    context_window=spec.context_window,
                    chat=spec.chat,
                    available=available,
                    detail=detail,
                    price_input_per_mtok=spec.price_input_per_mtok,
                    price_output_per_mtok=spec.price_output_per_mtok,
                    default=name == self.settings.default_model,
                )
            )
        return out

    def _probe(self, name: str) -> tuple[bool, str]:
        spec = self.settings.models[name]
        try:
            return BACKENDS[spec.backend].probe(spec, self.settings.data_dir / "models")
        except LaminaError as exc:
            return False, str(exc)
        except Exception as exc:  # an unreachable endpoint is an answer here, not an error
            return False, f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        for model in self._models.values():
            model.close()
