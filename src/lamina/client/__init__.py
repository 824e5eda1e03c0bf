"""Python SDK for a Lamina server: collections, uploads and ingest jobs, search, grounded answers with
citations, keys and usage. ``Lamina`` is synchronous, ``AsyncLamina`` the same for asyncio.

    from lamina.client import Lamina

    with Lamina("http://127.0.0.1:8080", api_key="lam_…") as client:
        client.collections.create("docs")
        client.documents.upload("docs", ["report.pdf"]).wait(print)
        answer = client.answer("What changed in 2024?", collection="docs")
        print(answer.text, [c.source for c in answer.citations])

The OpenAI-compatible endpoints are for the official ``openai`` package: ``client.openai()``.
See docs/sdk.md.
"""

from lamina.client._answers import AnswerStream, AsyncAnswerStream
from lamina.client._async import AsyncLamina
from lamina.client._jobs import AsyncJob, Job
from lamina.client._sync import Lamina
from lamina.client.errors import (
    APIConnectionError,
    APIError,
    APIStreamError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    LaminaError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    WaitTimeout,
)
from lamina.client.types import (
    Answer,
    Citation,
    Collection,
    CreatedKey,
    Document,
    FileProgress,
    Health,
    JobInfo,
    Key,
    KeyLimits,
    SearchHit,
    Usage,
    UsageRow,
)

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStreamError",
    "APITimeoutError",
    "Answer",
    "AnswerStream",
    "AsyncAnswerStream",
    "AsyncJob",
    "AsyncLamina",
    "AuthenticationError",
    "BadRequestError",
    "Citation",
    "Collection",
    "ConflictError",
    "CreatedKey",
    "Document",
    "FileProgress",
    "Health",
    "Job",
    "JobInfo",
    "Key",
    "KeyLimits",
    "Lamina",
    "LaminaError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "SearchHit",
    "ServerError",
    "ServiceUnavailableError",
    "Usage",
    "UsageRow",
    "WaitTimeout",
]
