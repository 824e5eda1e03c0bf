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


class UnknownModel(LaminaError):
    """A model name that the configuration does not declare."""


class GenerationFailed(LaminaError):
    """A model refused or failed a request (prompt too long, bad grammar, HTTP error, timeout)."""


class PromptTooLong(LaminaError):
    """The question (or prompt) alone does not fit in the model's context window."""


class TemplateError(LaminaError):
    """A prompt template is invalid or tried to escape the sandbox."""


class StructuredOutputError(LaminaError):
    """A JSON Schema is invalid, or the model did not produce valid output within the retries."""


class IngestCancelled(LaminaError):
    """An ingestion run was cancelled on request; whole batches written before it stay."""


class Unsupported(LaminaError):
    """A model cannot take what a request carries (tools, images, audio): ``capability`` names it."""

    def __init__(self, message: str, capability: str) -> None:
        super().__init__(message)
        self.capability = capability


class Overloaded(LaminaError):
    """A model's queue is full, or a place in it would come too late: retry after ``retry_after`` s."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
