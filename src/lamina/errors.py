"""Every error Lamina raises on purpose, in one place.

Each carries a message meant for a person: what went wrong and what to do next. The CLI prints the
message without a traceback; anything that is not a ``LaminaError`` is a bug.
"""

from __future__ import annotations


class LaminaError(Exception):
    """Base class: an expected failure with a message for the user."""


class ConfigError(LaminaError):
    """The configuration file or a ``LAMINA_*`` variable is invalid."""


class CollectionNotFound(LaminaError):
    """A collection name that the registry does not know."""


class EmbeddingMismatch(LaminaError):
    """A collection is used with another embedding model than the one it was built with."""


class ModelUnavailable(LaminaError):
    """A model's files or endpoint are missing, corrupt or unreachable."""


class FetchRefused(LaminaError):
    """A URL was refused before or while fetching it (SSRF guard, size, redirects, time)."""


class ExtractionFailed(LaminaError):
    """A document could not be turned into text (corrupt, encrypted, ...)."""


class UnsupportedDocument(LaminaError):
    """A document is skipped on purpose: unsupported format, empty, too large, no text."""
