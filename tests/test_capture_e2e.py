"""`capture prompts, responses` outside prod: the log keeps what the caller sent and got, and replay uses it.

Through a real `ghat serve`: a plain and a streamed request of an app that
captures appear in the log with their prompt texts (as the caller sent them)
and the answer (as the caller got it); an app without `capture` keeps no text;
and `ghat replay` against a policy that adds a guardrail re-runs it on the
captured prompts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from adapters.logstore import default_log_path
from adapters.logstore.sqlite import SQLiteLogStore
from tests.fixtures_upstream import FakeUpstream
from tests.gateway_process import ROOT, start_gateway

POLICY = """
provider fake {
  kind     openai
  base_url "__UPSTREAM__"
  api_key  "sk-fake-upstream"
}
model fake/gpt-test { price in 1 out 2 per 1M }
alias chat { route fake/gpt-test retries 0 }
app captured {
  env        test
  models     chat
  max_tokens 256
  rate_limit 1000/min
  capture    prompts, responses
}
app quiet {
  env        test
  models     chat
  max_tokens 256
  rate_limit 1000/min
}
"""
PROMPT = "please summarise ticket PLANTED-7731 for me"


def _chat(base: str, key: str, stream: bool) -> httpx.Response:
    body = {"model": "chat", "stream": stream, "messages": [{"role": "system", "content": "be brief"},
                                                            {"role": "user", "content": PROMPT}]}  # fmt: skip
    return httpx.post(f"{base}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"},
                      timeout=20)  # fmt: skip


def test_capture_keeps_texts_outside_prod_and_replay_reruns_guardrails(tmp_path: Path,
                                                                       fake_upstream: FakeUpstream) -> None:
    gw = start_gateway(tmp_path, fake_upstream.url, apps=("captured", "quiet"), policy=POLICY)
    try:
        plain = _chat(gw.base, gw.keys["captured"], False)
        streamed = _chat(gw.base, gw.keys["captured"], True)
        quiet = _chat(gw.base, gw.keys["quiet"], False)
        assert plain.status_code == streamed.status_code == quiet.status_code == 200
    finally:
        gw.stop()
    store = SQLiteLogStore(default_log_path(gw.data_dir), readonly=True)
    deadline = time.monotonic() + 10
    while store.count() < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    answer = plain.json()["choices"][0]["message"]["content"]
    rec = store.get(plain.headers["x-request-id"])
    assert rec is not None and rec.captured is not None
    assert json.loads(rec.captured["prompt"]) == [{"role": "system", "text": "be brief"},
                                                  {"role": "user", "text": PROMPT}]  # fmt: skip
    assert rec.captured["response"] == answer
    srec = store.get(streamed.headers["x-request-id"])
    assert srec is not None and srec.captured is not None and srec.stream
    sent = "".join((json.loads(line[6:])["choices"] or [{}])[0].get("delta", {}).get("content") or ""
                   for line in streamed.text.splitlines() if line.startswith("data: {"))  # fmt: skip
    assert srec.captured["response"] == sent and sent
    qrec = store.get(quiet.headers["x-request-id"])
    assert qrec is not None and qrec.captured is None
    store.close()

    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "p.policy").write_text(
        POLICY.replace("__UPSTREAM__", fake_upstream.url)
        .replace("capture    prompts, responses", "capture    prompts, responses\n  input { planted block }")
        .replace("app captured {", "detector planted pattern /PLANTED-[0-9]{4}/\napp captured {"))  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "cli.main", "replay", "--policies", str(changed), "--data-dir",
                          str(gw.data_dir), "--format", "json"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    after = {c["request_id"]: c["after"] for c in report["changes"]}
    assert after == {plain.headers["x-request-id"]: "deny guardrail_planted_blocked",
                     streamed.headers["x-request-id"]: "deny guardrail_planted_blocked"}  # fmt: skip
    assert report["guardrails_not_rerun"] == 1  # the quiet app's request: no texts in the log
