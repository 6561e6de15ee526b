"""Rate limiting with sliding-window semantics (P9).

The limiter keeps, per bucket, the times of the requests it admitted in the
last period: a bucket admits iff fewer than `limit` were admitted in the
window ending now. That is exact — never more than the limit in any window,
never a refusal the limit admits — and what the Redis store does atomically
across servers (`adapters/ratelimit_redis.py`).

A request is usually subject to several limits (the app's and those of the
`when` blocks it matches), each with a bucket of its own. `acquire_all`
admits it only if every bucket admits it, and then records it in every
bucket; if any refuses, it is recorded in none. So a refused request costs
no bucket anything, and each bucket counts exactly the requests admitted
while it applied: P9 holds for every limit separately.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import Protocol

# (bucket, limit, period in seconds): one limit that applies to a request.
Bucket = tuple[str, int, float]
# (index of the refusing bucket, seconds until it would admit): the longest wait among the refusals.
Refusal = tuple[int, float]


class RateLimiter(Protocol):
    async def acquire_all(self, buckets: Sequence[Bucket], now: float | None = None) -> Refusal | None:
        """Admit one request into every bucket, or into none: None if admitted, else the refusal."""
        ...


class MemoryRateLimiter:
    """One process's sliding logs. O(limit) memory per bucket, O(1) amortised per bucket and call."""

    def __init__(self, clock: object = time.monotonic) -> None:
        self._clock = clock
        self._logs: dict[str, deque[float]] = {}

    def acquire_all_now(self, buckets: Sequence[Bucket], now: float | None = None) -> Refusal | None:
        """The synchronous core: check every bucket first, record in all only if all admit."""
        t = self._clock() if now is None else now  # type: ignore[operator]
        if len(buckets) == 1:  # the common case, without the lists
            key, limit, period_s = buckets[0]
            log = self._logs.get(key)
            if log is None:
                log = self._logs[key] = deque()
            edge = t - period_s
            while log and log[0] <= edge:
                log.popleft()
            if len(log) < limit:
                log.append(t)
                return None
            return (0, max(log[0] - edge, 0.001) if log else period_s)
        logs: list[deque[float]] = []
        refusal: Refusal | None = None
        for i, (key, limit, period_s) in enumerate(buckets):
            log = self._logs.get(key)
            if log is None:
                log = self._logs[key] = deque()
            edge = t - period_s
            while log and log[0] <= edge:
                log.popleft()
            if len(log) >= limit:
                wait = max(log[0] - edge, 0.001) if log else period_s
                if refusal is None or wait > refusal[1]:
                    refusal = (i, wait)
            logs.append(log)
        if refusal is not None:
            return refusal
        for log in logs:
            log.append(t)
        return None

    def acquire_now(self, key: str, limit: int, period_s: float, now: float | None = None) -> float | None:
        """One bucket alone: None if admitted, else seconds until it would be."""
        refusal = self.acquire_all_now(((key, limit, period_s),), now)
        return None if refusal is None else refusal[1]

    async def acquire_all(self, buckets: Sequence[Bucket], now: float | None = None) -> Refusal | None:
        return self.acquire_all_now(buckets, now)

    async def acquire(self, key: str, limit: int, period_s: float, now: float | None = None) -> float | None:
        return self.acquire_now(key, limit, period_s, now)
