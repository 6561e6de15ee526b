"""P15 end to end: while one client keeps sending 1 MB adversarial prompts, other connections
keep their latency (`/healthz` and small chat requests), against a real `ghat serve`.

The attacker's app scans its input with the shipped support guards and no `max_scan`,
so the largest body the server admits (1 MiB) is scanned whole. Latency is compared with
a baseline measured in the same test; before guards left the event loop, every probe
waited for the whole scan of a prompt (seconds).
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures_upstream import FakeUpstream
from tests.gateway_process import Gateway, start_gateway

pytestmark = pytest.mark.slow

POLICY = """
provider fake {
  kind     openai
  base_url "__UPSTREAM__"
  api_key  "sk-fake-upstream"
}
provider local { kind mock }
model fake/gpt-test { price in 1 out 2 per 1M }
model local/echo    { price in 0 out 0 per 1M }
alias chat { route fake/gpt-test retries 0 }
alias echo { route local/echo }

app attacker {
  env        test
  models     chat
  rate_limit 100000/min
  input {
    pii redact
    secrets redact
    prompt_injection block threshold 0.7
    indirect_injection detect
    topics ["medical diagnosis", "legal advice"] block
  }
}

app probe {
  env        test
  models     echo
  rate_limit 100000/min
  input { pii redact; secrets redact; prompt_injection block }
}
"""


def _card_like(size: int) -> str:
    """Digit groups that look like cards and national phone numbers: the slowest shape measured."""
    rnd = random.Random(7)
    parts: list[str] = []
    total = 0
    while total < size:
        group = "0" + "".join(rnd.choice("0123456789") for _ in range(3)) + " " + "".join(
            rnd.choice("0123456789") for _ in range(6))  # fmt: skip
        parts.append(group)
        total += len(group) + 1
    return " ".join(parts)[:size]


ATTACK = _card_like(1_000_000)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake_upstream_server: FakeUpstream) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path_factory.mktemp("liveness"), fake_upstream_server.url,
                       apps=("attacker", "probe"), policy=POLICY)  # fmt: skip
    yield gw
    gw.stop()


def _probe(client: httpx.Client, gw: Gateway, n: int, budget_s: float = 30.0) -> list[float]:
    """Latencies (s) of up to `n` rounds of one /healthz and one small chat request (at most `budget_s`)."""
    out: list[float] = []
    headers = {"authorization": f"Bearer {gw.keys['probe']}"}
    body = {"model": "echo", "messages": [{"role": "user", "content": "Where is my order 1234?"}]}
    deadline = time.monotonic() + budget_s
    for _ in range(n):
        if time.monotonic() > deadline:
            break
        start = time.perf_counter()
        assert client.get(f"{gw.base}/healthz").status_code == 200
        out.append(time.perf_counter() - start)
        start = time.perf_counter()
        r = client.post(f"{gw.v1}/chat/completions", json=body, headers=headers)
        assert r.status_code == 200, r.text
        out.append(time.perf_counter() - start)
        time.sleep(0.01)
    return out


def _p99(xs: list[float]) -> float:
    return sorted(xs)[int(len(xs) * 0.99)]


def test_other_connections_keep_their_latency_during_1mb_adversarial_prompts(gateway: Gateway) -> None:
    stop = threading.Event()
    answered: list[int] = []

    def attack() -> None:
        headers = {"authorization": f"Bearer {gateway.keys['attacker']}"}
        body = {"model": "chat", "messages": [{"role": "user", "content": ATTACK}]}
        with httpx.Client(timeout=120) as client:
            while not stop.is_set():
                answered.append(client.post(f"{gateway.v1}/chat/completions", json=body, headers=headers).status_code)

    with httpx.Client(timeout=30) as client:
        _probe(client, gateway, 10)  # warm up
        baseline = _probe(client, gateway, 60)
        attacker = threading.Thread(target=attack, daemon=True)
        attacker.start()
        time.sleep(0.5)  # the first prompt is being scanned
        during = _probe(client, gateway, 150)
        stop.set()
        attacker.join(timeout=120)
    print(f"\nbaseline p50 {statistics.median(baseline) * 1000:.1f} ms p99 {_p99(baseline) * 1000:.1f} ms; "
          f"under attack p50 {statistics.median(during) * 1000:.1f} ms p99 {_p99(during) * 1000:.1f} ms "
          f"max {max(during) * 1000:.1f} ms; attack answers {answered}")  # fmt: skip
    assert answered and all(code == 200 for code in answered), answered  # scanned and forwarded, not refused
    # The target on a quiet machine is p99 < 100 ms; the bound is generous for a shared one.
    # Inline, a probe waited for a whole scan (seconds) as soon as it met one.
    assert _p99(during) < max(0.5, 5 * _p99(baseline)), (_p99(baseline), _p99(during))
