"""What every section of the configuration shares."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A ``[section]`` of lamina.toml: an unknown key is an error, never a silent default."""

    model_config = ConfigDict(extra="forbid")
