"""Run `ghat serve` in its own process for end-to-end tests (real sockets, real CLI, real keys).

`start_gateway` writes the test policy with the fake upstream's URL into a
temp directory, creates keys through `ghat keys create --json`, starts
`ghat serve` on a free port and waits for `/readyz`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
POLICY_TEMPLATE = ROOT / "tests" / "policies" / "server" / "gateway.policy.in"
ENV = "test"


def ghat(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", *args, "--data-dir", str(data_dir)], cwd=ROOT,
                          capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def write_policy(policy_dir: Path, upstream_url: str, text: str | None = None) -> Path:
    policy_dir.mkdir(parents=True, exist_ok=True)
    path = policy_dir / "gateway.policy"
    body = text if text is not None else POLICY_TEMPLATE.read_text().replace("__UPSTREAM__", upstream_url)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(body)
    os.replace(tmp, path)
    return path


def create_key(app: str, data_dir: Path, env: str = ENV) -> str:
    out = ghat("keys", "create", "--app", app, "--env", env, "--json", data_dir=data_dir)
    return str(json.loads(out.stdout)["key"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Gateway:
    proc: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    policy_dir: Path
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def v1(self) -> str:
        return f"{self.base}/v1"

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait(5)
        return int(self.proc.returncode)

    def log(self) -> str:
        return (self.data_dir / "server.log").read_text(errors="replace")


def start_gateway(tmp: Path, upstream_url: str, apps: tuple[str, ...] = ("gw-test", "gw-limited"),
                  extra: tuple[str, ...] = (), policy: str | None = None) -> Gateway:
    """`ghat serve` on the server tests' policy (or `policy`, its `__UPSTREAM__` filled in), ready."""
    data_dir = tmp / "data"
    policy_dir = tmp / "policies"
    write_policy(policy_dir, upstream_url, policy.replace("__UPSTREAM__", upstream_url) if policy else None)
    data_dir.mkdir(parents=True, exist_ok=True)
    keys = {app: create_key(app, data_dir) for app in apps}
    for attempt in range(3):
        port = _free_port()
        logf = (data_dir / "server.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--policies", str(policy_dir), "--env", ENV,
             "--data-dir", str(data_dir), "--port", str(port), "--log-level", "warning", *extra],
            cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        gw = Gateway(proc, port, data_dir, policy_dir, keys)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{gw.base}/readyz", timeout=1).status_code == 200:
                    return gw
            except httpx.HTTPError:
                time.sleep(0.05)
        gw.stop()
        if attempt == 2:
            raise RuntimeError(f"ghat serve did not start:\n{gw.log()}")
    raise AssertionError("unreachable")
