"""P9 across processes: two `ghat serve` sharing one real Redis hold every limit between them.

The policy has the app's own limit, a `when` that tightens it, one that raises
it explicitly, and a second app with the same number. All requests land in one
window (the test takes seconds, the limits are per minute), so the outcome is
exact whatever the interleaving: each limit admits at most its number, a
request is refused only by a limit that is full, and the apps count apart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.fixtures_upstream import FakeUpstream
from tests.gateway_process import Gateway, start_gateway

pytestmark = pytest.mark.slow
LIMIT, NARROW, RAISED = 12, 4, 9
POLICY = f"""
provider local {{ kind mock }}
model local/echo {{ price in 0 out 0 per 1M }}
alias echo {{ route local/echo }}
app shared {{
  env        test
  models     echo
  max_tokens 64
  rate_limit {LIMIT}/min
  when operation == "narrow" {{ rate_limit {NARROW}/min }}
  when model == "echo" and endpoint == "chat" and operation == "bulk" {{ rate_limit {RAISED}/min raise }}
}}
app neighbour {{
  env        test
  models     echo
  max_tokens 64
  rate_limit {LIMIT}/min
}}
"""


@pytest.fixture
def gateways(tmp_path: Path, fake_upstream: FakeUpstream, redis_url: str) -> Iterator[tuple[Gateway, Gateway]]:
    first = start_gateway(tmp_path / "a", fake_upstream.url, apps=("shared", "neighbour"), policy=POLICY,
                          extra=("--redis-url", redis_url))  # fmt: skip
    try:
        keys = str(first.data_dir / "keys.json")  # one key store for both, as a deployment would share it
        second = start_gateway(tmp_path / "b", fake_upstream.url, apps=(), policy=POLICY,
                               extra=("--redis-url", redis_url, "--keys", keys))  # fmt: skip
        second.keys = first.keys
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


def test_two_servers_hold_every_limit_between_them(gateways: tuple[Gateway, Gateway]) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
    # (app, operation) per request, interleaved: plain, narrow and bulk traffic of one app, and a neighbour
    plan = [("shared", ""), ("shared", "narrow"), ("shared", "bulk"), ("neighbour", "")] * (2 * LIMIT)

    def send(i: int) -> tuple[str, str, int, str | None]:
        app, op = plan[i]
        headers = {"authorization": f"Bearer {gateways[0].keys[app]}"}
        if op:
            headers["x-ghat-operation"] = op
        r = httpx.post(f"{gateways[i % 2].v1}/chat/completions", json=body, headers=headers, timeout=20)
        return app, op, r.status_code, r.headers.get("retry-after")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, range(len(plan))))
    ok = Counter((app, op) for app, op, status, _ in results if status == 200)
    assert {status for _, _, status, _ in results} == {200, 429}
    assert all(retry is not None and int(retry) >= 1 for *_, status, retry in results if status == 429)
    # the app's own limit covers plain and narrow traffic together; the tightening one, narrow alone
    assert ok["shared", ""] + ok["shared", "narrow"] == LIMIT  # 48 such requests: the limit is reached
    assert ok["shared", "narrow"] <= NARROW
    # the raise replaces the app's limit for bulk: its own bucket, neither more nor less
    assert ok["shared", "bulk"] == RAISED
    # another app with the same number counts apart
    assert ok["neighbour", ""] == LIMIT
