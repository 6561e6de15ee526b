"""Detector throughput and the input guard stage's latency.

`make bench` runs the pytest-benchmark cases; `python -m bench.bench_detectors`
prints the table recorded in bench/RESULTS.md (MB/s per family at 1/10/100 KB,
median and p99 of the whole input pipeline on a 2 KB chat prompt).
`python -m bench.bench_detectors --adversarial` prints the thread CPU time of each
rule of the shipped `support-prod` guards on 1 MB of prose and of adversarial shapes
(run it from another tree's directory to measure that tree's detectors in one session).
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from dsl import ast
from engine.detectors.base import ScanContext
from engine.guards import GuardPipeline, Redactor, compile_pipeline

CTX = ScanContext("user")
CHAT = (
    "Hi team, following up on yesterday's incident review. The deploy of version 2.14.3 to "
    "the eu-west cluster failed at 14:02 UTC because the migration job timed out after 300 "
    "seconds; request 550e8400-e29b-41d4-a716-446655440000 shows the retry storm. Could you "
    "summarise the timeline for the postmortem, list the three main contributing factors, and "
    "suggest how we could make the rollout safer next time? Keep it short and factual. "
)
PROMPT_2KB = (CHAT * 8)[:2048]
FAMILIES: dict[str, tuple[ast.Guard, ...]] = {
    "pii": (ast.Guard("pii", "redact"),),
    "secrets": (ast.Guard("secrets", "redact"),),
    "prompt_injection": (ast.Guard("prompt_injection", "block"),),
    "topics": (ast.Guard("topics", "block", topics=("medical diagnosis", "legal advice")),),
}
INPUT_PIPELINE = tuple(g for guards in FAMILIES.values() for g in guards)
INJECTION_MODEL = (ast.Guard("prompt_injection", "block", model=True),)  # the optional scorer on top


def pipeline(guards: tuple[ast.Guard, ...]) -> GuardPipeline:
    return compile_pipeline(ast.GuardBlock("input", guards), "input", {})


def text_of(size: int) -> str:
    return (CHAT * (size // len(CHAT) + 1))[:size]


def test_input_pipeline_2kb(benchmark: Any) -> None:
    p = pipeline(INPUT_PIPELINE)
    benchmark(lambda: p.run([(CTX, PROMPT_2KB)], Redactor()))


def test_injection_model_2kb(benchmark: Any) -> None:
    p = pipeline(INJECTION_MODEL)
    benchmark(lambda: p.run([(CTX, PROMPT_2KB)], Redactor()))


def test_pii_100kb(benchmark: Any) -> None:
    p, text = pipeline(FAMILIES["pii"]), text_of(100_000)
    benchmark(lambda: p.run([(CTX, text)], Redactor()))


def _times(p: GuardPipeline, text: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        p.run([(CTX, text)], Redactor())
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    print("| family | 1 KB MB/s | 10 KB MB/s | 100 KB MB/s |")
    print("| --- | ---: | ---: | ---: |")
    for name, guards in [*FAMILIES.items(), ("input pipeline", INPUT_PIPELINE)]:
        p = pipeline(guards)
        cells = []
        for size in (1_000, 10_000, 100_000):
            times = _times(p, text_of(size), max(20, 2_000_000 // size))
            cells.append(f"{size / statistics.median(times) / 1e6:.1f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    times = sorted(_times(pipeline(INPUT_PIPELINE), PROMPT_2KB, 5000))
    print(f"\ninput pipeline on a 2 KB prompt: median {statistics.median(times) * 1e6:.1f} µs, "
          f"p99 {times[int(len(times) * 0.99)] * 1e6:.1f} µs")  # fmt: skip
    for name, guards in (("prompt_injection", FAMILIES["prompt_injection"]), ("... model", INJECTION_MODEL)):
        times = sorted(_times(pipeline(guards), PROMPT_2KB, 3000))
        print(f"{name} on a 2 KB prompt: median {statistics.median(times) * 1e6:.1f} µs, "
              f"p99 {times[int(len(times) * 0.99)] * 1e6:.1f} µs")  # fmt: skip


B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _shapes(size: int) -> dict[str, str]:
    """1 MB texts that cost the most per character before the liveness work (P15)."""
    rnd = random.Random(11)

    def digits(k: int) -> str:
        return "".join(rnd.choice("0123456789") for _ in range(k))

    def joined(make: Any, sep: str = " ") -> str:
        parts: list[str] = []
        total = 0
        while total < size:
            parts.append(make())
            total += len(parts[-1]) + 1
        return sep.join(parts)[:size]

    def ip() -> str:
        return ".".join(str(rnd.randint(1, 254)) for _ in range(4))

    return {
        "prose": text_of(size),
        "card-like digit groups": joined(lambda: " ".join(digits(4) for _ in range(4))),
        "valid cards": ("4111 1111 1111 1111 " * (size // 20 + 1))[:size],
        "trunk-prefix numbers": joined(lambda: "0" + digits(3) + " " + digits(6)),
        "IP access log": joined(lambda: ip() + ' - - [02/Dec/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 512', "\n"),
        "bare IP list": joined(ip),
        "hex": "".join(rnd.choice("0123456789abcdef") for _ in range(size)),
        "base64": "".join(rnd.choice(B64) for _ in range(size)),
        "a_B9 local parts": "".join(rnd.choice("aA9_") for _ in range(size)),
        "PEM begins": ("-----BEGIN PRIVATE KEY-----\n" * (size // 28 + 1))[:size],
        "names": ("Dear John Smith, Mary Johnson and Robert Brown met Linda Davis. " * (size // 64 + 1))[:size],
    }  # fmt: skip


def adversarial(size: int = 1_000_000) -> None:
    """Each support-prod guard rule on 1 MB of each shape, in ms of this thread's CPU time."""
    from engine.compiler import compile_paths

    app = compile_paths([Path("policies")], env="prod").apps["support-prod"]
    rules = [("in", r) for r in app.input.rules] + [("out", r) for r in app.output.rules]
    grounding = ScanContext("output", (text_of(20_000),))
    print("| 1 MB of | " + " | ".join(f"{d}: {r.name}" for d, r in rules) + " | input total | output total |")
    print("| --- |" + " ---: |" * (len(rules) + 2))
    for name, text in _shapes(size).items():
        cells = []
        for d, rule in rules:
            start = time.thread_time()
            rule.detector.scan(text, CTX if d == "in" else grounding)
            cells.append(f"{(time.thread_time() - start) * 1000:.0f}")
        for pipeline, ctx in ((app.input, CTX), (app.output, grounding)):
            start = time.thread_time()
            pipeline.run([(ctx, text)], Redactor())
            cells.append(f"**{(time.thread_time() - start) * 1000:.0f}**")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    adversarial() if "--adversarial" in sys.argv else main()
