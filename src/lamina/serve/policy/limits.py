"""Budgets and rate limits per key and per tenant, enforced exactly under concurrency.

Before a model is called, the request reserves its worst case: its cost if the prompt were one
token per character and the answer used all of ``max_tokens``, one request, and that many tokens.
When the request is over, the reservation is settled to the real cost and tokens. So N concurrent
requests against a budget B overspend it by at most one request's reservation, and limits hold
across processes that share the counter store.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from lamina.config import LimitSettings, ModelSettings, Settings
from lamina.models.base import max_tokens
from lamina.models.types import GenerationRequest
from lamina.serve.context import RequestContext
from lamina.serve.errors import APIError
from lamina.serve.observe.requestlog import LogRecord
from lamina.serve.policy.counters import Charge, CounterStore, CountersUnavailable
from lamina.serve.policy.keys import KeyInfo, Principal

TEMPLATE_TOKENS = 16  # a message's role and separators


def worst_case_tokens(request: GenerationRequest, spec: ModelSettings) -> tuple[int, int]:
    """(prompt, completion) tokens a request can use at most. Not an estimate but a bound, so that a
    reservation is never short: a token is at least one character, an image at most the model's
    ``image_tokens``, tool definitions are prompt too; every prompt and each of ``n`` answers counts."""
    if request.messages is None:
        prompt_tokens = sum(len(p) + TEMPLATE_TOKENS for p in request.prompts)
    else:
        prompt_tokens = sum(
            _content_tokens(m.get("content"), spec) + _calls_tokens(m.get("tool_calls"))
            for m in request.messages
        ) + TEMPLATE_TOKENS * len(request.messages)
    prompt_tokens += len(json.dumps(request.tools)) if request.tools else 0
    return prompt_tokens, max_tokens(request, spec) * request.choices


def _calls_tokens(calls: list[Any] | None) -> int:
    return len(json.dumps(calls)) if calls else 0


def _content_tokens(content: str | list[dict[str, Any]] | None, spec: ModelSettings) -> int:
    """A bound on one message's content: a token per character of text, ``image_tokens`` per image;
    audio and files a token per four characters of their (base64) data, far more than they cost."""
    if not isinstance(content, list):
        return len(content or "")
    total = 0
    for part in content:
        kind = part.get("type")
        if kind == "text":
            total += len(str(part.get("text", "")))
        elif kind in ("image_url", "input_image"):
            total += spec.image_tokens
        else:
            total += len(json.dumps(part)) // 4
    return total


def budget_counter(scope: str, name: str, period: str) -> str:
    return f"budget:{scope}:{name}:{period}"


def _period(period: str, now: float) -> tuple[str, float]:
    """The budget window's name and when the next one starts."""
    t = datetime.fromtimestamp(now, UTC)
    if period == "day":
        start = t.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%d"), start.timestamp() + 86_400
    if period == "month":
        nxt = t.replace(
            year=t.year + (t.month == 12), month=t.month % 12 + 1, day=1, hour=0, minute=0, second=0
        )
        return t.strftime("%Y-%m"), nxt.replace(microsecond=0).timestamp()
    return "total", math.inf


class Limiter:
    def __init__(self, settings: Settings, store: CounterStore) -> None:
        self.settings = settings
        self.store = store

    def _scopes(self, principal: Principal) -> list[tuple[str, str, LimitSettings]]:
        scopes = []
        if principal.limits is not None:
            scopes.append(("key", principal.key_name, principal.limits))
        tenant = self.settings.serve.tenants.get(principal.tenant)
        if tenant is not None:
            scopes.append(("tenant", principal.tenant, tenant))
        return scopes

    def charges(self, principal: Principal, cost_usd: float, tokens: int, now: float) -> list[Charge]:
        window_s = self.settings.serve.rate_window_s
        window = int(now // window_s)
        rate_reset = (window + 1) * window_s
        out: list[Charge] = []
        for scope, name, limits in self._scopes(principal):
            who = f"{scope} {name}"
            if limits.budget_usd is not None:
                period, resets = _period(limits.budget_period, now)
                out.append(
                    Charge(
                        budget_counter(scope, name, period),
                        cost_usd,
                        limits.budget_usd,
                        "budget_exceeded",
                        resets,
                        f"{who}'s {limits.budget_period} budget of ${limits.budget_usd:g}",
                    )
                )
            if limits.rpm is not None:
                out.append(
                    Charge(
                        f"rpm:{scope}:{name}:{window}",
                        1,
                        limits.rpm,
                        "rate_limited",
                        rate_reset,
                        f"{who}'s limit of {limits.rpm} requests per {window_s:g}s",
                        "requests",
                    )
                )
            if limits.tpm is not None:
                out.append(
                    Charge(
                        f"tpm:{scope}:{name}:{window}",
                        tokens,
                        limits.tpm,
                        "rate_limited",
                        rate_reset,
                        f"{who}'s limit of {limits.tpm} tokens per {window_s:g}s",
                        "tokens",
                    )
                )
        return out

    def budgets_remaining(self, keys: list[KeyInfo]) -> list[tuple[str, str, str, float]]:
        """(scope, name, tenant, USD left in the current period) of every key and tenant with a budget."""
        now = time.time()
        scopes: list[tuple[str, str, str, LimitSettings]] = [
            ("key", k.name, k.tenant, k.limits) for k in keys if k.limits is not None
        ]
        scopes += [("tenant", t, t, limits) for t, limits in self.settings.serve.tenants.items()]
        out = []
        for scope, name, tenant, limits in scopes:
            if limits.budget_usd is None:
                continue
            period, _ = _period(limits.budget_period, now)
            used = self.store.used(budget_counter(scope, name, period))
            out.append((scope, name, tenant, max(0.0, limits.budget_usd - used)))
        return out

    async def admit(self, principal: Principal, ctx: RequestContext, *, cost_usd: float, tokens: int) -> None:
        """Reserve the request's worst case, or refuse it with a 429 that says which limit and when."""
        now = time.time()
        charges = self.charges(principal, cost_usd, tokens, now)
        if not charges:
            return
        hold = secrets.token_hex(8)
        try:
            refused = await asyncio.to_thread(self.store.reserve, charges, hold)
        except CountersUnavailable as exc:
            raise APIError(
                503,
                str(exc),
                "service_unavailable",
                code="counters_unavailable",
                headers={"Retry-After": "1"},
            ) from None
        if refused is not None:
            wait = max(1.0, refused.resets_at - now) if refused.resets_at != math.inf else None
            when = (
                datetime.fromtimestamp(refused.resets_at, UTC).isoformat(timespec="seconds")
                if wait is not None
                else "never (a total budget)"
            )
            raise APIError(
                429,
                f"over {refused.what}; it resets at {when}",
                refused.kind,
                code=refused.kind,
                headers={"Retry-After": str(math.ceil(wait))} if wait is not None else {},
            )
        ctx.reservation, ctx.hold = charges, hold

    async def settle(self, ctx: RequestContext, record: LogRecord) -> None:
        """Replace the reservation by the real cost and tokens (a failed call costs what it used)."""
        charges = ctx.reservation
        if not charges:
            return
        used = {
            "usd": record.cost_usd,
            "requests": 1.0,
            "tokens": float(record.prompt_tokens + record.completion_tokens + record.embedding_tokens),
        }
        actual = [used[c.measure] for c in charges]
        await asyncio.to_thread(self.store.settle, charges, actual, ctx.hold)
