"""First content and content events of a trickled stream, straight from the upstream and through `ghat serve`.

    .venv/bin/python -m bench.stream_latency [--runs 3] [--baseline DIR]

The fake upstream streams a ~500-character answer, a word every 50 ms, with
a planted email and AWS key each split over two chunks (the answer of
tests/test_streaming_e2e.py). The official `openai` client reads it straight
from the upstream and through `ghat serve` for three apps: no output guard,
output `pii redact`, output `pii redact; secrets redact`. `--baseline DIR`
serves the same policy from another checkout in the same run, its rows
marked `(before)`. Prints a Markdown table (medians of `--runs`) for
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.overhead import _serve  # noqa: E402
from tests.fixtures_upstream import start_fake_upstream  # noqa: E402
from tests.gateway_process import create_key  # noqa: E402
from tests.test_streaming_e2e import ANSWER, INTERVAL, _chunks, _events, _pieces  # noqa: E402

POLICY = """
provider fake { kind openai  base_url "__UPSTREAM__"  api_key "sk-fake" }
model fake/gpt-test { price in 1 out 2 per 1M }
alias chat { route fake/gpt-test retries 0 }
app open { env prod; models chat; max_tokens 512; rate_limit 6000/min }
app pii { env prod; models chat; max_tokens 512; rate_limit 6000/min; output { pii redact } }
app both { env prod; models chat; max_tokens 512; rate_limit 6000/min; output { pii redact; secrets redact } }
"""
APPS = (("open", "no output guard"), ("pii", "output `pii redact`"), ("both", "output `pii redact; secrets redact`"))


def _measure(client: openai.OpenAI, model: str, runs: int) -> tuple[float, int, float]:
    """Median first-content ms, content events and total seconds over `runs` streams."""
    firsts, counts, totals = [], [], []
    for _ in range(runs):
        events, total = _events(client, model)
        firsts.append(events[0][0] * 1000)
        counts.append(len(events))
        totals.append(total)
    return statistics.median(firsts), int(statistics.median(counts)), statistics.median(totals)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--baseline", type=Path, help="another checkout to measure in the same run, as `(before)`")
    args = ap.parse_args()
    fake = start_fake_upstream()
    tmp = Path(tempfile.mkdtemp(prefix="ghat-stream-bench-"))
    (tmp / "policies").mkdir()
    (tmp / "policies" / "bench.policy").write_text(POLICY.replace("__UPSTREAM__", fake.url))
    keys = {app: create_key(app, tmp / "data", env="prod") for app, _ in APPS}
    trees = [("", ROOT, tmp / "data")]
    if args.baseline is not None:
        shutil.copytree(tmp / "data", tmp / "data-before")
        trees.append((" (before)", args.baseline.resolve(), tmp / "data-before"))
    rows: list[tuple[str, tuple[float, int, float]]] = []
    servers = []
    try:
        fake.fault("reply", chunks=_chunks(_pieces(ANSWER)), stream=True, interval_s=INTERVAL)
        direct = openai.OpenAI(base_url=fake.url, api_key="sk-fake", max_retries=0)
        rows.append(("upstream direct", _measure(direct, "gpt-test", args.runs)))
        for label, root, data in trees:
            proc, port = _serve(root, tmp / "policies", data, 1)
            servers.append(proc)
            for app, what in APPS:
                client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=keys[app], max_retries=0)
                rows.append((f"ghat, {what}{label}", _measure(client, "chat", args.runs)))
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(30)
        fake.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, Python {platform.python_version()}, "
          f"a {len(ANSWER)}-character answer in {len(_pieces(ANSWER))} chunks every {INTERVAL * 1000:.0f} ms, "
          f"median of {args.runs}\n")
    print("| path | first content ms | content events | stream s |")
    print("|---|---:|---:|---:|")
    for path, (first, count, total) in rows:
        print(f"| {path} | {first:.0f} | {count} | {total:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
