"""The router's contract: order, retries, backoff, Retry-After, timeouts, deadline, breakers, P8, streams.

Most tests drive a scripted in-process provider with an injected clock and
sleep, so backoff and cooldowns are checked exactly and instantly; the ones
about the wire (concrete model names upstream, timeouts, cut streams) go
through the fake upstream process.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.mock import MockProvider
from adapters.openai import OpenAIProvider
from engine.decision import Allow, Candidate
from engine.ports import JSON, Provider, ProviderError
from engine.router import RouteError, Router, RouterSettings
from tests.fixtures_upstream import FakeUpstream

pytestmark = pytest.mark.anyio
BODY: JSON = {"model": "smart-default", "messages": [{"role": "user", "content": "hello world"}]}


def cand(model: str, retries: int = 0, timeout_s: float | None = None, provider: str = "p") -> Candidate:
    return Candidate(f"{provider}/{model}", provider, model, timeout_s, retries, ("smart-default",))


def allow(*cands: Candidate, timeout_s: float | None = None) -> Allow:
    return Allow(app="a", request=cast(Any, None), candidates=cands, output=cast(Any, None),
                 redactor=cast(Any, None), timeout_s=timeout_s)


def err(status: int, retry_after: float | None = None) -> ProviderError:
    retryable = status in (408, 429) or status >= 500
    return ProviderError(f"upstream {status}", status=503 if retryable else 400,
                         code="route_unavailable" if retryable else "invalid_request", retryable=retryable,
                         retry_after=retry_after, upstream_status=status)


class Scripted:
    """A provider whose answers per upstream model are scripted: "ok" or a ProviderError, in order."""

    idle_timeouts = False

    def __init__(self, script: dict[str, list[Any]], name: str = "p") -> None:
        self.name = name
        self.script = {k: list(v) for k, v in script.items()}
        self.calls: list[str] = []
        self.mock = MockProvider(name)

    def _next(self, body: JSON) -> None:
        self.calls.append(body["model"])
        outcome = self.script.get(body["model"], ["ok"]).pop(0) if self.script.get(body["model"]) else "ok"
        if isinstance(outcome, ProviderError):
            raise outcome

    async def chat(self, body: JSON, candidate: Candidate, timeout_s: float | None) -> JSON:
        self._next(body)
        return await self.mock.chat(body, candidate, timeout_s)

    async def chat_stream(self, body: JSON, candidate: Candidate, timeout_s: float | None) -> AsyncIterator[JSON]:
        self._next(body)
        async for c in self.mock.chat_stream(body, candidate, timeout_s):
            yield c

    async def embeddings(self, body: JSON, candidate: Candidate, timeout_s: float | None) -> JSON:
        self._next(body)
        return await self.mock.embeddings(body, candidate, timeout_s)

    async def aclose(self) -> None:
        return None


class FakeTime:
    """An injected clock that only moves when the router sleeps (or a test advances it)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def router(p: Provider, t: FakeTime, **kw: Any) -> Router:
    return Router({"p": p}, settings=RouterSettings(**kw), clock=t.clock, sleep=t.sleep, rng=random.Random(7))


async def test_first_candidate_answers_with_its_concrete_model() -> None:
    p, t = Scripted({}), FakeTime()
    res = await router(p, t).complete(allow(cand("gpt-4o"), cand("echo")), BODY)
    assert p.calls == ["gpt-4o"]
    assert res.candidate.upstream_model == "gpt-4o" and res.response["model"] == "gpt-4o"
    assert [(a.model, a.status, a.error_code) for a in res.attempts] == [("p/gpt-4o", 200, None)]
    assert res.usage.prompt_tokens == 2 and res.usage.completion_tokens > 0


async def test_retry_waits_a_full_jitter_backoff_then_succeeds() -> None:
    p, t = Scripted({"m": [err(503), err(500)]}), FakeTime()
    res = await router(p, t, backoff_base_s=1.0, backoff_cap_s=8.0).complete(allow(cand("m", retries=2)), BODY)
    assert p.calls == ["m", "m", "m"]
    assert [a.status for a in res.attempts] == [503, 500, 200]
    assert len(t.sleeps) == 2 and 0 <= t.sleeps[0] <= 1.0 and 0 <= t.sleeps[1] <= 2.0


async def test_retry_after_is_honoured_up_to_the_cap() -> None:
    p, t = Scripted({"m": [err(429, retry_after=3.0)]}), FakeTime()
    await router(p, t, backoff_base_s=0.01, retry_after_cap_s=5.0).complete(allow(cand("m", retries=1)), BODY)
    assert len(t.sleeps) == 1 and t.sleeps[0] >= 3.0


async def test_retry_after_beyond_the_cap_falls_back_without_waiting() -> None:
    p, t = Scripted({"m": [err(429, retry_after=60.0)]}), FakeTime()
    res = await router(p, t, retry_after_cap_s=5.0).complete(allow(cand("m", retries=3), cand("n")), BODY)
    assert p.calls == ["m", "n"] and t.sleeps == []
    assert res.candidate.upstream_model == "n"


async def test_a_client_error_returns_at_once_without_fallback() -> None:
    p, t = Scripted({"m": [err(400)]}), FakeTime()
    with pytest.raises(RouteError) as info:
        await router(p, t).complete(allow(cand("m", retries=3), cand("n")), BODY)
    assert info.value.code == "invalid_request" and info.value.status == 400
    assert p.calls == ["m"] and len(info.value.attempts) == 1


async def test_no_candidate_left_is_route_unavailable_with_every_attempt() -> None:
    p, t = Scripted({"m": [err(503)] * 2, "n": [err(502, retry_after=1.0)]}), FakeTime()
    with pytest.raises(RouteError) as info:
        await router(p, t).complete(allow(cand("m", retries=1), cand("n")), BODY)
    e = info.value
    assert (e.code, e.status) == ("route_unavailable", 503)
    assert [(a.model, a.status) for a in e.attempts] == [("p/m", 503), ("p/m", 503), ("p/n", 502)]
    assert e.retry_after == 1.0


async def test_backoff_that_would_overrun_the_deadline_falls_back_instead() -> None:
    p, t = Scripted({"m": [err(429, retry_after=4.0)]}), FakeTime()
    res = await router(p, t).complete(allow(cand("m", retries=2), cand("n"), timeout_s=3.0), BODY)
    assert p.calls == ["m", "n"] and t.sleeps == [] and res.candidate.upstream_model == "n"


async def test_breaker_opens_skips_then_probes_after_cooldown() -> None:
    p, t = Scripted({"m": [err(503)] * 3}), FakeTime()
    r = router(p, t, breaker_failures=2, breaker_cooldown_s=10.0)
    plan = allow(cand("m"), cand("n"))
    for _ in range(2):
        await r.complete(plan, BODY)
    assert r.breaker_open("p/m")
    res = await r.complete(plan, BODY)  # m is cooling down: not even tried
    assert p.calls == ["m", "n", "m", "n", "n"] and res.skipped == ("p/m",)
    t.now += 10.0
    await r.complete(plan, BODY)  # half-open probe fails → open again
    assert p.calls[-2:] == ["m", "n"] and r.breaker_open("p/m")
    t.now += 10.0
    res = await r.complete(plan, BODY)  # probe succeeds → closed
    assert res.candidate.upstream_model == "m" and not r.breaker_open("p/m")


async def test_every_candidate_cooling_down_is_route_unavailable_with_retry_after() -> None:
    p, t = Scripted({"m": [err(503)]}), FakeTime()
    r = router(p, t, breaker_failures=1, breaker_cooldown_s=30.0)
    with pytest.raises(RouteError):
        await r.complete(allow(cand("m")), BODY)
    t.now += 5.0
    with pytest.raises(RouteError) as info:
        await r.complete(allow(cand("m")), BODY)
    assert info.value.code == "route_unavailable" and info.value.attempts == ()
    assert info.value.retry_after == pytest.approx(25.0)


# ── P8 as a property ─────────────────────────────────────────────────────
KINDS = st.sampled_from([200, 400, 401, 404, 408, 422, 429, 500, 502, 503, 504])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.lists(KINDS, max_size=4)), min_size=1, max_size=4))
def test_p8_only_retryable_failures_retry_or_fall_back(plan: list[tuple[int, list[int]]]) -> None:
    """Whatever each candidate answers, the attempts are exactly what P8 and declared order allow."""
    import anyio

    cands = [cand(f"m{i}", retries=r) for i, (r, _) in enumerate(plan)]
    script = {f"m{i}": [err(s) if s != 200 else "ok" for s in outs] for i, (_, outs) in enumerate(plan)}
    expected: list[tuple[str, int]] = []
    outcome = "unavailable"
    for i, (retries, outs) in enumerate(plan):
        queue = list(outs)
        for _ in range(retries + 1):
            s = queue.pop(0) if queue else 200
            expected.append((f"p/m{i}", s))
            if s == 200 or (s not in (408, 429) and s < 500):
                outcome = "ok" if s == 200 else "client_error"
                break
        if outcome != "unavailable":
            break
    p, t = Scripted(script), FakeTime()
    r = router(p, t, breaker_failures=10**6)

    async def run() -> str:
        try:
            await r.complete(allow(*cands), BODY)
            return "ok"
        except RouteError as e:
            got.extend((a.model, a.status) for a in e.attempts)
            return "client_error" if e.status == 400 else "unavailable"

    got: list[tuple[str, int]] = []
    result = anyio.run(run)
    if result == "ok":
        got = [(f"p/{m}", 0) for m in p.calls]
        assert [m for m, _ in got] == [m for m, _ in expected]
    else:
        assert got == expected
    assert result == outcome


# ── over the wire ────────────────────────────────────────────────────────
@pytest.fixture
async def wire(fake_upstream: FakeUpstream) -> AsyncIterator[Router]:
    p = OpenAIProvider("p", fake_upstream.url, "sk-test")
    yield Router({"p": p}, rng=random.Random(1), settings=RouterSettings(backoff_base_s=0.001))
    await p.aclose()


async def test_fallback_sends_concrete_model_names_upstream(wire: Router, fake_upstream: FakeUpstream) -> None:
    fake_upstream.fault("status", status=503, model="gpt-4o")
    res = await wire.complete(allow(cand("gpt-4o", retries=1), cand("gpt-4o-mini")), BODY)
    sent = [r["body"]["model"] for r in fake_upstream.requests()]
    assert sent == ["gpt-4o", "gpt-4o", "gpt-4o-mini"]
    assert res.response["choices"][0]["message"]["content"] == "fake: hello world"
    assert [a.status for a in res.attempts] == [503, 503, 200]


@pytest.mark.parametrize("kind", ["reset", "malformed", "cut"])
async def test_broken_answers_fall_back(wire: Router, fake_upstream: FakeUpstream, kind: str) -> None:
    fake_upstream.fault(kind, model="a")
    res = await wire.complete(allow(cand("a"), cand("b")), BODY)
    assert res.candidate.upstream_model == "b" and res.attempts[0].status in (0, 200)
    assert res.attempts[0].error_code is not None


async def test_attempt_timeout_falls_back(wire: Router, fake_upstream: FakeUpstream) -> None:
    fake_upstream.fault("delay", delay_s=5, model="slow")
    res = await wire.complete(allow(cand("slow", timeout_s=0.2), cand("fast")), BODY)
    assert [(a.model, a.error_code) for a in res.attempts] == [("p/slow", "request_timeout"), ("p/fast", None)]


async def test_overall_deadline_is_request_timeout(wire: Router, fake_upstream: FakeUpstream) -> None:
    fake_upstream.fault("delay", delay_s=5)
    with pytest.raises(RouteError) as info:
        await wire.complete(allow(cand("a", timeout_s=3), cand("b", timeout_s=3), timeout_s=0.3), BODY)
    assert (info.value.code, info.value.status) == ("request_timeout", 504)
    assert len(info.value.attempts) == 1


async def test_stream_falls_back_before_the_first_chunk(wire: Router, fake_upstream: FakeUpstream) -> None:
    fake_upstream.fault("status", status=500, model="a")
    route = await wire.stream(allow(cand("a"), cand("b")), {**BODY, "stream": True})
    text = "".join([c["choices"][0]["delta"].get("content") or "" async for c in route if c["choices"]])
    assert text == "fake: hello world" and route.candidate.upstream_model == "b"
    assert [a.status for a in route.attempts] == [500, 200] and route.usage.completion_tokens == 3


async def test_stream_cut_after_first_chunk_is_an_error_not_a_fallback(
    wire: Router, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.fault("cut", model="a", after_chunks=3)
    route = await wire.stream(allow(cand("a"), cand("b")), {**BODY, "stream": True})
    got = 0
    with pytest.raises(ProviderError) as info:
        async for _ in route:
            got += 1
    await route.aclose()
    assert got >= 1 and info.value.code == "upstream_stream_interrupted"
    assert [r["body"]["model"] for r in fake_upstream.requests()] == ["a"]
    assert route.attempts[-1].error_code == "upstream_stream_interrupted"


async def test_stream_stalled_mid_way_times_out(wire: Router, fake_upstream: FakeUpstream) -> None:
    fake_upstream.fault("stall", after_chunks=3, delay_s=5)
    route = await wire.stream(allow(cand("a", timeout_s=0.2)), {**BODY, "stream": True})
    with pytest.raises(ProviderError) as info:
        async for _ in route:
            pass
    await route.aclose()
    assert info.value.code == "request_timeout"


# ── streams whose adapter bounds idle time on the socket ─────────────────
class Ticking:
    """A stream provider that advances the injected clock by `step` per chunk; `idle_timeouts` as given."""

    def __init__(self, t: FakeTime, step: float, idle_timeouts: bool) -> None:
        self.name, self.t, self.step, self.idle_timeouts = "p", t, step, idle_timeouts

    async def chat_stream(self, body: JSON, candidate: Candidate, timeout_s: float | None) -> AsyncIterator[JSON]:
        for i in range(10):
            self.t.now += self.step
            yield {"choices": [{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}]}

    async def chat(self, body: JSON, candidate: Candidate, timeout_s: float | None) -> JSON:
        raise AssertionError("not used")

    async def embeddings(self, body: JSON, candidate: Candidate, timeout_s: float | None) -> JSON:
        raise AssertionError("not used")

    async def aclose(self) -> None:
        return None


async def test_a_stream_past_the_request_deadline_ends_in_request_timeout() -> None:
    """The adapter bounds idle time on its socket, so the router checks the deadline as each chunk arrives."""
    t = FakeTime()
    route = await router(cast(Provider, Ticking(t, 1.0, True)), t).stream(
        allow(cand("a"), timeout_s=4.5), {**BODY, "stream": True})
    got = 0
    with pytest.raises(ProviderError) as info:
        async for _ in route:
            got += 1
    await route.aclose()
    assert info.value.code == "request_timeout" and got == 4
    assert route.attempts[-1].error_code == "request_timeout"


async def test_a_stream_within_its_deadline_is_untouched_by_it() -> None:
    t = FakeTime()
    route = await router(cast(Provider, Ticking(t, 0.1, True)), t).stream(
        allow(cand("a"), timeout_s=5.0), {**BODY, "stream": True})
    assert len([c async for c in route]) == 10 and route.attempts[-1].error_code is None
    assert route.time_left() == pytest.approx(4.0)
