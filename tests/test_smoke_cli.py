"""`ghat smoke` against a real `ghat serve` process: every check passes, and a bad key fails it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.fixtures_upstream import FakeUpstream
from tests.gateway_process import ROOT, Gateway, start_gateway

POLICY = """
provider local { kind mock }
model local/echo  { price in 0 out 0 per 1M }
model local/embed { kind embedding price in 0 per 1M }
alias chat  { route local/echo }
alias embed { route local/embed }
app smoke {
  env        test
  models     chat, embed
  max_tokens 256
  rate_limit 1000/min
  input { secrets redact }
}
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake_upstream_server: FakeUpstream) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path_factory.mktemp("smoke"), fake_upstream_server.url, apps=("smoke",), policy=POLICY)
    yield gw
    gw.stop()


def smoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", "smoke", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_every_check_passes_on_a_healthy_gateway(gateway: Gateway) -> None:
    out = smoke("--url", gateway.base, "--key", gateway.keys["smoke"], "--format", "json")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    names = {c["name"]: c for c in report["checks"]}
    assert report["passed"] and all(c["ok"] for c in names.values())
    assert names["models"]["detail"].endswith("using chat")
    assert "dimensions" in names["embeddings"]["detail"]  # the key has an embedding model: it was called
    assert "event(s)" in names["chat stream"]["detail"]


def test_a_revoked_or_wrong_key_fails(gateway: Gateway) -> None:
    out = smoke("--url", gateway.base, "--key", "ghat_test_notakey")
    assert out.returncode == 1
    assert "FAIL  models" in out.stdout and "status 401" in out.stdout


def test_unreachable_gateway_and_missing_key_are_usage_errors(gateway: Gateway) -> None:
    assert smoke("--url", "http://127.0.0.1:9", "--key", "k").returncode == 2
    assert smoke("--url", gateway.base).returncode == 2
