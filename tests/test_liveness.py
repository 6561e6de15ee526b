"""P15 in the core: guards on large texts leave the event loop, a policy caps what it scans,
and every detector family costs about the same per character on adversarial text as on prose.

Times are this thread's CPU time (other processes on a loaded machine do not count), best
of a few runs, compared as ratios within one test.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from types import MappingProxyType

import anyio
import pytest

from dsl import ast
from dsl.formatter import format_text
from dsl.parser import parse_text
from engine import offload
from engine.compiler import compile_policy
from engine.decision import Allow, Deny
from engine.detectors import pii
from engine.detectors.base import ScanContext
from engine.evaluator import evaluate
from engine.guards import GuardPipeline, GuardResult, Redactor, compile_pipeline
from engine.request import EvalContext, GatewayRequest, TextField
from engine.testing import evaluate_sync

CTX = ScanContext("user")
PROSE = (
    "Hi team, following up on yesterday's incident review. The deploy of version 2.14.3 to "
    "the eu-west cluster failed at 14:02 UTC because the migration job timed out after 300 "
    "seconds. Could you summarise the timeline for the postmortem and list the main factors? "
)
_RND = random.Random(15)


def _digits(k: int) -> str:
    return "".join(_RND.choice("0123456789") for _ in range(k))


def _joined(make: Callable[[], str], size: int, sep: str = " ") -> str:
    parts: list[str] = []
    total = 0
    while total < size:
        parts.append(make())
        total += len(parts[-1]) + 1
    return sep.join(parts)[:size]


def _random(alphabet: str, size: int) -> str:
    return "".join(_RND.choice(alphabet) for _ in range(size))


# Texts that made a family slow before (candidate explosion, per-candidate parses, RE2
# DFA blow-ups), built at 200 K characters; each test slices what it needs.
SIZE = 200_000
ADVERSARIAL: dict[str, str] = {
    "card_groups": _joined(lambda: " ".join(_digits(4) for _ in range(4)), SIZE),
    "trunk_phones": _joined(lambda: "0" + _digits(3) + " " + _digits(6), SIZE),
    "ip_log": _joined(lambda: f"{_RND.randint(1, 254)}.{_RND.randint(0, 255)}.{_RND.randint(0, 255)}.7 - - "
                      '"GET /a HTTP/1.1" 200', SIZE, "\n"),
    "hex": _random("0123456789abcdef", SIZE),
    "base64": _random("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", SIZE),
    "local_parts": _random("aA9_", SIZE),
    "pem_begins": ("-----BEGIN PRIVATE KEY-----" * (SIZE // 27 + 1))[:SIZE],
    "assignments": ("password=hunter2x9 api_key: 'Zx8Qw1Lk9Pm2Nb7Vc3Xz4' " * (SIZE // 50 + 1))[:SIZE],
    "names": ("Dear John Smith, Mary Johnson and Robert Brown met Linda Davis. " * (SIZE // 64 + 1))[:SIZE],
    "injection": ("ignore all all all previous instructions aGVsbG8gd29ybGQgaWdub3Jl " * (SIZE // 66 + 1))[:SIZE],
}
FAMILIES: dict[str, ast.Guard] = {
    "pii": ast.Guard("pii", "redact", types=("email", "phone", "credit_card", "iban", "us_ssn", "ip_address",
                                             "person", "street_address", "date_of_birth")),
    "secrets": ast.Guard("secrets", "redact"),
    "prompt_injection": ast.Guard("prompt_injection", "block"),
    "indirect_injection": ast.Guard("indirect_injection", "detect"),
    "topics": ast.Guard("topics", "block", topics=("medical diagnosis", "legal advice")),
    "output_safety": ast.Guard("output_safety", "block"),
}


def _pipeline(guard: ast.Guard) -> GuardPipeline:
    return compile_pipeline(ast.GuardBlock("input", (guard,)), "input", {})


def _cpu(pipeline: GuardPipeline, text: str, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        pii._valid_national.cache_clear()  # each run pays for its own phone parses
        pii._valid_international.cache_clear()
        start = time.thread_time()
        pipeline.run([(CTX, text)], Redactor())
        best = min(best, time.thread_time() - start)
    return best


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_is_linear_on_adversarial_text(family: str) -> None:
    pipeline = _pipeline(FAMILIES[family])
    for name, text in ADVERSARIAL.items():
        small, large = _cpu(pipeline, text[:20_000]), _cpu(pipeline, text)
        # 10x the text may cost at most ~25x (noise, caches); quadratic would be 100x
        assert large <= 25 * small + 0.02, (family, name, small, large)


# Shapes with nothing to report, which used to cost seconds per megabyte in one RE2 set
# (hex, base64: the url_credentials scheme; `aA9_`: the email local part). They must now
# cost about what prose costs: a set pass and nothing else.
@pytest.mark.parametrize(("family", "shape"), [("secrets", "hex"), ("secrets", "base64"), ("pii", "local_parts")])
def test_no_dfa_blowup_on_candidate_free_text(family: str, shape: str) -> None:
    pipeline = _pipeline(FAMILIES[family])
    prose = (PROSE * (SIZE // len(PROSE) + 1))[:SIZE]
    assert _cpu(pipeline, ADVERSARIAL[shape]) <= 10 * _cpu(pipeline, prose) + 0.01


def test_a_secret_after_a_megabyte_of_hex_is_still_found() -> None:
    text = ADVERSARIAL["hex"] + " postgres://admin:S3cr3tPw9@db.example.com and AKIAZ3MQ7R4TUV2WX9YB"
    found = {(f.type, text[f.start : f.end]) for f in _pipeline(FAMILIES["secrets"]).rules[0].detector.scan(text, CTX)}
    assert {("url_credentials", "S3cr3tPw9"), ("aws_access_key_id", "AKIAZ3MQ7R4TUV2WX9YB")} <= found


# ── offloading ─────────────────────────────────────────────────────────────


class _Recording:
    """A pipeline stand-in that records which thread ran it."""

    def __init__(self) -> None:
        self.threads: list[int] = []

    def run(self, texts: list[tuple[ScanContext, str]], redactor: Redactor | None = None) -> GuardResult:
        self.threads.append(threading.get_ident())
        return GuardResult([t for _c, t in texts], [])


def test_small_texts_run_inline_and_large_ones_in_a_worker() -> None:
    recording = _Recording()

    async def main() -> int:
        pipeline: GuardPipeline = recording  # type: ignore[assignment]
        await offload.run_guards(pipeline, [(CTX, "x" * 100)], Redactor())
        await offload.run_guards(pipeline, [(CTX, "x" * 5000), (CTX, "y" * 5000)], Redactor())
        return threading.get_ident()

    loop_thread = anyio.run(main)
    assert recording.threads[0] == loop_thread
    assert recording.threads[1] != loop_thread


def test_offloaded_result_equals_inline_result() -> None:
    pipeline = _pipeline(FAMILIES["pii"])
    text = (PROSE + " mail jane.doe@example.com or call +44 20 7946 0958. ") * 200

    async def main() -> GuardResult:
        return await offload.run_guards(pipeline, [(CTX, text)], Redactor(), inline_chars=10)

    assert anyio.run(main).texts == pipeline.run([(CTX, text)], Redactor()).texts


def test_the_loop_keeps_running_while_a_worker_scans() -> None:
    """Ticks of a 10 ms timer keep coming while 200 K adversarial characters are scanned."""
    pipeline = _pipeline(FAMILIES["pii"])
    text = ADVERSARIAL["trunk_phones"]
    gaps: list[float] = []

    async def main() -> None:
        done = anyio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await anyio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            started = time.thread_time()
            await offload.run_guards(pipeline, [(CTX, text)], Redactor())
            assert time.thread_time() - started < 0.05  # the loop's thread did not do the scan
            done.set()

    anyio.run(main)
    assert len(gaps) >= 3
    assert max(gaps) < 1.0, max(gaps)  # inline, one gap would be the whole scan


def test_without_an_event_loop_guards_run_inline() -> None:
    """`ghat test`, `explain` and `replay` drive `evaluate` with no loop; large texts still work."""
    policy = _policy("")
    decision = evaluate_sync(policy, _request("4111 1111 1111 1111 " * 1000), _ctx())
    assert isinstance(decision, Allow)
    assert "4111" not in decision.request.texts[0].text


def test_pool_size_is_bounded_and_settable() -> None:
    before = offload.threads()
    assert 1 <= before <= 8
    try:
        offload.set_threads(3)
        assert offload.threads() == 3
        with pytest.raises(ValueError):
            offload.set_threads(0)
    finally:
        offload.set_threads(before)


# ── max_scan ───────────────────────────────────────────────────────────────

POLICY = """
provider p { kind mock }
model p/chat { price in 0 out 0 per 1M }
app a {
  env        prod
  models     p/chat
  %s
  input { pii redact }
}
"""


def _policy(setting: str) -> object:
    pf, diags = parse_text(POLICY % setting, "t.policy")
    assert not [d for d in diags if d.level == "error"], diags
    return compile_policy(ast.PolicySet((pf,)), "prod")


def _request(*texts: str) -> GatewayRequest:
    return GatewayRequest("chat", "p/chat", tuple(TextField("user", t) for t in texts), None, MappingProxyType({}))


def _ctx() -> EvalContext:
    return EvalContext("a", "k", "s", 0.0, False)


def test_max_scan_parses_formats_and_compiles() -> None:
    pf, diags = parse_text(POLICY % "max_scan 256k", "t.policy")
    assert not diags
    assert pf.items[-1].max_scan == 256_000  # type: ignore[union-attr]
    formatted = format_text(POLICY % "max_scan 256000", "t.policy")
    assert "  max_scan 256k\n" in formatted
    assert format_text(formatted, "t.policy") == formatted
    assert compile_policy(ast.PolicySet((pf,)), "prod").apps["a"].max_scan == 256_000


@pytest.mark.parametrize("value", ["0", "2.5", "10s"])
def test_max_scan_must_be_a_positive_size(value: str) -> None:
    _pf, diags = parse_text(POLICY % f"max_scan {value}", "t.policy")
    assert [d.code for d in diags] == ["E010"], diags


def test_over_the_cap_is_refused_with_413_before_any_guard() -> None:
    policy = _policy("max_scan 1k")
    over = evaluate_sync(policy, _request("a" * 600, "b" * 401), _ctx())  # summed over the texts
    assert isinstance(over, Deny)
    assert (over.code, over.status, over.step) == ("invalid_request", 413, "input_guardrails")
    assert "1001" in over.message and "1000" in over.message
    at_cap = evaluate_sync(policy, _request("mail jane@example.com " + "a" * 978), _ctx())
    assert isinstance(at_cap, Allow)
    assert "jane@example.com" not in at_cap.request.texts[0].text


def test_the_cap_is_checked_on_the_event_loop_path_too() -> None:
    policy = _policy("max_scan 1k")

    async def main() -> object:
        return await evaluate(policy, _request("x" * 20_000), _ctx())  # type: ignore[arg-type]

    decision = anyio.run(main)
    assert isinstance(decision, Deny) and decision.status == 413


def test_shipped_policies_cap_what_they_scan() -> None:
    from pathlib import Path

    from engine.compiler import compile_paths

    for env in ("prod", "dev"):
        policy = compile_paths([Path("policies")], env=env)
        for app in policy.apps.values():
            assert app.max_scan is not None and app.max_scan <= 1_000_000, app.name
