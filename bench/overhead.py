"""Gateway overhead: the same load straight to the fake upstream and through `ghat serve`, in one run.

    .venv/bin/python -m bench.overhead [--duration 5] [--workers 1] [--baseline DIR]

The shipped policies are served for env `prod` (app `support-prod`, all its
input and output guardrails on) with the OpenAI and Anthropic base URLs
pointed at the fake upstream and the rate limit raised out of the way (the
limiter still runs on every request). The load is `wrk` (apt-get install
wrk) with ~1 KB chat prompts at fixed concurrency; the gateway's CPU time per
request comes from /proc/<pid>/stat of the server process. Prints a Markdown
table for bench/RESULTS.md.

`--baseline DIR` also serves the same policies from another checkout (for
instance `git worktree add /tmp/before HEAD~3`) against the same fake upstream,
cell by cell right after the current code, so before and after are measured in
one run on one machine; its rows say `(before)`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures_upstream import start_fake_upstream  # noqa: E402
from tests.gateway_process import _free_port, create_key  # noqa: E402

PROMPT = (
    "You are helping a customer with an order that arrived late. Here is the conversation so far, please "
    "summarise it and propose a polite answer that explains our delivery policy and offers a voucher. "
) * 5
LUA = """wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
"""


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return []
    return [int(x) for x in out.split()]


def _wrk(url: str, body: str, key: str, conns: int, duration: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA.format(body=body, key=key))
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", "-s", f.name, url],
                         capture_output=True, text=True, check=True).stdout
    os.unlink(f.name)

    def ms(label: str) -> float:
        m = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v

    reqs = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
            "p50": ms("50%"), "p99": ms("99%"), "requests": reqs, "errors": int(bad.group(1)) if bad else 0}


def _bench_policies(dest: Path, upstream: str, root: Path = ROOT) -> None:
    """`root`'s shipped policies (a baseline serves its own, which may not parse here) aimed at `upstream`."""
    dest.mkdir(parents=True, exist_ok=True)
    for src in (root / "policies").glob("*.policy"):
        text = src.read_text()
        text = text.replace('"https://api.openai.com/v1"', f'"{upstream}"')
        text = text.replace('"https://api.anthropic.com/v1"', f'"{upstream}"')
        text = re.sub(r"rate_limit\s+\d+/min", "rate_limit 100000000/min", text)
        # an alias the Messages modes reach natively (an anthropic provider), beside the shipped ones
        text = text.replace("models     smart-default, cheap-fast, embed-default",
                            "models     smart-default, cheap-fast, embed-default, bench-native")
        if src.name == "models.policy":
            text += "\nalias bench-native { route anthropic/claude-sonnet-4 }\n"
        (dest / src.name).write_text(text)


def _modes() -> dict[str, tuple[str, dict[str, object], str, dict[str, object]]]:
    """mode → (gateway path, body, upstream path, the same request sent straight to the upstream)."""
    turns = [{"role": "user", "content": PROMPT}]
    out: dict[str, tuple[str, dict[str, object], str, dict[str, object]]] = {}
    for stream in (False, True):
        suffix = "-stream" if stream else ""
        chat = {"model": "smart-default", "messages": turns, "max_tokens": 256, "stream": stream}
        out["stream" if stream else "chat"] = ("/v1/chat/completions", chat, "/v1/chat/completions",
                                               {**chat, "model": "gpt-4o"})
        native = {"model": "bench-native", "messages": turns, "max_tokens": 256, "stream": stream}
        out["messages" + suffix] = ("/v1/messages", native, "/v1/messages",
                                    {**native, "model": "claude-sonnet-4-20250514"})
        # /v1/messages to the OpenAI primary of smart-default: translated to chat and back
        out["messages-openai" + suffix] = ("/v1/messages", {**native, "model": "smart-default"},
                                           "/v1/chat/completions", {**chat, "model": "gpt-4o"})
        responses = {"model": "smart-default", "input": PROMPT, "max_output_tokens": 256, "stream": stream}
        out["responses" + suffix] = ("/v1/responses", responses, "/v1/responses", {**responses, "model": "gpt-4o"})
    return out


def _serve(root: Path, policies: Path, data: Path, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--policies", str(policies), "--env", "prod",
         "--data-dir", str(data), "--port", str(port), "--workers", str(workers)],
        cwd=root,
        env={**os.environ, "OPENAI_API_KEY": "sk-bench", "ANTHROPIC_API_KEY": "sk-bench", "PYTHONPATH": str(root)},
    )  # fmt: skip
    import httpx

    for _ in range(400):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return proc, port
        except httpx.HTTPError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"ghat serve from {root} did not become ready (see its output above)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--baseline", type=Path, help="another checkout to measure in the same run, as `(before)`")
    ap.add_argument("--modes", default="chat,stream", help="comma-separated: chat, stream, messages, messages-stream, "
                    "messages-openai, messages-openai-stream, responses, responses-stream "
                    "(the new dialects run on the current tree only)")
    ap.add_argument("--conns", default="1,16", help="comma-separated connection counts")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    fake = start_fake_upstream()
    tmp = Path(tempfile.mkdtemp(prefix="ghat-bench-"))
    _bench_policies(tmp / "policies", fake.url)
    key = create_key("support-prod", tmp / "data", env="prod")
    gateways = [("", ROOT, tmp / "data", tmp / "policies")]
    if args.baseline is not None:
        shutil.copytree(tmp / "data", tmp / "data-before")  # the same key, its own request log
        _bench_policies(tmp / "policies-before", fake.url, args.baseline.resolve())
        gateways.append((" (before)", args.baseline.resolve(), tmp / "data-before", tmp / "policies-before"))
    servers: list[tuple[str, subprocess.Popen[bytes], int, list[int]]] = []
    rows: list[tuple[str, int, dict[str, float], dict[str, float], float]] = []
    try:
        for label, root, data, policies in gateways:
            proc, port = _serve(root, policies, data, args.workers)
            pids = [proc.pid, *_children(proc.pid)] if args.workers > 1 else [proc.pid]
            servers.append((label, proc, port, pids))
        for mode, (path, body, up_path, direct) in _modes().items():
            if mode not in args.modes.split(","):
                continue
            up_url = f"{fake.origin}{up_path}"
            new_dialect = mode.startswith(("messages", "responses"))
            here = servers[:1] if new_dialect else servers  # the baseline may predate them
            for _, _, port, _ in here:
                _wrk(f"http://127.0.0.1:{port}{path}", json.dumps(body), key, 4, 2)  # warm up
            for conns in (int(c) for c in args.conns.split(",")):
                d = _wrk(up_url, json.dumps(direct), "x", conns, args.duration)
                for label, _, port, pids in here:
                    cpu0 = sum(_cpu_s(p) for p in pids)
                    g = _wrk(f"http://127.0.0.1:{port}{path}", json.dumps(body), key, conns, args.duration)
                    cpu = (sum(_cpu_s(p) for p in pids) - cpu0) / max(g["requests"], 1) * 1000
                    rows.append((mode + label, conns, d, g, cpu))
    finally:
        for _, proc, _, _ in servers:
            proc.terminate()
            proc.wait(30)
        fake.close()
        shutil.rmtree(tmp, ignore_errors=True)
    cpu_name = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                     if ln.startswith("model name")), platform.processor())  # fmt: skip
    print(f"{time.strftime('%Y-%m-%d')}, {cpu_name}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{args.workers} worker(s), wrk -t1 for {args.duration}s per cell, prompt {len(PROMPT)} chars\n")
    print("| mode | conns | upstream req/s | gateway req/s | upstream p50 / p99 ms | gateway p50 / p99 ms "
          "| added p50 / p99 ms | gateway CPU ms/req | non-2xx |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mode, conns, d, g, cpu in rows:
        print(f"| {mode} | {conns} | {d['rps']:.0f} | {g['rps']:.0f} | {d['p50']:.2f} / {d['p99']:.2f} | "
              f"{g['p50']:.2f} / {g['p99']:.2f} | {g['p50'] - d['p50']:+.2f} / {g['p99'] - d['p99']:+.2f} | "
              f"{cpu:.2f} | {int(g['errors'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
