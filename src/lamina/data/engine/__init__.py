"""Ingest engines behind one Protocol; ``make_engine`` picks one from configuration."""

from __future__ import annotations

from lamina.config import IngestSettings
from lamina.data.engine.base import IngestEngine
from lamina.data.engine.local import LocalEngine
from lamina.data.engine.stages import Loaded, Prepared, Preparer, Ready, Stages, Work

ENGINES = ("local", "ray")


def make_engine(settings: IngestSettings) -> IngestEngine:
    """``ingest.engine``: "local" runs in this process; "ray" on a Ray cluster (lamina[ray])."""
    if settings.engine == "ray":
        from lamina.data.engine.ray_engine import RayEngine

        return RayEngine(settings)
    return LocalEngine()


__all__ = [
    "ENGINES",
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
