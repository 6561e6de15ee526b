"""The sliding-log rate limiter in Redis, shared exactly by every gateway process (P9).

Each bucket is a sorted set of admitted requests scored by admission time.
One Lua script trims the window, counts, and admits or refuses, atomically:
Redis runs a script to completion before any other command, so two gateways
can never both see "limit - 1" and both admit (no read-then-write race).

Time comes from the Redis server (`TIME` inside the script), not from the
gateways: several machines' clocks may disagree by more than a request's
spacing, and a skewed gateway would then evict entries too early (admitting
too many) or too late (refusing what the limit admits). With one clock for
every caller the window is the same for all, so P9 holds across servers.
Scripts that call `TIME` are safe since Redis 5 (effects replication; the
only mode from Redis 7). Tests may pass `now` explicitly to drive the clock.

Semantics match `MemoryRateLimiter` exactly: an entry at `now - period` has
left the window; a refusal returns how long until the oldest entry leaves.
A request under several limits is one script call over all their buckets:
each is trimmed and counted, and the request is added to all of them only
if every one admits it, so a refusal consumes nothing anywhere. The buckets
of one app share a hash tag (`{env:app}`, see `engine.compiler.Limit`), so
on a Redis cluster they live on one shard, as a multi-key script needs.

When Redis cannot be reached the limiter fails closed: the request is refused
as rate-limited with a short `Retry-After`, so P9 holds through an outage
(nothing is admitted that Redis did not count) and clients back off and
retry; every failure is counted and logged. Connections come from a bounded
pool, so a burst queues for a connection instead of opening one socket per
concurrent request.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
from collections.abc import Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from engine.ratelimit import Bucket, Refusal

log = logging.getLogger("ghat.ratelimit")
POOL_SIZE = 64  # connections per process; a burst past it waits for one (up to the socket timeout)
RETRY_WHEN_DOWN_S = 1.0  # the Retry-After of a request refused because Redis could not be asked

# KEYS: the buckets. ARGV[1] unique member suffix, ARGV[2] now (µs, or "" for server time), then for
# each bucket i: ARGV[1 + 2i] limit, ARGV[2 + 2i] period (µs). Every bucket is trimmed and counted
# first; only if all admit is the request added to all. Returns {-1, 0} when admitted, else
# {index (0-based) of the refusing bucket with the longest wait, that wait in µs}.
_SCRIPT = """
local now
local stamp
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
  stamp = ARGV[2]
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  stamp = t[1] .. string.format('%06d', tonumber(t[2]))
end
local worst = -1
local worst_wait = -1
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[1 + 2 * i])
  local edge = now - tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', edge)
  if redis.call('ZCARD', key) >= limit then
    local wait = tonumber(ARGV[2 + 2 * i])
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if oldest[2] then wait = tonumber(oldest[2]) - edge end
    if wait < 1000 then wait = 1000 end
    if wait > worst_wait then
      worst = i - 1
      worst_wait = wait
    end
  end
end
if worst >= 0 then
  return {worst, worst_wait}
end
local member = stamp .. '-' .. ARGV[1]
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, math.ceil(tonumber(ARGV[2 + 2 * i]) / 1000) + 1000)
end
return {-1, 0}
"""


class RedisRateLimiter:
    """`RateLimiter` over one Redis (or a cluster: one key per call, so any slot works)."""

    def __init__(self, url: str, *, prefix: str = "ghat:rl:", client: Redis | None = None) -> None:
        # Short socket timeouts: a hung Redis must fail a request fast, not hold it (the error
        # propagates as redis.RedisError; the server decides between failing open or closed).
        if client is None:
            pool = BlockingConnectionPool.from_url(url, max_connections=POOL_SIZE, timeout=1.0, socket_timeout=1.0,
                                                   socket_connect_timeout=1.0, health_check_interval=30)  # fmt: skip
            client = Redis(connection_pool=pool)
        self._redis: Redis = client
        self.errors = 0  # acquires refused because Redis could not be asked
        self._script: Any = self._redis.register_script(_SCRIPT)
        self._prefix = prefix
        # Members must be unique across every process admitting in the same microsecond.
        self._origin = f"{os.getpid():x}{secrets.token_hex(4)}"
        self._seq = itertools.count()

    async def acquire_all(self, buckets: Sequence[Bucket], now: float | None = None) -> Refusal | None:
        """Admit one request into every bucket or none (server clock): None, or the longest refusal."""
        if not buckets:
            return None
        for i, (_key, limit, period_s) in enumerate(buckets):
            if limit <= 0:
                return (i, period_s)
        member = f"{self._origin}.{next(self._seq)}"
        stamp = "" if now is None else str(round(now * 1_000_000))
        args: list[object] = [member, stamp]
        for _key, limit, period_s in buckets:
            args += [limit, round(period_s * 1_000_000)]
        try:
            index, wait = await self._script(keys=[self._prefix + key for key, _l, _p in buckets], args=args)
        except (RedisError, OSError) as exc:  # fail closed: see the module docstring
            self.errors += 1
            if self.errors == 1 or self.errors % 1000 == 0:
                log.error("rate limiter: Redis unavailable (%d refusals so far): %s", self.errors, exc)
            return (0, RETRY_WHEN_DOWN_S)
        return None if int(index) < 0 else (int(index), int(wait) / 1_000_000)

    async def acquire(self, key: str, limit: int, period_s: float, now: float | None = None) -> float | None:
        """One bucket alone: None if admitted, else seconds until it would be."""
        refusal = await self.acquire_all(((key, limit, period_s),), now)
        return None if refusal is None else refusal[1]

    async def aclose(self) -> None:
        await self._redis.aclose()
