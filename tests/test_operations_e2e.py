"""End to end: operations that used to fail quietly — key revocation, the access log, several workers, env refs.

Each was a break: a symlink loop in the policy folder stopped key revocation
(a revoked key was served 10 times out of 10 over 10 s); `--access-log` wrote
nothing at the default level and, at `info`, wrote a key sent in the query
string as-is; `--workers 4` without Redis multiplied every limit by four
without a word; a provider key naming an unset variable was accepted and
requests went out with no credentials.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.gateway_process import ENV, ROOT, create_key, ghat, start_gateway, write_policy

pytestmark = pytest.mark.xdist_group("operations-e2e")

ECHO = """
provider local { kind mock }
model local/echo { price in 0 out 0 per 1M }
alias echo { route local/echo }
app ops {
  env        test
  models     echo
  rate_limit 1000000/min
}
"""


def _chat(base: str, key: str, query: str = "", **headers: str) -> httpx.Response:
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
    hs = {"authorization": f"Bearer {key}", **headers} if key else headers
    return httpx.post(f"{base}/v1/chat/completions{query}", json=body, headers=hs, timeout=20)


def test_a_symlink_loop_in_the_policy_folder_does_not_stop_key_revocation(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path, "http://127.0.0.1:9/v1", apps=("ops",), policy=ECHO)
    try:
        key = gw.keys["ops"]
        assert _chat(gw.base, key).status_code == 200
        os.symlink("loop.policy", gw.policy_dir / "loop.policy")  # stat() fails with ELOOP, every second
        time.sleep(2.5)  # the policy watcher has failed at least twice by now
        ghat("keys", "revoke", key, data_dir=gw.data_dir)
        deadline = time.monotonic() + 10
        while _chat(gw.base, key).status_code != 401:
            assert time.monotonic() < deadline, "a revoked key is still served"
            time.sleep(0.2)
        assert httpx.get(f"{gw.base}/healthz", timeout=5).status_code == 200
    finally:
        gw.stop()


@pytest.mark.parametrize("level", ["warning", "info"])
def test_the_access_log_works_at_any_level_and_never_writes_a_key(tmp_path: Path, level: str) -> None:
    gw = start_gateway(tmp_path, "http://127.0.0.1:9/v1", apps=("ops",), policy=ECHO,
                       extra=("--access-log", "--log-level", level))  # fmt: skip
    key = gw.keys["ops"]
    try:
        assert _chat(gw.base, key).status_code == 200
        assert _chat(gw.base, "", **{"x-api-key": key}).status_code == 200
        _chat(gw.base, "", f"?key={key}&api-version=2024-06-01")
        _chat(gw.base, "", "?api_key=sk-proj-abcdefghijklmnop0123")
        httpx.get(f"{gw.base}/v1/{key}/models", timeout=10)
        time.sleep(0.5)
    finally:
        gw.stop()
    log = gw.log()
    lines = [line for line in log.splitlines() if "/v1/" in line and "HTTP/1.1" in line]
    assert len(lines) >= 5, log[-2000:]  # one line per request, at the default level too
    assert "?key=…&api-version=…" in log
    secret = key.split("_", 2)[2]
    assert secret not in log and "abcdefghijklmnop0123" not in log, log[-2000:]


def test_several_workers_without_a_shared_store_are_refused(tmp_path: Path) -> None:
    write_policy(tmp_path / "p", "", ECHO)
    cmd = [sys.executable, "-m", "cli.main", "serve", "--policies", str(tmp_path / "p"), "--env", ENV,
           "--data-dir", str(tmp_path / "d"), "--port", "1", "--workers", "3"]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert out.returncode == 2
    assert "--redis-url" in out.stderr and "3 times" in out.stderr


UNSET = """
provider remote { kind openai; base_url "http://127.0.0.1:9/v1"; api_key env.GHAT_TEST_SURELY_UNSET_KEY }
provider spare  { kind openai; base_url "http://127.0.0.1:9/v1"; api_key env.GHAT_TEST_ALSO_UNSET_KEY }
provider local  { kind mock }
model remote/gpt { price in 1 out 1 per 1M }
model spare/gpt  { price in 1 out 1 per 1M }
model local/echo { price in 0 out 0 per 1M }
alias chat { route local/echo; fallback remote/gpt }
app ops { env test; models chat; rate_limit 100/min }
app other { env prod; models spare/gpt; rate_limit 100/min }
"""


def test_an_unset_env_reference_stops_the_server_at_start(tmp_path: Path) -> None:
    write_policy(tmp_path / "p", "", UNSET)
    cmd = [sys.executable, "-m", "cli.main", "serve", "--policies", str(tmp_path / "p"), "--env", ENV,
           "--data-dir", str(tmp_path / "d"), "--port", "1"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHAT_TEST_")}
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**env, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "W502" in text and "GHAT_TEST_SURELY_UNSET_KEY" in text  # reachable through a fallback
    assert "GHAT_TEST_ALSO_UNSET_KEY" not in text  # only a prod app reaches it: not served here


def test_a_reload_that_brings_an_unset_env_reference_keeps_the_old_policy(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path, "http://127.0.0.1:9/v1", apps=("ops",), policy=ECHO)
    try:
        before = _chat(gw.base, gw.keys["ops"]).headers["x-ghat-policy"]
        write_policy(gw.policy_dir, "", UNSET)
        deadline = time.monotonic() + 15
        while "GHAT_TEST_SURELY_UNSET_KEY" not in gw.log():
            assert time.monotonic() < deadline, gw.log()[-2000:]
            time.sleep(0.2)
        r = _chat(gw.base, gw.keys["ops"])
        assert r.status_code == 200 and r.headers["x-ghat-policy"] == before
    finally:
        gw.stop()


def test_check_warns_about_an_unset_env_reference(tmp_path: Path) -> None:
    write_policy(tmp_path / "p", "", UNSET)
    out = subprocess.run([sys.executable, "-m", "cli.main", "check", str(tmp_path / "p")], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "warning[W502]" in out.stdout and "GHAT_TEST_SURELY_UNSET_KEY" in out.stdout, out.stdout
    assert out.returncode == 0  # a warning: CI without the secrets still passes by default


def _no_keys() -> dict[str, str]:
    """The environment of a fresh laptop: no provider key of the shipped policies or the tests is set."""
    drop = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
    return {**{k: v for k, v in os.environ.items() if not k.startswith("GHAT_TEST_") and k not in drop},
            "PYTHONPATH": str(ROOT)}  # fmt: skip


def _wait_ready(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not become ready")


def test_make_serve_starts_with_no_provider_key(tmp_path: Path) -> None:
    """`make serve` on a fresh machine: the mock answers, a route to a real provider says which variable is unset."""
    from tests.gateway_process import _free_port

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cli.devserve", "--policies", str(ROOT / "policies"), "--env",
                             "dev", "--port", str(port), "--data-dir", str(tmp_path / "dev")], cwd=ROOT,
                            env=_no_keys(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        _wait_ready(port, proc)
        key = (tmp_path / "dev" / "dev-key.txt").read_text().strip()
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        auth = {"authorization": f"Bearer {key}"}
        ok = httpx.post(url, headers=auth, json={"model": "dev-chat", "messages": [{"role": "user", "content": "hi"}]})
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"]
        real = httpx.post(url, headers=auth,
                          json={"model": "cheap-fast", "messages": [{"role": "user", "content": "hi"}]})
        assert real.status_code == 503 and real.json()["error"]["code"] == "route_unavailable"
        assert "_API_KEY" in real.json()["error"]["message"] and "not set" in real.json()["error"]["message"]
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert "--unset-env skip" in out  # it said so at start


def test_unset_env_skip_serves_the_rest_and_falls_back(tmp_path: Path) -> None:
    """`--unset-env skip`: the route's mock answers; the unset provider is passed over, never called keyless."""
    from tests.gateway_process import _free_port

    write_policy(tmp_path / "p", "", UNSET.replace("route local/echo; fallback remote/gpt",
                                                   "route remote/gpt; fallback local/echo"))  # fmt: skip
    key = create_key("ops", tmp_path / "d")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--policies", str(tmp_path / "p"), "--env",
                             ENV, "--data-dir", str(tmp_path / "d"), "--port", str(port), "--unset-env", "skip"],
                            cwd=ROOT, env=_no_keys(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    try:
        _wait_ready(port, proc)
        r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                       json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200 and r.headers["x-ghat-provider"] == "local", r.text
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert "GHAT_TEST_SURELY_UNSET_KEY" in out
