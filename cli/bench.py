"""`ghat bench`: what a policy set costs per request, measured on this machine before it is deployed.

A policy author adding a guardrail wants to know what it adds to every
request. This times the whole engine decision (`engine.evaluate`: key, app,
model, caps, `when` overrides, input guardrails, route) for each model an app
may use, with no texts (routing only) and with a prompt of the size given (or
read from a file), plus the check-and-compile time of the set. Numbers are
medians and p99 over `--runs` decisions after a warm-up; they move with the
machine, so compare two policies in one run rather than against a number
written down elsewhere. The gateway's own end-to-end overhead is
`python -m bench.overhead` (it needs wrk and a fake upstream).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.compiler import CompiledPolicy
    from engine.request import EvalContext, GatewayRequest

SAMPLE = ("Hi team, the customer on order 4821 says the export from the reporting page times out after the "
          "last update (v2.14.3). Can you summarise the thread below and suggest next steps for support? ")  # fmt: skip


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "bench", help="time a policy set's decisions on this machine",
        description="Time compile and per-request decisions (with and without a prompt) for an app's models.",
    )  # fmt: skip
    p.add_argument("--policies", nargs="+", required=True, type=Path)
    p.add_argument("--env", required=True)
    p.add_argument("--app", required=True)
    p.add_argument("--model", action="append", help="a model or alias to time (repeatable; default: all the app's)")
    p.add_argument("--prompt-bytes", type=int, default=2048, help="size of the synthetic prompt (default 2048)")
    p.add_argument("--prompt-file", type=Path, help="time this text as the prompt instead")
    p.add_argument("--runs", type=int, default=5000, help="decisions timed per row (default 5000)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=run)


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median and p99 in µs of `runs` calls, after a warm-up of a tenth as many."""
    for _ in range(max(runs // 10, 1)):
        fn()
    samples: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(runs):
        t0 = clock()
        fn()
        samples.append((clock() - t0) / 1000.0)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def run(args: argparse.Namespace) -> int:
    from dsl.diagnostics import PolicyError
    from dsl.loader import load
    from engine.compiler import compile_policy
    from engine.decision import Allow
    from engine.request import EvalContext, GatewayRequest, TextField
    from engine.testing import evaluate_sync

    if args.runs < 1 or args.prompt_bytes < 0:
        print("ghat bench: --runs must be at least 1 and --prompt-bytes not negative", file=sys.stderr)
        return 2
    try:
        text = args.prompt_file.read_text(encoding="utf-8") if args.prompt_file else _prompt(args.prompt_bytes)
        t0 = time.perf_counter()
        loaded = load(list(args.policies))
        policy = compile_policy(loaded.policy_set, env=args.env, sources=loaded.sources)
        compile_ms = (time.perf_counter() - t0) * 1000.0
    except PolicyError as exc:
        print(f"ghat bench: the policy set does not compile ({len(exc.diagnostics)} error(s); run ghat check)",
              file=sys.stderr)  # fmt: skip
        return 1
    except (OSError, UnicodeDecodeError) as exc:
        print(f"ghat bench: {exc}", file=sys.stderr)
        return 2
    app = policy.apps.get(args.app)
    if app is None:
        print(f"ghat bench: no app {args.app!r} in env {args.env}", file=sys.stderr)
        return 2
    models = args.model or list(app.plans)
    unknown = [m for m in models if m not in app.plans]
    if unknown:
        print(f"ghat bench: app {args.app} may not use {', '.join(unknown)}", file=sys.stderr)
        return 2
    ctx = EvalContext(key_app=args.app, key_id="bench", seed="bench")
    rows: list[dict[str, Any]] = []
    for model in models:
        embed = policy.kinds.get(model) == "embedding"
        prompt = (TextField("input" if embed else "user", text),)
        for label, texts in (("routing only", ()), (f"prompt {len(text)} chars", prompt)):
            request = GatewayRequest("embeddings" if embed else "chat", model, texts, None if embed else 256)
            decision = evaluate_sync(policy, request, ctx, None)
            median, p99 = timed(_decide(policy, request, ctx), args.runs)
            rows.append({"model": model, "case": label, "median_us": round(median, 2), "p99_us": round(p99, 2),
                         "decision": "allow" if isinstance(decision, Allow) else f"deny {decision.code}"})
    if args.format == "json":
        print(json.dumps({"app": args.app, "env": args.env, "compile_ms": round(compile_ms, 2), "runs": args.runs,
                          "rows": rows}, indent=2))  # fmt: skip
        return 0
    print(f"{args.app} (env {args.env}): load + check + compile {compile_ms:.1f} ms; {args.runs} decisions a row")
    print(f"{'model':<24} {'case':<22} {'median µs':>10} {'p99 µs':>10}  decision")
    for r in rows:
        print(f"{r['model']:<24} {r['case']:<22} {r['median_us']:>10.2f} {r['p99_us']:>10.2f}  {r['decision']}")
    return 0


def _decide(policy: CompiledPolicy, request: GatewayRequest, ctx: EvalContext) -> Callable[[], object]:
    from engine.testing import evaluate_sync

    return lambda: evaluate_sync(policy, request, ctx, None)


def _prompt(size: int) -> str:
    return (SAMPLE * (size // len(SAMPLE) + 1))[:size]
