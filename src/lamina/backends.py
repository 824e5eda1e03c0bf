"""Backends are tables (name -> factory), chosen from configuration in one place per seam; this is
the one lookup every table goes through, so an unknown name always says which ones exist."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from lamina.errors import ConfigError, LaminaError

T = TypeVar("T")


def choose(
    table: Mapping[str, T],
    name: str,
    what: str,
    *,
    context: str = "",
    also: str = "",
    error: type[LaminaError] = ConfigError,
) -> T:
    """``table[name]``, or ``error`` naming ``what`` was asked for and every known entry."""
    try:
        return table[name]
    except KeyError:
        prefix = f"{context}: " if context else ""
        known = ", ".join(sorted(table))
        raise error(f"{prefix}unknown {what} {name!r}; use one of {known}{also}") from None
