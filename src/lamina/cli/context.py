"""Per-invocation state: settings (with global CLI overrides) and the workspace built from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from lamina.config import Settings, load_settings
from lamina.data.collection import Workspace


@dataclass
class AppState:
    data_dir: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def settings(self) -> Settings:
        extra = dict(self.overrides)
        if self.data_dir is not None:
            extra["data_dir"] = self.data_dir
        return load_settings(**extra)

    @cached_property
    def workspace(self) -> Workspace:
        return Workspace(self.settings)


state = AppState()
