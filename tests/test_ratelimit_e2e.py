"""P9 across processes: two `ghat serve` sharing one real Redis admit exactly the limit between them."""

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
LIMIT = 12
POLICY = f"""
provider local {{ kind mock }}
model local/echo {{ price in 0 out 0 per 1M }}
alias echo {{ route local/echo }}
app shared {{
  env        test
  models     echo
  max_tokens 64
  rate_limit {LIMIT}/min
}}
"""


@pytest.fixture
def gateways(tmp_path: Path, fake_upstream: FakeUpstream, redis_url: str) -> Iterator[tuple[Gateway, Gateway]]:
    first = start_gateway(tmp_path / "a", fake_upstream.url, apps=("shared",), policy=POLICY,
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


def test_two_servers_admit_exactly_the_limit_between_them(gateways: tuple[Gateway, Gateway]) -> None:
    key = gateways[0].keys["shared"]
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}

    def send(i: int) -> tuple[int, str | None]:
        gw = gateways[i % 2]
        r = httpx.post(f"{gw.v1}/chat/completions", json=body, headers={"authorization": f"Bearer {key}"},
                       timeout=20)  # fmt: skip
        return r.status_code, r.headers.get("retry-after")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, range(3 * LIMIT)))
    statuses = Counter(status for status, _ in results)
    assert statuses == {200: LIMIT, 429: 2 * LIMIT}
    assert all(retry is not None and int(retry) >= 1 for status, retry in results if status == 429)
