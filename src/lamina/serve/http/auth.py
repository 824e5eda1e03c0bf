"""Who is calling: a bearer key (hashed lookups, cached briefly) or ``--no-auth`` on loopback."""

from __future__ import annotations

import asyncio
import time

from fastapi import Request

from lamina.serve.errors import APIError
from lamina.serve.http.middleware import context_of
from lamina.serve.policy.keys import DEFAULT_TENANT, KeyStore, Principal, hash_key

CACHE_SECONDS = 5.0  # a key revoked from another process stops working within this time
ANONYMOUS = Principal("anonymous", DEFAULT_TENANT, admin=True)


class Authenticator:
    def __init__(self, store: KeyStore, *, enabled: bool = True) -> None:
        self.store = store
        self.enabled = enabled
        self._cache: dict[str, tuple[Principal | None, float]] = {}

    def forget(self) -> None:
        """Drop cached verdicts (after a revocation through this server)."""
        self._cache.clear()

    async def verify(self, key: str) -> Principal | None:
        digest = hash_key(key)
        hit = self._cache.get(digest)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        principal = await asyncio.to_thread(self.store.verify, key)
        if len(self._cache) > 10_000:  # bounded: unknown keys cannot grow it without limit
            self._cache.clear()
        self._cache[digest] = (principal, now + CACHE_SECONDS)
        return principal

    async def __call__(self, request: Request) -> Principal:
        if not self.enabled:
            principal = ANONYMOUS
        else:
            key = (
                _bearer(request)
                or request.headers.get("x-api-key", "")
                or request.cookies.get("lamina_session", "")
            )
            if not key:
                raise APIError(
                    401,
                    "missing API key: send the header 'Authorization: Bearer <key>' (or 'x-api-key') "
                    "(create one with: lamina keys create NAME)",
                    "authentication_error",
                    code="missing_api_key",
                )
            found = await self.verify(key)
            if found is None:
                raise APIError(
                    401, "invalid or revoked API key", "authentication_error", code="invalid_api_key"
                )
            principal = found
        ctx = context_of(request.scope)
        if ctx is not None:
            ctx.principal = principal
        return principal


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
