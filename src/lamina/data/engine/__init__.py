"""Ingest engines behind one Protocol; ``make_engine`` picks one from configuration."""

from __future__ import annotations

from typing import assert_never

from lamina.config import ENGINE_NAMES, IngestSettings
from lamina.data.engine.base import IngestEngine
from lamina.data.engine.local import LocalEngine
from lamina.data.engine.stages import Loaded, Prepared, Preparer, Ready, Stages, Work


def make_engine(settings: IngestSettings) -> IngestEngine:
    """``ingest.engine``: "local" runs in this process; "ray" on a Ray cluster (lamina[ray]).

    One case per name of ``IngestEngineName``: a name without an engine fails the type check.
    """
    match settings.engine:
        case "local":
            return LocalEngine()
        case "ray":
            from lamina.data.engine.ray_engine import RayEngine

            return RayEngine(settings)
        case unknown:
            assert_never(unknown)


__all__ = [
    "ENGINE_NAMES",
    "IngestEngine",
    "Loaded",
    "LocalEngine",
    "Prepared",
    "Preparer",
    "Ready",
    "Stages",
    "Work",
    "make_engine",
]
