"""Slow clients: headers or a body that do not arrive in time get a 408; idle connections are closed.

Over raw sockets against a real `ghat serve` started with short timeouts, so
a slowloris client cannot hold connections for ever.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.fixtures_upstream import FakeUpstream
from tests.gateway_process import Gateway, start_gateway

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake_upstream_server: FakeUpstream) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path_factory.mktemp("timeouts"), fake_upstream_server.url,
                       extra=("--header-timeout", "0.5", "--body-timeout", "0.5", "--keep-alive", "1"))  # fmt: skip
    yield gw
    gw.stop()


def _connect(gw: Gateway) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    return s


def _read_response(s: socket.socket) -> bytes:
    """One whole response (headers and a content-length body) from a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length"))
    while len(body) < length:
        body += s.recv(65536)
    return head + b"\r\n\r\n" + body


def _read_all(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def test_headers_that_trickle_get_408_and_the_connection_closes(gateway: Gateway) -> None:
    with _connect(gateway) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        time.sleep(0.2)
        s.sendall(b"x-slow: 1\r\n")  # still inside the window, but the headers never finish
        started = time.monotonic()
        reply = _read_all(s)
        assert time.monotonic() - started < 4
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert json.loads(body)["error"]["code"] == "invalid_request"


def test_a_silent_new_connection_is_closed(gateway: Gateway) -> None:
    with _connect(gateway) as s:
        assert _read_all(s).startswith(b"HTTP/1.1 408")


def test_a_body_that_stalls_gets_408(gateway: Gateway) -> None:
    key = gateway.keys["gw-test"]
    with _connect(gateway) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                  b"authorization: Bearer " + key.encode() + b"\r\ncontent-length: 100\r\n\r\n"
                  b'{"model": ')  # fmt: skip
        reply = _read_all(s)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), reply[:200]
    err = json.loads(body)["error"]
    assert err["code"] == "invalid_request" and "did not arrive" in err["message"]


def test_a_prompt_client_on_a_kept_alive_connection_is_not_cut(gateway: Gateway) -> None:
    key = gateway.keys["gw-test"]
    body = json.dumps({"model": "echo", "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
               b"authorization: Bearer " + key.encode() + b"\r\ncontent-length: " + str(len(body)).encode()
               + b"\r\n\r\n" + body)  # fmt: skip
    with _connect(gateway) as s:
        for _ in range(3):  # each request well inside the header timeout, with pauses longer than it between
            s.sendall(request)
            got = _read_response(s)
            assert got.startswith(b"HTTP/1.1 200"), got[:200]
            time.sleep(0.7)  # longer than the header timeout, shorter than keep-alive: the connection lives
        started = time.monotonic()
        assert _read_all(s) == b""  # then keep-alive closes it, without a 408
        assert time.monotonic() - started < 3
