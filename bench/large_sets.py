"""Large policy sets: start-up, hot reload, latency during a reload, `ghat test` time and memory.

    .venv/bin/python -m bench.large_sets [--apps 2000] [--baseline DIR] [--requests 3000]

Generates the set with `bench/gen_apps.py` (the shipped models plus N apps in
team files of ten), then, for this checkout and optionally another
(`--baseline DIR`, e.g. `git worktree add /tmp/before main`), in one run:

- start-up: `ghat serve --no-watch` spawned, until `/readyz` answers 200;
- steady latency: one keep-alive client posting small chat requests to an
  app on the mock provider, one at a time, median and p99;
- reload: one team file edited, SIGHUP, the same client running throughout;
  the reload window is from the signal to the first answer carrying the new
  `x-ghat-policy`; its requests' median and p99, and the server's own reload
  time from its log. Then the same after editing `models.policy`, which every
  app depends on;
- memory: the server's VmRSS after start-up and after the reloads, and its peak
  (VmHWM);
- `ghat test` over the whole set: wall time and peak RSS (wait4's ru_maxrss).

Prints a Markdown table for bench/RESULTS.md. Wall times on a shared 2-core
machine are noisy: run it when the machine is quiet.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gen_apps import generate  # noqa: E402
from tests.gateway_process import _free_port  # noqa: E402

APP = "team000-app0001"  # models `cheap-fast, dev-chat`: dev-chat answers on the built-in mock
BODY = json.dumps({"model": "dev-chat", "max_tokens": 64,
                   "messages": [{"role": "user", "content": "Summarise our refund policy in one line."}]})  # fmt: skip


@dataclass
class Result:
    label: str
    startup_s: float = 0.0
    startup_cpu_s: float = 0.0
    warm_s: float = 0.0  # a second start: parsed files read back from the disk cache
    warm_cpu_s: float = 0.0
    steady: list[float] = field(default_factory=list)  # ms
    reloads: list[tuple[str, float, list[float], float | None]] = field(default_factory=list)  # name, window, ms, log
    reload_cpu: list[float] = field(default_factory=list)  # server CPU seconds spent in each reload window
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    hwm_mb: float = 0.0
    test_s: float = 0.0
    test_cpu_s: float = 0.0
    test_rss_mb: float = 0.0
    test_summary: str = ""


def _unlimit(team: Path) -> None:
    """Lift the measured app's rate limit out of the way (the limiter still runs on every request)."""
    text = team.read_text(encoding="utf-8")
    head, _, tail = text.partition(f"app {APP} {{")
    tail = re.sub(r"rate_limit \d+/min", "rate_limit 1000000/min", tail, count=1)
    team.write_text(f"{head}app {APP} {{{tail}", encoding="utf-8")


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root)}


def _status(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _create_key(root: Path, data: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "cli.main", "keys", "create", "--app", APP, "--env", "prod",
                          "--json", "--data-dir", str(data)], cwd=root, env=_env(root), capture_output=True,
                         text=True, check=True)  # fmt: skip
    return str(json.loads(out.stdout)["key"])


class Client:
    """One keep-alive connection, one request at a time: latency as a client sees it."""

    def __init__(self, port: int, key: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def call(self) -> tuple[float, str]:
        t0 = time.perf_counter()
        self.conn.request("POST", "/v1/chat/completions", BODY, self.headers)
        resp = self.conn.getresponse()
        resp.read()
        ms = (time.perf_counter() - t0) * 1000
        if resp.status != 200:
            raise RuntimeError(f"status {resp.status}")
        return ms, resp.getheader("x-ghat-policy") or ""


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("ghat serve exited")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError("ghat serve did not become ready")


def _reload(client: Client, proc: subprocess.Popen[bytes], edit: Path, text: str, version: str,
            log: Path) -> tuple[float, list[float], float | None, str]:  # fmt: skip
    """Edit, SIGHUP, keep calling: (window s, latencies in the window, server's reload s, new version)."""
    edit.write_text(text, encoding="utf-8")
    before = log.read_text(errors="replace").count("loaded (SIGHUP)")
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGHUP)
    window: list[float] = []
    while True:
        ms, seen = client.call()
        if seen != version:
            break
        window.append(ms)
        if time.perf_counter() - t0 > 120:
            raise RuntimeError("reload did not finish in 120 s")
    span = time.perf_counter() - t0
    server_s = None
    for _ in range(200):  # the log line is written right after the swap
        found = re.findall(r"loaded \(SIGHUP\) in ([0-9.]+) s", log.read_text(errors="replace"))
        if len(found) > before:
            server_s = float(found[-1])
            break
        time.sleep(0.01)
    return span, window, server_s, seen


def _start(root: Path, policies: Path, data: Path, port: int, log: Path) -> tuple[subprocess.Popen[bytes], float]:
    out = log.open("ab")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--policies", str(policies), "--env", "prod",
                             "--data-dir", str(data), "--port", str(port), "--no-watch"],
                            cwd=root, env=_env(root), stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    out.close()
    _wait_ready(port, proc)
    return proc, time.perf_counter() - t0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)


def measure(label: str, root: Path, policies: Path, requests: int) -> Result:
    res = Result(label)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        key = _create_key(root, data)
        port = _free_port()
        log = data / "server.log"
        proc, res.startup_s = _start(root, policies, data, port, log)
        try:
            res.startup_cpu_s = _cpu_s(proc.pid)
            res.rss_start_mb = _status(proc.pid, "VmRSS")
            client = Client(port, key)
            for _ in range(200):  # warm-up
                client.call()
            version = ""
            for _ in range(requests):
                ms, version = client.call()
                res.steady.append(ms)
            team = policies / "team-007.policy"
            original = team.read_text(encoding="utf-8")
            edits = [("one team file edited", team, original.replace("max_tokens 5", "max_tokens 4", 1)),
                     ("models.policy edited (every app)", policies / "models.policy",
                      (policies / "models.policy").read_text(encoding="utf-8") + "\n# reviewed\n")]  # fmt: skip
            for name, path, text in edits:
                cpu = _cpu_s(proc.pid)
                span, window, server_s, version = _reload(client, proc, path, text, version, log)
                res.reload_cpu.append(_cpu_s(proc.pid) - cpu)
                res.reloads.append((name, span, window, server_s))
            for _ in range(200):
                client.call()
            res.rss_end_mb = _status(proc.pid, "VmRSS")
            res.hwm_mb = _status(proc.pid, "VmHWM")
            team.write_text(original, encoding="utf-8")
        finally:
            _stop(proc)
        proc, res.warm_s = _start(root, policies, data, port, log)
        res.warm_cpu_s = _cpu_s(proc.pid)
        _stop(proc)
    t0 = time.perf_counter()
    test = subprocess.Popen([sys.executable, "-m", "cli.main", "test", str(policies)], cwd=root, env=_env(root),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    output = test.stdout.read().decode(errors="replace") if test.stdout else ""
    _, status, usage = os.wait4(test.pid, 0)
    test.returncode = os.waitstatus_to_exitcode(status)
    res.test_s = time.perf_counter() - t0
    res.test_cpu_s = usage.ru_utime + usage.ru_stime
    res.test_rss_mb = usage.ru_maxrss / 1024
    res.test_summary = next((ln for ln in output.splitlines() if " passed, " in ln), output[-200:])
    return res


def _ms(values: list[float], q: float) -> str:
    if not values:
        return "–"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))]:.2f}"


def table(results: list[Result], apps: int) -> str:
    rows = [
        f"| what ({apps} apps) | " + " | ".join(r.label for r in results) + " |",
        "| --- | " + " | ".join("---:" for _ in results) + " |",
        "| `ghat serve` start-up to /readyz, cold: wall (server CPU) | "
        + " | ".join(f"{r.startup_s:.2f} s ({r.startup_cpu_s:.2f} s)" for r in results) + " |",
        "| start-up again, parsed files on disk: wall (server CPU) | "
        + " | ".join(f"{r.warm_s:.2f} s ({r.warm_cpu_s:.2f} s)" for r in results) + " |",
        "| steady latency, median / p99 | "
        + " | ".join(f"{_ms(r.steady, 0.5)} / {_ms(r.steady, 0.99)} ms" for r in results) + " |",
    ]
    for i, name in enumerate(n for n, *_ in results[0].reloads):
        cells = []
        for r in results:
            _, span, _, server_s = r.reloads[i]
            server = f"{server_s:.2f} s" if server_s is not None else "?"
            cells.append(f"{server} ({span:.2f} s seen, {r.reload_cpu[i]:.2f} s CPU)")
        rows.append(f"| reload, {name}: server time (client window, server CPU) | " + " | ".join(cells) + " |")
        cells = [f"{_ms(r.reloads[i][2], 0.5)} / {_ms(r.reloads[i][2], 0.99)} ms (n={len(r.reloads[i][2])})"
                 for r in results]  # fmt: skip
        rows.append("| latency during that reload, median / p99 | " + " | ".join(cells) + " |")
    rows += [
        "| server RSS after start-up / after reloads / peak | "
        + " | ".join(f"{r.rss_start_mb:.0f} / {r.rss_end_mb:.0f} / {r.hwm_mb:.0f} MB" for r in results) + " |",
        "| `ghat test` (all apps' tests): wall (CPU) | "
        + " | ".join(f"{r.test_s:.2f} s ({r.test_cpu_s:.2f} s)" for r in results) + " |",
        "| `ghat test` peak RSS | " + " | ".join(f"{r.test_rss_mb:.0f} MB" for r in results) + " |",
        "| `ghat test` summary | " + " | ".join(r.test_summary for r in results) + " |",
    ]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=3000, help="steady-state requests")
    parser.add_argument("--baseline", type=Path, help="another checkout, measured the same way right after")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = []
        for label, root in [("this checkout", ROOT), *([("baseline", args.baseline)] if args.baseline else [])]:
            policies = Path(tmp) / label.replace(" ", "-")
            generate(policies, args.apps)
            _unlimit(policies / "team-000.policy")
            results.append(measure(label, root.resolve(), policies, args.requests))
            print(f"measured {label}", file=sys.stderr)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f} at the end\n")  # fmt: skip
    print(table(results, args.apps))


if __name__ == "__main__":
    main()
