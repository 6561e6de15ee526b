"""P13 for Anthropic Messages: a canary in any string of a Messages request, answer or stream never gets past `redact`.

Hypothesis generates `/v1/messages` bodies, Messages and their event streams
(tests/canary_messages.py) with a canary in every string that is not a named
structural field; they go through the same decoder, engine, codec and relay
as the server. `block` refuses them. Streamed tool input must still parse as
JSON after redaction, and each streamed text or thinking block, reassembled,
must equal the redaction of the whole answer (P6 per block).
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.api.message_streams import relay_messages
from adapters.api.responses import Exchange
from adapters.codecs import decode, upstream_body
from adapters.codecs.anthropic_messages import RESPONSE
from dsl import ast
from dsl.parser import parse_text
from engine.compiler import CompiledPolicy, compile_policy
from engine.conversation import guard_tree
from engine.decision import Allow, Deny
from engine.guards import GuardPipeline, Redactor
from engine.ports import ProviderError
from engine.request import EvalContext
from engine.testing import evaluate_sync
from tests.canary import CANARIES, leaks
from tests.canary_messages import message_events, messages_request, messages_response, reassembled

POLICY = """
provider p { kind mock }
model p/chat { price in 0 out 0 per 1M }
app redacting { env prod  models p/chat
  input { secrets redact; pii redact }
  output { secrets redact; pii redact } }
app blocking { env prod  models p/chat
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
    request = decode(body, {}, "messages")
    decision = evaluate_sync(policy, request, EvalContext(app, "k", "seed"))
    if isinstance(decision, Deny):
        return decision, {}
    return decision, upstream_body(body, request, decision.request)


@FAST
@given(body=messages_request(model="p/chat"))
def test_no_canary_reaches_the_provider_under_redact(policy: CompiledPolicy, body: dict[str, Any]) -> None:
    decision, sent = _forwarded(policy, "redacting", body)
    assert isinstance(decision, Allow), decision
    assert leaks(sent) == []
    assert sent["model"] == body["model"] and sent["max_tokens"] == body["max_tokens"]


@FAST
@given(body=messages_request(model="p/chat"))
def test_a_canary_anywhere_is_refused_under_block(policy: CompiledPolicy, body: dict[str, Any]) -> None:
    decision, _ = _forwarded(policy, "blocking", body)
    assert isinstance(decision, Deny) and decision.code in ("guardrail_secrets_blocked", "guardrail_pii_blocked")


@FAST
@given(response=messages_response())
def test_no_canary_reaches_the_caller_in_an_answer(policy: CompiledPolicy, response: dict[str, Any]) -> None:
    guarded = guard_tree(response, RESPONSE, policy.apps["redacting"].output, Redactor().for_output())
    assert guarded.blocked is None and leaks(guarded.body) == []
    assert guard_tree(response, RESPONSE, policy.apps["blocking"].output, Redactor().for_output()).blocked


class _Route:
    """A started stream of events as the router hands it to the relay."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self._events = iter(events)
        self.candidate = type("C", (), {"provider": "p"})()

    def __aiter__(self) -> _Route:
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            return next(self._events)
        except StopIteration:
            raise StopAsyncIteration from None

    def time_left(self) -> float | None:
        return None

    def expired(self) -> ProviderError:
        return ProviderError("expired")

    async def aclose(self) -> None:
        return None


def stream_through(pipeline: GuardPipeline, events: list[dict[str, Any]], redactor: Redactor | None = None,
                   restore: frozenset[str] = frozenset()) -> tuple[list[dict[str, Any]], Any]:
    """Relay `events` as the server would; returns the events the caller got and what the relay reported."""
    sent: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            sent.append(message.get("body", b""))

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        return {}

    async def main() -> Any:
        ex = Exchange(send, "rid", "v", "messages")
        return await relay_messages(ex, _Route(events), receive, pipeline=pipeline,  # type: ignore[arg-type]
                                    redactor=(redactor or Redactor()).for_output(), grounding=(), restore=restore)

    outcome = anyio.run(main)
    out = []
    for piece in b"".join(sent).split(b"\n\n"):
        if piece:
            name, data = piece.split(b"\n", 1)
            assert name.startswith(b"event: ") and data.startswith(b"data: ")
            event = json.loads(data[6:])
            assert event["type"] == name[7:].decode()  # the event line names the data's type
            out.append(event)
    return out, outcome


@FAST
@given(response=messages_response(), cuts=st.lists(st.integers(0, 200), max_size=6))
def test_no_canary_reaches_the_caller_in_a_stream(policy: CompiledPolicy, response: dict[str, Any],
                                                  cuts: list[int]) -> None:
    redacting = policy.apps["redacting"].output
    events, outcome = stream_through(redacting, message_events(response, cuts))
    assert outcome.error_code is None
    assert leaks(events) == []
    assert [e["type"] for e in events][:2] == ["message_start", "ping"] and events[-1]["type"] == "message_stop"
    # every block, reassembled as a client does (tool input parsed as JSON), is the redaction of the whole
    whole = guard_tree(response, RESPONSE, redacting, Redactor().for_output()).body
    got = reassembled(events)
    assert len(got) == len(whole["content"])
    for streamed, plain in zip(got, whole["content"], strict=True):
        for name in ("text", "thinking", "signature", "input", "data"):
            if name in plain:
                assert streamed[name] == plain[name], name
    blocked, outcome = stream_through(policy.apps["blocking"].output, message_events(response, cuts))
    assert outcome.error_code in ("guardrail_secrets_blocked", "guardrail_pii_blocked")
    assert blocked[-1]["type"] == "error" and leaks(blocked) == []


def test_streamed_tool_input_split_inside_a_secret_is_redacted_and_stays_json(policy: CompiledPolicy) -> None:
    message = {"id": "m", "type": "message", "role": "assistant", "model": "x", "stop_reason": "tool_use",
               "stop_sequence": None, "usage": {},
               "content": [{"type": "tool_use", "id": "t", "name": "send",
                            "input": {"to": CANARIES[1], "note": f"key {CANARIES[0]}"}}]}
    events, _ = stream_through(policy.apps["redacting"].output, message_events(message, [9, 17, 30, 41]))
    (block,) = reassembled(events)
    assert block["input"]["to"].startswith("[EMAIL") and "[AWS" in block["input"]["note"]
    assert leaks(events) == []


def test_restore_puts_the_callers_own_value_back_across_event_boundaries(policy: CompiledPolicy) -> None:
    """`restore` on a Messages stream: a placeholder split over deltas becomes the caller's value again."""
    input_side = Redactor()
    tag = input_side.placeholder("email", "mine@example.com")
    message = {"id": "m", "type": "message", "role": "assistant", "model": "x", "stop_reason": "end_turn",
               "stop_sequence": None, "usage": {},
               "content": [{"type": "text", "text": f"write to {tag}, not to other@example.com"}]}
    events, _ = stream_through(policy.apps["redacting"].output, message_events(message, [11, 13, 15]), input_side,
                               frozenset({"email"}))
    (block,) = reassembled(events)
    assert block["text"].startswith("write to mine@example.com, not to [EMAIL_2]")


def test_a_block_the_upstream_never_stops_is_still_guarded_and_released(policy: CompiledPolicy) -> None:
    message = {"id": "m", "type": "message", "role": "assistant", "model": "x", "stop_reason": "tool_use",
               "stop_sequence": None, "usage": {},
               "content": [{"type": "text", "text": f"mail {CANARIES[1]}"},
                           {"type": "tool_use", "id": "t", "name": "f", "input": {"k": CANARIES[0]}}]}
    events = [e for e in message_events(message, [3]) if e["type"] != "content_block_stop"]
    got, outcome = stream_through(policy.apps["redacting"].output, events)
    assert outcome.error_code is None and leaks(got) == []
    text, tool = reassembled(got)
    assert text["text"] == "mail [EMAIL_1]" and tool["input"] == {"k": "[AWS_ACCESS_KEY_ID_1]"}
    assert [e["type"] for e in got][-3:] == ["content_block_stop", "message_delta", "message_stop"]
