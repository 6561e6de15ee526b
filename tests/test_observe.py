"""The edge's half of P14, in-process: one record per request even when a handler fails, the caller's id beside
the gateway's, the log before metrics, and readiness that fails (with a reason) when the log writer is gone."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

import server
from adapters.api.observe import Observers, begin_request
from adapters.api.state import Gateway, Settings
from adapters.logstore.base import LogQuery
from adapters.logstore.sqlite import SQLiteLogStore
from engine.metrics import Metrics
from engine.records import LogRecord
from tests.gateway_process import create_key, write_policy
from tests.logrecords import make_record


class ListSink:
    def __init__(self) -> None:
        self.records: list[LogRecord] = []

    def submit(self, record: LogRecord) -> None:
        self.records.append(record)

    async def aclose(self) -> None:
        return None

    def problem(self) -> str | None:
        return None


class BrokenMetrics(Metrics):
    def observe(self, r: LogRecord) -> None:
        raise TypeError("a metric that chokes on a value")


def test_the_log_gets_the_record_even_when_metrics_choke() -> None:
    sink = ListSink()
    Observers(sink, BrokenMetrics()).record(make_record(1))
    assert [r.request_id for r in sink.records] == ["req_00000001"]


def test_the_callers_id_is_stamped_beside_the_gateways() -> None:
    sink = ListSink()
    obs = Observers(sink, Metrics())

    def one_request(client_id: str | None, i: int) -> None:
        begin_request(client_id)
        obs.record(make_record(i))

    import contextvars

    contextvars.copy_context().run(one_request, "same-id", 1)
    contextvars.copy_context().run(one_request, None, 2)
    assert [(r.request_id, r.client_request_id) for r in sink.records] == [("req_00000001", "same-id"),
                                                                           ("req_00000002", None)]


# -- a real GatewayApp, called in-process -------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Iterator[server.GatewayApp]:
    data = tmp_path / "data"
    data.mkdir()
    policy_dir = tmp_path / "policies"
    write_policy(policy_dir, "http://127.0.0.1:9/v1")  # only the mock provider is used here
    key = create_key("gw-test", data)
    settings = Settings(policies=str(policy_dir), env="test", keys=str(data / "keys.json"), data_dir=str(data),
                        watch=False)  # fmt: skip
    a = server.GatewayApp(settings)
    a.gateway = Gateway(settings)
    a.key = key  # type: ignore[attr-defined]
    yield a
    anyio.run(a.gateway.aclose)


def call(app: server.GatewayApp, method: str, path: str, body: bytes = b"",
         headers: Sequence[tuple[str, str]] = ()) -> tuple[int, dict[str, str], bytes]:
    """One request through the ASGI callable: (status, headers, body)."""
    sent: list[dict[str, Any]] = []
    scope = {"type": "http", "method": method, "path": path, "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers]}  # fmt: skip
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    async def run() -> None:
        await app(scope, receive, send)

    anyio.run(run)
    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    if start is None:
        return 0, {}, b""
    hs = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], hs, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def chat(app: server.GatewayApp, client_id: str | None = None) -> tuple[int, dict[str, str], bytes]:
    headers = [("authorization", f"Bearer {app.key}"), ("content-type", "application/json")]  # type: ignore[attr-defined]
    if client_id is not None:
        headers.append(("x-request-id", client_id))
    body = json.dumps({"model": "echo", "messages": [{"role": "user", "content": "hi"}]}).encode()
    return call(app, "POST", "/v1/chat/completions", body, headers)


def _records(app: server.GatewayApp) -> list[LogRecord]:
    assert app.gateway is not None
    writer: Any = app.gateway.observers.sink
    assert writer.flush(10)
    store = SQLiteLogStore(Path(app.settings.data_dir) / "logs.sqlite3", readonly=True)
    return [r for _, r in store.query(LogQuery(limit=None))]


def test_the_gateway_id_is_the_key_and_the_callers_id_is_kept(app: server.GatewayApp) -> None:
    seen = [chat(app, "same-id") for _ in range(5)]
    assert all(status == 200 for status, _, _ in seen)
    ids = {h["x-request-id"] for _, h, _ in seen}
    assert len(ids) == 5 and "same-id" not in ids
    recs = _records(app)
    assert {r.request_id for r in recs} == ids and {r.client_request_id for r in recs} == {"same-id"}


def test_a_handler_that_fails_before_its_record_still_leaves_one(app: server.GatewayApp,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def overflow(*_: Any) -> float:
        raise OverflowError("int too large to convert to float")  # what a 400-digit usage figure did in _log

    monkeypatch.setattr(server, "cost_of", overflow)
    status, _, _ = chat(app, "caller-1")
    monkeypatch.undo()
    assert status in (0, 500)
    chat(app)
    recs = _records(app)
    assert len(recs) == 2
    failed = next(r for r in recs if r.error_code == "internal_error")
    assert failed.client_request_id == "caller-1" and failed.endpoint == "chat"


def test_a_handler_that_fails_after_its_record_leaves_no_second_one(app: server.GatewayApp,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    real = server.Exchange.json

    async def broken_send(self: Any, status: int, obj: Any, extra: Any = None) -> None:
        if status == 200:
            raise RuntimeError("the response could not be written")
        await real(self, status, obj, extra)

    monkeypatch.setattr(server.Exchange, "json", broken_send)
    chat(app)
    monkeypatch.undo()
    recs = _records(app)
    assert len(recs) == 1 and recs[0].status == 200


class Doomed:
    def write(self, records: Sequence[LogRecord]) -> None:
        raise SystemExit("gone")

    def probe(self) -> None:
        return None

    def close(self) -> None:
        return None


def test_readiness_fails_with_a_reason_when_the_log_writer_is_gone(app: server.GatewayApp) -> None:
    status, _, body = call(app, "GET", "/readyz")
    assert status == 200 and json.loads(body)["status"] == "ready"
    assert app.gateway is not None
    writer: Any = app.gateway.observers.sink
    writer._sink = Doomed()
    chat(app)
    for _ in range(300):
        if writer.problem():
            break
        threading.Event().wait(0.01)
    status, _, body = call(app, "GET", "/readyz")
    doc = json.loads(body)
    assert status == 503 and doc["status"] == "failing" and "log writer stopped" in doc["reason"]
    status, _, _ = chat(app)
    assert status == 200  # requests are still answered; their records wait in the spill file
    _, _, metrics = call(app, "GET", "/metrics")
    assert b"ghat_log_writer_up 0" in metrics
