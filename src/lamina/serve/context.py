"""The typed record of one request, from the middleware down to the engine and back to the log.

The middleware creates a ``RequestContext`` per HTTP request; handlers receive it as a dependency
and fill it in (who called, which model answered, tokens, time to first token, the budget
reservation); the middleware turns it into the request-log record when the response is over and
runs its cleanups (a queue slot given back, a stream closed, a span ended), however the request
ended. It knows nothing of ASGI, so the engine side (gateway, admission, limits) can take it too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from lamina.engine.meter import Cleanups
from lamina.models.types import Usage
from lamina.serve.policy.counters import Charge
from lamina.serve.policy.keys import Principal


@dataclass(eq=False)
class RequestContext(Cleanups):
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    principal: Principal | None = None
    model: str | None = None  # the model that answered (a fallback's name if one did)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    embedding_tokens: int = 0
    ttft_ms: float | None = None  # from the request's arrival to the first token
    upstream_ms: float | None = None  # time the model itself took: the rest is the gateway's
    queue_ms: float | None = None  # time spent waiting for a place in the model's queue
    finish_reason: str | None = None
    tool_calls: list[str] = field(default_factory=list)  # names of the tools the model called, in order
    error_type: str | None = None
    cached: bool = False  # answered from a cache: free
    cache_miss: bool = False  # a request the cache could have answered, and did not
    reservation: list[Charge] = field(default_factory=list)  # settled to the real cost at the end
    hold: str = ""  # the reservation's name in the counter store

    @property
    def usage(self) -> Usage:
        return Usage(self.prompt_tokens, self.completion_tokens)

    def record_usage(self, usage: Usage | None) -> None:
        if usage is not None:
            self.prompt_tokens = usage.prompt_tokens
            self.completion_tokens = usage.completion_tokens

    def add_upstream_time(self, seconds: float) -> None:
        self.upstream_ms = (self.upstream_ms or 0.0) + seconds * 1000

    def first_token(self) -> float:
        """Note the first token (once); the milliseconds since the request arrived."""
        if self.ttft_ms is None:
            self.ttft_ms = round((time.perf_counter() - self.started) * 1000, 3)
        return self.ttft_ms
