"""Differential test: the compiled decision graph agrees with the AST reference interpreter.

Both engines see the same generated policy and the same sequence of
generated requests (sharing rate-limiter state across the sequence, so the
limit is exercised too); they must agree on the decision, the error code, the
route candidates, max_tokens and every forwarded text.
"""

from __future__ import annotations

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine.compiler import compile_policy
from engine.decision import Allow, Decision
from engine.ratelimit import MemoryRateLimiter
from engine.testing import evaluate_sync
from tests import reference
from tests.engine_gen import contexts, policy_sets, requests


def summarise(decision: Decision) -> reference.RefDecision:
    """The compiled decision in the reference's terms."""
    if not isinstance(decision, Allow):
        return reference.RefDecision(False, decision.code)
    cands = tuple(reference.RefCandidate(c.model, c.provider, c.timeout_s, c.retries) for c in decision.candidates)
    forwarded = tuple(t.text for t in decision.request.texts)
    return reference.RefDecision(True, "", cands, decision.request.max_tokens, forwarded)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_compiled_graph_agrees_with_reference(data: st.DataObject) -> None:
    ps = data.draw(policy_sets, label="policy")
    compiled = compile_policy(ps, "prod")
    limiter, ref_limiter = MemoryRateLimiter(), reference.RefLimiter()
    for _ in range(data.draw(st.integers(1, 6), label="n")):
        req = data.draw(requests(ps), label="request")
        ctx = data.draw(contexts(ps), label="ctx")
        got = summarise(evaluate_sync(compiled, req, ctx, limiter))
        want = reference.decide(ps, "prod", req, ctx, ref_limiter)
        event("allow" if want.allowed else want.code)
        if want.allowed and any(f != t.text for f, t in zip(want.forwarded, req.texts, strict=True)):
            event("redacted")
        assert got == want
