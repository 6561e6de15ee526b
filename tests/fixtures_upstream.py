"""Fixtures that run `tests/fake_upstream.py` in its own process on a free port (see its docstring)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


class FakeUpstream:
    """A handle on a running fake upstream: its URL, its fault rules and what it received."""

    def __init__(self, port: int, proc: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.origin = f"http://127.0.0.1:{port}"
        self.url = f"{self.origin}/v1"  # what a provider's base_url should be
        self.proc = proc
        self._admin = httpx.Client(base_url=self.origin, timeout=10.0)

    def fault(self, kind: str, *, times: int | None = None, **options: Any) -> None:
        """Add a fault rule: `times` None means every matching request, forever (until `reset`)."""
        r = self._admin.post("/admin/faults", json={"kind": kind, "times": times, **options})
        r.raise_for_status()

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        """Every non-admin request received since the last reset, oldest first."""
        rows: list[dict[str, Any]] = self._admin.get("/admin/requests").json()
        return [r for r in rows if path is None or r["path"] == path]

    def reset(self) -> None:
        """Forget recorded requests and fault rules."""
        self._admin.post("/admin/reset").raise_for_status()

    def close(self) -> None:
        self._admin.close()
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def start_fake_upstream() -> FakeUpstream:
    """Bind a free port here and hand the listening socket to the child: no port race."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_upstream", "--fd", str(sock.fileno())],
        cwd=ROOT, pass_fds=(sock.fileno(),), env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    sock.close()
    handle = FakeUpstream(port, proc)
    try:
        handle._admin.get("/admin/health").raise_for_status()  # queued in the backlog until the child accepts
    except Exception:
        handle.close()
        raise
    return handle


@pytest.fixture(scope="session")
def fake_upstream_server() -> Iterator[FakeUpstream]:
    handle = start_fake_upstream()
    yield handle
    handle.close()


@pytest.fixture
def fake_upstream(fake_upstream_server: FakeUpstream) -> FakeUpstream:
    fake_upstream_server.reset()
    return fake_upstream_server
