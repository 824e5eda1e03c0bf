"""Budget and rate counters in Redis: one server-side script reserves all of a request's counters or none.

The pattern is TensorZero's: each request runs one Lua script that checks every counter it touches
and raises them all only if all fit, so replicas never race between a check and an increment
(LiteLLM's per-counter increments overspend under concurrency). The reservation is recorded as a
*hold* with a deadline on Redis's own clock; settling replaces it by what was really used. A
replica that dies mid-request never settles: the next script call past the deadline gives its hold
back, so a dead replica's worst-case estimate does not stay charged.

When Redis is away, rate limits are not enforced (fail open: capacity protection can lapse for a
moment) but a request with a budget is refused with 503 (fail closed: money is not spent that no
counter records). Both recover by themselves when Redis answers again.
"""

from __future__ import annotations

import math
import time

from lamina.serve.policy.counters.base import Charge, CountersUnavailable
from lamina.serve.redislink import RedisLink

# KEYS: holds (zset id -> deadline ms), hold values (hash id -> json), then one key per counter.
# ARGV: hold id, hold ttl ms, then per counter: amount, limit, time to live ms (0: forever).
RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 64)
for _, id in ipairs(dead) do
  local held = redis.call('HGET', KEYS[2], id)
  if held then
    local parts = cjson.decode(held)
    for i = 1, #parts, 2 do
      if redis.call('EXISTS', parts[i]) == 1 then redis.call('INCRBYFLOAT', parts[i], -parts[i + 1]) end
    end
  end
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
local want = {}
for i = 3, #KEYS do
  local a = 3 + (i - 3) * 3
  local amount, limit = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  want[KEYS[i]] = (want[KEYS[i]] or tonumber(redis.call('GET', KEYS[i]) or '0')) + amount
  if want[KEYS[i]] > limit + 1e-9 then return i - 2 end
end
local held = {}
for i = 3, #KEYS do
  local a = 3 + (i - 3) * 3
  redis.call('INCRBYFLOAT', KEYS[i], ARGV[a])
  if tonumber(ARGV[a + 2]) > 0 then redis.call('PEXPIRE', KEYS[i], ARGV[a + 2]) end
  table.insert(held, KEYS[i])
  table.insert(held, tonumber(ARGV[a]))
end
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(held))
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 0
"""

# KEYS as for RESERVE. ARGV: hold id, then per counter: reserved, used. A hold that already expired
# was given back in full, so settling then adds what was used (to counters that still exist).
SETTLE = """
local held = redis.call('HDEL', KEYS[2], ARGV[1]) == 1
redis.call('ZREM', KEYS[1], ARGV[1])
for i = 3, #KEYS do
  local a = 2 + (i - 3) * 2
  local delta = tonumber(ARGV[a + 1])
  if held then delta = delta - tonumber(ARGV[a]) end
  if delta ~= 0 and redis.call('EXISTS', KEYS[i]) == 1 then redis.call('INCRBYFLOAT', KEYS[i], delta) end
end
return 0
"""


class RedisCounters:
    def __init__(self, link: RedisLink, hold_s: float = 600.0) -> None:
        self.link = link
        self.hold_s = hold_s
        self._reserve = link.client.register_script(RESERVE)
        self._settle = link.client.register_script(SETTLE)
        self._holds = [link.key("holds"), link.key("held")]

    def reserve(self, charges: list[Charge], hold: str = "") -> Charge | None:
        hold = hold or f"h{time.time_ns()}"
        args: list[float | str] = [hold, int(self.hold_s * 1000)]
        for c in charges:
            args += [repr(float(c.amount)), repr(float(c.limit)), _ttl_ms(c.resets_at)]
        try:
            if not self.link.up:
                raise ConnectionError("paused after an earlier failure")
            refused = int(self._reserve(keys=self._keys(charges), args=args))
        except self.link.errors as exc:
            self.link.failed(exc)
            if any(c.kind == "budget_exceeded" for c in charges):
                raise CountersUnavailable(
                    "the budget counters (Redis) are unreachable; a request with a budget is refused "
                    "until they are back"
                ) from None
            return None  # rate limits fail open
        return charges[refused - 1] if refused else None

    def settle(self, charges: list[Charge], actual: list[float], hold: str = "") -> None:
        args: list[float | str] = [hold]
        for c, used in zip(charges, actual, strict=True):
            args += [repr(float(c.amount)), repr(float(used))]
        try:
            self._settle(keys=self._keys(charges), args=args)
        except self.link.errors as exc:  # the hold expires by itself
            self.link.failed(exc)

    def used(self, counter: str) -> float:
        try:
            value = self.link.client.get(self.link.key("c", counter))
        except self.link.errors as exc:
            self.link.failed(exc)
            return 0.0
        return float(value or 0.0)

    def holds(self) -> int:
        """Reservations not yet settled (or given back): for tests and the admin's eyes."""
        return int(self.link.client.zcard(self._holds[0]))

    def _keys(self, charges: list[Charge]) -> list[str]:
        return [*self._holds, *(self.link.key("c", c.counter) for c in charges)]


def _ttl_ms(resets_at: float) -> int:
    """A counter lives until its window is over, plus a minute for clocks that disagree."""
    if resets_at == math.inf:
        return 0
    return max(60_000, int((resets_at - time.time() + 60) * 1000))
