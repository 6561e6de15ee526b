"""P13, guard coverage: a canary in any string of a request or an answer never gets past `redact`, and `block` refuses.

Hypothesis generates OpenAI chat and embeddings bodies (tool history, tool
definitions, content parts, unknown fields at every level, token ids), answers
(tool calls, refusal, reasoning, parts, annotations, logprobs, unknown fields)
and stream chunkings of them, with a canary in every string that is not a
named structural field (tests/canary.py). The bodies go through the same
decoder, engine and codec as the server; a field path the codec forgets to
guard shows up as a leak here.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.api.responses import Exchange
from adapters.api.streams import relay
from adapters.codecs import decode, upstream_body
from adapters.codecs.openai_chat import RESPONSE, strip_logprobs
from dsl import ast
from dsl.parser import parse_text
from engine.compiler import CompiledPolicy, compile_policy
from engine.conversation import guard_tree
from engine.decision import Allow, Deny
from engine.guards import GuardPipeline, Redactor
from engine.ports import ProviderError
from engine.request import EvalContext
from engine.testing import evaluate_sync
from tests.canary import (
    CANARIES,
    chat_request,
    chat_response,
    embeddings_request,
    leaks,
    responses_request,
    responses_response,
    stream_chunks,
)

POLICY = """
provider p { kind mock }
model p/chat { price in 0 out 0 per 1M }
model p/embed { kind embedding price in 0 out 0 per 1M }
app redacting { env prod  models p/chat, p/embed
  input { secrets redact; pii redact }
  output { secrets redact; pii redact } }
app blocking { env prod  models p/chat, p/embed
  input { secrets block; pii block }
  output { secrets block; pii block } }
"""
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    pf, diags = parse_text(POLICY, "canary.policy")
    assert not [d for d in diags if d.level == "error"], diags
    return compile_policy(ast.PolicySet((pf,)), "prod")


def _forwarded(policy: CompiledPolicy, app: str, body: dict[str, Any]) -> tuple[Allow | Deny, dict[str, Any]]:
    request = decode(body, {})
    decision = evaluate_sync(policy, request, EvalContext(app, "k", "seed"))
    if isinstance(decision, Deny):
        return decision, {}
    return decision, upstream_body(body, request, decision.request)


@FAST
@given(body=st.one_of(chat_request(model="p/chat"), embeddings_request(model="p/embed")))
def test_no_canary_reaches_the_provider_under_redact(policy: CompiledPolicy, body: dict[str, Any]) -> None:
    decision, sent = _forwarded(policy, "redacting", body)
    assert isinstance(decision, Allow), decision
    assert leaks(sent) == []
    assert sent["model"] == body["model"]  # the structural fields pass as they are


@FAST
@given(body=st.one_of(chat_request(model="p/chat"), embeddings_request(model="p/embed")))
def test_a_canary_anywhere_is_refused_under_block(policy: CompiledPolicy, body: dict[str, Any]) -> None:
    if not leaks(body):  # nothing planted (an assistant turn with no content): nothing to refuse
        return
    decision, _ = _forwarded(policy, "blocking", body)
    assert isinstance(decision, Deny) and decision.code in ("guardrail_secrets_blocked", "guardrail_pii_blocked")


def _output(policy: CompiledPolicy, app: str) -> GuardPipeline:
    return policy.apps[app].output


@FAST
@given(response=chat_response())
def test_no_canary_reaches_the_caller_in_an_answer(policy: CompiledPolicy, response: dict[str, Any]) -> None:
    pipeline = _output(policy, "redacting")
    strip_logprobs(response)
    guarded = guard_tree(response, RESPONSE, pipeline, Redactor().for_output())
    assert guarded.blocked is None
    assert leaks(guarded.body) == []
    blocked = guard_tree(response, RESPONSE, _output(policy, "blocking"), Redactor().for_output())
    assert blocked.blocked is not None


class _Route:
    """A started stream as the router hands it to the relay."""

    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self._chunks = iter(chunks)

    def __aiter__(self) -> _Route:
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            return next(self._chunks)
        except StopIteration:
            raise StopAsyncIteration from None

    def time_left(self) -> float | None:
        return None

    def expired(self) -> ProviderError:
        return ProviderError("expired")

    async def aclose(self) -> None:
        return None


def stream_through(pipeline: GuardPipeline, chunks: list[dict[str, Any]]) -> tuple[list[bytes], Any]:
    """Relay `chunks` as the server would; returns the SSE body pieces and what the relay reported."""
    sent: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            sent.append(message.get("body", b""))

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        return {}

    async def main() -> Any:
        ex = Exchange(send, "rid", "v", "chat")
        return await relay(ex, _Route(chunks), receive, pipeline=pipeline, redactor=Redactor().for_output(),  # type: ignore[arg-type]
                           grounding=(), restore=frozenset(), include_usage=False)  # fmt: skip

    outcome = anyio.run(main)
    return sent, outcome


def _events(sent: list[bytes]) -> list[Any]:
    import json

    out = []
    for piece in b"".join(sent).split(b"\n\n"):
        if piece.startswith(b"data: ") and piece != b"data: [DONE]":
            out.append(json.loads(piece[6:]))
    return out


@FAST
@given(response=chat_response(), cuts=st.lists(st.integers(0, 200), max_size=6))
def test_no_canary_reaches_the_caller_in_a_stream(policy: CompiledPolicy, response: dict[str, Any],
                                                  cuts: list[int]) -> None:
    chunks = stream_chunks(response, cuts)
    sent, outcome = stream_through(_output(policy, "redacting"), chunks)
    assert outcome.error_code is None
    events = _events(sent)
    assert leaks(events) == []
    # each text slot, reassembled, is what redaction of the whole answer gives (P6 per slot)
    whole = guard_tree(response, RESPONSE, _output(policy, "redacting"), Redactor().for_output()).body
    message = whole["choices"][0]["message"]
    for name in ("content", "refusal", "reasoning_content"):
        if isinstance(message.get(name), str):
            got = "".join(c["delta"].get(name) or "" for e in events for c in e.get("choices", []))
            assert got == message[name]
    blocked, outcome = stream_through(_output(policy, "blocking"), stream_chunks(response, cuts))
    assert outcome.error_code in ("guardrail_secrets_blocked", "guardrail_pii_blocked")
    assert leaks(_events(blocked)) == []


def test_tool_arguments_stay_valid_json_after_redaction(policy: CompiledPolicy) -> None:
    import json

    args = json.dumps({"to": CANARIES[1], "note": f"key {CANARIES[0]}", "n": 4111111111111111})
    body = {"model": "p/chat", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "send", "arguments": args}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sent"}]}  # fmt: skip
    _, sent = _forwarded(policy, "redacting", body)
    forwarded = json.loads(sent["messages"][1]["tool_calls"][0]["function"]["arguments"])
    assert (forwarded["to"].startswith("[EMAIL") and "[AWS" in forwarded["note"]) or "[SECRET" in forwarded["note"]
    assert leaks(sent) == []


def test_token_ids_that_do_not_decode_are_refused() -> None:
    from adapters.codecs import BadRequest

    with pytest.raises(BadRequest) as exc:
        decode({"model": "p/embed", "input": [10**9]}, {})
    assert exc.value.param == "input" and "cl100k_base" in exc.value.message


def test_restore_never_restores_what_output_redaction_made(policy: CompiledPolicy) -> None:
    """A value the model invents is redacted for the caller even when input rules `restore`."""
    input_side = Redactor()
    input_side.placeholder("email", "mine@example.com")  # [EMAIL_1], made by input redaction
    answer = {"choices": [{"index": 0, "message": {"role": "assistant",
                                                   "content": "yours [EMAIL_1], theirs other@example.com"}}]}
    guarded = guard_tree(answer, RESPONSE, _output(policy, "redacting"), input_side.for_output(),
                         restore=frozenset({"email"}))
    text = guarded.body["choices"][0]["message"]["content"]
    assert text.startswith("yours mine@example.com, theirs [EMAIL_2]")
    assert "other@example.com" not in text


_names = st.text(alphabet="abcdefghij", min_size=3, max_size=6)


@FAST
@given(mine=st.lists(_names, min_size=1, max_size=3, unique=True), theirs=st.lists(_names, min_size=1, max_size=3,
                                                                                   unique=True),
       order=st.randoms(use_true_random=False))
def test_restore_puts_back_only_what_the_input_lost(policy: CompiledPolicy, mine: list[str], theirs: list[str],
                                                    order: Any) -> None:
    """P5's companion for `restore`: the caller gets back its own values, never one that output redaction hid."""
    own = [f"{n}@in.example.com" for n in mine]
    invented = [f"{n}@out.example.com" for n in theirs]
    input_side = Redactor()
    tags = [input_side.placeholder("email", v) for v in own]
    words = [*tags, *invented]
    order.shuffle(words)
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": " and ".join(words)}}]}
    text = guard_tree(answer, RESPONSE, _output(policy, "redacting"), input_side.for_output(),
                      restore=frozenset({"email"})).body["choices"][0]["message"]["content"]
    assert all(v in text for v in own)
    assert not any(v in text for v in invented)


# ── OpenAI Responses (/v1/responses, issue 13) ──────────────────────────


def _forwarded_responses(policy: CompiledPolicy, app: str, body: dict[str, Any]) -> tuple[Allow | Deny, Any]:
    request = decode(body, {}, "responses")
    decision = evaluate_sync(policy, request, EvalContext(app, "k", "seed"))
    if isinstance(decision, Deny):
        return decision, {}
    return decision, upstream_body(body, request, decision.request)


@FAST
@given(body=responses_request(model="p/chat"))
def test_no_canary_reaches_the_provider_in_a_responses_body(policy: CompiledPolicy, body: dict[str, Any]) -> None:
    decision, sent = _forwarded_responses(policy, "redacting", body)
    assert isinstance(decision, Allow), decision
    assert leaks(sent) == []
    assert sent["model"] == body["model"]
    from adapters.codecs.responses_bridge import to_chat

    try:  # translated for a chat-only provider: nothing planted comes back by another road
        assert leaks(to_chat(sent, "p")) == []
    except ProviderError as refused:
        assert refused.status == 400 and "cannot be sent" in refused.message
    blocked, _ = _forwarded_responses(policy, "blocking", body)
    assert isinstance(blocked, Deny) and blocked.code in ("guardrail_secrets_blocked", "guardrail_pii_blocked")


@FAST
@given(response=responses_response())
def test_no_canary_reaches_the_caller_in_a_response_object(policy: CompiledPolicy, response: dict[str, Any]) -> None:
    from adapters.codecs.openai_responses import RESPONSE as RESPONSES_RESPONSE
    from adapters.codecs.openai_responses import strip_logprobs as strip_responses

    strip_responses(response)
    guarded = guard_tree(response, RESPONSES_RESPONSE, _output(policy, "redacting"), Redactor().for_output())
    assert guarded.blocked is None and leaks(guarded.body) == []
    assert guard_tree(response, RESPONSES_RESPONSE, _output(policy, "blocking"),
                      Redactor().for_output()).blocked is not None


@FAST
@given(response=chat_response())
def test_a_translated_answer_is_guarded_like_a_native_one(policy: CompiledPolicy, response: dict[str, Any]) -> None:
    """A chat answer (from a chat-only provider) made into a Response object has every canary guarded."""
    from adapters.codecs.openai_responses import RESPONSE as RESPONSES_RESPONSE
    from adapters.codecs.responses_bridge import from_chat

    translated = from_chat(response, {"model": "p/chat"})
    guarded = guard_tree(translated, RESPONSES_RESPONSE, _output(policy, "redacting"), Redactor().for_output())
    assert leaks(guarded.body) == []


def responses_stream_through(pipeline: GuardPipeline, events: list[dict[str, Any]]) -> tuple[list[Any], Any]:
    """Relay Responses events as the server would; returns the events sent (parsed) and what the relay reported."""
    import json

    from adapters.api.responses_relay import relay_responses

    sent: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            sent.append(message.get("body", b""))

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        return {}

    async def main() -> Any:
        ex = Exchange(send, "rid", "v", "responses")
        out, _, _ = await relay_responses(ex, _Route(events), receive, pipeline=pipeline,  # type: ignore[arg-type]
                                       redactor=Redactor().for_output(), grounding=(), restore=frozenset())
        return out

    outcome = anyio.run(main)
    parsed = [json.loads(line[6:]) for piece in b"".join(sent).split(b"\n\n")
              for line in piece.split(b"\n") if line.startswith(b"data: ")]  # fmt: skip
    return parsed, outcome


def _streamed(events: list[dict[str, Any]], kind: str, oi: int, index: str, k: int) -> str:
    return "".join(e["delta"] for e in events if e["type"] == kind and e.get("output_index") == oi
                   and e.get(index, 0) == k)  # fmt: skip


@FAST
@given(response=responses_response(), cuts=st.lists(st.integers(0, 200), max_size=6))
def test_no_canary_reaches_the_caller_in_a_responses_stream(policy: CompiledPolicy, response: dict[str, Any],
                                                            cuts: list[int]) -> None:
    from adapters.codecs.openai_responses import RESPONSE as RESPONSES_RESPONSE
    from tests.canary import responses_events

    events, outcome = responses_stream_through(_output(policy, "redacting"), responses_events(response, cuts))
    assert outcome.error_code is None, events[-1]
    assert leaks(events) == []
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    # every slot, reassembled from its deltas, is the redaction of the whole answer (P6 per slot), and so is
    # every later copy of it: the .done events, the finished items and the final response
    whole = guard_tree(response, RESPONSES_RESPONSE, _output(policy, "redacting"), Redactor().for_output()).body
    final = events[-1]["response"]
    assert final["output"] == [events[i]["item"] for i in range(len(events))
                               if events[i]["type"] == "response.output_item.done"]
    for oi, item in enumerate(whole["output"]):
        if item["type"] == "function_call":
            assert final["output"][oi]["arguments"] == item["arguments"]
            assert _streamed(events, "response.function_call_arguments.delta", oi, "x", 0) == item["arguments"]
        for k, part in enumerate(item.get("content") or []):
            kind = {"output_text": "output_text", "refusal": "refusal", "reasoning_text": "reasoning_text"}
            field = "refusal" if part["type"] == "refusal" else "text"
            assert _streamed(events, f"response.{kind[part['type']]}.delta", oi, "content_index", k) == part[field]
            assert final["output"][oi]["content"][k][field] == part[field]
        for k, part in enumerate(item.get("summary") or []):
            got = _streamed(events, "response.reasoning_summary_text.delta", oi, "summary_index", k)
            assert got == part["text"] == final["output"][oi]["summary"][k]["text"]
    blocked, outcome = responses_stream_through(_output(policy, "blocking"), responses_events(response, cuts))
    assert outcome.error_code in ("guardrail_secrets_blocked", "guardrail_pii_blocked")
    assert blocked[-1]["type"] == "error" and blocked[-1]["error"]["code"] == outcome.error_code
    assert leaks(blocked) == []
