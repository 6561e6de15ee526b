"""The router: try an Allow's candidates until one answers, within the request's deadline.

Candidates are tried in the order the compiler put them (primary or split
member first, then fallbacks). Each gets `retries + 1` attempts, each bounded
by the candidate's timeout and by what is left of the overall deadline. Only
retryable failures (P8: timeouts, broken connections, 408, 429, 5xx,
malformed upstream output) are retried or fall back; anything else returns at
once with the upstream's message. Between retries: exponential backoff with
full jitter, stretched to the upstream's `Retry-After` when that fits under a
cap — when it does not, waiting is pointless and the next candidate is tried.

A circuit breaker per model (`provider/model`) opens after consecutive
retryable failures, skips that model for a cooldown, then lets one probe
through (half-open): a success closes it, a failure re-opens it.

Streams fall back only until the first chunk is in hand: after that, bytes
have reached the caller and a failure becomes an error the server ends the
stream with.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import anyio

from engine.decision import Allow, Candidate
from engine.errors import REQUEST_TIMEOUT, ROUTE_UNAVAILABLE, UPSTREAM_RATE_LIMITED
from engine.ports import JSON, Provider, ProviderError, Usage
from engine.records import AttemptRecord
from engine.usage import reported_usage

log = logging.getLogger("ghat.router")
T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
NO_USAGE = Usage(source="none")
# How a dialect reaches a provider: a unary call, or the opening of a stream (chat's are the defaults).
Call = Callable[[Provider, JSON, Candidate, float | None], Awaitable[JSON]]
Opener = Callable[[Provider, JSON, Candidate, float | None], AsyncIterator[JSON]]


@dataclass(frozen=True, slots=True)
class RouterSettings:
    """Backoff and breaker knobs; the defaults suit hosted LLM APIs."""

    backoff_base_s: float = 0.25  # the first retry waits up to this, doubling each time
    backoff_cap_s: float = 4.0  # full-jitter ceiling
    retry_after_cap_s: float = 10.0  # longer Retry-After: fall back instead of waiting
    breaker_failures: int = 5  # consecutive retryable failures that open a breaker
    breaker_cooldown_s: float = 30.0


class RouteError(Exception):
    """No answer: the error the caller gets (code, status, message) and every attempt made."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int,
        attempts: tuple[AttemptRecord, ...],
        retry_after: float | None = None,
        upstream_status: int | None = None,
        skipped: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.attempts = attempts
        self.retry_after = retry_after
        self.upstream_status = upstream_status
        self.skipped = skipped  # models passed over because their breaker was open


@dataclass(frozen=True, slots=True)
class RouteResult:
    response: JSON  # the upstream's answer in OpenAI's shape, `model` as upstream named it
    candidate: Candidate  # the one that answered
    attempts: tuple[AttemptRecord, ...]  # every attempt, the answering one last
    usage: Usage
    skipped: tuple[str, ...] = ()


def usage_of(obj: JSON) -> Usage:
    """Usage from an OpenAI-shaped response or chunk (`NO_USAGE` when it has none; counts validated there)."""
    return reported_usage(obj) or NO_USAGE


class _Breaker:
    __slots__ = ("failures", "open_until", "probing")

    def __init__(self) -> None:
        self.failures = 0
        self.open_until = 0.0  # 0: closed
        self.probing = False


class StreamRoute:
    """A stream that has started: the candidate answering, the attempts so far, and its chunks.

    Iterate it for OpenAI chunk dicts (the first one is already fetched). A
    final chunk with `choices: []` carries usage, which the router always
    asks for: drop it if the client did not ask for `include_usage`. A
    failure after the first chunk raises `ProviderError` (retrying is no
    longer possible); the last attempt record is then updated with its code.
    Always `aclose()` (or iterate to the end) to release the connection.
    """

    def __init__(self, router: Router, candidate: Candidate, attempts: list[AttemptRecord],
                 it: AsyncIterator[JSON], first: JSON, deadline: float | None, started: float,
                 skipped: tuple[str, ...], idle_on_wire: bool = False,
                 fold: Callable[[JSON, Usage], Usage] | None = None) -> None:
        self.candidate = candidate
        self.attempts = attempts
        self.skipped = skipped
        self.usage = NO_USAGE
        self._router = router
        self._it = it
        self._first: JSON | None = first
        self._deadline = deadline
        self._started = started
        self._done = False
        # The adapter bounds the wait between chunks on its socket (`idle_timeouts`): then a cancel scope
        # per chunk (~13 us each, a timer armed and cancelled) only repeats what the socket does, and the
        # overall deadline is checked on each chunk's arrival instead (and by the relay: see `time_left`).
        self._idle_on_wire = idle_on_wire
        self._fold = fold  # how a non-chat dialect's events carry usage (None: OpenAI chunks)

    @property
    def chunks(self) -> AsyncIterator[JSON]:
        return self

    def time_left(self) -> float | None:
        """Seconds until the request's deadline (None: no deadline), for one scope around the whole relay."""
        return None if self._deadline is None else self._deadline - self._router._clock()

    def expired(self) -> ProviderError:
        """The deadline passed mid-stream: close the books on the attempt and return the error to send."""
        err = ProviderError(
            f"{self.candidate.provider}: stream outlived the request's deadline", status=REQUEST_TIMEOUT[1],
            code=REQUEST_TIMEOUT[0], retryable=True,
        )
        if not self._done:
            self._finish(err)
        return err

    def __aiter__(self) -> StreamRoute:
        return self

    async def __anext__(self) -> JSON:
        if self._first is not None:
            chunk, self._first = self._first, None
        else:
            if self._done:
                raise StopAsyncIteration
            chunk = await self._next()
        if self._fold is not None:
            self.usage = self._fold(chunk, self.usage)
        elif chunk.get("usage"):
            self.usage = usage_of(chunk)
        return chunk

    async def _next(self) -> JSON:
        try:
            if self._idle_on_wire:
                chunk = await self._it.__anext__()
                if self._deadline is not None and self._router._clock() > self._deadline:
                    raise self.expired()
                return chunk
            limit = self.candidate.timeout_s  # an idle bound between chunks
            if self._deadline is not None:
                left = self._deadline - self._router._clock()
                limit = left if limit is None else min(limit, left)
            if limit is None:
                return await self._it.__anext__()
            with anyio.move_on_after(max(limit, 0.0)):
                return await self._it.__anext__()
            raise ProviderError(
                f"{self.candidate.provider}: stream stalled past its timeout", status=REQUEST_TIMEOUT[1],
                code=REQUEST_TIMEOUT[0], retryable=True,
            )
        except StopAsyncIteration:
            self._finish(None)
            raise
        except ProviderError as err:
            if not self._done:
                self._finish(err)
            raise

    def _finish(self, err: ProviderError | None) -> None:
        """Close the books on the answering attempt: its full duration and, on a cut, the error."""
        self._done = True
        last = self.attempts[-1]
        self.attempts[-1] = AttemptRecord(
            last.model, last.provider, last.status, err.code if err else None,
            (time.perf_counter() - self._started) * 1000.0,
        )
        if err is not None and err.retryable:
            self._router._failed(self.candidate.model, self._router._clock())

    async def aclose(self) -> None:
        self._done = True
        closer = getattr(self._it, "aclose", None)
        if closer is not None:
            with anyio.CancelScope(shield=True):
                await closer()


class Router:
    """Dispatches allowed requests to providers; one per policy version (it holds breaker state)."""

    def __init__(
        self,
        providers: dict[str, Provider],
        *,
        settings: RouterSettings | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
        rng: random.Random | None = None,
        unavailable: Mapping[str, str] | None = None,
    ) -> None:
        self.providers = providers
        # Providers this server does not serve, with why (`ghat serve --unset-env skip` leaves out a provider
        # whose credentials are unset): their candidates are passed over, and the caller's 503 says why.
        self.unavailable = dict(unavailable or {})
        self.settings = settings or RouterSettings()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._breakers: dict[str, _Breaker] = {}

    # ── public API ──────────────────────────────────────────────────────
    async def complete(self, allow: Allow, body: JSON) -> RouteResult:
        """A chat completion from the first candidate that gives one."""
        return await self._unary(allow, body, _chat)

    async def embed(self, allow: Allow, body: JSON) -> RouteResult:
        """Embeddings, with the same retry and fallback discipline."""
        return await self._unary(allow, body, _embeddings)

    async def dispatch(self, allow: Allow, body: JSON, op: Call) -> RouteResult:
        """Any other unary call (a dialect's own, `op` picks native or translated per provider), same discipline."""
        return await self._unary(allow, body, op)

    async def stream(self, allow: Allow, body: JSON, opener: Opener | None = None) -> StreamRoute:
        """A started stream: returns once a candidate has produced its first chunk (or event, with `opener`)."""
        return await self._stream(allow, body, opener or _chat_stream, None)

    # ── Anthropic Messages (issue 13) ───────────────────────────────────
    async def messages(self, allow: Allow, body: JSON, beta: str | None,
                       read_usage: Callable[[JSON], Usage]) -> RouteResult:
        """An Anthropic Message (`/v1/messages`), native or translated by the provider; `read_usage` reads it."""

        async def op(p: Provider, b: JSON, c: Candidate, t: float | None) -> JSON:
            return await p.messages(b, c, t, beta)

        return await self._unary(allow, body, op, read_usage)

    async def messages_stream(self, allow: Allow, body: JSON, beta: str | None,
                              fold: Callable[[JSON, Usage], Usage]) -> StreamRoute:
        """A started stream of Anthropic events; `fold` accumulates their usage."""

        def open_stream(p: Provider, b: JSON, c: Candidate, t: float | None) -> AsyncIterator[JSON]:
            return p.messages_stream(b, c, t, beta)

        return await self._stream(allow, body, open_stream, fold)

    # ── end of Anthropic Messages ───────────────────────────────────────

    async def _stream(self, allow: Allow, body: JSON,
                      open_stream: Opener,
                      fold: Callable[[JSON, Usage], Usage] | None) -> StreamRoute:
        deadline = None if allow.timeout_s is None else self._clock() + allow.timeout_s
        started: list[float] = []

        async def first(p: Provider, b: JSON, c: Candidate, t: float | None) -> tuple[AsyncIterator[JSON], JSON]:
            started.append(time.perf_counter())
            it = open_stream(p, b, c, t)
            try:
                return it, await it.__anext__()
            except StopAsyncIteration:
                raise ProviderError(f"{c.provider}: empty stream", status=502,
                                    code="upstream_stream_interrupted", retryable=True) from None
            except BaseException:
                closer = getattr(it, "aclose", None)
                if closer is not None:
                    with anyio.CancelScope(shield=True):
                        await closer()
                raise

        (it, chunk), cand, attempts, skipped = await self._run(allow, body, first, deadline)
        idle_on_wire = self.providers[cand.provider].idle_timeouts
        return StreamRoute(self, cand, attempts, it, chunk, deadline, started[-1], skipped, idle_on_wire, fold)

    def breaker_open(self, model: str) -> bool:
        """Whether `model` is cooling down now (for /readyz and /metrics)."""
        b = self._breakers.get(model)
        return b is not None and b.open_until > self._clock()

    # ── the loop ────────────────────────────────────────────────────────
    async def _unary(self, allow: Allow, body: JSON, op: Callable[..., Awaitable[JSON]],
                     read_usage: Callable[[JSON], Usage] = usage_of) -> RouteResult:
        deadline = None if allow.timeout_s is None else self._clock() + allow.timeout_s
        response, cand, attempts, skipped = await self._run(allow, body, op, deadline)
        return RouteResult(response, cand, tuple(attempts), read_usage(response), skipped)

    async def _run(
        self, allow: Allow, body: JSON, op: Callable[[Provider, JSON, Candidate, float | None], Awaitable[T]],
        deadline: float | None,
    ) -> tuple[T, Candidate, list[AttemptRecord], tuple[str, ...]]:
        clock = self._clock
        attempts: list[AttemptRecord] = []
        skipped: list[str] = []
        last: ProviderError | None = None
        for cand in allow.candidates:
            provider = self.providers.get(cand.provider)
            if provider is None:  # not served here, or a reload removed it under an in-flight plan
                attempts.append(AttemptRecord(cand.model, cand.provider, 0, "provider_missing", 0.0))
                why = self.unavailable.get(cand.provider, f"{cand.provider}: the provider is not available")
                last = ProviderError(why, status=ROUTE_UNAVAILABLE[1], code=ROUTE_UNAVAILABLE[0])
                continue
            sent = body if body.get("model") == cand.upstream_model else {**body, "model": cand.upstream_model}
            for n in range(cand.retries + 1):
                now = clock()
                limit = cand.timeout_s
                bound_by_deadline = False
                if deadline is not None:
                    left = deadline - now
                    if left <= 0:
                        raise self._timeout(attempts, skipped)
                    if limit is None or left <= limit:
                        limit, bound_by_deadline = left, True
                if not self._admit(cand.model, now):
                    skipped.append(cand.model)
                    break
                t0 = time.perf_counter()
                try:
                    if limit is None:
                        result = await op(provider, sent, cand, None)
                    else:
                        with anyio.move_on_after(limit) as scope:
                            result = await op(provider, sent, cand, limit)
                        if scope.cancelled_caught:
                            raise ProviderError(f"{cand.provider}: no answer within {limit:.3g}s", status=504,
                                                code=REQUEST_TIMEOUT[0], retryable=True)
                except ProviderError as err:
                    ms = (time.perf_counter() - t0) * 1000.0
                    attempts.append(AttemptRecord(cand.model, cand.provider, err.upstream_status or 0, err.code, ms))
                    if not err.retryable:
                        self._release(cand.model)
                        raise RouteError(err.message, code=err.code, status=err.status, attempts=tuple(attempts),
                                         upstream_status=err.upstream_status, skipped=tuple(skipped)) from err
                    self._failed(cand.model, clock())
                    if bound_by_deadline and err.code == REQUEST_TIMEOUT[0]:
                        raise self._timeout(attempts, skipped) from err
                    last = err
                    if n < cand.retries:
                        delay = self._backoff(n, err.retry_after)
                        if delay is None or (deadline is not None and clock() + delay >= deadline):
                            break  # waiting cannot help in time: fall back now
                        await self._sleep(delay)
                    continue
                except Exception as exc:  # an adapter bug: keep the gateway answering, loudly
                    log.exception("provider %s raised unexpectedly", cand.provider)
                    self._release(cand.model)
                    attempts.append(AttemptRecord(cand.model, cand.provider, 0, "upstream_error",
                                                  (time.perf_counter() - t0) * 1000.0))
                    raise RouteError(f"{cand.provider}: {type(exc).__name__}", code="upstream_error", status=502,
                                     attempts=tuple(attempts), skipped=tuple(skipped)) from exc
                except BaseException:  # cancelled from outside: a half-open probe must not stay claimed
                    self._release(cand.model)
                    raise
                attempts.append(AttemptRecord(cand.model, cand.provider, 200, None,
                                              (time.perf_counter() - t0) * 1000.0))
                self._succeeded(cand.model)
                return result, cand, attempts, tuple(skipped)
        if deadline is not None and clock() >= deadline:
            raise self._timeout(attempts, skipped)
        message = last.message if last is not None else "no candidate available"
        if skipped and last is None:
            message = f"every candidate is cooling down after failures: {', '.join(skipped)}"
        # A provider's rate limit is the caller's to back off from: 429 with its Retry-After, not a 503.
        code, status = UPSTREAM_RATE_LIMITED if last is not None and last.upstream_status == 429 else ROUTE_UNAVAILABLE
        raise RouteError(message, code=code, status=status, attempts=tuple(attempts),
                         retry_after=last.retry_after if last is not None else self._soonest_reopen(),
                         upstream_status=last.upstream_status if last is not None else None, skipped=tuple(skipped))

    def _timeout(self, attempts: list[AttemptRecord], skipped: list[str]) -> RouteError:
        return RouteError("the request's deadline passed before any candidate answered", code=REQUEST_TIMEOUT[0],
                          status=REQUEST_TIMEOUT[1], attempts=tuple(attempts), skipped=tuple(skipped))

    def _backoff(self, n: int, retry_after: float | None) -> float | None:
        """Full jitter (AWS architecture blog): uniform in [0, min(cap, base·2ⁿ)], at least Retry-After."""
        s = self.settings
        delay = self._rng.uniform(0.0, min(s.backoff_cap_s, s.backoff_base_s * (2.0**n)))
        if retry_after is not None:
            if retry_after > s.retry_after_cap_s:
                return None
            delay = max(delay, retry_after)
        return delay

    # ── circuit breakers ────────────────────────────────────────────────
    def _admit(self, model: str, now: float) -> bool:
        b = self._breakers.get(model)
        if b is None or b.open_until == 0.0:
            return True
        if now < b.open_until or b.probing:
            return False
        b.probing = True  # half-open: this attempt is the probe
        return True

    def _succeeded(self, model: str) -> None:
        b = self._breakers.get(model)
        if b is not None:
            b.failures, b.open_until, b.probing = 0, 0.0, False

    def _failed(self, model: str, now: float) -> None:
        b = self._breakers.get(model)
        if b is None:
            b = self._breakers[model] = _Breaker()
        b.failures += 1
        if b.probing or b.failures >= self.settings.breaker_failures:
            b.open_until = now + self.settings.breaker_cooldown_s
        b.probing = False

    def _release(self, model: str) -> None:
        b = self._breakers.get(model)
        if b is not None:
            b.probing = False

    def _soonest_reopen(self) -> float | None:
        now = self._clock()
        waits = [b.open_until - now for b in self._breakers.values() if b.open_until > now]
        return min(waits) if waits else None


async def _chat(p: Provider, body: JSON, c: Candidate, t: float | None) -> JSON:
    return await p.chat(body, c, t)


async def _embeddings(p: Provider, body: JSON, c: Candidate, t: float | None) -> JSON:
    return await p.embeddings(body, c, t)


def _chat_stream(p: Provider, body: JSON, c: Candidate, t: float | None) -> AsyncIterator[JSON]:
    return p.chat_stream(body, c, t)

