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


# ── several limits on one request: all admit, or none is charged ─────────

# Three buckets with their own limits and periods; each request is subject to a non-empty subset.
MULTI = st.lists(
    st.tuples(st.one_of(st.integers(0, 24), st.sampled_from([0, 8, 64])), st.sets(st.integers(0, 2), min_size=1)),
    min_size=1, max_size=50,
)  # fmt: skip
SPECS = st.lists(st.tuples(LIMITS, PERIODS), min_size=3, max_size=3)


def _buckets(specs: list[tuple[int, float]], subset: set[int], prefix: str = "b") -> list[tuple[str, int, float]]:
    return [(f"{prefix}{i}", specs[i][0], specs[i][1]) for i in sorted(subset)]


@settings(max_examples=300, deadline=None)
@given(MULTI, SPECS)
def test_acquire_all_is_exact_for_every_bucket(
    reqs: list[tuple[int, set[int]]], specs: list[tuple[int, float]]
) -> None:
    """P9 per bucket: each counts only the requests admitted while it applied; a refusal charges none."""
    lim = MemoryRateLimiter()
    admitted: dict[int, list[float]] = {0: [], 1: [], 2: []}
    t = 64_000 * TICK
    for gap, subset in reqs:
        t += gap * TICK
        buckets = _buckets(specs, subset)
        refusal = lim.acquire_all_now(buckets, now=t)
        full = {i for i in subset if _in_window(admitted[i], t, specs[i][1]) >= specs[i][0]}
        if refusal is None:
            assert not full, "admitted although a bucket that applies was full"
            for i in subset:
                admitted[i].append(t)
                assert _in_window(admitted[i], t, specs[i][1]) <= specs[i][0]
        else:
            index, wait = refusal
            refused_by = sorted(subset)[index]
            assert refused_by in full, "refused by a bucket that had room"
            # the wait is the longest among the full buckets: until then this request cannot be admitted
            waits = {i: admitted[i][-specs[i][0]] - (t - specs[i][1]) for i in full}
            assert wait == pytest.approx(max(max(waits.values()), 0.001))


@settings(max_examples=100, deadline=None)
@given(MULTI, SPECS)
def test_redis_acquire_all_decides_as_the_memory_limiter(redis_url: str, reqs: list[tuple[int, set[int]]],
                                                         specs: list[tuple[int, float]]) -> None:  # fmt: skip
    mem = MemoryRateLimiter()
    t, plan = 64_000 * TICK, []
    for gap, subset in reqs:
        t += gap * TICK
        plan.append((t, subset))
    expected = [mem.acquire_all_now(_buckets(specs, subset), now=at) for at, subset in plan]

    async def run() -> list[tuple[int, float] | None]:
        lim, tag = RedisRateLimiter(redis_url), "{" + uuid.uuid4().hex + "}"
        try:
            return [await lim.acquire_all(_buckets(specs, subset, tag), now=at) for at, subset in plan]
        finally:
            await lim.aclose()

    got = anyio.run(run)
    assert [g is None for g in got] == [e is None for e in expected]
    for g, e in zip(got, expected, strict=True):
        if e is not None and g is not None:
            assert g[1] == pytest.approx(e[1], abs=1e-6)


async def test_two_gateways_sharing_redis_charge_every_bucket_or_none(redis_url: str) -> None:
    """Concurrent requests under overlapping limits: each bucket ends at its limit, none beyond."""
    a, b = RedisRateLimiter(redis_url), RedisRateLimiter(redis_url)
    tag = "{" + uuid.uuid4().hex + "}"
    app, narrow = (f"{tag}:app", 20, 60.0), (f"{tag}:when", 7, 60.0)
    counts = {"both": 0, "app": 0}

    async def hit(lim: RedisRateLimiter, both: bool) -> None:
        if await lim.acquire_all([app, narrow] if both else [app]) is None:
            counts["both" if both else "app"] += 1

    try:
        async with anyio.create_task_group() as tg:
            for i in range(120):
                tg.start_soon(hit, a if i % 2 else b, i % 3 == 0)
    finally:
        await a.aclose()
        await b.aclose()
    assert counts["both"] <= 7 and counts["both"] + counts["app"] == 20


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
