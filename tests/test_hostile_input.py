"""End to end: whatever a client sends, `ghat serve` answers a 4xx in the OpenAI error shape and keeps serving.

Each named case was a break before: lone surrogates gave 500s (content,
documents, embeddings, the dry-run endpoint), a plain-text 500 (the app
field) or a 502 blaming the provider (`user`, tool arguments); `NaN` was
forwarded as `null`; a 16 MB header was accepted. Then generated input, over
the request schema and over raw bytes, both as bodies and as whole requests
on a socket: never a 5xx (nothing here reaches a provider: the mock answers),
never an error body that is not JSON, and the server answers `/healthz` after.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gateway_process import ROOT, Gateway, start_gateway

pytestmark = pytest.mark.xdist_group("hostile-input")

APP = "hostile-in"
HEADER_LIMIT = 16_384
POLICY = """
provider local { kind mock }
model local/echo  { price in 1 out 2 per 1M }
model local/embed { kind embedding price in 0.1 per 1M }
alias echo  { route local/echo }
alias embed { route local/embed }
detector ticket pattern /TICKET-[0-9]{6}/ type ticket
app hostile-in {
  env        test
  models     echo, embed
  max_tokens 64
  rate_limit 1000000/min
  input  { pii redact; secrets redact; ticket block }
  output { pii redact }
}
"""
PATHS = ("/v1/chat/completions", "/v1/embeddings", "/v1/ghat/evaluate")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = start_gateway(tmp_path_factory.mktemp("hostile-in"), "http://127.0.0.1:9/v1", apps=(APP,), policy=POLICY,
                      extra=("--max-header-bytes", str(HEADER_LIMIT), "--header-timeout", "2",
                             "--body-timeout", "2"))  # fmt: skip
    yield g
    g.stop()


def _auth(gw: Gateway) -> dict[str, str]:
    return {"authorization": f"Bearer {gw.keys[APP]}", "content-type": "application/json"}


def _post(gw: Gateway, path: str, raw: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(gw.base + path, content=raw, headers=headers or _auth(gw), timeout=20)


def _assert_json_error(r: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json"), r.text[:300]
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    return dict(err)


def _logged(gw: Gateway, rid: str) -> dict[str, Any]:
    """The request's log record (the writer is off the hot path: poll for it)."""
    deadline = time.monotonic() + 15
    while True:
        out = subprocess.run([sys.executable, "-m", "cli.main", "logs", "show", rid, "--data-dir", str(gw.data_dir)],
                             cwd=ROOT, capture_output=True, text=True, timeout=30)  # fmt: skip
        if out.returncode == 0:
            return dict(json.loads(out.stdout))
        assert time.monotonic() < deadline, f"no log record for {rid}: {out.stderr}"
        time.sleep(0.3)


def _chat(extra: str = "", content: str = '"hello"') -> bytes:
    return ('{"model":"echo","messages":[{"role":"user","content":' + content + "}]" + extra + "}").encode()


LONE = '"\\ud800 and \\udfff"'
REFUSED: dict[str, tuple[str, bytes]] = {
    "surrogate_content": (PATHS[0], _chat(content=LONE)),
    "surrogate_documents": (PATHS[0], _chat(',"ghat":{"documents":[' + LONE + "]}")),
    "surrogate_app_field": (PATHS[0], _chat(',"ghat_app":' + LONE)),
    "surrogate_user": (PATHS[0], _chat(',"user":' + LONE)),
    "surrogate_metadata": (PATHS[0], _chat(',"metadata":{"operation":' + LONE + "}")),
    "surrogate_tool_args": (PATHS[0], _chat(content='"x"},{"role":"assistant","content":null,"tool_calls":'
                                            '[{"id":"c","type":"function","function":{"name":"f","arguments":'
                                            + LONE + '}}]')),
    "surrogate_embeddings": (PATHS[1], b'{"model":"embed","input":' + LONE.encode() + b"}"),
    "surrogate_dry_run": (PATHS[2], _chat(content=LONE)),
    "nan": (PATHS[0], _chat(',"temperature":NaN')),
    "infinity": (PATHS[0], _chat(',"top_p":-Infinity')),
    "double_overflow": (PATHS[0], _chat(',"temperature":1e400')),
    "int64_overflow": (PATHS[0], _chat(',"seed":9223372036854775808')),
    "invalid_utf8": (PATHS[0], _chat(content='"caf\xe9"').replace(b"caf\xc3\xa9", b"caf\xe9")),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_bad_input_is_a_400_in_the_openai_shape_and_logged(gw: Gateway, name: str) -> None:
    path, raw = REFUSED[name]
    r = _post(gw, path, raw)
    err = _assert_json_error(r, 400)
    assert err["code"] == "invalid_request"
    if path != "/v1/ghat/evaluate":  # the dry run dispatches nothing and logs nothing
        rec = _logged(gw, r.headers["x-request-id"])
        assert rec["status"] == 400 and rec["error_code"] == "invalid_request"


@pytest.mark.parametrize("value", [b"caf\xe9", b"\xed\xa0\x80", b"\xff\xfe"])
def test_non_ascii_bytes_in_header_fields_are_never_a_500(gw: Gateway, value: bytes) -> None:
    for header in ("x-ghat-app", "x-ghat-operation", "x-request-id"):
        r = httpx.post(gw.v1 + "/chat/completions", content=_chat(), timeout=20,
                       headers=[*((k.encode(), v.encode()) for k, v in _auth(gw).items()), (header.encode(), value)])
        assert r.status_code < 500 and r.headers["content-type"].startswith("application/json"), r.text[:200]


def _raw_exchange(gw: Gateway, data: bytes, chunk: int = 65_536, timeout: float = 10.0) -> bytes:
    """Send raw bytes on a fresh connection (stopping if the server closes it), then read what comes back."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=timeout) as s:
        try:
            for i in range(0, len(data), chunk):
                s.sendall(data[i : i + chunk])
        except (BrokenPipeError, ConnectionResetError):
            pass
        out = b""
        try:
            while True:
                piece = s.recv(65_536)
                if not piece:
                    break
                out += piece
                if b"\r\n\r\n" in out and _complete(out):
                    break
        except (ConnectionResetError, TimeoutError):
            pass
        return out


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False


def _status_and_body(response: bytes) -> tuple[int, bytes, bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


def test_oversized_headers_get_a_431_in_the_openai_shape(gw: Gateway) -> None:
    big = b"x" * (HEADER_LIMIT + 1024)
    req = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-filler: " + big + b"\r\ncontent-length: 2\r\n\r\n{}"
    status, head, body = _status_and_body(_raw_exchange(gw, req))
    assert status == 431 and b"application/json" in head
    assert json.loads(body)["error"]["code"] == "invalid_request"


def test_an_endless_header_is_cut_off_while_it_arrives(gw: Gateway) -> None:
    """A 64 MB header line is refused after about the limit, long before the header timeout would fire."""
    t0 = time.monotonic()
    req = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-filler: " + b"y" * (64 << 20)
    status, _, body = _status_and_body(_raw_exchange(gw, req, chunk=1 << 20))
    assert status == 431 and json.loads(body)["error"]["code"] == "invalid_request"
    assert time.monotonic() - t0 < 60  # generous: the point is it is not held to the end


def test_headers_within_the_limit_are_served(gw: Gateway) -> None:
    r = httpx.post(gw.v1 + "/chat/completions", content=_chat(), timeout=20,
                   headers={**_auth(gw), "x-filler": "z" * (HEADER_LIMIT - 2048)})  # fmt: skip
    assert r.status_code == 200, r.text[:200]


def test_bytes_that_are_not_http_get_a_json_400(gw: Gateway) -> None:
    status, head, body = _status_and_body(_raw_exchange(gw, b"\x16\x03\x01\x02\x00garbage\r\n\r\n"))
    assert status == 400 and b"application/json" in head
    assert json.loads(body)["error"]["type"] == "invalid_request_error"


# ── generated input ─────────────────────────────────────────────────────
def _scalars() -> st.SearchStrategy[Any]:
    surrogates = st.integers(min_value=0xD800, max_value=0xDFFF).map(chr)  # st.characters() never draws them
    text = st.text(st.characters() | surrogates, max_size=40)
    ints = st.integers(min_value=-(2**70), max_value=2**70)
    floats = st.floats(allow_nan=True, allow_infinity=True)
    return st.none() | st.booleans() | ints | floats | text


def _values() -> st.SearchStrategy[Any]:
    return st.recursive(_scalars(), lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)  # fmt: skip


@st.composite
def _requests(draw: st.DrawFn) -> tuple[str, bytes]:
    """A chat or embeddings body shaped like the schema, with any field possibly of any type or value."""
    v = _values()
    role = st.sampled_from(["system", "user", "assistant", "tool", "developer", "function"]) | v
    part = st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url"]) | v, "text": v})
    content = st.text(max_size=60) | st.lists(part, max_size=3) | v
    message = st.fixed_dictionaries({"role": role, "content": content}, optional={"name": v, "tool_calls": v})
    common = {"model": st.sampled_from(["echo", "embed", "nope"]) | v}
    optional = {"metadata": st.dictionaries(st.sampled_from(["operation", "workspace_id"]), v, max_size=2) | v,
                "ghat": st.fixed_dictionaries({}, optional={"documents": st.lists(v, max_size=2) | v, "app": v}),
                "ghat_app": v, "user": v, "temperature": v, "max_tokens": v, "stream": st.booleans() | v,
                "n": v, "stream_options": v, "tools": v}  # fmt: skip
    if draw(st.booleans()):
        body = draw(st.fixed_dictionaries({**common, "messages": st.lists(message, max_size=3) | v},
                                          optional=optional))  # fmt: skip
        path = draw(st.sampled_from([PATHS[0], PATHS[2]]))
    else:
        body = draw(st.fixed_dictionaries({**common, "input": st.text(max_size=40) | st.lists(v, max_size=3) | v},
                                          optional=optional))  # fmt: skip
        path = PATHS[1]
    return path, json.dumps(body, ensure_ascii=True, allow_nan=True).encode()  # lone surrogates as \\udXXX


def _check_answer(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        _assert_json_error(r, r.status_code)
    elif "text/event-stream" in r.headers.get("content-type", ""):
        assert r.text.rstrip().endswith("data: [DONE]"), r.text[-300:]
    else:
        r.json()


HYPO = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])  # fmt: skip


@HYPO
@given(case=_requests())
def test_generated_requests_never_get_a_5xx_or_a_non_json_error(gw: Gateway, case: tuple[str, bytes]) -> None:
    path, raw = case
    _check_answer(_post(gw, path, raw))


@HYPO
@given(raw=st.binary(max_size=300) | st.text(max_size=200).map(str.encode), path=st.sampled_from(PATHS))
def test_generated_bodies_never_get_a_5xx_or_a_non_json_error(gw: Gateway, raw: bytes, path: str) -> None:
    _check_answer(_post(gw, path, raw))


_HEAD_LINES = st.lists(st.binary(max_size=40).filter(lambda b: b"\r\n\r\n" not in b), max_size=6)


@HYPO
@given(start=st.sampled_from([b"POST /v1/chat/completions HTTP/1.1", b"GET /healthz HTTP/1.1", b""]) | st.binary(
    max_size=40), lines=_HEAD_LINES)
def test_generated_request_heads_never_get_a_5xx_or_a_non_json_error(gw: Gateway, start: bytes,
                                                                      lines: list[bytes]) -> None:
    out = _raw_exchange(gw, b"\r\n".join([start, *lines]) + b"\r\n\r\n", timeout=8)
    if not out:
        return  # the server may close a connection it cannot read a request from (no bytes: no error body)
    status, head, body = _status_and_body(out)
    assert status < 500, out[:300]
    if status >= 400:
        assert b"application/json" in head.lower(), out[:300]
        assert "error" in json.loads(body)


def test_the_server_keeps_serving_after_all_of_it(gw: Gateway) -> None:
    assert httpx.get(gw.base + "/healthz", timeout=5).status_code == 200
    r = _post(gw, PATHS[0], _chat())
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"].startswith("echo: ")
    assert gw.proc.poll() is None
    assert "Traceback" not in gw.log(), gw.log()[-3000:]
