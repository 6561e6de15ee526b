"""The request edge in process: body → request → decision → upstream body → guarded answer, CPU per request.

    .venv/bin/python -m bench.bench_edge [--tree DIR] [--n 3000]

Measures what a chat request costs the gateway besides HTTP and the network,
with the shipped `support-prod` policy (every input and output guard on): a
~1 KB chat body with a system prompt, two turns and a tool definition is
decoded, evaluated, turned into the upstream body, and a provider answer of
~500 characters is guarded on its way back. `--tree DIR` imports another
checkout instead (for instance `git worktree add /tmp/before <rev>`) so the
code before a change is measured beside it, one process each, in one run.
Reports process CPU time per request (median of 5 rounds), which a loaded
machine disturbs far less than wall time.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

PROMPT = ("You are helping a customer with an order that arrived late. Here is the conversation so far, please "
          "summarise it and propose a polite answer that explains our delivery policy and offers a voucher. ") * 3
BODY: dict[str, Any] = {
    "model": "smart-default",
    "messages": [
        {"role": "system", "content": "You are a support assistant for an online shop. Answer briefly."},
        {"role": "user", "content": PROMPT},
        {"role": "assistant", "content": "Could you tell me your order number?"},
        {"role": "user", "content": "It is 88231, placed last Tuesday."},
    ],
    "tools": [{"type": "function", "function": {"name": "lookup_order", "description": "Find an order by number",
                                                "parameters": {"type": "object", "properties": {
                                                    "number": {"type": "string"}}}}}],
    "temperature": 0.2,
    "user": "customer-4411",
}  # fmt: skip
ANSWER: dict[str, Any] = {
    "id": "chatcmpl-abc123", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
    "system_fingerprint": "fp_1234",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": (
        "Thank you for your patience. Your order 88231 left our warehouse on Wednesday and the carrier "
        "reports a delay in your region. Our delivery policy promises dispatch within two working days, "
        "which we met, but we understand the wait was longer than expected. As an apology we have added "
        "a voucher for ten percent off your next order to your account. ") * 1}}],
    "usage": {"prompt_tokens": 300, "completion_tokens": 90, "total_tokens": 390},
}  # fmt: skip


def _new_path(policy: Any) -> Any:
    import copy

    from adapters.codecs import decode, upstream_body
    from adapters.codecs.openai_chat import RESPONSE, strip_logprobs
    from engine.conversation import guard_tree
    from engine.request import EvalContext
    from engine.testing import evaluate_sync

    ctx = EvalContext("support-prod", "k", "r")

    def one() -> None:
        req = decode(BODY, {})
        allow = evaluate_sync(policy, req, ctx)
        upstream_body(BODY, req, allow.request)
        answer = copy.deepcopy(ANSWER)
        strip_logprobs(answer)
        guard_tree(answer, RESPONSE, allow.output, allow.redactor.for_output(), allow.request.grounding)

    return one


def _old_path(policy: Any) -> Any:
    import copy

    from adapters.api import parse
    from engine.detectors.base import ScanContext
    from engine.request import EvalContext
    from engine.testing import evaluate_sync

    ctx = EvalContext("support-prod", "k", "r")

    def one() -> None:
        req = parse.chat_request(BODY, {})
        allow = evaluate_sync(policy, req, ctx)
        parse.upstream_body(BODY, req, allow.request)
        answer = copy.deepcopy(ANSWER)
        for choice in answer["choices"]:
            text = choice["message"]["content"]
            allow.output.run([(ScanContext("output", allow.request.grounding), text)], allow.redactor)

    return one


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
    ap.add_argument("--n", type=int, default=3000)
    args = ap.parse_args()
    sys.path.insert(0, str(args.tree))
    compiler = importlib.import_module("engine.compiler")
    policy = compiler.compile_paths([args.tree / "policies"], "prod")
    one = _new_path(policy) if (args.tree / "adapters" / "codecs").is_dir() else _old_path(policy)
    for _ in range(200):
        one()
    rounds = []
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(args.n):
            one()
        rounds.append((time.process_time() - t0) / args.n * 1e6)
    each = ", ".join(f"{r:.1f}" for r in rounds)
    print(f"{args.tree}: {statistics.median(rounds):.1f} us CPU per request (rounds {each})")


if __name__ == "__main__":
    main()
