"""Lamina: self-hosted LLM infrastructure — documents in, grounded answers out.

The public Python API is what this module exports (``__all__``); everything else is internal and
may change. Names load on first use, so ``import lamina`` stays cheap for the CLI and the server::

    from lamina import Where, Workspace, answer

    kb = Workspace().collection("handbook", create=True)
    kb.ingest(["docs/"])
    print(answer("How do refunds work?", collection="handbook").answer)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lamina.errors import LaminaError

if TYPE_CHECKING:
    from lamina.client import AsyncLamina, Lamina
    from lamina.config import Settings, load_settings
    from lamina.data.collection import Collection, Workspace
    from lamina.data.progress import IngestReport
    from lamina.data.store import Where
    from lamina.data.types import Hit
    from lamina.models.registry import ModelRegistry
    from lamina.models.structured import generate_json, generate_model
    from lamina.models.types import Generation, GenerationRequest
    from lamina.rag.answer import Answer, answer

__version__ = "0.1.0"

_PUBLIC = {
    "Answer": "lamina.rag.answer",
    "AsyncLamina": "lamina.client",
    "Collection": "lamina.data.collection",
    "Generation": "lamina.models.types",
    "GenerationRequest": "lamina.models.types",
    "Hit": "lamina.data.types",
    "IngestReport": "lamina.data.progress",
    "Lamina": "lamina.client",
    "ModelRegistry": "lamina.models.registry",
    "Settings": "lamina.config",
    "Where": "lamina.data.store",
    "Workspace": "lamina.data.collection",
    "answer": "lamina.rag.answer",
    "generate_json": "lamina.models.structured",
    "generate_model": "lamina.models.structured",
    "load_settings": "lamina.config",
}

__all__ = [
    "Answer",
    "AsyncLamina",
    "Collection",
    "Generation",
    "GenerationRequest",
    "Hit",
    "IngestReport",
    "Lamina",
    "LaminaError",
    "ModelRegistry",
    "Settings",
    "Where",
    "Workspace",
    "__version__",
    "answer",
    "generate_json",
    "generate_model",
    "load_settings",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'lamina' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
