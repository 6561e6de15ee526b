"""Rate limiting with sliding-window semantics (P9).

The limiter keeps, per bucket, the times of the requests it admitted in the
last period: a request is admitted iff fewer than `limit` were admitted in the
window ending now. That is exact — never more than the limit in any window,
never a refusal the limit admits — and what the Redis store does atomically
across servers (`adapters/ratelimit_redis.py`).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Protocol


class RateLimiter(Protocol):
    async def acquire(self, key: str, limit: int, period_s: float, now: float | None = None) -> float | None:
        """Admit one request: None if admitted, else seconds until one would be."""
        ...


class MemoryRateLimiter:
    """One process's sliding log. O(limit) memory per bucket, O(1) amortised per call."""

    def __init__(self, clock: object = time.monotonic) -> None:
        self._clock = clock
        self._logs: dict[str, deque[float]] = {}

    def acquire_now(self, key: str, limit: int, period_s: float, now: float | None = None) -> float | None:
        """The synchronous core, shared by the async method and by tests."""
        t = self._clock() if now is None else now  # type: ignore[operator]
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = deque()
        edge = t - period_s
        while log and log[0] <= edge:
            log.popleft()
        if len(log) < limit:
            log.append(t)
            return None
        return max(log[0] - edge, 0.001)

    async def acquire(self, key: str, limit: int, period_s: float, now: float | None = None) -> float | None:
        return self.acquire_now(key, limit, period_s, now)
