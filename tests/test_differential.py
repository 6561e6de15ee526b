"""Differential test: the compiled decision graph agrees with the AST reference interpreter.

Both see the same generated policy (tests/strategies.py: built-in and custom
detectors, repeated rules on one detector, output guards, `when` blocks that
tighten or raise limits) and the same sequence of generated requests at
increasing times, sharing rate-limiter state across the sequence, so limits
are reached. They must agree on the decision, the error code, the policy line
that refused (a guard or a limit), the Retry-After, the route candidates,
max_tokens, the timeout, every forwarded text, and for an allowed request on
the output guards' verdict over a generated response.

The policy is rendered and parsed back first, so every rule has a real line.
"""

from __future__ import annotations

import os
from dataclasses import replace

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dsl import ast
from dsl.parser import parse_text
from engine.compiler import compile_policy
from engine.decision import Allow, Decision
from engine.detectors.base import ScanContext
from engine.ratelimit import MemoryRateLimiter
from engine.testing import evaluate_sync
from tests import reference
from tests.strategies import contexts, policy_sets, render_policy, requests, texts

GAPS = st.sampled_from((0.0, 0.0, 0.5, 1.0, 30.0, 60.0, 3600.0))


def reparsed(ps: ast.PolicySet) -> ast.PolicySet:
    """The same set with real spans: each file rendered by the formatter and parsed back."""
    files = []
    for pf in ps.files:
        back, diags = parse_text(render_policy(pf), pf.path)
        assert not [d for d in diags if d.level == "error"], diags
        files.append(back)
    return ast.PolicySet(tuple(files))


def summarise(decision: Decision) -> reference.RefDecision:
    """The compiled decision in the reference's terms."""
    if not isinstance(decision, Allow):
        line = decision.span.line if decision.span and decision.step in ("rate_limit", "input_guardrails") else None
        retry = round(decision.retry_after, 6) if decision.retry_after is not None else None
        return reference.RefDecision(False, decision.code, line=line, retry_after=retry)
    cands = tuple(reference.RefCandidate(c.model, c.provider, c.timeout_s, c.retries) for c in decision.candidates)
    forwarded = tuple(t.text for t in decision.request.texts)
    return reference.RefDecision(True, "", cands, decision.request.max_tokens, forwarded, decision.timeout_s)


@settings(max_examples=int(os.environ.get("GHAT_EXAMPLES", 120)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_compiled_graph_agrees_with_reference(data: st.DataObject) -> None:
    ps = reparsed(data.draw(policy_sets(with_tests=False), label="policy"))
    env = data.draw(st.sampled_from(sorted({a.env or "" for a in ps.apps})), label="env")
    compiled = compile_policy(ps, env)
    limiter, ref_limiter = MemoryRateLimiter(), reference.RefLimiter()
    now = 1000.0
    for _ in range(data.draw(st.integers(1, 8), label="n")):
        now += data.draw(GAPS, label="gap")
        ctx = replace(data.draw(contexts(ps, env), label="ctx"), now=now)
        req = data.draw(requests(ps, ctx.key_app), label="request")
        decision = evaluate_sync(compiled, req, ctx, limiter)
        tags = reference.Tags()
        want = reference.decide(ps, env, req, ctx, ref_limiter, tags)
        if want.retry_after is not None:
            want = replace(want, retry_after=round(want.retry_after, 6))
        event("allow" if want.allowed else want.code)
        if want.allowed and any(f != t.text for f, t in zip(want.forwarded, req.texts, strict=True)):
            event("redacted")
        assert summarise(decision) == want
        if isinstance(decision, Allow):
            answer = data.draw(texts(ps), label="answer")
            got = decision.output.run([(ScanContext("output", req.grounding), answer)], decision.redactor)
            blocked, text = reference.output(ps, env, decision.app, answer, tags, req.grounding)
            if blocked is not None:
                event("output blocked")
                assert got.blocked is not None and got.blocked.rule.span.line == blocked.span.line
            else:
                assert got.blocked is None and got.texts == [text]
