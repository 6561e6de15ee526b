"""P9 for both limiter stores: never more than the limit in any window, never a refusal the limit admits.

The memory limiter is checked against the definition itself; the Redis one
against the memory one, decision for decision (so it inherits P9), and then
under concurrency through separate connections, which is what two gateway
processes sharing one Redis look like to the server.
"""

from __future__ import annotations

import uuid
from bisect import bisect_right

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.ratelimit_redis import RedisRateLimiter
from engine.ratelimit import MemoryRateLimiter

# Times on a grid of 1/64 s: exact in binary floating point (the memory limiter's arithmetic) and in
# whole microseconds (Redis's), so both stores see the same edges. Gaps of a whole period are drawn
# often: the window's edge is where off-by-one bugs live.
TICK = 1 / 64
GAPS = st.lists(st.one_of(st.integers(0, 24), st.sampled_from([0, 8, 16, 64])), min_size=1, max_size=60)
LIMITS = st.integers(1, 6)
PERIODS = st.sampled_from([8 * TICK, 16 * TICK, 64 * TICK])


def _times(gaps: list[int]) -> list[float]:
    t, out = 64_000, []
    for g in gaps:
        t += g
        out.append(t * TICK)
    return out


def _in_window(admitted: list[float], end: float, period: float) -> int:
    """How many admitted times lie in the window (end - period, end]."""
    return bisect_right(admitted, end) - bisect_right(admitted, end - period)


@settings(max_examples=300, deadline=None)
@given(GAPS, LIMITS, PERIODS)
def test_memory_limiter_is_exact(gaps: list[int], limit: int, period: float) -> None:
    lim = MemoryRateLimiter()
    admitted: list[float] = []
    for t in _times(gaps):
        wait = lim.acquire_now("k", limit, period, now=t)
        if wait is None:
            admitted.append(t)
            # never more than the limit in any window (the densest windows end at an admission)
            assert _in_window(admitted, t, period) <= limit
        else:
            # never a refusal the limit admits: the window is full without this request
            assert _in_window(admitted, t, period) == limit
            # and the wait is exactly until the oldest one in the window leaves it
            assert _in_window(admitted, t + wait + 1e-6, period) < limit
            assert wait <= 0.001 or _in_window(admitted, t + wait - 1e-6, period) == limit


async def test_redis_limiter_admits_and_refuses_with_server_time(redis_url: str) -> None:
    lim = RedisRateLimiter(redis_url)
    key = uuid.uuid4().hex
    try:
        results = [await lim.acquire(key, 3, 60.0) for _ in range(5)]
    finally:
        await lim.aclose()
    assert results[:3] == [None, None, None]
    for wait in results[3:]:
        assert wait is not None and 0 < wait <= 60.0


@settings(max_examples=150, deadline=None)
@given(GAPS, LIMITS, PERIODS)
def test_redis_limiter_decides_as_the_memory_limiter(redis_url: str, gaps: list[int], limit: int,
                                                     period: float) -> None:
    times = _times(gaps)
    mem = MemoryRateLimiter()
    expected = [mem.acquire_now("k", limit, period, now=t) for t in times]

    async def run() -> list[float | None]:
        lim = RedisRateLimiter(redis_url)
        key = uuid.uuid4().hex
        try:
            return [await lim.acquire(key, limit, period, now=t) for t in times]
        finally:
            await lim.aclose()

    got = anyio.run(run)
    assert [g is None for g in got] == [e is None for e in expected]
    for g, e in zip(got, expected, strict=True):
        if e is not None:
            assert g == pytest.approx(e, abs=1e-6)


async def test_an_entry_exactly_one_period_old_has_left_the_window(redis_url: str) -> None:
    lim = RedisRateLimiter(redis_url)
    key = uuid.uuid4().hex
    try:
        got = [await lim.acquire(key, 1, 1.0, now=t) for t in (1000.0, 1000.5, 1001.0)]
    finally:
        await lim.aclose()
    assert got == [None, pytest.approx(0.5), None]
    mem = MemoryRateLimiter()
    assert [mem.acquire_now("k", 1, 1.0, now=t) for t in (1000.0, 1000.5, 1001.0)] == got


async def test_two_gateways_sharing_redis_admit_exactly_the_limit(redis_url: str) -> None:
    """Many concurrent acquires from two clients (separate connections): exactly `limit` admitted."""
    a, b = RedisRateLimiter(redis_url), RedisRateLimiter(redis_url)
    key = uuid.uuid4().hex
    admitted = 0

    async def hit(lim: RedisRateLimiter) -> None:
        nonlocal admitted
        if await lim.acquire(key, 25, 60.0) is None:
            admitted += 1

    try:
        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(hit, a if i % 2 else b)
    finally:
        await a.aclose()
        await b.aclose()
    assert admitted == 25


pytestmark = pytest.mark.anyio


async def test_an_unreachable_redis_fails_closed_with_a_short_retry() -> None:
    """P9 through an outage: nothing is admitted that Redis did not count."""
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lim = RedisRateLimiter(f"redis://127.0.0.1:{port}/0")
    try:
        assert await lim.acquire("k", 100, 60.0) == 1.0
        assert await lim.acquire("k", 100, 60.0) == 1.0
        assert lim.errors == 2
    finally:
        await lim.aclose()
