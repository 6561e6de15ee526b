"""`ghat smoke`: an end-to-end check of a deployed gateway, as a client sees it, after every deploy.

Runs the calls a real client makes — health, readiness, the key's models, a
chat completion, a streamed one, embeddings when the key has an embedding
model — plus the refusals it must give (no key, malformed JSON), and checks
the contract on each: status, OpenAI body shape, `x-request-id`, all seven
`Server-Timing` phases, `x-ghat-policy`. Exit status 0 when every check
passes, 1 when one fails, 2 when the gateway cannot be reached or the
arguments are wrong. It sends only short, synthetic prompts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from engine.records import PHASES

PROMPT = "ghat smoke test: reply with the word OK."


class CheckFailed(Exception):
    """One check's contract was not met; the message says how."""


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    ok: bool
    ms: float
    detail: str


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "smoke", help="end-to-end check of a deployed gateway",
        description="Call a running gateway as a client would and check every response's contract.",
    )  # fmt: skip
    p.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway's base URL (default %(default)s)")
    p.add_argument("--key", default=os.environ.get("GHAT_API_KEY"), help="an app key (default: $GHAT_API_KEY)")
    p.add_argument("--model", help="the chat model or alias to call (default: the key's first chat model)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per call (default %(default)s)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.key:
        print("ghat smoke: pass --key or set GHAT_API_KEY", file=sys.stderr)
        return 2
    base = args.url.rstrip("/")
    with httpx.Client(base_url=base, timeout=args.timeout) as client:
        try:
            client.get("/healthz")
        except httpx.HTTPError as exc:
            print(f"ghat smoke: cannot reach {base}: {exc}", file=sys.stderr)
            return 2
        results = Smoke(client, args.key, args.model).run()
    if args.format == "json":
        print(json.dumps({"url": base, "passed": all(r.ok for r in results),
                          "checks": [_as_dict(r) for r in results]},
                         indent=2))  # fmt: skip
    else:
        for r in results:
            print(f"{'ok  ' if r.ok else 'FAIL'}  {r.name:<22} {r.ms:8.1f} ms  {r.detail}")
        failed = sum(not r.ok for r in results)
        print(f"{len(results) - failed} passed, {failed} failed")
    return 0 if all(r.ok for r in results) else 1


def _as_dict(r: Result) -> dict[str, Any]:
    return {"name": r.name, "ok": r.ok, "ms": round(r.ms, 2), "detail": r.detail}


class Smoke:
    """The checks, in the order a client meets the gateway; later ones use what earlier ones found."""

    def __init__(self, client: httpx.Client, key: str, model: str | None) -> None:
        self.client = client
        self.auth = {"authorization": f"Bearer {key}"}
        self.model = model
        self.embedding_model: str | None = None

    def run(self) -> list[Result]:
        checks: list[tuple[str, Callable[[], str]]] = [
            ("healthz", self.healthz), ("readyz", self.readyz), ("models", self.models),
            ("chat", self.chat), ("chat stream", self.stream), ("embeddings", self.embeddings),
            ("refuses missing key", self.no_key), ("refuses bad JSON", self.bad_json), ("metrics", self.metrics),
        ]  # fmt: skip
        out: list[Result] = []
        for name, check in checks:
            t0 = time.perf_counter()
            try:
                detail, ok = check(), True
            except CheckFailed as exc:
                detail, ok = str(exc), False
            except httpx.HTTPError as exc:
                detail, ok = f"{type(exc).__name__}: {exc}", False
            out.append(Result(name, ok, (time.perf_counter() - t0) * 1000.0, detail))
        return out

    def healthz(self) -> str:
        return _status(self.client.get("/healthz"), 200)

    def readyz(self) -> str:
        return _status(self.client.get("/readyz"), 200)

    def models(self) -> str:
        r = self.client.get("/v1/models", headers=self.auth)
        _status(r, 200)
        data = _json(r).get("data")
        if not isinstance(data, list) or not data:
            raise CheckFailed("the key may use no model")
        chat = [m["id"] for m in data if isinstance(m, dict) and m.get("kind", "chat") == "chat"]
        embed = [m["id"] for m in data if isinstance(m, dict) and m.get("kind") == "embedding"]
        self.model = self.model or (chat[0] if chat else None)
        self.embedding_model = embed[0] if embed else None
        return f"{len(data)} model(s); using {self.model}"

    def chat(self) -> str:
        r = self.client.post("/v1/chat/completions", headers=self.auth, json=self._chat_body(False))
        _status(r, 200)
        _contract(r)
        try:
            content = _json(r)["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise CheckFailed("the body is not a chat completion") from None
        if not isinstance(content, str):
            raise CheckFailed("the message has no text content")
        return f"{r.headers.get('x-ghat-model')} via {r.headers.get('x-ghat-provider')}, {len(content)} chars"

    def stream(self) -> str:
        events, text = 0, ""
        with self.client.stream("POST", "/v1/chat/completions", headers=self.auth,
                                json=self._chat_body(True)) as r:  # fmt: skip
            if r.status_code != 200:
                r.read()
                raise CheckFailed(f"status {r.status_code}: {r.text[:200]}")
            _contract(r)
            done = False
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    done = True
                    break
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    raise CheckFailed(f"error event: {chunk['error'].get('code')}")
                events += 1
                for choice in chunk.get("choices") or ():
                    text += (choice.get("delta") or {}).get("content") or ""
        if not done:
            raise CheckFailed(f"the stream ended without [DONE] after {events} event(s)")
        return f"{events} event(s), {len(text)} chars"

    def embeddings(self) -> str:
        if self.embedding_model is None:
            return "skipped: the key has no embedding model"
        r = self.client.post("/v1/embeddings", headers=self.auth,
                             json={"model": self.embedding_model, "input": PROMPT})  # fmt: skip
        _status(r, 200)
        _contract(r)
        vector = _json(r)["data"][0]["embedding"]
        return f"{self.embedding_model}: {len(vector)} dimensions"

    def no_key(self) -> str:
        return _error(self.client.post("/v1/chat/completions", json=self._chat_body(False)), 401, "unauthorized")

    def bad_json(self) -> str:
        r = self.client.post("/v1/chat/completions", headers={**self.auth, "content-type": "application/json"},
                             content=b'{"model": ')  # fmt: skip
        return _error(r, 400, "invalid_request")

    def metrics(self) -> str:
        r = self.client.get("/metrics")
        _status(r, 200)
        if "ghat_requests_total" not in r.text:
            raise CheckFailed("no ghat_requests_total in /metrics")
        return f"{len(r.text)} bytes"

    def _chat_body(self, stream: bool) -> dict[str, Any]:
        if not self.model:
            raise CheckFailed("no chat model to call (pass --model)")
        meta = {"source_service": "ghat-smoke", "operation": "smoke"}
        return {"model": self.model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 16,
                "stream": stream, "ghat": {"metadata": meta}}  # fmt: skip


def _status(r: httpx.Response, want: int) -> str:
    if r.status_code != want:
        raise CheckFailed(f"status {r.status_code}, want {want}: {r.text[:200]}")
    return f"status {want}"


def _json(r: httpx.Response) -> dict[str, Any]:
    try:
        body = r.json()
    except ValueError:
        raise CheckFailed("the body is not JSON") from None
    if not isinstance(body, dict):
        raise CheckFailed("the body is not a JSON object")
    return body


def _contract(r: httpx.Response) -> None:
    """The headers GUIDE §5 puts on every response."""
    if not r.headers.get("x-request-id"):
        raise CheckFailed("no x-request-id header")
    timing = r.headers.get("server-timing", "")
    missing = [p for p in PHASES if f"{p};dur=" not in timing]
    if missing:
        raise CheckFailed(f"Server-Timing lacks {', '.join(missing)}")
    if not r.headers.get("x-ghat-policy"):
        raise CheckFailed("no x-ghat-policy header")


def _error(r: httpx.Response, status: int, code: str) -> str:
    _status(r, status)
    err = _json(r).get("error")
    if not isinstance(err, dict) or err.get("code") != code or not err.get("message"):
        raise CheckFailed(f"want an OpenAI-shaped error with code {code}, got {r.text[:200]}")
    return f"{status} {code}"
