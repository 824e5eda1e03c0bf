"""Admission control per model: a bounded queue, fair across tenants, that refuses early.

At most ``capacity`` generations of a model run at once; the others wait. When a place frees, it
goes to the backlogged tenant with the least weighted service so far: the Virtual Token Counter of
Sheng et al., "Fairness in Serving Large Language Models" (OSDI 2024), where service is input
tokens + 2 x output tokens. A tenant that becomes backlogged again has its counter lifted to the
least counter among the backlogged, so idling earns no credit to flood with later.

A request whose wait, estimated from the queue ahead of it, would pass its deadline (the client's
timeout header or ``serve.max_queue_wait_s``) is refused at once with 429 and a ``Retry-After``;
one that waits past the deadline anyway is refused then. Overload gives 429s, never hung requests.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass, field

from lamina.errors import Overloaded

OUTPUT_WEIGHT = 2.0  # VTC: an output token costs the server about twice an input token
EWMA = 0.2  # weight of the newest sample in the service-time estimate


@dataclass
class _Waiter:
    tenant: str
    tokens: float  # estimated input tokens, charged when the request is let in
    granted: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Ticket:
    """A running generation's place; ``release`` gives it back (twice is harmless)."""

    def __init__(self, queue: FairQueue, tenant: str, charged: float, queued_s: float) -> None:
        self.queue = queue
        self.tenant = tenant
        self.charged = charged
        self.queued_s = queued_s
        self.started = time.monotonic()
        self._held = True

    def release(self, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        """Give the place back and charge the real service (the estimate, if no usage came back)."""
        if not self._held:
            return
        self._held = False
        actual = (prompt_tokens or self.charged) + OUTPUT_WEIGHT * completion_tokens
        self.queue._finished(self, actual - self.charged, time.monotonic() - self.started)


class FairQueue:
    def __init__(self, model: str, capacity: int, max_waiting: int, max_wait_s: float) -> None:
        self.model = model
        self.capacity = capacity
        self.max_waiting = max_waiting
        self.max_wait_s = max_wait_s
        self.running = 0
        self.counters: dict[str, float] = {}  # weighted service per tenant (VTC)
        self._waiting: dict[str, deque[_Waiter]] = {}
        self._running_by: dict[str, int] = {}
        self._last_served = 0.0  # counter of the tenant served last: a newcomer starts there
        self.service_s: float | None = None  # how long a place is held (EWMA), once known

    def resize(self, capacity: int) -> None:
        """A new number of places (this replica's share of the cluster's): more lets waiters in now;
        fewer takes effect as running generations end."""
        if capacity != self.capacity:
            self.capacity = capacity
            self._dispatch()

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    def estimated_wait(self, tenant: str) -> float:
        """Seconds until a request of ``tenant`` would run: fair shares mean each other backlogged
        tenant goes at most once per request of this tenant already waiting (plus one)."""
        if self.running < self.capacity and not self.waiting:
            return 0.0
        if self.service_s is None:
            return 0.0  # nothing measured yet: only the deadline timer applies
        own = len(self._waiting.get(tenant, ()))
        ahead = own + sum(min(len(q), own + 1) for t, q in self._waiting.items() if t != tenant)
        return (ahead + 1) * self.service_s / self.capacity

    async def acquire(self, tenant: str, tokens: float, timeout_s: float | None = None) -> Ticket:
        """Wait for a place (fairly), or raise 429 when the deadline cannot be met."""
        budget = self.max_wait_s
        if timeout_s is not None:  # the client gives up then: leave it time to be served
            budget = min(budget, max(0.0, timeout_s - (self.service_s or 0.0)))
        if self.running >= self.capacity or self.waiting:  # it would wait: is there room, and time?
            wait = self.estimated_wait(tenant)
            if self.waiting >= self.max_waiting:
                self._refuse(f"its queue is full ({self.waiting} requests waiting)", wait)
            if wait > budget:
                self._refuse(f"the wait (about {wait:.1f}s) would pass the deadline of {budget:.1f}s", wait)
        self._activate(tenant)
        waiter = _Waiter(tenant, tokens)
        self._waiting.setdefault(tenant, deque()).append(waiter)
        began = time.monotonic()
        self._dispatch()
        try:
            await asyncio.wait_for(asyncio.shield(waiter.granted), budget)
        except TimeoutError:
            if not waiter.granted.done():
                self._withdraw(waiter)
                self._refuse(f"no place freed within {budget:.1f}s", self.estimated_wait(tenant))
        except asyncio.CancelledError:  # the client went away while waiting
            if waiter.granted.done():  # let in just now: give the place straight back
                self._finished(Ticket(self, tenant, tokens, 0.0), 0.0, None)
            else:
                self._withdraw(waiter)
            raise
        return Ticket(self, tenant, tokens, time.monotonic() - began)

    def _refuse(self, why: str, wait: float) -> None:
        raise Overloaded(f"model {self.model} is overloaded: {why}; retry later", max(1.0, math.ceil(wait)))

    def _activate(self, tenant: str) -> None:
        """VTC's lift: a tenant with nothing waiting or running starts level with the backlogged."""
        if self._waiting.get(tenant) or self._running_by.get(tenant):
            return
        backlogged = [self.counters.get(t, 0.0) for t, q in self._waiting.items() if q]
        floor = min(backlogged) if backlogged else self._last_served
        self.counters[tenant] = max(self.counters.get(tenant, 0.0), floor)

    def _dispatch(self) -> None:
        while self.running < self.capacity:
            backlogged = [t for t, q in self._waiting.items() if q]
            if not backlogged:
                return
            tenant = min(backlogged, key=lambda t: self.counters.get(t, 0.0))
            waiter = self._waiting[tenant].popleft()
            if not self._waiting[tenant]:
                del self._waiting[tenant]
            self.running += 1
            self._running_by[tenant] = self._running_by.get(tenant, 0) + 1
            self.counters[tenant] = self.counters.get(tenant, 0.0) + waiter.tokens
            self._last_served = self.counters[tenant]
            waiter.granted.set_result(None)

    def _withdraw(self, waiter: _Waiter) -> None:
        queue = self._waiting.get(waiter.tenant)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            if not queue:
                del self._waiting[waiter.tenant]
        waiter.granted.cancel()

    def _finished(self, ticket: Ticket, extra_service: float, held_s: float | None) -> None:
        self.running -= 1
        left = self._running_by.get(ticket.tenant, 1) - 1
        if left:
            self._running_by[ticket.tenant] = left
        else:
            self._running_by.pop(ticket.tenant, None)
        self.counters[ticket.tenant] = self.counters.get(ticket.tenant, 0.0) + extra_service
        if held_s is not None:
            old = self.service_s
            self.service_s = held_s if old is None else (1 - EWMA) * old + EWMA * held_s
        self._dispatch()
