"""The thin async server: HTTP in → engine → adapters → HTTP out; nothing else.

Plain ASGI (no framework: seven routes do not need one, and every layer costs
CPU per request), served by uvicorn with uvloop and httptools. Dialects live in
`adapters/codecs/` (one `Codec` per endpoint: its route, its decoder, its
upstream body), response shaping and the per-request `Exchange` in
`adapters/api/responses.py`, stream relaying in `adapters/api/streams.py`, and
what is served (policy, router, keys, hot reload) in `adapters/api/state.py`.

One request: read the body (413 past the limit) → key → codec decode (400 with
`param`) → `engine.evaluate` → a Deny becomes an error in the dialect's shape;
an Allow becomes the guarded upstream body (every slot written back, ghat's
fields stripped, token cap set) → router → output guards on every slot of the
answer → response with the ghat headers → one `LogRecord` to the log writer,
off the hot path. Route errors are answered in one place (`_route_failed`).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, cast

import anyio
import orjson

from adapters.api.message_streams import relay_messages
from adapters.api.observe import begin_request
from adapters.api.responses import Exchange, Message, Receive, Scope, Send, error_body
from adapters.api.responses_relay import relay_responses
from adapters.api.served_responses import ServedResponses
from adapters.api.state import GUARD_MS, SETTINGS_ENV, Gateway, Served, Settings
from adapters.api.streams import relay
from adapters.codecs import CODECS, BadRequest, anthropic_messages, decode, load_json, upstream_body
from adapters.codecs import openai_responses as responses_codec
from adapters.codecs.openai_chat import ERROR_SHAPE, RESPONSE_SHAPES, strip_logprobs
from adapters.codecs.responses_bridge import respond, respond_stream
from adapters.jsonwire import dumps
from dsl.diagnostics import PolicyError
from engine.conversation import guard_tree
from engine.decision import Allow, Deny
from engine.errors import MODEL_NOT_FOUND, OVERLOADED, ROUTE_UNAVAILABLE, guardrail_blocked
from engine.evaluator import evaluate
from engine.keys import KeyRecord
from engine.offload import run_off_loop
from engine.ports import JSON, Usage
from engine.records import GuardrailRecord, LogRecord
from engine.request import Endpoint, EvalContext
from engine.router import RouteError
from engine.usage import cost_of, count_tokens

log = logging.getLogger("ghat.server")
# Request ids: 128 random bits from a generator seeded once from the OS, not uuid4's getrandom(2) syscall per
# request. An id names a request in logs and headers; it is not a secret, so it need not be unpredictable.
_ids = random.Random()
_SHAPES = {**RESPONSE_SHAPES, "messages": anthropic_messages.RESPONSE,  # an answer's slots, by endpoint
           "responses": responses_codec.RESPONSE}
COUNT_TOKENS = "/v1/messages/count_tokens"
MODEL_PREFIX = "/v1/models/"


class Disconnected(Exception):
    """The client went away before its body arrived."""


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _captured(ex: Exchange) -> dict[str, str]:
    """What `capture` keeps (outside prod only): the caller's texts as sent, and the answer as returned."""
    out: dict[str, str] = {}
    if "prompts" in ex.capture and ex.request is not None:
        out["prompt"] = json.dumps([{"role": t.role, "text": t.text} for t in ex.request.texts
                                    if t.kind in ("text", "document")], ensure_ascii=False)  # fmt: skip
        if ex.body is not None:  # the whole body: `ghat replay` decodes it as the server did
            out["request"] = json.dumps({"endpoint": ex.endpoint, "body": ex.body}, ensure_ascii=False)
    if "responses" in ex.capture and ex.response_text is not None:
        out["response"] = ex.response_text
    return out


def _settle_gc() -> None:
    """Keep the cyclic GC off what start-up built, and let it run less often per request.

    The compiled policy, detector tables and libraries are ~50k tracked objects
    that live as long as the process; every full collection walks them (33 ms
    here). `gc.freeze()` moves them out of the collector's sight. Requests
    allocate short-lived containers that reference counting frees; a higher
    gen-0 threshold means fewer collections that find them already gone.
    Measured over 9 000 chat requests: 531 collections (4 full) costing 40 us
    per request with the defaults, none after this. `GHAT_GC=default` keeps
    the interpreter's defaults.
    """
    if os.environ.get("GHAT_GC") == "default":
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


class GatewayApp:
    """The ASGI callable; `gateway` exists between lifespan startup and shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.gateway: Gateway | None = None
        self.routes: dict[tuple[str, str], Callable[..., Awaitable[None]]] = {
            **{("POST", codec.path): self.llm for codec in CODECS.values()},
            ("GET", "/v1/models"): self.models,
            ("POST", COUNT_TOKENS): self.count_tokens,
            ("POST", "/v1/ghat/evaluate"): self.dry_run,
            ("GET", "/healthz"): self.healthz,
            ("GET", "/readyz"): self.readyz,
            ("GET", "/metrics"): self.metrics,
        }
        self.paths = {p for _, p in self.routes}
        self.served_responses = ServedResponses()  # previous_response_id: only for responses served here
        self.endpoints = {codec.path: codec.endpoint for codec in CODECS.values()}
        self.endpoints[COUNT_TOKENS] = "messages"  # answered in the Messages dialect, errors included

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        gw = self.gateway
        headers = _headers(scope)
        rid = f"{_ids.getrandbits(128):032x}"  # always ours: the log's key, echoed in x-request-id (P14)
        begin_request(headers.get("x-request-id"))  # the caller's own id goes into the record, beside ours
        ex = Exchange(send, rid, gw.served.policy.version if gw else "", self.endpoints.get(scope["path"], ""))
        handler = self.routes.get((scope["method"], scope["path"]))
        if handler is None and scope["method"] == "GET" and scope["path"].startswith(MODEL_PREFIX):
            handler = self.model
        if gw is None:
            await ex.error("route_unavailable", 503, "The gateway is starting.")
            return
        if handler is None:
            if scope["path"] in self.paths:
                await ex.error("invalid_request", 405, f"Method {scope['method']} is not allowed here.")
            else:
                await ex.error("not_found", 404, f"No route {scope['path']}.")
            return
        try:
            await handler(gw, ex, scope, receive, headers)
        except Disconnected:
            return
        except Exception:
            log.exception("request %s failed", rid)
            gw.observers.record_failure(ex, self.settings.env, scope["path"])  # unless a record already left
            if ex.status == 0:
                await ex.error("internal_error", 500, "The gateway failed to answer; see its log.")

    # ── lifespan: start, watch, reload on SIGHUP, flush on shutdown ─────
    async def lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        try:
            self.gateway = await anyio.to_thread.run_sync(Gateway, self.settings)
        except PolicyError as err:
            text = "\n".join(f"{d.span}: {d.level} {d.code} {d.message}" for d in err.diagnostics)
            await send({"type": "lifespan.startup.failed", "message": f"the policy set does not compile:\n{text}"})
            return
        except (RuntimeError, ValueError) as err:  # a setting or state file that cannot be used (tracing without
            # its SDK, a corrupt key store): say why instead of a traceback
            await send({"type": "lifespan.startup.failed", "message": str(err)})
            return
        gw = self.gateway
        _settle_gc()
        async with anyio.create_task_group() as tg:
            tg.start_soon(gw.watch)
            tg.start_soon(self._sighup, gw)
            log.warning("ghat serving env %s, policy %s", self.settings.env, gw.served.policy.version)
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown: uvicorn has already finished in-flight requests
            tg.cancel_scope.cancel()
        await gw.aclose()
        await send({"type": "lifespan.shutdown.complete"})

    @staticmethod
    async def _sighup(gw: Gateway) -> None:
        """Reload on SIGHUP (one worker; with several, uvicorn's supervisor restarts them instead)."""
        try:
            with anyio.open_signal_receiver(signal.SIGHUP) as signals:
                async for _ in signals:
                    await gw.reload("SIGHUP")
        except (NotImplementedError, RuntimeError, ValueError):  # no signals here (not the main thread)
            log.info("SIGHUP reload unavailable here; file changes still reload")

    # ── shared steps ─────────────────────────────────────────────────────
    async def _body(self, scope: Scope, receive: Receive, headers: dict[str, str]) -> bytes:
        limit = self.settings.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise BadRequest(f"The request body exceeds {limit} bytes.", status=413)
        first = self._chunk(await receive(), 0, limit)
        if not first[1]:
            return first[0]  # the whole body came with the headers: no timer needed (the usual case)
        chunks, size = [first[0]], len(first[0])
        with anyio.move_on_after(self.settings.body_timeout_s):
            while True:
                chunk, more = self._chunk(await receive(), size, limit)
                chunks.append(chunk)
                size += len(chunk)
                if not more:
                    return b"".join(chunks)
        raise BadRequest(f"The request body did not arrive within {self.settings.body_timeout_s:g} s.",
                               status=408)  # fmt: skip

    @staticmethod
    def _chunk(msg: Message, size: int, limit: int) -> tuple[bytes, bool]:
        """One body message: its bytes and whether more follow (413 past the limit, Disconnected if gone)."""
        if msg["type"] == "http.disconnect":
            raise Disconnected
        chunk: bytes = msg.get("body", b"")
        if size + len(chunk) > limit:
            raise BadRequest(f"The request body exceeds {limit} bytes.", status=413)
        return chunk, bool(msg.get("more_body"))

    @staticmethod
    def _key(gw: Gateway, headers: dict[str, str]) -> KeyRecord | None:
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else headers.get("x-api-key", "")
        rec = gw.keys.lookup(token) if token else None
        return rec if rec is not None and rec.env == gw.settings.env else None

    def _log(self, gw: Gateway, served: Served, ex: Exchange) -> None:
        t0 = time.perf_counter()
        req = ex.request
        u = ex.usage or Usage(source="none")
        model = served.policy.models.get(ex.model)
        cost = cost_of(u, model.price) if model is not None else 0.0
        ex.t["usage"] = (time.perf_counter() - t0) * 1000.0
        record = LogRecord(
            request_id=ex.request_id, time=ex.started_wall, env=self.settings.env, app=ex.app or None,
            key_id=ex.key.display if ex.key else None, endpoint=ex.endpoint,
            requested_model=req.model if req else None, provider=ex.provider or None,
            upstream_model=ex.upstream_model, stream=ex.stream, status=ex.status, error_code=ex.error_code,
            policy_version=ex.policy, metadata=dict(req.metadata) if req else {}, attempts=ex.attempt_records,
            guardrails=tuple(GuardrailRecord(d, o.detector, o.type, o.count, o.action, o.shadow)
                             for d, o in ex.outcomes),
            prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens, cached_tokens=u.cached_tokens,
            reasoning_tokens=u.reasoning_tokens, usage_source=u.source, cost_usd=cost, timings_ms=ex.timings(),
            max_tokens=req.max_tokens if req else None, captured=_captured(ex) if ex.capture else None,
        )  # fmt: skip
        gw.observers.record(record)
        ex.t["log"] = (time.perf_counter() - t0) * 1000.0 - ex.t["usage"]

    async def _respond(self, gw: Gateway, served: Served, ex: Exchange, status: int, obj: Any) -> None:
        ex.status = status
        self._log(gw, served, ex)
        await ex.json(status, obj)

    async def _fail(self, gw: Gateway, served: Served, ex: Exchange, code: str, status: int,
                    message: str, param: str | None = None, retry_after: float | None = None) -> None:
        ex.status, ex.error_code = status, code
        self._log(gw, served, ex)
        await ex.error(code, status, message, param, retry_after)

    async def _decide(self, gw: Gateway, served: Served, ex: Exchange, scope: Scope, receive: Receive,
                      headers: dict[str, str]) -> tuple[JSON, Allow] | None:
        """Body, key, decode, evaluate: the Allow and the guarded upstream body, or None once an error is sent."""
        t0 = time.perf_counter()
        try:
            raw = await self._body(scope, receive, headers)
            key = ex.key = self._key(gw, headers)
            if key is None:
                await self._fail(gw, served, ex, "unauthorized", 401, "Missing or invalid API key.")
                return None
            ex.app = key.app
            body = ex.body = load_json(raw)
            req = ex.request = CODECS[ex.endpoint].decode(body, headers)  # type: ignore[index]
        except BadRequest as err:
            await self._fail(gw, served, ex, "invalid_request", err.status, err.message, err.param)
            return None
        ex.stream = req.stream
        acc = [0.0]
        GUARD_MS.set(acc)
        decision = await evaluate(served.policy, req, EvalContext(key.app, key.id, ex.request_id), gw.limiter)
        ex.t["guardrails"] = acc[0]
        ex.t["resolve"] = (time.perf_counter() - t0) * 1000.0 - acc[0]
        ex.outcomes = [("input", o) for o in decision.outcomes]
        if self.settings.env != "prod" and (app := served.policy.apps.get(key.app)) is not None:
            ex.capture = app.capture  # refused requests too: `ghat replay` re-runs their guardrails
        if isinstance(decision, Deny):
            ex.fire(decision.outcomes)
            await self._fail(gw, served, ex, decision.code, decision.status, decision.message,
                             decision.param, decision.retry_after)  # fmt: skip
            return None
        ex.fired = decision.fired
        return upstream_body(body, req, decision.request), decision

    async def _route_failed(self, gw: Gateway, served: Served, ex: Exchange, allow: Allow, err: RouteError) -> None:
        """The one place a failed route becomes the caller's error.

        The provider's message is output too: it passes the output guards, and
        is replaced by ghat's own when a rule would block it. ghat has spent
        its own retries and fallbacks, so SDKs are told not to add theirs.
        """
        ex.attempt_records = err.attempts
        ex.attempts = len(err.attempts)
        if err.attempts:
            ex.model, ex.provider = err.attempts[-1].model, err.attempts[-1].provider
        ex.no_retry = bool(err.attempts)
        message = err.message
        if allow.output.rules and err.attempts:
            guarded = guard_tree(message, ERROR_SHAPE, allow.output, allow.redactor.for_output())
            ex.outcomes.extend(("output", o) for o in guarded.outcomes)
            message = guarded.body if guarded.blocked is None else (
                f"The provider answered {err.upstream_status or err.status}; its message was withheld by the "
                "output guardrails.")  # fmt: skip
        status = err.status
        if ex.endpoint == "messages" and err.upstream_status == OVERLOADED and err.code == ROUTE_UNAVAILABLE[0]:
            status = OVERLOADED  # Anthropic's own "overloaded": its clients know it (ghat has spent its retries)
        await self._fail(gw, served, ex, err.code, status, message, None, err.retry_after)

    # ── endpoints ────────────────────────────────────────────────────────
    async def llm(self, gw: Gateway, ex: Exchange, scope: Scope, receive: Receive, headers: dict[str, str]) -> None:
        """Every model endpoint: route → codec → engine → router → codec → response, one log record."""
        served = gw.served
        decided = await self._decide(gw, served, ex, scope, receive, headers)
        if decided is None:
            return
        body, allow = decided
        responses = ex.endpoint == "responses"
        if responses and body.get("previous_response_id") is not None:
            follow = await self._follow_up(gw, served, ex, body, allow)
            if follow is None:
                return
            allow = follow
        if allow.request.stream:
            if ex.endpoint == "messages":
                await self._message_stream(gw, served, ex, receive, body, allow, headers.get("anthropic-beta"))
            else:
                await (self._responses_stream if responses else self._stream)(gw, served, ex, receive, body, allow)
            return
        t0 = time.perf_counter()
        try:
            if ex.endpoint == "messages":
                result = await served.router.messages(allow, body, headers.get("anthropic-beta"),
                                                      anthropic_messages.usage_of_response)  # fmt: skip
            elif responses:  # native or translated per provider (adapters/codecs/responses_bridge.py)
                result = await served.router.dispatch(allow, body, respond)
            else:
                call = served.router.embed if ex.endpoint == "embeddings" else served.router.complete
                result = await call(allow, body)  # the router keeps the deadline (engine/router.py)
        except RouteError as err:
            ex.t["provider"] = (time.perf_counter() - t0) * 1000.0
            await self._route_failed(gw, served, ex, allow, err)
            return
        ex.t["provider"] = (time.perf_counter() - t0) * 1000.0
        ex.model, ex.provider = result.candidate.model, result.candidate.provider
        ex.attempts = len(result.attempts)
        ex.attempt_records, ex.usage = result.attempts, result.usage
        ex.upstream_model = result.candidate.upstream_model
        response = result.response
        restore = served.restore.get(allow.app, frozenset())
        if allow.output.rules or restore:
            t1 = time.perf_counter()
            if allow.output.enforcing:
                (responses_codec.strip_logprobs if responses else strip_logprobs)(response)
            guarded = await run_off_loop(guard_tree, response, _SHAPES[ex.endpoint], allow.output,
                                         allow.redactor.for_output(), allow.request.grounding, restore,
                                         size=len(dumps(response)))  # fmt: skip
            ex.t["guardrails"] += (time.perf_counter() - t1) * 1000.0
            ex.outcomes.extend(("output", o) for o in guarded.outcomes)
            ex.fire(guarded.outcomes)
            if guarded.blocked is not None:
                code, status = guardrail_blocked(guarded.blocked.rule.name)
                await self._fail(gw, served, ex, code, status, guarded.blocked.message)
                return
            response = guarded.body
        if responses:
            self._remember(served, allow, body, result.response.get("id"), response.get("id"),
                           result.candidate.provider)
        if "responses" in ex.capture and ex.endpoint == "messages":
            ex.response_text = anthropic_messages.text_of(response)
        elif "responses" in ex.capture:
            ex.response_text = "\n".join(c["message"]["content"] for c in response.get("choices") or []
                                         if isinstance(c, dict) and isinstance(c.get("message"), dict)
                                         and isinstance(c["message"].get("content"), str))  # fmt: skip
            if responses:
                ex.response_text = "\n".join(p["text"] for i in response.get("output") or [] if isinstance(i, dict)
                                             for p in i.get("content") or [] if isinstance(p, dict)
                                             and isinstance(p.get("text"), str))  # fmt: skip
        await self._respond(gw, served, ex, 200, response)

    async def _stream(self, gw: Gateway, served: Served, ex: Exchange, receive: Receive, body: JSON,
                      allow: Allow) -> None:
        t0 = time.perf_counter()
        try:
            route = await served.router.stream(allow, body)
        except RouteError as err:
            ex.t["provider"] = (time.perf_counter() - t0) * 1000.0
            await self._route_failed(gw, served, ex, allow, err)
            return
        ex.t["provider"] = (time.perf_counter() - t0) * 1000.0  # time to the first chunk: headers go now
        ex.model, ex.provider = route.candidate.model, route.candidate.provider
        ex.attempts = len(route.attempts)
        ex.upstream_model = route.candidate.upstream_model
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        out = await relay(ex, route, receive, pipeline=allow.output, redactor=allow.redactor.for_output(),
                          grounding=allow.request.grounding, restore=served.restore.get(allow.app, frozenset()),
                          include_usage=include_usage, capture="responses" in ex.capture)  # fmt: skip
        if out.sent is not None:
            ex.response_text = "".join(out.sent)
        ex.outcomes.extend(("output", o) for o in out.outcomes)
        ex.attempt_records, ex.usage = tuple(route.attempts), route.usage
        ex.status, ex.error_code = out.status, out.error_code
        self._log(gw, served, ex)

    async def _follow_up(self, gw: Gateway, served: Served, ex: Exchange, body: JSON, allow: Allow) -> Allow | None:
        """A `previous_response_id` this gateway served to this app: the route narrowed to the provider holding it.

        Any other id is refused (400 naming the field), never forwarded: the
        conversation it stands for would reach the model without ghat having
        guarded it (adapters/api/served_responses.py).
        """
        held = self.served_responses.provider_of(str(body["previous_response_id"]), allow.app)
        candidates = tuple(c for c in allow.candidates if c.provider == held) if held is not None else ()
        if candidates:
            return replace(allow, candidates=candidates)
        why = ("this gateway did not serve that response to this app (or no longer remembers it)" if held is None
               else f"the response is held by provider '{held}', which this request's route does not reach")
        await self._fail(gw, served, ex, "invalid_request", 400,
                         f"'previous_response_id' cannot be honoured: {why}; send the whole conversation in "
                         "`input` instead.", "previous_response_id")  # fmt: skip
        return None

    def _remember(self, served: Served, allow: Allow, body: JSON, upstream_id: Any, sent_id: Any,
                  provider: str) -> None:
        """Keep the id of a response served natively by a provider that stores it, for a later follow-up."""
        if isinstance(upstream_id, str) and upstream_id == sent_id and body.get("store") is not False \
                and getattr(served.router.providers.get(provider), "stores_responses", False):  # fmt: skip
            self.served_responses.remember(upstream_id, allow.app, provider)

    async def _responses_stream(self, gw: Gateway, served: Served, ex: Exchange, receive: Receive, body: JSON,
                                allow: Allow) -> None:
        """`/v1/responses` with `stream: true`: the typed events, natively or translated, guarded per slot."""
        t0 = time.perf_counter()
        try:
            route = await served.router.stream(allow, body, respond_stream)
        except RouteError as err:
            ex.t["provider"] = (time.perf_counter() - t0) * 1000.0
            await self._route_failed(gw, served, ex, allow, err)
            return
        ex.t["provider"] = (time.perf_counter() - t0) * 1000.0
        ex.model, ex.provider = route.candidate.model, route.candidate.provider
        ex.attempts = len(route.attempts)
        ex.upstream_model = route.candidate.upstream_model
        out, usage, final_id = await relay_responses(
            ex, route, receive, pipeline=allow.output, redactor=allow.redactor.for_output(),
            grounding=allow.request.grounding, restore=served.restore.get(allow.app, frozenset()),
            capture="responses" in ex.capture)  # fmt: skip
        self._remember(served, allow, body, final_id, final_id, route.candidate.provider)
        if out.sent is not None:
            ex.response_text = "".join(out.sent)
        ex.outcomes.extend(("output", o) for o in out.outcomes)
        ex.attempt_records, ex.usage = tuple(route.attempts), usage or route.usage
        ex.status, ex.error_code = out.status, out.error_code
        self._log(gw, served, ex)


    # ── Anthropic Messages (issue 13): its stream and count_tokens ───────
    async def _message_stream(self, gw: Gateway, served: Served, ex: Exchange, receive: Receive, body: JSON,
                              allow: Allow, beta: str | None) -> None:
        """A Messages stream: the same route, record and headers as chat, Anthropic's events on the wire."""
        t0 = time.perf_counter()
        try:
            route = await served.router.messages_stream(allow, body, beta, anthropic_messages.fold_usage)
        except RouteError as err:
            ex.t["provider"] = (time.perf_counter() - t0) * 1000.0
            await self._route_failed(gw, served, ex, allow, err)
            return
        ex.t["provider"] = (time.perf_counter() - t0) * 1000.0
        ex.model, ex.provider = route.candidate.model, route.candidate.provider
        ex.attempts = len(route.attempts)
        ex.upstream_model = route.candidate.upstream_model
        out = await relay_messages(ex, route, receive, pipeline=allow.output, redactor=allow.redactor.for_output(),
                                   grounding=allow.request.grounding,
                                   restore=served.restore.get(allow.app, frozenset()),
                                   capture="responses" in ex.capture)  # fmt: skip
        if out.sent is not None:
            ex.response_text = "".join(out.sent)
        ex.outcomes.extend(("output", o) for o in out.outcomes)
        ex.attempt_records, ex.usage = tuple(route.attempts), route.usage
        ex.status, ex.error_code = out.status, out.error_code
        self._log(gw, served, ex)

    async def count_tokens(self, gw: Gateway, ex: Exchange, scope: Scope, receive: Receive,
                           headers: dict[str, str]) -> None:
        """`/v1/messages/count_tokens`, answered by ghat: the body is decided like a request, never sent upstream.

        Key, app, model and input guardrails apply (a blocked body is refused,
        a redacted one is counted as it would be forwarded); nothing is
        dispatched, so no rate limit is spent and no request record is written.
        The count is ghat's tokenizer's (o200k_base), an estimate for Claude.
        """
        served = gw.served
        try:
            raw = await self._body(scope, receive, headers)
            key = self._key(gw, headers)
            if key is None:
                await ex.error("unauthorized", 401, "Missing or invalid API key.")
                return
            ex.app = key.app
            req = anthropic_messages.decode_count_tokens(load_json(raw), headers)
        except BadRequest as err:
            await ex.error("invalid_request", err.status, err.message, err.param)
            return
        d = await evaluate(served.policy, req, EvalContext(key.app, key.id, ex.request_id), None)
        if isinstance(d, Deny):
            ex.fire(d.outcomes)
            await ex.error(d.code, d.status, d.message, d.param, d.retry_after)
            return
        ex.fired = d.fired
        texts = [t.text for t in d.request.texts if t.kind not in ("binary", "signature")]
        counted = await run_off_loop(_count, texts, size=sum(map(len, texts)))  # BPE over a big body: P15
        await ex.json(200, {"input_tokens": counted})

    # ── end of Anthropic Messages ───────────────────────────────────────

    async def model(self, gw: Gateway, ex: Exchange, scope: Scope, receive: Receive, headers: dict[str, str]) -> None:
        """`GET /v1/models/{id}`: one of the app's models (OpenAI's shape), 404 for any other id."""
        key = self._key(gw, headers)
        if key is None or (listing := gw.served.models.get(key.app)) is None:
            await ex.error("unauthorized", 401, "Missing or invalid API key.")
            return
        ex.app = key.app
        wanted = scope["path"][len(MODEL_PREFIX):]
        found = next((m for m in orjson.loads(listing)["data"] if m["id"] == wanted), None)
        if found is None:
            await ex.error(*MODEL_NOT_FOUND, f"The model '{wanted}' does not exist or is not served to this app.",
                           "model")  # fmt: skip
            return
        await ex.json(200, found)

    async def models(self, gw: Gateway, ex: Exchange, scope: Scope, receive: Receive, headers: dict[str, str]) -> None:
        served = gw.served
        key = self._key(gw, headers)
        body = served.models.get(key.app) if key is not None else None
        if key is None or body is None:
            await ex.error("unauthorized", 401, "Missing or invalid API key.")
            return
        ex.app = key.app
        await ex.json(200, body)

    async def dry_run(self, gw: Gateway, ex: Exchange, scope: Scope, receive: Receive,
                      headers: dict[str, str]) -> None:
        """The decision and its trace for a body of any endpoint (`?endpoint=`); nothing is dispatched or limited."""
        served = gw.served
        try:
            raw = await self._body(scope, receive, headers)
            key = self._key(gw, headers)
            body = load_json(raw)
            req = decode(body, headers, _dry_run_endpoint(scope))
        except BadRequest as err:
            await ex.error("invalid_request", err.status, err.message, err.param)
            return
        ctx = EvalContext(key.app if key else None, key.id if key else "", ex.request_id, trace=True)
        d = await evaluate(served.policy, req, ctx, None)
        ex.app = d.app or ""
        trace = [{"step": s.name, "result": s.result, "detail": s.detail,
                  "at": f"{s.span.file}:{s.span.line}" if s.span else None} for s in d.trace]  # fmt: skip
        outcomes = [{"detector": o.detector, "type": o.type, "count": o.count, "action": o.action,
                     "shadow": o.shadow} for o in d.outcomes]  # fmt: skip
        out: JSON = {"decision": "allow" if isinstance(d, Allow) else "deny", "app": d.app,
                     "policy": d.policy_version, "trace": trace, "outcomes": outcomes}  # fmt: skip
        if isinstance(d, Deny):
            out["error"] = error_body(d.code, d.status, d.message, d.param)["error"]
            out["status"] = d.status
        else:
            out["candidates"] = [{"model": c.model, "provider": c.provider, "upstream_model": c.upstream_model,
                                  "via": list(c.via)} for c in d.candidates]  # fmt: skip
            out["max_tokens"] = d.request.max_tokens
            out["fired"] = list(d.fired)
            out["forwarded"] = upstream_body(body, req, d.request)
        await ex.json(200, out)

    async def healthz(self, gw: Gateway, ex: Exchange, *_: Any) -> None:
        await ex.json(200, b'{"status":"ok"}')

    async def readyz(self, gw: Gateway, ex: Exchange, *_: Any) -> None:
        problem = gw.observers.problem()  # a request log that cannot keep records: not ready (P14)
        ok = gw.ready and problem is None
        body = {"status": "ready" if ok else "stopping" if not gw.ready else "failing",
                "policy": gw.served.policy.version, "env": self.settings.env, "reloads": gw.reloads}
        await ex.json(200 if ok else 503, body if problem is None else {**body, "reason": problem})  # fmt: skip

    async def metrics(self, gw: Gateway, ex: Exchange, *_: Any) -> None:
        text = gw.observers.metrics.render()
        text += (f"# TYPE ghat_policy_reloads_total counter\nghat_policy_reloads_total {gw.reloads}\n"
                 f'# TYPE ghat_policy_info gauge\nghat_policy_info{{version="{gw.served.policy.version}"}} 1\n')
        await ex.text(200, text, b"text/plain; version=0.0.4; charset=utf-8")


def _dry_run_endpoint(scope: Scope) -> Endpoint | None:
    """`/v1/ghat/evaluate?endpoint=messages`: the codec a dry run decodes with (None: guessed from the body)."""
    query = scope.get("query_string", b"").decode("latin-1")
    named = next((v for k, _, v in (p.partition("=") for p in query.split("&")) if k == "endpoint"), None)
    if named is None:
        return None
    if named not in CODECS:
        raise BadRequest(f"endpoint must be one of {', '.join(CODECS)}, not '{named[:40]}'.", param="endpoint")
    return cast(Endpoint, named)


def _count(texts: list[str]) -> int:
    """Tokens of the texts a Messages body would send (`count_tokens`), with ghat's tokenizer."""
    return sum(count_tokens(t)[0] for t in texts)


def create_app() -> GatewayApp:
    """The uvicorn factory (`server:create_app`): settings come from `ghat serve` via the environment."""
    settings = Settings.from_env()
    if settings is None:
        raise RuntimeError(f"{SETTINGS_ENV} is not set: start the server with `ghat serve`")
    return GatewayApp(settings)


__all__ = ["GatewayApp", "create_app"]
