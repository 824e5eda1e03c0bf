"""API keys, for admins: list, create (the secret is in the answer only), revoke, and what a key spent.

Depends on the key store, the limiter's counters (for spend) and a callback that drops cached
verdicts after a revocation.
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Callable

from lamina.config import LimitSettings
from lamina.errors import LaminaError
from lamina.serve.errors import bad_request, not_found
from lamina.serve.policy.keys import KeyInfo, KeyStore, Principal
from lamina.serve.policy.limits import Limiter
from lamina.serve.services.access import require_admin

__all__ = ["KeyService"]


class KeyService:
    def __init__(self, store: KeyStore, limiter: Limiter, forget: Callable[[], None]) -> None:
        self.store = store
        self.limiter = limiter
        self.forget = forget

    async def list(self, principal: Principal) -> list[KeyInfo]:
        require_admin(principal)
        return await asyncio.to_thread(self.store.list)

    async def create(
        self,
        principal: Principal,
        name: str,
        *,
        tenant: str = "default",
        admin: bool = False,
        models: builtins.list[str] | None = None,
        limits: LimitSettings | None = None,
        groups: builtins.list[str] | None = None,
    ) -> tuple[KeyInfo, str]:
        """(the key's record, the key itself: shown this once)."""
        require_admin(principal)
        try:
            return await asyncio.to_thread(
                self.store.create,
                name,
                tenant=tenant,
                admin=admin,
                models=models,
                limits=limits,
                groups=groups,
            )
        except LaminaError as exc:
            raise bad_request(str(exc), param="name") from None

    async def revoke(self, principal: Principal, name: str) -> None:
        require_admin(principal)
        if not await asyncio.to_thread(self.store.revoke, name):
            raise not_found("key", name, param="name")
        self.forget()

    def spent(self, key: KeyInfo) -> float | None:
        """What the key spent in its budget's current period (the limiter's own counter), if it has one."""
        if key.limits is None or key.limits.budget_usd is None:
            return None
        principal = Principal(key.name, key.tenant, key.admin, None, key.limits)
        for charge in self.limiter.charges(principal, 0.0, 0, time.time()):
            if charge.measure == "usd" and charge.counter.startswith("budget:key:"):
                return self.limiter.store.used(charge.counter)
        return None
