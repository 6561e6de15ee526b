"""Tokens, cost and metrics: prices applied as providers bill, streams accounted like whole answers."""

from __future__ import annotations

import random
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dsl.ast import Price
from engine import usage as usage_mod
from engine.metrics import Metrics, log_writer_samples
from engine.ports import Usage
from engine.records import AttemptRecord, GuardrailRecord
from engine.usage import StreamUsage, cost_of, count_prompt_tokens, count_tokens, encoding_name, usage_of_response
from tests.logrecords import make_record

GPT4O = Price(input=2.50, output=10.00, cached_input=1.25, per=1_000_000)
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Summarise the incident."}]
ANSWER = "The outage began at 09:14 UTC when a config push removed the pool; rollback ended it at 09:41. 🚒"


def test_cost_bills_cached_tokens_at_the_cached_price() -> None:
    u = Usage(prompt_tokens=1_000_000, completion_tokens=100_000, cached_tokens=400_000)
    assert cost_of(u, GPT4O) == pytest.approx(0.6 * 2.50 + 0.4 * 1.25 + 0.1 * 10.00)


def test_cached_tokens_without_a_cached_price_cost_the_input_price() -> None:
    u = Usage(prompt_tokens=1000, cached_tokens=1000)
    assert cost_of(u, Price(input=3.0, output=15.0)) == pytest.approx(1000 * 3.0 / 1e6)


def test_reasoning_tokens_are_inside_completion_tokens_not_billed_twice() -> None:
    base = Usage(prompt_tokens=10, completion_tokens=500)
    with_reasoning = Usage(prompt_tokens=10, completion_tokens=500, reasoning_tokens=400)
    assert cost_of(base, GPT4O) == cost_of(with_reasoning, GPT4O)


def test_no_price_costs_nothing() -> None:
    assert cost_of(Usage(prompt_tokens=5), None) == 0.0


def test_tokenizer_works_offline_with_real_bpe() -> None:
    assert count_tokens("hello world", "gpt-4o") == (2, "tokenizer")
    assert encoding_name("openai/gpt-4o-mini") == "o200k_base"
    assert encoding_name("openai/gpt-4") == "cl100k_base"
    assert encoding_name("anthropic/claude-sonnet-4") == "o200k_base"


def test_prompt_tokens_include_the_chat_framing() -> None:
    n, source = count_prompt_tokens(MESSAGES, "gpt-4o")
    content = sum(count_tokens(m["content"], "gpt-4o")[0] + count_tokens(m["role"], "gpt-4o")[0] for m in MESSAGES)
    assert (n, source) == (content + 3 * len(MESSAGES) + 3, "tokenizer")


def _response(text: str, usage: dict[str, Any] | None) -> dict[str, Any]:
    r: dict[str, Any] = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
    if usage is not None:
        r["usage"] = usage
    return r


def _chunks(text: str, rng: random.Random, usage: dict[str, Any] | None) -> list[dict[str, Any]]:
    cuts = sorted(rng.sample(range(1, len(text)), k=rng.randint(0, min(20, len(text) - 1))))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    out: list[dict[str, Any]] = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    out += [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    out.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage is not None:
        out.append({"choices": [], "usage": usage})
    return out


@pytest.mark.parametrize("reported", [None, {"prompt_tokens": 31, "completion_tokens": 29,
                                             "prompt_tokens_details": {"cached_tokens": 16},
                                             "completion_tokens_details": {"reasoning_tokens": 4}}])
def test_streamed_and_whole_answers_are_accounted_identically(reported: dict[str, Any] | None) -> None:
    whole = usage_of_response(_response(ANSWER, reported), MESSAGES, "gpt-4o")
    rng = random.Random(7)
    for _ in range(50):
        acc = StreamUsage("gpt-4o")
        for chunk in _chunks(ANSWER, rng, reported):
            acc.feed(chunk)
        streamed = acc.result(MESSAGES)
        assert streamed == whole
        assert cost_of(streamed, GPT4O) == cost_of(whole, GPT4O)
    assert whole.source == ("provider" if reported else "tokenizer")


def test_without_a_tokenizer_counts_are_labelled_estimates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usage_mod, "_encodings", {"o200k_base": None})
    assert count_tokens("abcdefgh", "gpt-4o") == (2, "estimate")
    assert usage_of_response(_response("abcd", None), None, "gpt-4o").source == "estimate"


# -- metrics ----------------------------------------------------------------------------


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics_parse_and_count_what_the_records_say() -> None:
    m = Metrics()
    for i in range(10):
        m.observe(make_record(i, app="a", cost_usd=0.5, prompt_tokens=10, completion_tokens=2))
    m.observe(make_record(
        99, app="a", status=403, error_code="guardrail_pii_blocked", attempts=(), prompt_tokens=0,
        completion_tokens=0, cost_usd=0.0, guardrails=(GuardrailRecord("input", "pii", "email", 2, "block", False),),
    ))  # fmt: skip
    m.observe(make_record(100, app="a", attempts=(
        AttemptRecord("openai/gpt-4o", "openai", 503, "upstream_error", 10.0),
        AttemptRecord("local/echo", "local", 200, None, 1.0))))
    stats = type("S", (), {"written": 5, "spilled": 1, "reloaded": 1, "queued": 0, "sink_errors": 0})()
    m.bind_log_writer(type("W", (), {"stats": lambda self: stats})())
    fam = _families(m.render())
    by = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in fam.values() for s in f.samples}
    ok = (("app", "a"), ("code", ""), ("endpoint", "chat"), ("env", "prod"), ("model", "openai/gpt-4o"),
          ("provider", "openai"), ("status_class", "2xx"))  # fmt: skip
    assert by[("ghat_requests_total", ok)] == 10
    assert by[("ghat_request_errors_total", (("app", "a"), ("code", "guardrail_pii_blocked"), ("env", "prod")))] == 1
    assert by[("ghat_guardrail_blocks_total", (("app", "a"), ("code", "guardrail_pii_blocked"), ("env", "prod")))] == 1
    assert by[("ghat_fallbacks_total", (("app", "a"), ("env", "prod")))] == 1
    assert by[("ghat_cost_usd_total", (("app", "a"), ("env", "prod"), ("model", "openai/gpt-4o"),
                                       ("provider", "openai")))] == pytest.approx(5.0)  # fmt: skip
    count = by[("ghat_request_phase_seconds_count", (("app", "a"), ("env", "prod"), ("phase", "total")))]
    assert count == 12
    assert by[("ghat_log_records_spilled_total", ())] == 1
    assert "ghat_upstream_attempt_seconds" in fam


def test_metric_labels_never_carry_request_ids_or_metadata_values() -> None:
    m = Metrics()
    m.observe(make_record(1, metadata={"workspace_id": "ws-secret-name", "external_request_id": "ext-42"}))
    text = m.render()
    assert "req_00000001" not in text and "ws-secret-name" not in text and "ext-42" not in text
    assert "ghat_prod_ab12" not in text


def test_histogram_buckets_are_cumulative_and_le_inclusive() -> None:
    m = Metrics()
    m.observe(make_record(0, timings_ms={"total": 1.0}))  # exactly 0.001 s: in le="0.001"
    fam = _families(m.render())["ghat_request_phase_seconds"]
    buckets = {s.labels["le"]: s.value for s in fam.samples if s.name.endswith("_bucket")}
    assert buckets["0.0005"] == 0 and buckets["0.001"] == 1 and buckets["+Inf"] == 1


def test_writer_samples_shape() -> None:
    names = [n for n, *_ in log_writer_samples(type("S", (), dict.fromkeys(
        ("written", "spilled", "reloaded", "queued", "sink_errors"), 0))())]  # fmt: skip
    assert "ghat_log_queue_depth" in names
