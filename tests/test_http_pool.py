"""The upstream pool (adapters/http.py `Upstream`) over real sockets: reuse, resets, timeouts, SSE framing.

A scripted server (tests/canned_upstream.py) counts the TCP connections it
accepts, so keep-alive is checked by what reaches the wire, not by peeking
into aiohttp.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from adapters.http import SSEDecoder, Upstream, _tls
from adapters.jsonwire import dumps, loads
from adapters.openai import OpenAIProvider
from engine.decision import Candidate
from engine.ports import JSON, ProviderError
from tests.canned_upstream import CannedServer, Reply, http_reply, sse_reply

pytestmark = pytest.mark.anyio
C = Candidate("p/m", "p", "m", 5.0, 0, ())
BODY: JSON = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
ANSWER = {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant",
                                                                                        "content": "ok"}}]}


def _chunks(*texts: str) -> list[bytes]:
    out = [b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]}).encode()
           + b"\n\n" for t in texts]  # fmt: skip
    out.append(b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n')
    return [*out, b"data: [DONE]\n\n"]


@pytest.fixture
async def served() -> AsyncIterator[CannedServer]:
    server = await CannedServer([]).start()
    yield server
    await server.close()


async def test_sequential_requests_share_one_keep_alive_connection(served: CannedServer) -> None:
    served.replies += [Reply(http_reply(json.dumps(ANSWER).encode())) for _ in range(3)]
    p = OpenAIProvider("up", served.url + "?api-version=2024-06-01", "sk-1", {"X-Team": "core"})
    try:
        for _ in range(3):
            assert (await p.chat(BODY, C, 5.0))["choices"][0]["message"]["content"] == "ok"
    finally:
        await p.aclose()
    assert served.connections == 1 and len(served.requests) == 3
    head = served.requests[0].split(b"\r\n\r\n")[0].decode().lower()
    assert head.startswith("post /v1/chat/completions?api-version=2024-06-01 http/1.1")
    assert "authorization: bearer sk-1" in head and "x-team: core" in head and "content-type: application/json" in head


async def test_a_finished_stream_gives_its_connection_back(served: CannedServer) -> None:
    served.replies += [Reply(sse_reply(_chunks("a", "b"))), Reply(sse_reply(_chunks("c"))),
                       Reply(http_reply(json.dumps(ANSWER).encode()))]  # fmt: skip
    p = OpenAIProvider("up", served.url, "k")
    try:
        first = [c async for c in p.chat_stream(BODY, C, 5.0)]
        second = [c async for c in p.chat_stream(BODY, C, 5.0)]
        await p.chat(BODY, C, 5.0)
    finally:
        await p.aclose()
    assert [c["choices"][0]["delta"].get("content") for c in first] == ["a", "b", None]
    assert len(second) == 2
    assert served.connections == 1  # [DONE] was followed by the body's end, read before handing [DONE] over


async def test_a_connection_the_upstream_closed_while_idle_is_replaced(served: CannedServer) -> None:
    served.replies += [Reply(http_reply(json.dumps(ANSWER).encode())) for _ in range(2)]
    p = OpenAIProvider("up", served.url, "k")
    try:
        await p.chat(BODY, C, 5.0)
        served.drop_idle()  # an upstream's keep-alive timeout
        await anyio.sleep(0.05)  # let the close reach our side
        await p.chat(BODY, C, 5.0)
    finally:
        await p.aclose()
    assert served.connections == 2


async def test_a_reset_mid_body_is_a_retryable_connection_failure(served: CannedServer) -> None:
    whole = http_reply(json.dumps(ANSWER).encode())
    served.replies.append(Reply(whole[: len(whole) - 10], close=True))
    p = OpenAIProvider("up", served.url, "sk-secret")
    try:
        with pytest.raises(ProviderError) as info:
            await p.chat(BODY, C, 5.0)
    finally:
        await p.aclose()
    assert (info.value.code, info.value.status, info.value.retryable) == ("route_unavailable", 503, True)
    assert "sk-secret" not in info.value.message


async def test_no_answer_within_the_timeout_is_request_timeout(served: CannedServer) -> None:
    served.replies.append(Reply(b"", stall_s=30))
    p = OpenAIProvider("up", served.url, "k")
    try:
        with pytest.raises(ProviderError) as info:
            await p.chat(BODY, C, 0.2)
    finally:
        await p.aclose()
    assert (info.value.code, info.value.status, info.value.retryable) == ("request_timeout", 504, True)


async def test_a_stream_that_stalls_mid_way_times_out_on_the_socket(served: CannedServer) -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    first = _chunks("a")[0]
    served.replies.append(Reply(head + b"%x\r\n%s\r\n" % (len(first), first), stall_s=30))
    p = OpenAIProvider("up", served.url, "k")
    got: list[JSON] = []
    try:
        with pytest.raises(ProviderError) as info:
            async for c in p.chat_stream(BODY, C, 0.2):
                got.append(c)
    finally:
        await p.aclose()
    assert len(got) == 1 and info.value.code == "request_timeout"


async def test_a_stream_cut_mid_way_is_stream_interrupted(served: CannedServer) -> None:
    whole = sse_reply(_chunks("a", "b", "c"))
    served.replies.append(Reply(whole[: len(whole) // 2], close=True))
    p = OpenAIProvider("up", served.url, "k")
    try:
        with pytest.raises(ProviderError) as info:
            async for _ in p.chat_stream(BODY, C, 5.0):
                pass
    finally:
        await p.aclose()
    assert info.value.code == "upstream_stream_interrupted" and info.value.retryable


async def test_error_status_keeps_the_upstreams_message_and_retry_after(served: CannedServer) -> None:
    err = json.dumps({"error": {"message": "slow down", "type": "rate_limit"}}).encode()
    served.replies.append(Reply(http_reply(err, status=429, headers={"retry-after": "3"})))
    up = Upstream("up", served.url, {}, 5.0)
    try:
        with pytest.raises(ProviderError) as info:
            await up.post("/chat/completions", b"{}", None)
    finally:
        await up.aclose()
    e = info.value
    assert (e.code, e.upstream_status, e.retry_after) == ("route_unavailable", 429, 3.0) and "slow down" in e.message


async def test_connection_refused_is_retryable() -> None:
    server = await CannedServer([]).start()
    url = server.url
    await server.close()
    up = Upstream("up", url, {}, 2.0)
    try:
        with pytest.raises(ProviderError) as info:
            await up.post("/chat/completions", b"{}", None)
    finally:
        await up.aclose()
    assert info.value.code == "route_unavailable" and info.value.retryable


async def test_https_is_verified_against_the_configured_trust_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)  # fmt: skip
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    server = await CannedServer([Reply(http_reply(json.dumps(ANSWER).encode())) for _ in range(2)], tls=tls).start()
    try:
        _tls.cache_clear()
        untrusted = OpenAIProvider("up", server.url, "k")  # certifi's bundle does not know our certificate
        with pytest.raises(ProviderError) as info:
            await untrusted.chat(BODY, C, 5.0)
        await untrusted.aclose()
        assert info.value.code == "route_unavailable" and info.value.retryable
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        _tls.cache_clear()
        trusted = OpenAIProvider("up", server.url, "k")
        try:
            assert (await trusted.chat(BODY, C, 5.0))["choices"][0]["message"]["content"] == "ok"
        finally:
            await trusted.aclose()
    finally:
        _tls.cache_clear()
        await server.close()


def test_the_pool_follows_the_event_loop_it_is_used_in() -> None:
    """Policies compile in a worker thread and tests run a loop each: a new loop gets a new session."""

    async def once(server_box: list[CannedServer], p: OpenAIProvider) -> str:
        server = await CannedServer([Reply(http_reply(json.dumps(ANSWER).encode()))]).start()
        server_box.append(server)
        p._http._base = server.url  # the same provider, a server in this loop
        p._http._urls.clear()
        try:
            return str((await p.chat(BODY, C, 5.0))["choices"][0]["message"]["content"])
        finally:
            await p.aclose()  # closes this loop's session; the next loop makes its own
            await server.close()

    p = OpenAIProvider("up", "http://127.0.0.1:9/v1", "k")
    box: list[CannedServer] = []
    assert anyio.run(once, box, p) == "ok"
    assert anyio.run(once, box, p) == "ok"


# ── SSE framing and JSON ─────────────────────────────────────────────────
def test_sse_decoder_handles_any_split_of_the_bytes() -> None:
    raw = (b': hi\r\n\r\nevent: delta\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
           b"data:x\n\nid: 3\nretry: 9\n\ndata: \xc3\xa9\r\rdata: cut")
    want = [("delta", b'{"a":\n1}'), ("message", b"x"), ("message", "é".encode())]
    for size in (1, 2, 3, 5, 7, len(raw)):
        d = SSEDecoder()
        got = [ev for i in range(0, len(raw), size) for ev in d.feed(raw[i : i + size])]
        assert got == want, size


def test_orjson_with_the_standard_library_behind_it() -> None:
    assert dumps({"b": "é", "n": 2**70, 1: [1.5]}) == '{"b":"é","n":1180591620717411303424,"1":[1.5]}'.encode()
    assert loads(b'{"x": 1}') == {"x": 1}
    with pytest.raises(ValueError):
        loads(b"{not json")
